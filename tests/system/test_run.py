"""End to end through ``bin/liuma-pipeline run``: real stage processes, real ZeroMQ sockets, a real HTTP
server. Crash, hang and restart scenarios send real signals to real processes."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.system.engine import engine_processes, results, run_dir_status, start_run, wait_for, write_config
from tests.system.suites import api_case, write_suite

pytestmark = pytest.mark.slow

PLATFORM_CASE_KEYS = {"status", "startTime", "endTime", "collectionId", "caseId", "caseType", "caseName", "caseDesc",
                      "index", "runTimes", "transactionList"}
PLATFORM_STEP_KEYS = {"id", "name", "content", "description", "log", "during", "status", "screenShotList"}


def _finish(proc, timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_api_suite_prints_each_case_and_writes_both_reports(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {
        "c1": [api_case("ok-1", demo_url, "/api/health", name="健康检查"),
               api_case("bad-1", demo_url, "/api/items", assertions=[
                   {"from": "resBody", "method": "jsonpath", "expression": "$.data[0].name", "assertion": "equals", "expect": "nope"}])],
        "c2": [api_case("ok-2", demo_url, "/api/text")],
    })
    code, out, err = _finish(start_run(suite, write_config(tmp_path, api_workers=2, browsers=0)))
    assert code == 1, (out, err)                       # one case failed
    assert "PASS   健康检查 [c1/ok-1#1]" in out and "FAIL   bad-1 [c1/bad-1#2]" in out and "PASS   ok-2" in out
    assert "3 cases: 2 passed, 1 failed, 0 error" in out
    rows = results(tmp_path)
    assert {r["caseId"]: r["status"] for r in rows} == {"ok-1": 0, "bad-1": 1, "ok-2": 0}
    for r in rows:
        assert set(r) == PLATFORM_CASE_KEYS and r["runTimes"] == 1 and isinstance(r["startTime"], int)
        assert r["endTime"] >= r["startTime"] and r["transactionList"]
        assert set(r["transactionList"][0]) == PLATFORM_STEP_KEYS
    summary = json.loads((tmp_path / "reports" / "t-1" / "summary.json").read_text())
    tc = summary["stat"]["testcases"]
    assert (tc["total"], tc["success"], tc["fail"]) == (3, 2, 1)
    assert not engine_processes(tmp_path)


def test_bad_suite_and_bad_config_exit_2_naming_file_and_field(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health")]})
    task = json.loads((suite / "task.json").read_text())
    task["testCollectionList"][0]["testCaseList"][0]["caseType"] = "DESKTOP"
    (suite / "task.json").write_text(json.dumps(task))
    code, out, err = _finish(start_run(suite, write_config(tmp_path)))
    assert code == 2 and "task.json" in err and "testCaseList[0].caseType" in err and "DESKTOP" in err
    cfg = tmp_path / "bad.ini"
    cfg.write_text("[Pipeline]\napi-workers = many\n")
    code, out, err = _finish(start_run(suite, cfg))
    assert code == 2 and "bad.ini" in err and "[Pipeline]" in err and "api-workers" in err and "many" in err


def test_kill_9_executor_mid_case_reports_it_broken_then_retries_elsewhere(tmp_path: Path, demo_url: str) -> None:
    slow = api_case("slow", demo_url, "/api/slow?ms=3000", name="慢接口")
    suite = write_suite(tmp_path / "suite", {"c1": [slow], "c2": [api_case("fast", demo_url, "/api/health")]})
    proc = start_run(suite, write_config(tmp_path, api_workers=2, browsers=0))

    def busy_executor():
        st = run_dir_status(tmp_path)
        for s in (st or {}).get("stages", []):
            if s["kind"] == "executor" and (s.get("current") or {}).get("case_id") == "slow":
                return s
        return None

    victim = wait_for(busy_executor, 30, "an executor running the slow case")
    os.kill(victim["pid"], signal.SIGKILL)
    killed_at = time.time()
    wait_for(lambda: any(s["name"] == victim["name"] and s["restarts"] >= 1 and s["state"] == "running"
                         for s in (run_dir_status(tmp_path) or {}).get("stages", [])), 15, "the executor restarted")
    code, out, err = _finish(proc)
    rows = [r for r in results(tmp_path) if r["caseId"] == "slow"]
    assert [r["runTimes"] for r in rows] == [1, 2], rows
    broken, retry = rows
    assert broken["status"] == 2
    log = broken["transactionList"][0]["log"]
    assert victim["name"] in log and "SIGKILL" in log and "慢接口" in log
    assert broken["endTime"] / 1000 - killed_at < 3.0          # reported within seconds of the kill
    assert retry["status"] == 0
    assert "FLAKY  慢接口" in out and "BROKEN 慢接口" in out
    assert code == 0, (out, err)                                # the retry passed: flaky, not failed
    assert not engine_processes(tmp_path)


def test_hanging_case_is_killed_at_its_deadline_and_named(tmp_path: Path, demo_url: str) -> None:
    # a pre-script stuck in one native call: nothing inside the executor can interrupt it
    hang = api_case("hang", demo_url, "/api/health", name="挂起接口",
                    controller={"pre": [{"name": "preScript", "value": "import time\ntime.sleep(60)", "index": 1}]})
    suite = write_suite(tmp_path / "suite", {"c1": [hang], "c2": [api_case("fine", demo_url, "/api/health")]})
    cfg = write_config(tmp_path, "[Retry]\nmax-attempts = 1\n", api_workers=2, browsers=0)
    t0 = time.monotonic()
    code, out, err = _finish(start_run(suite, cfg, "--case-timeout", "3"))
    assert time.monotonic() - t0 < 30
    rows = {r["caseId"]: r for r in results(tmp_path)}
    assert rows["fine"]["status"] == 0
    hung = rows["hang"]
    assert hung["status"] == 2 and hung["runTimes"] == 1
    log = hung["transactionList"][0]["log"]
    assert "timeout after 3 s" in log and "挂起接口" in log and "hang step" in log   # the case and the step
    took = (hung["endTime"] - hung["startTime"]) / 1000
    assert took < 3 + 1 + 1.5, took                        # deadline + grace, within a second or so
    assert code == 1
    assert not engine_processes(tmp_path)


def test_stage_crash_is_restarted_with_backoff_and_given_up_when_flapping(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health")]})
    cfg = write_config(tmp_path, api_workers=1, browsers=0, restart_max=2, restart_window=60)
    t0 = time.monotonic()
    code, out, err = _finish(start_run(suite, cfg, env={"LIUMA_TEST_CRASH_ON_START": "scheduler"}), timeout=60)
    took = time.monotonic() - t0
    assert code == 1 and "stage scheduler given up" in err and "exit code 3" in err
    assert 3.0 <= took < 30                                  # 1 s + 2 s of backoff before giving up
    log = (tmp_path / "storage" / "log" / "supervisor.log").read_text()
    starts = [line for line in log.splitlines() if "LIFECYCLE start stage=scheduler" in line]
    restarts = [line for line in log.splitlines() if "LIFECYCLE restart stage=scheduler" in line]
    assert len(starts) == 3 and len(restarts) == 2 and "LIFECYCLE giveup stage=scheduler" in log
    assert not engine_processes(tmp_path)


def test_aggregator_killed_mid_run_loses_and_duplicates_nothing(tmp_path: Path, demo_url: str) -> None:
    cases = {f"c{i}": [api_case(f"k{i}-{j}", demo_url, "/api/slow?ms=150") for j in range(5)] for i in range(4)}
    suite = write_suite(tmp_path / "suite", cases)
    proc = start_run(suite, write_config(tmp_path, api_workers=2, browsers=0))

    def aggregator_with_results():
        for s in (run_dir_status(tmp_path) or {}).get("stages", []):
            if s["name"] == "aggregator" and (s.get("stats") or {}).get("results", 0) >= 3:
                return s
        return None

    agg = wait_for(aggregator_with_results, 30, "aggregator holding some results")
    os.kill(agg["pid"], signal.SIGKILL)
    code, out, err = _finish(proc)
    assert code == 0, (out, err)
    rows = results(tmp_path)
    keys = [(r["collectionId"], r["caseId"], r["index"], r["runTimes"]) for r in rows]
    assert len(keys) == len(set(keys)) == 20
    assert not engine_processes(tmp_path)


def test_start_status_shows_six_stage_kinds_as_processes_then_stop(tmp_path: Path) -> None:
    import subprocess

    from tests.system.engine import BIN, ROOT
    cfg = write_config(tmp_path, api_workers=2, browsers=0)
    eng = subprocess.Popen([str(BIN), "start", "--foreground", "--config", str(cfg)], cwd=str(ROOT),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def status():
            r = subprocess.run([str(BIN), "status", "--json", "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT))
            if r.returncode != 0:
                return None
            st = json.loads(r.stdout)
            return st if all(s["state"] == "running" and s["pid"] for s in st["stages"]) else None
        st = wait_for(status, 30, "all stages running")
        kinds = {s["kind"] for s in st["stages"]}
        assert kinds == {"fetcher", "scheduler", "executor", "aggregator", "uploader", "janitor"}
        pids = [s["pid"] for s in st["stages"]]
        assert len(set(pids)) == len(pids) == 7 and all(psutil.pid_exists(p) for p in pids)
        text = subprocess.run([str(BIN), "status", "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT)).stdout
        assert "scheduler" in text and "executor-2" in text and "RESTARTS" in text
        r = subprocess.run([str(BIN), "stop", "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT))
        assert r.returncode == 0
        assert eng.wait(timeout=30) == 0
        assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    finally:
        if eng.poll() is None:
            eng.kill()
            eng.wait()


@pytest.mark.parametrize("stage", ["scheduler", "fetcher"])
def test_scheduler_or_fetcher_killed_mid_run_recovers_from_its_state(tmp_path: Path, demo_url: str, stage: str) -> None:
    cases = {f"c{i}": [api_case(f"s{i}-{j}", demo_url, "/api/slow?ms=200") for j in range(4)] for i in range(4)}
    suite = write_suite(tmp_path / "suite", cases)
    proc = start_run(suite, write_config(tmp_path, api_workers=2, browsers=0))

    def progressed():
        st = run_dir_status(tmp_path) or {}
        agg = next((s for s in st.get("stages", []) if s["name"] == "aggregator"), None)
        victim = next((s for s in st.get("stages", []) if s["name"] == stage), None)
        return victim if agg and (agg.get("stats") or {}).get("results", 0) >= 3 and victim and victim["pid"] else None

    victim = wait_for(progressed, 30, "a few results")
    os.kill(victim["pid"], signal.SIGKILL)
    code, out, err = _finish(proc)
    assert code == 0, (out, err)
    rows = results(tmp_path)
    keys = [(r["collectionId"], r["caseId"], r["index"], r["runTimes"]) for r in rows]
    assert len(keys) == len(set(keys)) == 16                  # nothing lost, nothing run twice
    assert all(r["status"] == 0 for r in rows)
    assert not engine_processes(tmp_path)


def test_sigint_lets_the_running_case_finish_skips_the_rest_and_exits_130(tmp_path: Path, demo_url: str) -> None:
    slow = api_case("slow", demo_url, "/api/slow?ms=2000", name="慢接口")
    later = [api_case(f"later-{i}", demo_url, "/api/health") for i in range(3)]
    suite = write_suite(tmp_path / "suite", {"c1": [slow] + later}, max_thread=1)
    proc = start_run(suite, write_config(tmp_path, api_workers=1, browsers=0))

    def slow_running():
        return any((s.get("current") or {}).get("case_id") == "slow" for s in (run_dir_status(tmp_path) or {}).get("stages", []))

    wait_for(slow_running, 30, "the slow case running")
    proc.send_signal(signal.SIGINT)
    code, out, err = _finish(proc)
    assert code == 130, (out, err)
    rows = {r["caseId"]: r for r in results(tmp_path)}
    assert rows["slow"]["status"] == 0                      # finished within the grace period
    assert set(rows) == {"slow", "later-0", "later-1", "later-2"}
    assert not engine_processes(tmp_path)
