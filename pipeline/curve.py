"""ZeroMQ CURVE for tcp transports: key files, server and client socket setup, client authorisation.

Used only when stages talk over ``tcp://`` (``[Pipeline] transport = tcp``); ipc sockets are protected by
file permissions instead. Key files hold one Z85 key each and are created with mode 0600:
``<dir>/server.public``, ``server.secret``, ``<name>.public``, ``<name>.secret`` per client name.

Authorisation: the server's context gets one ``ThreadAuthenticator`` whose callback accepts only the listed
client public keys; a refused peer is logged (WARNING, with the first characters of its key) and nothing
it sends is delivered. The authenticator owns a socket on the context: call ``stop_authenticator(ctx)``
before ``ctx.term()``, or ``term`` blocks forever.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import zmq

from pipeline.errors import ConfigError

if TYPE_CHECKING:       # zmq.auth.thread pulls in asyncio (~45 ms): imported only when CURVE is used (#9)
    from zmq.auth.thread import ThreadAuthenticator

__all__ = ["generate_keys", "load_keypair", "load_public", "load_secret", "configure_server", "configure_client",
           "stop_authenticator", "server_setup", "client_setup", "mailbox_options", "SERVER", "CLIENT", "ZAP_DOMAIN"]

log = logging.getLogger(__name__)
SERVER = "server"
CLIENT = "client"          # the one client identity every stage of an engine uses for its PUSH sockets
ZAP_DOMAIN = "liuma"
_lock = threading.Lock()
_auth: dict[int, tuple[ThreadAuthenticator, _AllowList]] = {}


def generate_keys(directory: Path, clients: Iterable[str] = ("client",)) -> dict[str, tuple[bytes, bytes]]:
    """Create the server keypair and one keypair per client name; returns ``{name: (public, secret)}``.
    Existing key files are kept (regenerating would lock out every peer that has the old public key)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    out: dict[str, tuple[bytes, bytes]] = {}
    for name in (SERVER, *clients):
        if (directory / f"{name}.secret").exists():
            out[name] = load_keypair(directory, name)
            continue
        public, secret = zmq.curve_keypair()
        _write_private(directory / f"{name}.public", public)
        _write_private(directory / f"{name}.secret", secret)
        out[name] = (public, secret)
    return out


def load_public(directory: Path, name: str) -> bytes:
    return _read_key(directory / f"{name}.public")


def load_secret(directory: Path, name: str) -> bytes:
    path = directory / f"{name}.secret"
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise ConfigError(f"CURVE key missing ({e.strerror})", file=str(path)) from e
    if mode & 0o077:
        raise ConfigError(f"CURVE secret key is accessible by others (mode {oct(mode & 0o777)}); chmod 600 it",
                          file=str(path))
    return _read_key(path)


def load_keypair(directory: Path, name: str) -> tuple[bytes, bytes]:
    return load_public(directory, name), load_secret(directory, name)


def configure_server(socket: zmq.Socket[Any], server_secret: bytes,
                     authorized_client_publics: Iterable[bytes]) -> ThreadAuthenticator:
    """Make ``socket`` (before ``bind``) a CURVE server that admits only the given client keys."""
    auth, allow = _authenticator(socket.context)
    allow.keys.update(authorized_client_publics)
    socket.zap_domain = ZAP_DOMAIN.encode()
    socket.curve_secretkey = server_secret
    socket.curve_publickey = zmq.curve_public(server_secret)
    socket.curve_server = True
    return auth


def configure_client(socket: zmq.Socket[Any], client_public: bytes, client_secret: bytes,
                     server_public: bytes) -> None:
    """Make ``socket`` (before ``connect``) a CURVE client of the server with ``server_public``."""
    socket.curve_publickey = client_public
    socket.curve_secretkey = client_secret
    socket.curve_serverkey = server_public


def stop_authenticator(context: zmq.Context[Any]) -> None:
    """Stop the context's authenticator thread (if any); needed before ``context.term()``."""
    with _lock:
        entry = _auth.pop(id(context), None)
    if entry is not None:
        entry[0].stop()


def server_setup(directory: Path, clients: Iterable[str] = ("client",)) -> Callable[[zmq.Socket[Any]], None]:
    """A ``socket -> None`` configurer for ``pipeline.transport.Mailbox(curve_server=...)``."""
    secret = load_secret(directory, SERVER)
    publics = [load_public(directory, name) for name in clients]

    def setup(sock: zmq.Socket[Any]) -> None:
        configure_server(sock, secret, publics)
    return setup


def client_setup(directory: Path, name: str = "client") -> Callable[[zmq.Socket[Any]], None]:
    """A ``socket -> None`` configurer for ``pipeline.transport.Mailbox(curve_client=...)``."""
    public, secret = load_keypair(directory, name)
    server_public = load_public(directory, SERVER)
    return lambda sock: configure_client(sock, public, secret, server_public)


class MailboxOptions(TypedDict, total=False):
    """The CURVE keyword arguments of ``Mailbox``."""

    curve_server: Callable[[zmq.Socket[Any]], None]
    curve_client: Callable[[zmq.Socket[Any]], None]


def mailbox_options(spec: Any) -> MailboxOptions:
    """``Mailbox`` keyword arguments for a stage of ``spec`` (a ``RunSpec``): with ``[Pipeline] transport = tcp``
    and ``curve-keys = <dir>`` every inbox is a CURVE server admitting only the engine's client key, and every
    sending socket uses that client key; otherwise nothing (ipc is protected by the 0700 run directory).
    Missing or unsafe key files raise ``ConfigError`` naming the file (``liuma-pipeline keys`` creates them)."""
    keys = str(spec.setting("Pipeline", "curve-keys") or "")
    if spec.setting("Pipeline", "transport") != "tcp" or not keys:
        return {}
    directory = Path(keys)
    if not directory.is_absolute() and str(getattr(spec, "config_path", "")):
        directory = Path(spec.config_path).parent / directory
    return MailboxOptions(curve_server=server_setup(directory, (CLIENT,)), curve_client=client_setup(directory, CLIENT))


class _AllowList:
    """ZAP credentials provider: ``callback(domain, z85_key) -> bool``; refusals are logged."""

    def __init__(self) -> None:
        self.keys: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        log.warning("CURVE: refused peer with unknown public key %s… (domain %s)", key[:8].decode(), domain)
        return False


def _authenticator(context: zmq.Context[Any]) -> tuple[ThreadAuthenticator, _AllowList]:
    with _lock:
        entry = _auth.get(id(context))
        if entry is None:
            from zmq.auth.thread import ThreadAuthenticator
            auth, allow = ThreadAuthenticator(context), _AllowList()
            auth.start()
            auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=allow)
            entry = _auth[id(context)] = (auth, allow)
        return entry


def _write_private(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"CURVE key missing ({e.strerror})", file=str(path)) from e
    if len(key) != 40:
        raise ConfigError(f"not a Z85 CURVE key (expected 40 characters, got {len(key)})", file=str(path))
    return key
