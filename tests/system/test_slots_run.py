"""A leaked slot healed end to end (real ``run``, real processes and sockets): executor-1 loses its first
``unit.done`` on purpose (``LIUMA_TEST_DROP_ONCE``). Without the scheduler's self-check its slot would stay
taken forever and the run would never end; with it the run finishes, every case reported exactly once."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.engine import results, start_run, write_config
from tests.system.suites import api_case, write_suite

pytestmark = [pytest.mark.slow]


def test_a_lost_unit_done_is_healed_and_the_run_finishes(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {f"c{i}": [api_case(f"a{i}", demo_url, "/api/health")] for i in range(3)},
                        max_thread=1)
    proc = start_run(suite, write_config(tmp_path, api_workers=1, browsers=0),
                     env={"LIUMA_TEST_DROP_ONCE": "executor-1:unit.done"})
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (out, err)
    rows = results(tmp_path)
    assert sorted(r["caseId"] for r in rows) == ["a0", "a1", "a2"] and all(r["status"] == 0 for r in rows), rows
    ex_log = (tmp_path / "storage" / "log" / "executor-1.log").read_text()
    assert "not sent (LIUMA_TEST_DROP_ONCE)" in ex_log                     # the message really was lost
    sched_log = (tmp_path / "storage" / "log" / "scheduler.log").read_text()
    assert "slot check: executor-1 finished unit" in sched_log and "unit.done never arrived" in sched_log, sched_log
