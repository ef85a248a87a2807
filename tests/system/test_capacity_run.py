"""``browsers = auto`` end to end (real ``run``, real headless Chromium, the demo site): the pool is sized
from this host, and executors above the current capacity park, so only the ones admitted take work."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.system.engine import results, start_run, write_config
from tests.system.suites import write_suite
from tests.system.test_web_crash import web_case

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def executors_by_case(tmp: Path) -> dict[str, Any]:
    """caseId -> the executor that ran it (summary.json details)."""
    summary = json.loads((tmp / "reports" / "t-1" / "summary.json").read_text())
    return {d["case_id"]: d["executor"] for d in summary["details"]}


def _suite(tmp: Path, base: str, collections: int = 4, per: int = 2) -> Path:
    return write_suite(tmp / "suite", {f"c{c}": [web_case(f"c{c}-{i}", f"页面{c}-{i}", base) for i in range(per)]
                                       for c in range(collections)}, max_thread=8)


def test_auto_pool_on_a_host_busy_before_and_during_the_run_runs_everything_on_the_admitted_executor(
        tmp_path: Path, demo_url: str) -> None:
    # 2 CPU burners per core run before the run starts and throughout: against 1 runnable per core the host
    # is over its limit before the run (what the executors' first decisions compare their young monitor
    # with) and stays over it, so capacity is 1 and the executors of rank 1 and 2 park from the start
    import os
    import subprocess
    import sys
    import time
    cfg = write_config(tmp_path, "[Capacity]\nmax-load = 1.0\nmin-free-mb = 0\nmax-browsers = 3\nhold = 0\n",
                       api_workers=0, browsers="auto")
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * len(os.sched_getaffinity(0)))]
    try:
        time.sleep(0.5)
        proc = start_run(_suite(tmp_path, demo_url, collections=2), cfg)
        out, err = proc.communicate(timeout=400)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    assert proc.returncode == 0, (out, err)
    rows = results(tmp_path)
    assert len(rows) == 4 and all(r["status"] == 0 for r in rows), rows
    assert set(executors_by_case(tmp_path).values()) == {"executor-1"}, executors_by_case(tmp_path)
    log = (tmp_path / "storage" / "log" / "executor-3.log").read_text()
    assert "parked (rank 2, capacity 1 of 3)" in log and "load" in log, log


def test_auto_pool_under_its_limits_uses_several_executors(tmp_path: Path, demo_url: str) -> None:
    cfg = write_config(tmp_path, "[Capacity]\nmax-load = 1000\nmax-browsers = 3\n", api_workers=0, browsers="auto")
    proc = start_run(_suite(tmp_path, demo_url, collections=6, per=2), cfg)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, (out, err)
    rows = results(tmp_path)
    assert len(rows) == 12 and all(r["status"] == 0 for r in rows), rows
    assert len(set(executors_by_case(tmp_path).values())) >= 2, executors_by_case(tmp_path)


def _timeout_suite(tmp: Path, base: str) -> Path:
    from tests.system.test_web_crash import _op
    case = web_case("wait", "等待不存在的元素", base, _op("page", "等待元素出现", ("ID", "never-there"), second="2"))
    return write_suite(tmp / "suite", {"c1": [case]})


def test_a_webdriver_timeout_is_broken_with_the_load_only_while_the_host_is_saturated(tmp_path: Path,
                                                                                       demo_url: str) -> None:
    # the same element wait times out in both runs; judged against limits this host is far below (calm) it
    # stays the case's error, against 1 runnable process per core while 4 CPU burners per core run it is broken
    import os
    import subprocess
    import sys
    calm, busy = tmp_path / "calm", tmp_path / "busy"
    for d, limit in ((calm, 1000.0), (busy, 1.0)):
        d.mkdir()
        write_config(d, f"[Capacity]\nmax-load = {limit}\nmin-free-mb = 0\n[Retry]\nmax-attempts = 1\n", api_workers=0,
                     browsers=1)
    proc = start_run(_timeout_suite(calm, demo_url), calm / "config.ini")
    out, err = proc.communicate(timeout=240)
    rows = results(calm)
    assert [r["status"] for r in rows] == [2] and "BROKEN" not in out, (out, err)
    assert "等待元素出现超时" in json.dumps(rows, ensure_ascii=False) and "saturated" not in out
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4 * len(os.sched_getaffinity(0)))]
    try:
        proc = start_run(_timeout_suite(busy, demo_url), busy / "config.ini")
        out, err = proc.communicate(timeout=400)
    finally:
        for p in burners:
            p.kill()
            p.wait()
    rows = results(busy)
    assert [r["status"] for r in rows] == [2] and "BROKEN" in out, (out, err)
    text = json.dumps(rows, ensure_ascii=False)
    assert "broken: WebDriver 超时发生在主机过载期间 (timeout while the host was saturated: load" in text, text
    assert "runnable on" in text and "等待元素出现超时" in text, text
