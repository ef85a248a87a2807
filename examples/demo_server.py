"""The demo application the bundled example suite and the tests run against (127.0.0.1 only).

JSON API under ``/api/`` (login, users, echo, slow, status codes, cookies) and the static demo site under
``/`` (files of ``examples/demo_site/``). Thread-per-request so parallel executors do not queue behind a
slow call. Start it with ``python -m examples.demo_server --port 0`` (prints the URL) or ``serve()``.
"""
from __future__ import annotations

import argparse
import json
import mimetypes
import threading
import time
import uuid
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SITE = Path(__file__).with_name("demo_site")
USERS = {1: {"id": 1, "name": "admin", "role": "admin"}, 2: {"id": 2, "name": "alice", "role": "user"}}
TOKENS: dict[str, int] = {}


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LiuMaDemo/1.0"
    disable_nagle_algorithm = True     # keep-alive clients would otherwise wait ~40 ms per request for delayed ACKs

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read results, not access logs
        pass

    # -- helpers ---------------------------------------------------------------------------------
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code: int, payload: Any, ctype: str = "application/json", headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype if ctype != "application/json" else "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self) -> Any:
        raw = self._body()
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return raw.decode("utf-8", "replace")

    # -- routing ---------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def do_PATCH(self) -> None:
        self._route()

    def do_HEAD(self) -> None:
        self._route()

    def do_OPTIONS(self) -> None:
        self._send(204, b"", headers={"Allow": "GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS"})

    def _route(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, {k: v[0] if len(v) == 1 else v for k, v in parse_qs(url.query).items()}
        if path.startswith("/api/"):
            return self._api(path[5:], query)
        return self._static(path)

    def _api(self, path: str, query: dict[str, Any]) -> None:
        if path == "health":
            return self._send(200, {"code": 0, "status": "ok"})
        if path == "login" and self.command == "POST":
            body = self._json()
            if isinstance(body, dict) and body.get("username") in ("admin", "alice") and body.get("password"):
                token = uuid.uuid4().hex
                uid = 1 if body["username"] == "admin" else 2
                TOKENS[token] = uid
                return self._send(200, {"code": 0, "msg": "ok", "data": {"token": token, "userId": uid}},
                                  headers={"Set-Cookie": f"sid={token}; Path=/"})
            return self._send(200, {"code": 401, "msg": "bad credentials", "data": None})
        if path.startswith("users/"):
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
            if token not in TOKENS and ("sid" not in cookie or cookie["sid"].value not in TOKENS):
                return self._send(401, {"code": 401, "msg": "unauthorized"})
            user = USERS.get(int(path.split("/", 1)[1] or 0))
            return self._send(200 if user else 404, {"code": 0 if user else 404, "data": user})
        if path == "items":
            size = int(query.get("size", 3))
            return self._send(200, {"code": 0, "data": [{"id": i, "name": f"item{i}"} for i in range(1, size + 1)]})
        if path == "echo":
            body = self._body()
            return self._send(200, {
                "method": self.command, "path": self.path, "query": query,
                "headers": {k: v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
                "json": _try_json(body),
            })
        if path == "slow":
            time.sleep(float(query.get("ms", 100)) / 1000.0)
            return self._send(200, {"code": 0, "slept_ms": float(query.get("ms", 100))})
        if path.startswith("status/"):
            code = int(path.split("/", 1)[1])
            return self._send(code, {"code": code})
        if path == "text":
            return self._send(200, b"hello liuma", ctype="text/plain; charset=utf-8")
        return self._send(404, {"code": 404, "msg": f"no route /api/{path}"})

    def _static(self, path: str) -> None:
        rel = path.lstrip("/") or "index.html"
        target = (SITE / rel).resolve()
        if SITE.resolve() not in target.parents and target != SITE.resolve() or not target.is_file():
            return self._send(404, b"not found", ctype="text/plain")
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return self._send(200, target.read_bytes(), ctype=ctype)


def _try_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return          # a client that gave up (timeout tests, killed executors): not the server's problem
        super().handle_error(request, client_address)


def serve(port: int = 0, host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, str]:
    """Start the demo server in a daemon thread; return (server, base URL). ``server.shutdown()`` stops it."""
    server = DemoServer((host, port), DemoHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="demo-server", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server, url = serve(args.port)
    print(url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
