"""``<storage>/data/<taskId>/metadata.json``: the task's status record, written by the aggregator when the
task is planned, while results arrive and when it is reported (finished or stopped)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.messages import Kind
from pipeline.models import Status
from tests.fakes import envelope
from tests.stages.aggregator.test_aggregator import (
    finished,
    key,
    make,
    planned,
    record,
    result,
    settle,
)


def meta(tmp_path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((tmp_path / "storage" / "data" / "t1" / "metadata.json").read_text(encoding="utf-8"))
    return doc


def test_metadata_goes_running_then_finished_with_counts(tmp_path: Path) -> None:
    agg, fake = make(tmp_path)
    planned(agg, tmp_path)
    m = meta(tmp_path)
    assert (m["taskId"], m["name"], m["status"], m["cases"]) == ("t1", "nightly", "running", 2)
    assert m["create_time"].startswith("2023-11-1") and m["finish_time"] is None and m["counts"]["cases"] == 0
    record(agg, result("k1"))
    record(agg, result("k2", status=Status.FAIL))
    agg.machine._last_meta = None
    agg.on_tick()                                            # metadata with the counts so far
    m = meta(tmp_path)
    assert m["status"] == "running" and (m["counts"]["passed"], m["counts"]["failed"]) == (1, 1)
    finished(agg, key("k1"), key("k2"))
    settle(agg, fake)
    m = meta(tmp_path)
    assert m["status"] == "finished" and m["finish_time"] and m["stop_reason"] is None
    assert m["counts"] == {"cases": 2, "attempts": 2, "passed": 1, "failed": 1, "error": 0, "skipped": 0, "flaky": 0, "broken": 0}
    assert m["report_dir"] == str(tmp_path / "reports" / "t1")
    assert agg.stats()["tasks"] == []                        # reported: no longer in flight


def test_a_stopped_task_is_recorded_as_stopped_and_in_flight_until_then(tmp_path: Path) -> None:
    agg, fake = make(tmp_path)
    planned(agg, tmp_path)
    record(agg, result("k1"))
    [t] = agg.stats()["tasks"]
    assert (t["task_id"], t["cases"], t["results"], t["finishing"]) == ("t1", 2, 1, False)
    agg.dispatch(envelope(Kind.TASK_FINISHED, {"task_id": "t1", "expected": [key("k1")], "stopped": "stopped by request"},
                          src="scheduler"))
    settle(agg, fake)
    m = meta(tmp_path)
    assert m["status"] == "stopped" and m["stop_reason"] == "stopped by request" and m["counts"]["passed"] == 1
    assert not list((tmp_path / "storage" / "data" / "t1").glob(".metadata*"))     # no temp file left
