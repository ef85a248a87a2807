"""``/healthz`` and ``/metrics`` of ``[Metrics] listen``: a small HTTP server on a thread of the supervisor.

The health policy is pure (``evaluate``): it is handed the supervisor's latest snapshot, the disk usage and
the time. 503 when a stage was given up, the engine is shutting down, the platform (platform mode) does not
answer, the storage disk is fuller than ``[Retention] disk-warn-percent``, or the supervisor loop stopped
refreshing the snapshot (a hung loop must not look healthy just because this thread still answers).
"""
from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["evaluate", "disk_usage", "OpsServer", "STALE_AFTER_S", "parse_listen"]

log = logging.getLogger("pipeline.health")
STALE_AFTER_S = 10.0


def parse_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host[1:-1] if host.startswith("[") else host), int(port)


def disk_usage(path: str) -> dict[str, Any]:
    try:
        u = shutil.disk_usage(path)
    except OSError as e:
        return {"path": path, "error": str(e)}
    return {"path": path, "used_percent": round(100.0 * u.used / u.total, 1) if u.total else 0.0, "free_bytes": u.free}


def evaluate(snap: dict[str, Any], disk: dict[str, Any], warn_percent: float, now: float) -> tuple[int, dict[str, Any]]:
    """``snap``: {"at", "stages": {name: state}, "shutting_down", "platform": {"configured", "up", "error"}}."""
    reasons: list[str] = []
    age = now - float(snap.get("at") or 0.0)
    if age > STALE_AFTER_S:
        reasons.append(f"supervisor loop stalled: no refresh for {age:.0f} s")
    failed = [n for n, s in (snap.get("stages") or {}).items() if s == "failed"]
    if failed:
        reasons.append(f"stage(s) given up: {', '.join(sorted(failed))}")
    if snap.get("shutting_down"):
        reasons.append("engine shutting down")
    platform = snap.get("platform") or {}
    if platform.get("configured") and not platform.get("up"):
        reasons.append(f"platform unreachable: {platform.get('error') or 'no answer yet'}")
    if "error" in disk:
        reasons.append(f"storage disk unreadable: {disk['error']}")
    elif warn_percent and disk.get("used_percent", 0.0) >= warn_percent:
        reasons.append(f"storage disk {disk['used_percent']} % full (warn at {warn_percent:g} %)")
    body = {"status": "unhealthy" if reasons else "ok", "reasons": reasons, "stages": snap.get("stages") or {},
            "platform": {"configured": bool(platform.get("configured")), "reachable": platform.get("up") if platform.get("configured") else None,
                         "error": platform.get("error")},
            "disk": dict(disk, warn_percent=warn_percent)}
    return (503 if reasons else 200), body


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class OpsServer:
    """Serves ``/metrics`` (``registry``) and ``/healthz`` (``health()`` -> (code, body)) until ``close``."""

    def __init__(self, listen: str, registry: CollectorRegistry, health: Callable[[], tuple[int, dict[str, Any]]]) -> None:
        self.host, self.port = parse_listen(listen)
        self.registry, self.health = registry, health
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> tuple[str, int]:
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/metrics":
                        code, ctype, data = 200, CONTENT_TYPE_LATEST, generate_latest(ops.registry)
                    elif path == "/healthz":
                        code, body = ops.health()
                        ctype, data = "application/json", json.dumps(body).encode()
                    else:
                        code, ctype, data = 404, "text/plain", b"not found: try /metrics or /healthz\n"
                except Exception as e:                  # a broken scrape never takes the engine down
                    log.exception("%s failed", path)
                    code, ctype, data = 500, "text/plain", f"error: {e}\n".encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:   # noqa: A002 - scrapes are not news
                pass

        cls = _V6Server if ":" in self.host else ThreadingHTTPServer
        cls.daemon_threads = True
        self.httpd = cls((self.host, self.port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.5},
                                       name="liuma-metrics", daemon=True)
        self.thread.start()
        return self.host, self.port

    def close(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


