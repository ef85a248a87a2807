"""The engine as a lab-server daemon, end to end through ``bin/liuma-pipeline``: ``start`` + ``submit --wait``
against ``run`` of the same suite, the ``[Metrics] listen`` scrape parsed with prometheus_client's own parser,
stage kills (counters never go backwards), JSON log lines, systemd notifications on a real datagram socket,
/healthz against a fake platform that goes away, and submitted work surviving an engine restart."""
from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.log import JSON_KEYS
from tests.fakeplatform import ENGINE_CODE, ENGINE_SECRET, FakePlatform
from tests.system.engine import BIN, ROOT, engine_processes, wait_for, write_config
from tests.system.suites import api_case, write_suite

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-Value-7788"
STATUS = {0: "passed", 1: "failed", 2: "error", 3: "skipped"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(cfg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args, "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT), timeout=timeout)


def start_engine(cfg: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN), "start", "--foreground", "--config", str(cfg)], cwd=str(ROOT), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, **(env or {})))


def stop_engine(cfg: Path, eng: subprocess.Popen[str]) -> int:
    try:
        if eng.poll() is None:
            cli(cfg, "stop", timeout=30)
        return eng.wait(timeout=60)
    finally:
        if eng.poll() is None:
            eng.kill()
            eng.wait()


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client's parser: {(sample name, labels): value}."""
    code, text = get(port, "/metrics")
    assert code == 200, (code, text)
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def counters(samples: dict[tuple[str, Any], float]) -> dict[tuple[str, Any], float]:
    return {k: v for k, v in samples.items() if k[0].endswith(("_total", "_count", "_sum", "_bucket"))}


def by_label(samples: dict[tuple[str, Any], float], name: str, **fixed: str) -> dict[tuple[str, ...], float]:
    out = {}
    for (n, labels), v in samples.items():
        d = dict(labels)
        if n == name and all(d.get(k) == want for k, want in fixed.items()):
            out[tuple(val for key, val in labels if key not in fixed)] = v
    return out


def stages(cfg: Path) -> dict[str, dict[str, Any]]:
    r = cli(cfg, "status", "--json", timeout=30)
    return {s["name"]: s for s in json.loads(r.stdout)["stages"]} if r.returncode == 0 else {}


def all_up(cfg: Path) -> bool:
    st = stages(cfg)
    return bool(st) and all(s["state"] == "running" and s["stats"] for s in st.values())


def comparable(report_dir: Path) -> dict[str, Any]:
    """A task's reports without what differs between two runs (times, durations)."""
    rows = json.loads((report_dir / "results.json").read_text())["caseResultList"]
    cases = sorted((r["collectionId"], r["caseId"], r["index"], r["runTimes"], r["status"], r["caseName"], r["caseType"],
                    tuple((t["name"], t["status"]) for t in r["transactionList"])) for r in rows)
    summary = json.loads((report_dir / "summary.json").read_text())
    return {"files": sorted(p.name for p in report_dir.iterdir()), "cases": cases,
            "testcases": summary["stat"]["testcases"], "success": summary["success"]}


def final_statuses(report_dir: Path) -> collections.Counter[tuple[str, str]]:
    last: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in json.loads((report_dir / "results.json").read_text())["caseResultList"]:
        k = (r["collectionId"], r["caseId"], r["index"])
        if k not in last or r["runTimes"] > last[k]["runTimes"]:
            last[k] = r
    return collections.Counter((r["caseType"], STATUS[r["status"]]) for r in last.values())


def test_submit_wait_gives_the_reports_of_run_and_metrics_that_match_them(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {
        "c1": [api_case("ok-1", demo_url, "/api/health", name=f"login {SECRET}"),
               api_case("bad-1", demo_url, "/api/items", assertions=[
                   {"from": "resBody", "method": "jsonpath", "expression": "$.data[0].name", "assertion": "equals", "expect": "nope"}])],
        "c2": [api_case("ok-2", demo_url, "/api/text"), api_case("ok-3", demo_url, "/api/health")],
    })
    common = f"[Engine]\nengine-secret = {SECRET}\n"
    ran = subprocess.run([str(BIN), "run", str(suite), "--config", str(write_config(tmp_path / "r", common, api_workers=2, browsers=0))],
                         capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert ran.returncode == 1, ran

    port = free_port()
    e = tmp_path / "e"
    cfg = write_config(e, common + f"[Metrics]\nlisten = 127.0.0.1:{port}\n[Logging]\nformat = json\n", api_workers=2, browsers=0)
    eng = start_engine(cfg)
    try:
        wait_for(lambda: all_up(cfg), 40, "every stage running")
        code, body = get(port, "/healthz")
        health = json.loads(body)
        assert code == 200 and health["status"] == "ok" and health["reasons"] == [], body
        assert set(health["stages"]) >= {"fetcher", "scheduler", "aggregator", "uploader", "janitor", "executor-1", "executor-2"}
        assert health["platform"]["configured"] is False and "used_percent" in health["disk"]

        # a bad suite: exit 2 naming the file and the field, nothing queued, no copy left behind
        bad = write_suite(tmp_path / "bad", {"c1": [api_case("x", demo_url, "/api/health")]})
        task = json.loads((bad / "task.json").read_text())
        task["testCollectionList"][0]["testCaseList"][0]["caseType"] = "DESKTOP"
        (bad / "task.json").write_text(json.dumps(task))
        data_before = sorted(p.name for p in (e / "storage" / "data").iterdir()) if (e / "storage" / "data").exists() else []
        r = cli(cfg, "submit", str(bad), "--wait")
        assert r.returncode == 2 and "task.json" in r.stderr and "testCaseList[0].caseType" in r.stderr, r
        assert not any((e / "storage" / "state" / "submit").rglob("*.json"))
        assert sorted(p.name for p in (e / "storage" / "data").iterdir()) == data_before
        web = write_suite(tmp_path / "web", {"c1": [{"caseId": "w", "caseName": "w", "optList": []}]})
        r = cli(cfg, "submit", str(web))                    # no browser executor in this engine
        assert r.returncode == 2 and "WEB cases but the running engine has no executor" in r.stderr and "caseType" in r.stderr, r
        assert sorted(p.name for p in (e / "storage" / "data").iterdir()) == data_before

        r = cli(cfg, "submit", str(suite), "--wait", "--report-dir", str(e / "out"))
        assert r.returncode == ran.returncode, r
        assert "task t-1 queued: 4 case(s)" in r.stdout and "PASS   ok-2 [c2/ok-2#1]" in r.stdout and "FAIL   bad-1 [c1/bad-1#2]" in r.stdout
        assert "4 cases: 3 passed, 1 failed, 0 error" in r.stdout and "4 cases: 3 passed, 1 failed, 0 error" in ran.stdout
        assert comparable(e / "out" / "t-1") == comparable(tmp_path / "r" / "reports" / "t-1")

        # the scrape, parsed by prometheus_client, counts exactly the results
        rows = json.loads((e / "out" / "t-1" / "results.json").read_text())["caseResultList"]
        def settled(s: dict[tuple[str, Any], float]) -> Any:         # gauges follow heartbeats (0.5 s here)
            return s if by_label(s, "liuma_tasks_running")[()] == 0 and by_label(s, "liuma_executors", kind="API")[("idle",)] == 2 else None
        m = wait_for(lambda: settled(scrape(port)), 10, "the task done and both executors idle again")
        cases = by_label(m, "liuma_cases_total")
        assert {k: v for k, v in cases.items() if v} == {k: float(n) for k, n in final_statuses(e / "out" / "t-1").items()}
        assert cases[("WEB", "passed")] == 0 and cases[("APP", "error")] == 0          # fixed label set, zeros exported
        assert sum(by_label(m, "liuma_attempts_total").values()) == len(rows)
        assert by_label(m, "liuma_attempts_total", kind="API") == {**{(o,): 0.0 for o in ("error", "skipped", "broken", "flaky")},
                                                                   ("passed",): 3.0, ("failed",): 1.0}
        assert by_label(m, "liuma_case_duration_seconds_count") == {("API",): 4.0, ("WEB",): 0.0, ("APP",): 0.0}
        assert by_label(m, "liuma_queue_cases")[()] == 0 and by_label(m, "liuma_queue_oldest_wait_seconds")[()] == 0
        assert by_label(m, "liuma_executors", kind="API") == {("idle",): 2.0, ("busy",): 0.0, ("starting",): 0.0, ("down",): 0.0}
        assert by_label(m, "liuma_platform_up")[()] == 0 and by_label(m, "liuma_uploads_pending")[()] == 0
        assert ("liuma_browser_start_seconds_count", ()) in m and set(by_label(m, "liuma_devices")) == {
            ("available",), ("busy",), ("quarantined",), ("down",)}

        # kill two stages: restarts grow, no counter goes backwards, nothing is counted twice
        st = stages(cfg)
        for name in ("executor-1", "aggregator"):
            os.kill(st[name]["pid"], signal.SIGKILL)
        wait_for(lambda: all(stages(cfg)[n]["restarts"] >= 1 for n in ("executor-1", "aggregator")) and all_up(cfg), 40, "both restarted")
        after = wait_for(lambda: (lambda s: s if all(by_label(s, "liuma_stage_restarts_total").get((n,), 0) >= 1
                                                     for n in ("executor-1", "aggregator")) else None)(scrape(port)),
                         5, "the restarts in the scrape (gauges refresh every 0.5 s)")
        restarts = by_label(after, "liuma_stage_restarts_total")
        assert restarts[("executor-1",)] >= 1 and restarts[("aggregator",)] >= 1 and restarts[("scheduler",)] == 0
        for k, v in counters(m).items():
            assert after.get(k, -1) >= v, (k, v, after.get(k))
        r = cli(cfg, "submit", str(suite), "--wait")
        assert r.returncode == 1 and "task t-1-2 queued" in r.stdout and "(task id t-1 was already used)" in r.stdout, r
        again = scrape(port)
        assert {k: v for k, v in by_label(again, "liuma_cases_total").items() if v} == {
            k: 2.0 * n for k, n in final_statuses(e / "out" / "t-1").items()}
        assert sum(by_label(again, "liuma_attempts_total").values()) == 2 * len(rows)
        for k, v in counters(after).items():
            assert again.get(k, -1) >= v, (k, v, again.get(k))
        assert (e / "reports" / "t-1-2" / "results.json").exists()
    finally:
        assert stop_engine(cfg, eng) == 0
    assert not engine_processes(e)

    # JSON lines: every line of every log parses, with the fixed keys; the secret never appears
    lines = []
    for f in (e / "storage" / "log").glob("*.log"):
        text = f.read_text()
        assert SECRET not in text, f
        lines += [json.loads(x) for x in text.splitlines() if x.strip()]
    assert lines and all(set(JSON_KEYS) <= set(x) for x in lines)
    case = [x for x in lines if x["event"] == "case.finished" and x["case"] == "ok-1" and x["task"] == "t-1"]
    assert case and case[0]["attempt"] == 1 and case[0]["stage"] == "supervisor" and "login ******" in case[0]["message"]
    assert any(x["event"] == "start" and x["stage"] == "executor-1" and x["message"].startswith("LIFECYCLE start") for x in lines)
    assert any(x["event"] == "exit" and x["stage"] == "aggregator" and "SIGKILL" in x["message"] and x["level"] == "warning" for x in lines)
    assert {x["stage"] for x in lines} >= {"supervisor", "scheduler", "aggregator"}


def test_systemd_notifications_ready_status_watchdog_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    got: list[tuple[float, str]] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                got.append((time.monotonic(), sock.recv(4096).decode()))
            except TimeoutError:
                continue
    th = threading.Thread(target=receive, daemon=True)
    th.start()
    port = free_port()
    cfg = write_config(tmp_path, f"[Metrics]\nlisten = 127.0.0.1:{port}\n", api_workers=1, browsers=1)
    eng = start_engine(cfg, {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
    try:
        ready = wait_for(lambda: [m for _, m in got if "READY=1" in m], 40, "READY=1")
        assert f"MAINPID={eng.pid}" in ready[0]
        status = next(x for x in ready[0].splitlines() if x.startswith("STATUS="))
        assert "7/7 stages up" in status and "executors 0/2 busy" in status, status
        assert all_up(cfg)                                       # ready means every stage runs
        wait_for(lambda: sum(m == "WATCHDOG=1" for _, m in got) >= 3, 10, "watchdog pings")
        # the browser executor's warm-up start, measured in its process, reaches the supervisor's histogram
        m = wait_for(lambda: (lambda s: s if s[("liuma_browser_start_seconds_count", ())] >= 1 else None)(scrape(port)),
                     40, "a browser start observed")
        assert 0 < m[("liuma_browser_start_seconds_sum", ())] < 60
        assert by_label(m, "liuma_executors", kind="WEB")[("idle",)] == 1
    finally:
        code = stop_engine(cfg, eng)
        done.set()
        th.join()
        sock.close()
    assert code == 0
    msgs = [m for _, m in got]
    stopping = [i for i, m in enumerate(msgs) if "STOPPING=1" in m]
    assert stopping and stopping[0] > next(i for i, m in enumerate(msgs) if "READY=1" in m)
    assert any(x.startswith("STATUS=stopping") for x in msgs[stopping[0]].splitlines())
    assert not engine_processes(tmp_path)


def test_healthz_turns_503_while_the_platform_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET) as platform:
        cfg = write_config(tmp_path, f"""
[Platform]
url = {platform.base_url}
fetch-interval = 1
heartbeat-interval = 1
timeout = 2
[Engine]
engine-code = {ENGINE_CODE}
engine-secret = {ENGINE_SECRET}
[Metrics]
listen = 127.0.0.1:{port}
""", api_workers=1, browsers=0)
        eng = start_engine(cfg)
        try:
            def health(code: int) -> Any:
                c, body = get(port, "/healthz")
                return json.loads(body) if c == code else None
            ok = wait_for(lambda: health(200), 40, "healthy with the platform up")
            assert ok["platform"] == {"configured": True, "reachable": True, "error": None}
            assert by_label(scrape(port), "liuma_platform_up")[()] == 1
            platform.outage(12, mode="refused")
            bad = wait_for(lambda: health(503), 15, "503 while the platform is away")
            assert bad["status"] == "unhealthy" and bad["platform"]["reachable"] is False
            assert any(r.startswith("platform unreachable") for r in bad["reasons"]), bad
            assert by_label(scrape(port), "liuma_platform_up")[()] == 0
            back = wait_for(lambda: health(200), 40, "healthy again after the outage")
            assert back["reasons"] == []
        finally:
            assert stop_engine(cfg, eng) == 0
    assert not engine_processes(tmp_path)


def test_submitted_work_survives_an_engine_restart_and_runs_by_priority(tmp_path: Path, demo_url: str) -> None:
    slow = write_suite(tmp_path / "slow", {"c1": [api_case("slow", demo_url, "/api/slow?ms=20000")]}, task_id="slow")
    low = write_suite(tmp_path / "low", {"c1": [api_case("low", demo_url, "/api/health")]}, task_id="low")
    high = write_suite(tmp_path / "high", {"c1": [api_case("high", demo_url, "/api/health")]}, task_id="high")
    cfg = write_config(tmp_path, api_workers=1, browsers=0)
    eng = start_engine(cfg)
    try:
        wait_for(lambda: all_up(cfg), 40, "every stage running")
        assert cli(cfg, "submit", str(slow)).returncode == 0
        wait_for(lambda: (stages(cfg)["executor-1"].get("current") or {}).get("case_id") == "slow", 20, "the slow case running")
        assert cli(cfg, "submit", str(low), "--priority", "1").returncode == 0
        assert cli(cfg, "submit", str(high), "--priority", "9").returncode == 0
        queued = sorted(p.stem for p in (tmp_path / "storage" / "state" / "submit").rglob("*.json"))
        assert queued == ["high", "low", "slow"]
        assert stop_engine(cfg, eng) == 0                         # stopped with two tasks queued, one running
        assert not (tmp_path / "reports" / "low").exists() and not (tmp_path / "reports" / "high").exists()
        eng = start_engine(cfg)
        # a third, after the restart (low-2); its follower is interrupted: 130, the task itself goes on
        follower = subprocess.Popen([str(BIN), "submit", str(low), "--priority", "1", "--wait", "--config", str(cfg)], cwd=str(ROOT), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = follower.stdout.readline()
        assert "task low-2 queued" in first, first
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 130 and "task low-2 stays in the engine" in err, (out, err)
        for t in ("low", "high", "low-2"):
            wait_for(lambda t=t: (tmp_path / "storage" / "state" / "submit" / "done" / f"{t}.json").exists(), 40, f"task {t} reported")
        # the case the stop interrupted runs again (priority 0: after the others)
        wait_for(lambda: (stages(cfg)["executor-1"].get("current") or {}).get("case_id") == "slow", 30, "the slow case running again")
    finally:
        stop_engine(cfg, eng)
    start = {t: json.loads((tmp_path / "reports" / t / "results.json").read_text())["caseResultList"][-1] for t in ("low", "high", "low-2")}
    assert all(r["status"] == 0 for r in start.values()), start
    assert start["high"]["startTime"] < start["low"]["startTime"]         # priority 9 before 1
    assert start["low"]["startTime"] < start["low-2"]["startTime"]        # queued before the restart, run before the new one
    assert not engine_processes(tmp_path)


def test_the_systemd_unit_is_type_notify_with_a_watchdog_and_verifies(tmp_path: Path) -> None:
    unit = (ROOT / "contrib" / "systemd" / "liuma-pipeline.service").read_text()
    keys = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert keys["Type"] == "notify" and keys["Restart"] == "on-failure" and int(keys["WatchdogSec"]) > 0
    assert " start --foreground " in keys["ExecStart"] and keys["ExecReload"] == "/bin/kill -HUP $MAINPID"
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    local = tmp_path / "liuma-pipeline.service"
    local.write_text(unit.replace("/opt/liuma-pipeline/bin/liuma-pipeline", str(BIN)))
    r = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "liuma-pipeline.service" not in r.stderr, r


def test_submit_without_a_running_engine_exits_1_and_leaves_nothing_behind(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health")]})
    cfg = write_config(tmp_path, api_workers=1, browsers=0)
    r = cli(cfg, "submit", str(suite), "--wait", timeout=60)
    assert r.returncode == 1 and "is it running?" in r.stderr, r
    assert not [p for p in (tmp_path / "storage" / "data").iterdir()], "the suite's copy was removed"
