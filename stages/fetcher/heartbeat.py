"""The engine's WebSocket to the platform: heartbeat out, commands in (liuma-engine.md §2.3 #2, §10).

Contract:
- exactly one connection per engine: the old socket is closed before a new one is opened, because the
  platform forgets the engine when an older session closes after a newer one opened (§10);
- an empty text frame every ``interval`` seconds (30 by default, like the original);
- on any failure: close, wait ``Backoff`` (1 s doubling to ``max_backoff``), reconnect, forever;
- server frames ``{"type":"start"}``, ``{"type":"stop","data":"<taskId>"}``, ``{"type":"stopAll"}`` become
  ``Command``s; anything else (non-JSON, unknown type, stop without a task id) is logged and ignored;
- after every successful (re)connect a synthetic ``Command("start", synthetic=True)`` is delivered, so the
  fetcher re-fetches the ``start`` pushes it may have missed while disconnected (§1.8 weakness 5).
Commands go to ``on_command`` (called on the channel's thread) or, without one, to a queue read by
``poll()`` from the fetcher's ``tick()``.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import websocket

from pipeline.restart import Backoff

__all__ = ["Command", "HeartbeatChannel", "ws_url"]

log = logging.getLogger(__name__)
WS_PATH = "/websocket/engine/heartbeat"
COMMAND_TYPES = frozenset({"start", "stop", "stopAll"})


@dataclass(frozen=True, slots=True)
class Command:
    """``type`` is ``start`` | ``stop`` | ``stopAll``; ``task_id`` only for ``stop``."""

    type: str
    task_id: str | None = None
    synthetic: bool = False


def ws_url(platform_url: str, engine_code: str, engine_secret: str) -> str:
    """``http``→``ws``, ``https``→``wss``, only the scheme changes (the original replaced every "http")."""
    parts = urllib.parse.urlsplit(platform_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"platform url must start with http:// or https://, got {platform_url!r}")
    query = urllib.parse.urlencode({"engineCode": engine_code, "engineSecret": engine_secret})
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + WS_PATH, query, ""))


def parse_command(text: str | bytes) -> Command | None:
    """A server frame as a Command, or None (logged) when it is not one we understand."""
    try:
        msg = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        log.warning("heartbeat: ignoring non-JSON frame %r", text[:200])
        return None
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind not in COMMAND_TYPES:
        log.warning("heartbeat: ignoring unknown frame %r", str(text)[:200])
        return None
    if kind == "stop":
        task_id = msg.get("data")
        if not isinstance(task_id, str) or not task_id:
            log.warning("heartbeat: ignoring stop without a task id: %r", str(text)[:200])
            return None
        return Command("stop", task_id)
    return Command(kind)


class HeartbeatChannel:
    """``start()`` runs the connection on a daemon thread; ``stop()`` closes it and joins."""

    def __init__(self, platform_url: str, engine_code: str, engine_secret: str,
                 on_command: Callable[[Command], None] | None = None, *, interval: float = 30.0,
                 max_backoff: float = 30.0, connect_timeout: float = 10.0) -> None:
        self.url = ws_url(platform_url, engine_code, engine_secret)
        self._safe_url = self.url.split("?")[0]        # never log the secret
        self._on_command = on_command
        self._interval = interval
        self._backoff = Backoff(first=1.0, cap=max_backoff, stable=max(interval, 5.0))
        self._connect_timeout = connect_timeout
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ws: websocket.WebSocket | None = None
        self.connects = 0
        self.connected = threading.Event()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="liuma-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._close()
        if self._thread is not None:
            self._thread.join(timeout)

    def poll(self) -> list[Command]:
        """Commands received since the last call (when no ``on_command`` was given)."""
        out: list[Command] = []
        while True:
            try:
                out.append(self._commands.get_nowait())
            except queue.Empty:
                return out

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._connect()
                self._serve()
            except (websocket.WebSocketException, OSError) as e:
                if not self._stopping.is_set():
                    log.warning("heartbeat: %s: %s: %s", self._safe_url, type(e).__name__,
                                str(e).replace(self.url, self._safe_url)[:300])
            finally:
                self._close()
            if not self._stopping.is_set():
                self._stopping.wait(self._backoff.next_delay(time.monotonic() - started))

    def _connect(self) -> None:
        self._close()           # one session per engine: the old one goes first (§10)
        ws = websocket.WebSocket()
        ws.connect(self.url, timeout=self._connect_timeout)
        self._ws = ws
        self.connects += 1
        self.connected.set()
        log.info("heartbeat: connected to %s", self._safe_url)
        self._deliver(Command("start", synthetic=True))

    def _serve(self) -> None:
        """Single thread for send and receive: recv with a short timeout, heartbeat when due."""
        ws = self._ws
        assert ws is not None
        ws.settimeout(min(1.0, self._interval))
        ws.send("")
        next_beat = time.monotonic() + self._interval
        while not self._stopping.is_set():
            if time.monotonic() >= next_beat:
                ws.send("")
                next_beat = time.monotonic() + self._interval
            try:
                opcode, frame = ws.recv_data()      # answers pings itself
            except websocket.WebSocketTimeoutException:
                continue
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise websocket.WebSocketConnectionClosedException("closed by the platform")
            if not frame:
                continue
            command = parse_command(frame)
            if command is not None:
                self._deliver(command)

    def _deliver(self, command: Command) -> None:
        if self._on_command is None:
            self._commands.put(command)
            return
        try:
            self._on_command(command)
        except Exception:  # noqa: BLE001 - a consumer bug must not kill the heartbeat
            log.exception("heartbeat: command handler failed on %r", command)

    def _close(self) -> None:
        ws, self._ws = self._ws, None
        self.connected.clear()
        if ws is not None:
            try:
                ws.close(timeout=1)
            except (websocket.WebSocketException, OSError):
                pass
            ws.shutdown()   # close() skips the socket once a CLOSE frame was received; the platform waits on it
