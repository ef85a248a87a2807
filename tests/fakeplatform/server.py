"""A real LiuMa platform stand-in on 127.0.0.1: HTTP endpoints and the engine WebSocket on ONE port.

One listening socket is accepted by our own thread; the first request line is peeked and the connection is
handed either to a ``ThreadingHTTPServer`` (all ``/openapi/...`` endpoints) or to a ``websockets`` sync
server (``/websocket/engine/heartbeat``). Sharing the port matters: the engine derives the ws URL from the
platform URL by changing only the scheme.

Switches for failure tests: ``outage(seconds, mode="refused"|"503")``, ``restart()`` (drops every
connection, WebSockets included), ``delay`` (seconds before every HTTP answer), ``inject(path, ...)``
(canned answers), ``expire_tokens()`` / ``invalidate_tokens()``, and the 10-minute inactivity rule with a
configurable timeout and check period.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from http.server import ThreadingHTTPServer
from typing import Any

from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from tests.fakeplatform.handlers import PlatformHandler, Reply, _json
from tests.fakeplatform.state import PlatformState, build_package, envelope

__all__ = ["FakePlatform"]

WS_PATH = "/websocket/engine/heartbeat"


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Resets caused by outage()/restart() are expected; keep test output clean."""


class FakePlatform:
    """``FakePlatform(code, secret).start() -> base_url``; ``.state`` holds everything received."""

    def __init__(self, engine_code: str, engine_secret: str, *, token_ttl: float = 7 * 86400,
                 inactivity_timeout: float = 600.0, inactivity_period: float = 180.0,
                 ws_ping_interval: float | None = 20.0) -> None:
        self.state = PlatformState(engine_code, engine_secret, token_ttl)
        self.delay = 0.0
        self.inactivity_timeout = inactivity_timeout
        self.inactivity_period = inactivity_period
        self._ws_ping_interval = ws_ping_interval
        self._unavailable_until = 0.0
        self._injections: dict[str, list[Reply]] = {}
        self._sessions: dict[str, ServerConnection] = {}
        self._http_conns: set[socket.socket] = set()
        self.ws_connects = 0
        self._port = 0
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept_thread: threading.Thread | None = None
        self._httpd: _QuietHTTPServer | None = None
        self._ws: Server | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> str:
        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), PlatformHandler, bind_and_activate=False)
        self._httpd.platform = self  # type: ignore[attr-defined]
        self._ws = serve(self._on_ws, sock=socket.socket(), process_request=self._ws_auth,
                         ping_interval=self._ws_ping_interval, compression=None)
        self._listen()
        self._spawn(self._inactivity_loop)
        return self.base_url

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def stop(self) -> None:
        self._stop.set()
        self._close_listener()
        self.drop_websockets()
        for t in self._threads:
            t.join(timeout=5)
        if self._httpd is not None:
            self._httpd.server_close()
        if self._ws is not None:
            self._ws.socket.close()

    def __enter__(self) -> FakePlatform:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self._port))
        self._listener.settimeout(0.1)
        self._port = self._listener.getsockname()[1]
        self._accept_thread = self._spawn(self._accept_loop, self._listener)

    def _close_listener(self) -> None:
        """shutdown() first: a thread polling the socket keeps the port bound after a bare close()."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        accept = self._accept_thread
        if accept is not None and accept is not threading.current_thread():
            accept.join(timeout=2)

    def _spawn(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"fakeplatform-{target.__name__}")
        self._threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set() and self._listener is listener:
            try:
                conn, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._dispatch, args=(conn, addr), daemon=True).start()

    def _dispatch(self, conn: socket.socket, addr: Any) -> None:
        """Peek the request line; WebSocket upgrades go to websockets, everything else to http.server."""
        assert self._httpd is not None and self._ws is not None
        conn.settimeout(5)
        head = b""
        try:
            while b"\r\n" not in head and len(head) < 8192:
                head = conn.recv(8192, socket.MSG_PEEK)
                if not head:
                    conn.close()
                    return
                if b"\r\n" not in head:
                    time.sleep(0.01)
        except OSError:
            conn.close()
            return
        conn.settimeout(None)
        target = head.split(b" ")[1] if head.count(b" ") >= 2 else b""
        if target.startswith(WS_PATH.encode()):
            self._ws.handler(conn, addr)
        else:
            with self.state.lock:
                self._http_conns = {c for c in self._http_conns if c.fileno() != -1} | {conn}
            self._httpd.process_request(conn, addr)

    # -- failure switches -----------------------------------------------------------------------------------

    def unavailable(self) -> bool:
        return time.monotonic() < self._unavailable_until

    def outage(self, seconds: float, mode: str = "refused") -> None:
        """``refused``: close the port (and every WebSocket) for ``seconds``; ``503``: answer 503 meanwhile."""
        if mode == "503":
            self._unavailable_until = time.monotonic() + seconds
            return
        self._close_listener()
        self.drop_connections()
        timer = threading.Timer(seconds, self._reopen)
        timer.daemon = True
        timer.start()

    def _reopen(self) -> None:
        if not self._stop.is_set() and self._listener is None:
            self._listen()

    def restart(self) -> None:
        """Like a platform restart: every connection dropped, the port reopened at once."""
        self._close_listener()
        self.drop_connections()
        self._listen()

    def inject(self, path: str, *, status: int | None = None, data: Any = None, http: int = 200,
               body: bytes | None = None, content_type: str = "application/json;charset=UTF-8",
               times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` with an envelope ``status``/``data`` or raw ``body``."""
        reply: Reply = ((http, {"Content-Type": content_type}, body) if body is not None
                        else _json(envelope(status if status is not None else 1000, data), http))
        with self.state.lock:
            self._injections.setdefault(path, []).extend([reply] * times)

    def take_injection(self, path: str) -> Reply | None:
        with self.state.lock:
            queue = self._injections.get(path)
            return queue.pop(0) if queue else None

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 2030."""
        self.state.tokens.not_before = time.time() + 0.001
        time.sleep(0.002)

    def invalidate_tokens(self) -> None:
        """Change the signing key: every token issued so far answers 2040."""
        self.state.tokens.key = uuid.uuid4().bytes

    # -- tasks ----------------------------------------------------------------------------------------------

    def enqueue(self, task: Mapping[str, Any], cases: Mapping[str, Mapping[str, Any]] | None = None, *,
                package: bytes | None = None, push_start: bool = True) -> dict[str, Any]:
        """Queue a task as ``RunService.run`` does; the zip is built like the platform's unless ``package``
        replaces it (e.g. a malicious zip). Returns the task object the engine will receive."""
        full: dict[str, Any] = {"taskId": str(uuid.uuid4()), "taskType": "run", "maxThread": 1, "reRun": False,
                                "testCollectionList": [], "debugData": None, **task}
        if full["taskType"] == "debug":
            full.setdefault("downloadUrl", None)
        else:
            full.setdefault("downloadUrl", f"/openapi/task/file/download/{full['taskId']}")
            if package is None:
                package = build_package(full, cases or {})
        self.state.add_task(full, package)
        if push_start:
            self.push({"type": "start"})
        return full

    def add_test_file(self, file_id: str, name: str, data: bytes) -> None:
        with self.state.lock:
            self.state.test_files[file_id] = (name, data)

    def _inactivity_loop(self) -> None:
        """``ScheduleJobService.updateTimeoutTask``: discontinue silent tasks and push ``stop``."""
        while not self._stop.wait(self.inactivity_period):
            for task_id in self.state.timed_out(self.inactivity_timeout):
                self.push({"type": "stop", "data": task_id})

    # -- WebSocket ------------------------------------------------------------------------------------------

    def push(self, message: Mapping[str, Any] | str) -> bool:
        """Send a text frame on the engine's current session; False if the platform knows none (lost)."""
        text = message if isinstance(message, str) else json.dumps(dict(message), ensure_ascii=False)
        with self.state.lock:
            conn = self._sessions.get(self.state.engine_code)
        if conn is None:
            return False
        try:
            conn.send(text)
        except Exception:  # noqa: BLE001 - a closing session is a lost push, as on the platform
            return False
        return True

    def session_open(self) -> bool:
        with self.state.lock:
            return self.state.engine_code in self._sessions

    def drop_connections(self) -> None:
        """Reset every open connection: kept-alive HTTP ones and WebSockets."""
        with self.state.lock:
            conns, self._http_conns = self._http_conns, set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.drop_websockets()

    def drop_websockets(self) -> None:
        if self._ws is None:
            return
        with self._ws.lock:
            conns = list(self._ws.all_connections)
        for conn in conns:
            conn.close()

    def _ws_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        """Bad engine secret -> plain HTTP 500 on the upgrade (§10)."""
        if self.unavailable():
            return connection.respond(503, "Service Unavailable\n")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        code, secret = query.get("engineCode", [""])[0], query.get("engineSecret", [""])[0]
        if request.path.split("?")[0] != WS_PATH or (code, secret) != (self.state.engine_code,
                                                                       self.state.engine_secret):
            return connection.respond(500, "Internal Server Error\n")
        return None

    def _on_ws(self, conn: ServerConnection) -> None:
        """One session per engine code; a closing session forgets the engine even if a newer one is open
        — the platform's behaviour from §10, kept so tests catch a client that leaves old sockets around."""
        code = self.state.engine_code
        with self.state.lock:
            self._sessions[code] = conn
            self.ws_connects += 1
            self.state.engine_status = "online"
        try:
            for frame in conn:
                with self.state.lock:
                    self.state.ws_frames.append(frame if isinstance(frame, str) else frame.decode("latin-1"))
        finally:
            with self.state.lock:
                self._sessions.pop(code, None)
                self.state.engine_status = "offline"
