"""Encryption at rest for the engine secret and the platform token, and redaction for logs.

A value in ``config.ini`` or a state file may be written as ``enc:<fernet token>``; plain values pass
through ``decrypt`` unchanged, so an existing LiuMa ``config.ini`` keeps working. The Fernet key comes from
the ``LIUMA_SECRET_KEY`` environment variable or from a key file that must be private (mode 0600): a
key readable by others is refused rather than silently used.
"""
from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError

if TYPE_CHECKING:   # cryptography (~13 ms of imports) only where a value is encrypted or decrypted (#21)
    from cryptography.fernet import Fernet

__all__ = [
    "DEFAULT_KEY_FILE",
    "ENV_VAR",
    "MASK",
    "PREFIX",
    "decrypt",
    "encrypt",
    "generate_key_file",
    "is_encrypted",
    "load_key",
    "redact",
    "redact_urls",
    "redact_value",
    "spec_secrets",
    "url_secrets",
]

ENV_VAR = "LIUMA_SECRET_KEY"
PREFIX = "enc:"
DEFAULT_KEY_FILE = Path("config/secret.key")
MASK = "******"


def _fernet(key: bytes) -> Fernet:
    from cryptography.fernet import Fernet
    return Fernet(key)


def generate_key_file(path: Path = DEFAULT_KEY_FILE) -> bytes:
    """Create a new key file with mode 0600 (never overwrites: losing a key makes secrets unreadable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    from cryptography.fernet import Fernet
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise ConfigError("key file already exists; refusing to overwrite it", file=str(path)) from e
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return key


def load_key(key_file: Path | None = None) -> bytes:
    """The key from ``LIUMA_SECRET_KEY``, else from ``key_file`` (default ``config/secret.key``)."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        _check_key(env.encode(), f"${ENV_VAR}")
        return env.encode()
    path = key_file or DEFAULT_KEY_FILE
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"no secret key: set {ENV_VAR} or create the key file ({e.strerror})", file=str(path)) from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"key file is accessible by others (mode {oct(mode & 0o777)}); chmod 600 it",
                          file=str(path))
    _check_key(data, str(path))
    return data


def _check_key(key: bytes, where: str) -> None:
    try:
        _fernet(key)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"not a valid Fernet key ({e})", file=where) from e


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def encrypt(value: str, key: bytes | None = None) -> str:
    """``enc:<token>`` for ``value``; ``key`` defaults to ``load_key()``."""
    token = _fernet(key or load_key()).encrypt(value.encode("utf-8"))
    return PREFIX + token.decode("ascii")


def decrypt(value: str, key: bytes | None = None) -> str:
    """The plain text of an ``enc:`` value; any other value is returned unchanged."""
    if not is_encrypted(value):
        return value
    from cryptography.fernet import InvalidToken
    try:
        return _fernet(key or load_key()).decrypt(value[len(PREFIX):].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError) as e:
        raise ConfigError("cannot decrypt an 'enc:' value: wrong key or damaged value") from e


# ``scheme://user:key@`` (cloud device farms, Selenium grids): the userinfo part of any URL in a text
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/@'\"<>]+)@")


def redact_urls(text: str) -> str:
    """``https://user:key@host/wd/hub`` -> ``https://******@host/wd/hub`` for every URL in ``text``: the one
    helper logs, error messages, reports, platform rows and ``status`` use for credentials in URLs."""
    if "@" not in text or "://" not in text:
        return text
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)


def url_secrets(urls: Iterable[str]) -> list[str]:
    """The credentials of each URL (``user:key``, and ``key`` alone), for writers that mask known values."""
    out: list[str] = []
    for url in urls:
        m = _URL_USERINFO.search(url or "")
        if m:
            info = m["userinfo"]
            out.append(info)
            out.extend(part for part in info.split(":", 1)[1:] if part)
    return out


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (at least 4 characters long) with ``******``; longest first so
    a secret containing another is masked whole. Credentials in URLs are masked too (``redact_urls``)."""
    text = redact_urls(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def spec_secrets(spec: Any) -> list[str]:
    """The values a run must never write to a report or an evidence file: ``[Engine] engine-secret`` (as
    written and in clear), the platform token, and the credentials of every device and WebDriver URL. One
    list for the report writers (the aggregator) and the evidence recorders (the executors)."""
    from pipeline.platform import engine_secret  # pipeline.platform imports this module

    out = [s for s in (str(spec.setting("Engine", "engine-secret")), engine_secret(spec),
                       str(spec.headers.get("token", ""))) if s]
    out += url_secrets([str(d.get("appium_url") or "") for d in spec.devices.values()]
                       + [str(v) for v in spec.config.get("WebDriver", {}).values()])
    return out


def redact_value(value: Any, secrets: Iterable[str]) -> Any:
    """A copy of a JSON-like value with ``redact`` applied to every string (dict keys included)."""
    found = [s for s in secrets if s]
    if isinstance(value, str):
        return redact(value, found)
    if isinstance(value, dict):
        return {redact_value(k, found): redact_value(v, found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, found) for v in value]
    return value
