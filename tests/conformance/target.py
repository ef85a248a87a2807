"""The system under test that conformance cases call: one instance per engine, on 127.0.0.1.

- ``/page``, ``/page2``: a small static site for the WEB keyword cases;
- ``GET /data``: a fixed JSON document of typed values (numbers, numeric text, lists, dicts, null, booleans,
  empty, unicode) that comparator cases assert on;
- ``ANY /echo...``: the request as JSON (method, path, query, lower-cased headers, body text, parsed JSON,
  form fields as lists, uploaded file names);
- ``/status/<n>``, ``/cookie/set`` (sets ``sid=abc``), ``/cookie/need`` (401 without it), ``/token``,
  ``/auth`` (401 unless ``Authorization: Bearer tk-123``), ``/flaky/<key>`` (500 the first time per key,
  then 200: for the rerun round), ``/slow`` (sleeps 1.5 s).
"""
from __future__ import annotations

import json
import threading
import time
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Target", "DATA"]

DATA: dict[str, Any] = {
    "int": 200, "zero": 0, "neg": -3, "float": 1.5, "numText": "200", "floatText": "1.5", "spaced": " 5 ",
    "sci": "1e3", "empty": "", "word": "hello", "Word": "Hello", "WORD": "HELLO", "mixed": "abc123",
    "comma": "a,b", "cn": "流马测试", "nul": None, "nullText": "null", "noneText": "None", "yes": True,
    "no": False, "trueText": "true", "falseText": "false", "emptyList": [], "names": ["alice", "bob"],
    "nums": [1, 2, 3], "numTexts": ["1", "2"], "listText": "[1, 2, 3]", "dict": {"a": 1}, "emptyDict": {},
    "cookieDict": {"sid": "abc"}, "dictText": '{"a": 1}', "pyDictText": "{'a': 1}", "jsonTrueText": '{"a": true}',
    "nested": {"items": [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}], "total": 2},
}


PAGES = {
    "/page": """<!doctype html><html><head><meta charset="utf-8"><title>流马页面</title></head><body>
<h1 id="h" style="height: 40px; margin: 0">标题</h1>
<input id="name" name="name" value="">
<button id="go" onclick="document.getElementById('out').textContent='hi '+document.getElementById('name').value">go</button>
<div id="out" class="box" style="color: rgb(255, 0, 0)">none</div>
<input type="checkbox" id="cb" checked> <input id="dis" disabled>
<a id="lnk" href="/page2">next</a> <div id="hidden" style="display:none">h</div>
</body></html>""",
    "/page2": """<!doctype html><html><head><meta charset="utf-8"><title>第二页</title></head><body>
<p id="p">second</p></body></html>""",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _html(self, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        url = urlsplit(self.path)
        path = url.path
        target: Target = self.server.target  # type: ignore[attr-defined]
        if path in PAGES:
            return self._html(PAGES[path])
        if path == "/data":
            return self._send(200, DATA)
        if path.startswith("/status/"):
            return self._send(int(path.rsplit("/", 1)[1]), {"code": int(path.rsplit("/", 1)[1])})
        if path == "/cookie/set":
            return self._send(200, {"ok": True}, {"Set-Cookie": "sid=abc; Path=/"})
        if path == "/cookie/need":
            ok = "sid=abc" in (self.headers.get("Cookie") or "")
            return self._send(200 if ok else 401, {"ok": ok})
        if path == "/token":
            return self._send(200, {"data": {"token": "tk-123", "uid": 7}}, {"X-Trace": "tr-9"})
        if path == "/auth":
            ok = self.headers.get("Authorization") == "Bearer tk-123"
            return self._send(200 if ok else 401, {"ok": ok})
        if path.startswith("/flaky/"):
            with target.lock:
                target.hits[path] = target.hits.get(path, 0) + 1
                first = target.hits[path] == 1
            return self._send(500 if first else 200, {"hit": target.hits[path]})
        if path == "/slow":
            time.sleep(1.5)
            return self._send(200, {"slow": True})
        if path.startswith("/echo"):
            return self._send(200, self._echo(path, url.query, raw))
        return self._send(404, {"error": "not found", "path": path})

    def _echo(self, path: str, query: str, raw: bytes) -> dict[str, Any]:
        ctype = self.headers.get("Content-Type") or ""
        text = raw.decode("utf-8", "replace")
        out: dict[str, Any] = {"method": self.command, "path": path,
                               "query": {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()},
                               "headers": {k.lower(): v for k, v in self.headers.items()}, "body": text,
                               "json": None, "form": {}, "files": {}}
        try:
            out["json"] = json.loads(text) if text else None
        except ValueError:
            pass
        if ctype.startswith("multipart/form-data"):
            message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if part.get_filename():
                    out["files"].setdefault(name, []).append(part.get_filename())
                else:
                    out["form"].setdefault(name, []).append(part.get_payload(decode=True).decode("utf-8", "replace"))
            out["body"] = ""
        elif ctype.startswith("application/x-www-form-urlencoded") or (text and "=" in text and out["json"] is None):
            out["form"] = parse_qs(text, keep_blank_values=True)
        return out

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _route


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a step timeout on /slow) resets its connection: expected, keep output clean."""


class Target:
    """``with Target() as t: t.url``; a thread-per-request server of its own."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: dict[str, int] = {}
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.target = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="conformance-target")

    def reset(self) -> None:
        """Forget the flaky endpoint's counters (a new run of the same corpus)."""
        with self.lock:
            self.hits.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Target:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
