"""A second DevTools connection to the browser, beside chromedriver's, for the evidence recorder.

Why not chromedriver's own ``execute_cdp_cmd`` or its performance log: both go through the WebDriver command
queue, so a screencast frame would wait behind a running ``get`` and its acknowledgement (without which Chrome
sends no next frame) would cost a WebDriver round trip per frame. Chrome accepts several DevTools clients; this
one reads events on its own thread and never touches the Selenium session.

The endpoint is the browser-level one (``/json/version`` of ``goog:chromeOptions.debuggerAddress`` locally,
Selenium Grid's ``se:cdp`` remotely); pages are attached with ``flatten`` so one socket carries all sessions.
"""
from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import websocket

__all__ = ["CdpClient", "CdpError", "browser_ws_url"]

Listener = Callable[[str, dict[str, Any], str], None]     # (method, params, sessionId)


class CdpError(Exception):
    """No DevTools endpoint, a closed socket, or an error answer to a command."""


def browser_ws_url(capabilities: dict[str, Any], remote_url: str = "", timeout: float = 2.0) -> str:
    """The browser-level DevTools WebSocket of a session, from its capabilities; CdpError if there is none.
    ``remote_url``: the remote WebDriver end; its browser's ``debuggerAddress`` (bound to that machine's
    loopback) is only usable when that end runs on this machine."""
    cdp = capabilities.get("se:cdp")
    if isinstance(cdp, str) and cdp.startswith("ws"):
        return cdp
    address = (capabilities.get("goog:chromeOptions") or {}).get("debuggerAddress")
    if not address:
        raise CdpError("the WebDriver end reports no DevTools endpoint (no se:cdp, no debuggerAddress)")
    host = urllib.parse.urlsplit(remote_url).hostname if remote_url else None
    if host is not None and host not in ("127.0.0.1", "localhost", "::1"):
        raise CdpError(f"the remote end {host} offers no se:cdp, and its browser's DevTools ({address}) listens on "
                       "that machine's loopback only")
    try:
        with urllib.request.urlopen(f"http://{address}/json/version", timeout=timeout) as resp:
            return str(json.loads(resp.read())["webSocketDebuggerUrl"])
    except (OSError, ValueError, KeyError) as e:
        raise CdpError(f"DevTools endpoint {address} not reachable: {e}") from e


class CdpClient:
    """One WebSocket; ``send`` waits for the answer, events go to ``listener`` on the reader thread."""

    def __init__(self, url: str, listener: Listener, timeout: float = 5.0) -> None:
        self.listener = listener
        self.timeout = timeout
        try:
            # skip_utf8_validation: websocket-client validates text frames byte by byte in Python (without
            # wsaccel), ~10 ms of the GIL per screencast frame; json.loads rejects what is not UTF-8 anyway
            self.ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True, skip_utf8_validation=True)
        except (OSError, websocket.WebSocketException) as e:
            raise CdpError(f"cannot connect to {url}: {e}") from e
        self.ws.settimeout(None)
        self._lock = threading.Lock()
        self._next = 0
        self._waiting: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self.closed = False
        self.error = ""
        self._thread = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._thread.start()

    def _new_id(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def _write(self, msg_id: int, method: str, params: dict[str, Any] | None, session: str) -> None:
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            self.ws.send(json.dumps(msg))         # websocket-client serialises concurrent sends
        except (OSError, websocket.WebSocketException) as e:
            raise CdpError(f"{method}: {e}") from e

    def post(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> None:
        """Send without waiting for the answer (the screencast acks, sent from the reader thread)."""
        self._write(self._new_id(), method, params, session)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "",
             timeout: float | None = None) -> dict[str, Any]:
        """Send and wait for the answer (``timeout`` s, default ``self.timeout``); CdpError on an error answer,
        a timeout or a closed socket."""
        if self.closed:
            raise CdpError(f"{method}: connection closed ({self.error or 'closed'})")
        msg_id = self._new_id()
        done, box = threading.Event(), list[dict[str, Any]]()
        with self._lock:
            self._waiting[msg_id] = (done, box)
        try:
            self._write(msg_id, method, params, session)
            wait = self.timeout if timeout is None else timeout
            if not done.wait(wait):
                raise CdpError(f"{method}: no answer in {wait:g} s")
        finally:
            with self._lock:
                self._waiting.pop(msg_id, None)
        if not box:
            raise CdpError(f"{method}: connection closed ({self.error or 'closed'})")
        if "error" in box[0]:
            raise CdpError(f"{method}: {box[0]['error'].get('message', box[0]['error'])}")
        return box[0].get("result") or {}

    def _read(self) -> None:
        while True:
            try:
                raw = self.ws.recv()
            except Exception as e:  # noqa: BLE001 - closed by us or by the browser: the recorder notes it
                self.error = self.error or f"{type(e).__name__}: {e}"
                break
            if not raw:
                self.error = self.error or "browser closed the DevTools connection"
                break
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if "id" in msg:
                with self._lock:
                    waiter = self._waiting.get(msg["id"])
                if waiter is not None:
                    waiter[1].append(msg)
                    waiter[0].set()
            elif "method" in msg:
                try:
                    self.listener(msg["method"], msg.get("params") or {}, msg.get("sessionId") or "")
                except Exception as e:  # noqa: BLE001 - a recorder bug must not stop the reader
                    self.error = f"listener: {type(e).__name__}: {e}"
        self.closed = True
        with self._lock:
            for done, _ in self._waiting.values():
                done.set()

    def close(self) -> None:
        self.closed = True
        try:
            self.ws.close(timeout=1)
        except Exception as e:  # noqa: BLE001 - the browser may have closed it first
            self.error = self.error or f"close: {type(e).__name__}: {e}"
        self._thread.join(timeout=2)
