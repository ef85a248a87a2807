"""systemd's notify protocol without a dependency: one AF_UNIX datagram per message to ``$NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace), so a ``Type=notify`` unit knows when the engine is
ready, what it is doing, that its supervisor loop still turns (watchdog) and that it is stopping.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op. A send that fails is logged once and never
raised: the engine must not die because the service manager went away.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier", "watchdog_interval"]

log = logging.getLogger("pipeline.sdnotify")


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC`` (systemd's advice), or None when no
    watchdog is armed for this process (``$WATCHDOG_PID`` names another process)."""
    env = os.environ if env is None else env
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        return max(0.05, int(usec) / 2e6)
    except ValueError:
        return None


class Notifier:
    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; True when it was handed to the socket."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode("utf-8"), target)
            return True
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("sd_notify to %s failed (further failures not logged): %s", self.address, e)
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
