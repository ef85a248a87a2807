"""The /healthz policy (pure: snapshot, disk and time handed in) and the real HTTP server around it."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry

from pipeline.health import OpsServer, evaluate
from pipeline.metrics import EngineMetrics

DISK = {"path": "/x", "used_percent": 40.0, "free_bytes": 10}


def snap(**kw: object) -> dict:
    return dict({"at": 100.0, "stages": {"scheduler": "running", "executor-1": "backoff"}, "shutting_down": False,
                 "platform": {"configured": False}}, **kw)


def test_healthy_engine_is_200_with_stages_platform_and_disk() -> None:
    code, body = evaluate(snap(), DISK, 90.0, now=101.0)
    assert code == 200 and body["status"] == "ok" and body["reasons"] == []
    assert body["stages"]["executor-1"] == "backoff"          # restarting is not unhealthy
    assert body["platform"] == {"configured": False, "reachable": None, "error": None}
    assert body["disk"]["warn_percent"] == 90.0


def test_each_reason_makes_it_503() -> None:
    cases = [
        (snap(stages={"scheduler": "failed"}), DISK, "stage(s) given up: scheduler"),
        (snap(shutting_down=True), DISK, "engine shutting down"),
        (snap(platform={"configured": True, "up": False, "error": "connection refused"}), DISK, "platform unreachable: connection refused"),
        (snap(), dict(DISK, used_percent=95.0), "storage disk 95.0 % full (warn at 90 %)"),
        (snap(at=50.0), DISK, "supervisor loop stalled: no refresh for 51 s"),
    ]
    for s, disk, reason in cases:
        code, body = evaluate(s, disk, 90.0, now=101.0)
        assert code == 503 and body["reasons"] == [reason], body


def test_server_answers_metrics_healthz_and_404() -> None:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(EngineMetrics())
    state = {"code": 200}
    srv = OpsServer("127.0.0.1:0", reg, lambda: (state["code"], {"status": "x"}))
    host, port = srv.start()
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
            assert r.status == 200 and b"liuma_cases_total" in r.read()
        state["code"] = 503
        try:
            urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as e:
            assert e.code == 503 and json.loads(e.read()) == {"status": "x"}
        try:
            urllib.request.urlopen(f"http://{host}:{port}/nope", timeout=5)
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404
    finally:
        srv.close()
