"""The engine's own exception tree. Library errors (zmq, msgpack, configparser) stop at the module that
calls the library and are re-raised as one of these with ``from e`` (STYLE rule 7)."""
from __future__ import annotations

__all__ = [
    "PipelineError", "ConfigError", "CodecError", "TransportError", "SendError", "ReceiveError",
    "StageError", "SuiteError", "InfrastructureError", "DeviceDown",
]


class PipelineError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(PipelineError):
    """A config file is wrong. The message names file, section and key."""

    def __init__(self, message: str, *, file: str = "", section: str = "", key: str = "") -> None:
        where = ":".join(p for p in (file, f"[{section}]" if section else "", key) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.section, self.key = file, section, key


class SuiteError(PipelineError):
    """A suite, package or task object is unusable. The message names the file and field."""

    def __init__(self, message: str, *, file: str = "", field: str = "") -> None:
        where = " ".join(p for p in (file, f"field {field!r}" if field else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.field, self.message = file, field, message


class CodecError(PipelineError):
    """Bytes that are not a valid envelope of a known kind and version."""


class TransportError(PipelineError):
    """A socket operation failed."""


class SendError(TransportError):
    pass


class ReceiveError(TransportError):
    def __init__(self, message: str, *, src: str = "") -> None:
        super().__init__(message)
        self.src = src


class StageError(PipelineError):
    """A stage cannot go on (e.g. bad configuration given to it)."""


class InfrastructureError(PipelineError):
    """Not the product's fault: browser or device lost, driver crashed. The case is reported *broken*."""


class DeviceDown(InfrastructureError):
    """The last rung of a device's health ladder failed: its Appium server does not answer or no new session
    can be made. The scheduler quarantines the device at once (no second broken case needed)."""
