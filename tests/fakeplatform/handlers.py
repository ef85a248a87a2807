"""HTTP side of the fake platform: one method per endpoint of liuma-engine.md §2.3, dispatched from a table.

Reproduces the platform's quirks on purpose: HTTP 200 with an envelope for logical errors, plain HTTP 500
for uncaught exceptions (unknown engine code, one bad result row, bad token on an unknown path),
``text/plain`` token answers, JSON envelopes instead of bytes on download errors (§10).
"""
from __future__ import annotations

import base64
import binascii
import json
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from tests.fakeplatform.state import SCREENSHOT_NAME, Recorded, envelope, validate_row

if TYPE_CHECKING:
    from tests.fakeplatform.server import FakePlatform

__all__ = ["PlatformHandler"]

_NO_TOKEN = ("/openapi/engine/token/apply", "/openapi/screenshot/", "/openapi/download/", "/openapi/exec/")
_PNG = b"\x89PNG\r\n\x1a\n"
Reply = tuple[int, dict[str, str], bytes]


def _json(obj: Any, http: int = 200, content_type: str = "application/json;charset=UTF-8") -> Reply:
    return http, {"Content-Type": content_type}, json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _server_error(path: str) -> Reply:
    """Spring Boot's default error body for an uncaught exception."""
    return _json({"timestamp": time.time(), "status": 500, "error": "Internal Server Error", "path": path}, 500)


class PlatformHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeLiuMa/1.4.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep pytest output quiet
        pass

    @property
    def platform(self) -> FakePlatform:
        return self.server.platform  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(self.path).path
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.platform.state.record(Recorded(method, path, headers, body, time.time()))
        status, out_headers, payload = self._reply(method, path, headers, body)
        self.send_response(status)
        for key, value in out_headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reply(self, method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        p = self.platform
        if p.delay:
            time.sleep(p.delay)
        if p.unavailable():
            return 503, {"Content-Type": "text/html"}, b"<html><body>503 Service Unavailable</body></html>"
        injected = p.take_injection(path)
        if injected is not None:
            return injected
        route = self._route(method, path)
        if path.startswith("/openapi/") and not path.startswith(_NO_TOKEN):
            code = p.state.tokens.check(headers.get("token"))
            if code:
                return _server_error(path) if route is None else _json(envelope(code))
        if route is None:
            return _server_error(path) if path.startswith("/openapi/") else _json({"error": "Not Found"}, 404)
        handler, arg = route
        return handler(self, arg if arg is not None else body, headers)

    def _route(self, method: str, path: str) -> tuple[Callable[..., Reply], Any] | None:
        if method == "POST" and path in _POST:
            return _POST[path], None
        if method == "GET":
            for prefix, fn in _GET.items():
                if path.startswith(prefix) and len(path) > len(prefix):
                    return fn, urllib.parse.unquote(path[len(prefix):])
        return None

    # -- endpoints ------------------------------------------------------------------------------------------

    def token_apply(self, body: Any, headers: dict[str, str]) -> Reply:
        """Unknown engine code -> NullPointerException -> 500; wrong secret -> 2050; text/plain (§10)."""
        state = self.platform.state
        if not isinstance(body, dict) or body.get("engineCode") != state.engine_code:
            return _server_error("/openapi/engine/token/apply")
        if body.get("engineSecret") != state.engine_secret:
            return _json(envelope(2050))
        token = state.tokens.issue(state.engine_code)
        wants_json = "application/json" in headers.get("accept", "")
        return _json(envelope(0, token), content_type="application/json;charset=UTF-8" if wants_json
                     else "text/plain;charset=UTF-8")

    def task_fetch(self, body: Any, headers: dict[str, str]) -> Reply:
        return _json(envelope(0, self.platform.state.claim_task()))

    def task_download(self, task_id: str, headers: dict[str, str]) -> Reply:
        state = self.platform.state
        with state.lock:
            entry = state.tasks.get(task_id)
            package = entry.package if entry else None
        if package is None:
            return _json(envelope(1000, "文件不存在"))
        return 200, {"Content-Type": "application/octet-stream",
                     "Content-Disposition": f'attachment; filename="{task_id}.zip"'}, package

    def test_file(self, file_id: str, headers: dict[str, str]) -> Reply:
        with self.platform.state.lock:
            found = self.platform.state.test_files.get(file_id)
        if found is None:
            return _json(envelope(1000, "文件不存在"))
        name, data = found
        quoted = urllib.parse.quote(name)   # Spring's URLEncoder for non-ASCII names
        return 200, {"Content-Type": "application/octet-stream",
                     "Content-Disposition": f'attachment; filename="{quoted}"'}, data

    def result_upload(self, body: Any, headers: dict[str, str]) -> Reply:
        """One bad row -> HTTP 500 and nothing stored (§10); success bumps the report update time."""
        state = self.platform.state
        rows = body.get("caseResultList") if isinstance(body, dict) else None
        task_id = body.get("taskId") if isinstance(body, dict) else None
        problems = [validate_row(r) for r in rows or []]
        if not isinstance(task_id, str) or rows is None or any(problems):
            with state.lock:
                state.rejected_batches.append((str([p for p in problems if p]), body))
            return _server_error("/openapi/engine/result/upload")
        with state.lock:
            state.results.setdefault(task_id, []).extend(rows)
        state.touch(task_id)
        return _json(envelope(0))

    def screenshot_upload(self, body: Any, headers: dict[str, str]) -> Reply:
        """The name is split on ``_`` into date and uuid; the image is decoded and re-encoded as PNG."""
        state = self.platform.state
        name = body.get("fileName") if isinstance(body, dict) else None
        try:
            data = base64.b64decode(body.get("base64String") or "", validate=True)  # type: ignore[union-attr]
        except (binascii.Error, AttributeError, TypeError):
            data = b""
        if not isinstance(name, str) or not SCREENSHOT_NAME.match(name) or not data.startswith(_PNG):
            return _json(envelope(1000, "截图文件上传失败"))
        with state.lock:
            state.screenshots[name] = data
        return _json(envelope(0))

    def task_complete(self, body: Any, headers: dict[str, str]) -> Reply:
        task_id = body.get("taskId") if isinstance(body, dict) else None
        if not isinstance(task_id, str):
            return _server_error("/openapi/engine/task/complete")
        self.platform.state.complete(task_id)
        return _json(envelope(0))

    def heartbeat_send(self, body: Any, headers: dict[str, str]) -> Reply:
        return _json(envelope(0, "心跳成功"))

    def task_status(self, body: Any, headers: dict[str, str]) -> Reply:
        state = self.platform.state
        task_id = body.get("taskId") if isinstance(body, dict) else None
        with state.lock:
            entry = state.tasks.get(str(task_id))
            stopped = entry is not None and entry.state == "discontinue"
        return _json(envelope(0, "STOP" if stopped else None))


_POST: dict[str, Callable[..., Reply]] = {
    "/openapi/engine/token/apply": PlatformHandler.token_apply,
    "/openapi/engine/task/fetch": PlatformHandler.task_fetch,
    "/openapi/engine/result/upload": PlatformHandler.result_upload,
    "/openapi/engine/screenshot/upload": PlatformHandler.screenshot_upload,
    "/openapi/engine/task/complete": PlatformHandler.task_complete,
    "/openapi/engine/heartbeat/send": PlatformHandler.heartbeat_send,
    "/openapi/engine/task/status": PlatformHandler.task_status,
}
_GET: dict[str, Callable[..., Reply]] = {
    "/openapi/task/file/download/": PlatformHandler.task_download,
    "/openapi/download/test/file/": PlatformHandler.test_file,
}
