"""A reported task's state leaves the scheduler and the aggregator, through the real processes of a ``start``:
a second task after it still runs and reports, and is forgotten in turn."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.system.engine import wait_for, write_config
from tests.system.suites import api_case, write_suite
from tests.system.test_daemon import all_up, cli, stages, start_engine, stop_engine

pytestmark = pytest.mark.slow


def held(cfg: Path) -> tuple[int, int, int]:
    st = stages(cfg)
    return st["scheduler"]["stats"]["held"], st["aggregator"]["stats"]["held"], st["aggregator"]["stats"]["results"]


def test_a_second_task_after_a_reported_one_runs_and_both_are_forgotten(tmp_path: Path, demo_url: str) -> None:
    e = tmp_path / "e"
    cfg = write_config(e, "", api_workers=1, browsers=0)
    eng = start_engine(cfg)
    try:
        wait_for(lambda: all_up(cfg), 40, "every stage running")
        for n in (1, 2):
            suite = write_suite(tmp_path / f"s{n}", {"c1": [api_case(f"ok-{n}", demo_url, "/api/health"),
                                                            api_case(f"two-{n}", demo_url, "/api/text")]}, task_id=f"t-{n}")
            r = cli(cfg, "submit", str(suite), "--wait", "--report-dir", str(e / f"out{n}"))
            assert r.returncode == 0 and "2 cases: 2 passed" in r.stdout, r
            [task_dir] = (e / f"out{n}").iterdir()
            rows = json.loads((task_dir / "results.json").read_text())["caseResultList"]
            assert sorted(x["caseId"] for x in rows) == [f"ok-{n}", f"two-{n}"]
            wait_for(lambda: held(cfg) == (0, 0, 0), 10, f"task {n}'s state dropped by the scheduler and the aggregator")
    finally:
        assert stop_engine(cfg, eng) == 0
