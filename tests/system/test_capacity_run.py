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


def test_auto_pool_over_its_load_limit_runs_everything_on_the_admitted_executor(tmp_path: Path, demo_url: str) -> None:
    # max-load is far below any real load average: capacity 1, so executors of rank 1 and 2 park
    cfg = write_config(tmp_path, "[Capacity]\nmax-load = 0.0001\nmax-browsers = 3\nhold = 0\n", api_workers=0, browsers="auto")
    proc = start_run(_suite(tmp_path, demo_url), cfg)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, (out, err)
    rows = results(tmp_path)
    assert len(rows) == 8 and all(r["status"] == 0 for r in rows), rows
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
