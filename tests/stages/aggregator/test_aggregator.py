"""Aggregator driven directly: results journaled and de-duplicated by key, replayed by a new incarnation,
final reports once every expected key is in, task.reported totals."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config_text
from pipeline.messages import Kind
from pipeline.models import CaseResult, Status
from pipeline.topology import RunSpec
from stages.aggregator import Aggregator
from stages.aggregator.totals import Counts
from stages.aggregator.totals import totals as _totals
from tests.fakes import FakeMailbox, envelope


def make(tmp_path: Path, ini: str = "") -> tuple[Aggregator, FakeMailbox]:
    cfg = load_config_text(ini)
    spec = RunSpec(str(tmp_path / "run"), "run", cfg.values, report_dir=str(tmp_path / "reports"),
                   storage_root=str(tmp_path / "storage"))
    agg = Aggregator("aggregator", 0, spec)
    fake = FakeMailbox("aggregator")
    agg.mailbox = fake  # type: ignore[assignment]
    agg.on_start()
    return agg, fake


def result(case_id: str, run_times: int = 1, status: Status = Status.PASS, outcome: str = "", **kw: Any) -> dict[str, Any]:
    outcome = outcome or {Status.PASS: "passed", Status.FAIL: "failed", Status.ERROR: "error", Status.SKIP: "skipped"}[status]
    return CaseResult(taskId="t1", collectionId="c1", caseId=case_id, caseName=f"name {case_id}", index=int(case_id[-1]),
                      runTimes=run_times, status=int(status), startTime=1000, endTime=1250, outcome=outcome,
                      transactionList=[{"id": "s", "name": "step", "status": int(status)}], **kw).to_dict()


def settle(agg: Aggregator, fake: FakeMailbox, timeout: float = 20.0) -> None:
    """Tick until the report thread answered a final write and the stage sent task.reported (or give up)."""
    import time
    end = time.monotonic() + timeout
    while not fake.of(Kind.TASK_REPORTED, "supervisor") and time.monotonic() < end:
        agg.on_tick()
        time.sleep(0.01)


def key(case_id: str, run_times: int = 1) -> list[Any]:
    return ["t1", "c1", case_id, int(case_id[-1]), run_times]


def planned(agg: Aggregator, tmp_path: Path) -> None:
    agg.dispatch(envelope(Kind.TASK_PLANNED, {"task_id": "t1", "report_dir": str(tmp_path / "reports"), "name": "nightly",
                                              "cases": 2, "started_at": 1_700_000_000.0}, src="scheduler"))


def record(agg: Aggregator, res: dict[str, Any], src: str = "executor-1") -> None:
    agg.dispatch(envelope(Kind.RESULT_RECORD, {"result": res}, src=src))


def finished(agg: Aggregator, *keys: list[Any]) -> None:
    agg.dispatch(envelope(Kind.TASK_FINISHED, {"task_id": "t1", "expected": list(keys), "stopped": ""}, src="scheduler"))


def test_results_are_journaled_and_deduplicated_by_key(tmp_path: Path) -> None:
    agg, fake = make(tmp_path)
    planned(agg, tmp_path)
    record(agg, result("k1"))
    record(agg, dict(result("k1"), caseName="a re-sent copy"))           # same key: ignored
    record(agg, result("k1", run_times=2))                               # another attempt: kept
    agg.before_ack()
    assert [(r.caseId, r.runTimes, r.caseName) for r in agg.tasks["t1"].results.values()] == [("k1", 1, "name k1"), ("k1", 2, "name k1")]
    assert [rec[0] for rec in agg.journal.replay()] == ["planned", "result", "result"]
    [batch] = fake.of(Kind.CASES_REPORTED, "supervisor")                 # the loop turn's attempts: one frame
    assert [(c["case_id"], c["runTimes"], c["elapsed_ms"]) for c in batch.body["cases"]] == [("k1", 1, 250), ("k1", 2, 250)]


def test_a_new_incarnation_replays_the_journal(tmp_path: Path) -> None:
    agg, _ = make(tmp_path)
    planned(agg, tmp_path)
    record(agg, result("k1"))
    record(agg, result("k2", status=Status.FAIL))
    finished(agg, key("k1"), key("k2"), key("k3"))
    agg.before_ack()
    agg.journal.close()                                                  # the process dies here
    again, fake2 = make(tmp_path)
    t = again.tasks["t1"]
    assert {k: r.to_dict() for k, r in t.results.items()} == {k: r.to_dict() for k, r in agg.tasks["t1"].results.items()}
    assert t.name == "nightly" and t.expected == [tuple(key(c)) for c in ("k1", "k2", "k3")]
    again.before_ack()
    assert fake2.of(Kind.CASES_REPORTED) == []                           # replay does not announce again
    record(again, result("k2", status=Status.FAIL))                      # the executor re-sends: still once
    assert len(t.results) == 2


def test_torn_journal_tail_loses_only_the_unacked_record(tmp_path: Path) -> None:
    agg, _ = make(tmp_path)
    planned(agg, tmp_path)
    record(agg, result("k1"))
    agg.before_ack()
    record(agg, result("k2"))
    agg.journal.close()
    with open(agg.journal.path, "r+b") as fh:
        fh.truncate(agg.journal.path.stat().st_size - 3)
    again, _ = make(tmp_path)
    assert [r.caseId for r in again.tasks["t1"].results.values()] == ["k1"]


def test_final_report_waits_for_every_expected_key_and_is_sent_once(tmp_path: Path) -> None:
    agg, fake = make(tmp_path)
    planned(agg, tmp_path)
    record(agg, result("k1"))
    finished(agg, key("k1"), key("k2"), key("k2", 2))
    agg.on_tick()
    assert fake.of(Kind.TASK_REPORTED) == [] and not agg.tasks["t1"].reported
    record(agg, result("k2", status=Status.FAIL))
    agg.on_tick()
    assert fake.of(Kind.TASK_REPORTED) == []
    record(agg, result("k2", run_times=2, outcome="flaky"))
    settle(agg, fake)
    agg.on_tick()
    [rep] = fake.of(Kind.TASK_REPORTED, "supervisor")
    body = rep.body
    assert body["task_id"] == "t1" and body["report_dir"] == str(tmp_path / "reports" / "t1") and body["missing"] == []
    assert body["totals"] == {"cases": 2, "attempts": 3, "passed": 2, "failed": 0, "error": 0, "skipped": 0, "flaky": 1, "broken": 0}
    assert {"summary", "results", "allure"} <= set(body["paths"]) and all(Path(p).exists() for p in body["paths"].values())
    rows = json.loads((tmp_path / "reports" / "t1" / "results.json").read_text())["caseResultList"]
    assert sorted((r["caseId"], r["runTimes"]) for r in rows) == [("k1", 1), ("k2", 1), ("k2", 2)]
    assert fake.of(Kind.TASK_REPORTED, "uploader") == []                 # local mode: nothing to upload
    again, fake2 = make(tmp_path)                                        # "reported" is journaled too
    again.on_tick()
    assert "t1" not in again.tasks and "t1" in again.machine.dropped and fake2.of(Kind.TASK_REPORTED) == []
    assert [s.peer for s in fake.of(Kind.TASK_REPORTED)] == ["supervisor", "scheduler"]    # the scheduler drops it too
    agg.history.sync()
    assert "t1" not in agg.tasks and not agg.history._codes                # reported: its state is gone
    agg.on_tick()
    assert agg._graveyard == []                                          # and its results are freed


def test_missing_results_are_reported_after_the_grace(tmp_path: Path) -> None:
    agg, fake = make(tmp_path)
    planned(agg, tmp_path)
    record(agg, result("k1"))
    finished(agg, key("k1"), key("k2"))
    agg.on_tick()
    assert fake.of(Kind.TASK_REPORTED) == []
    agg.machine.config = dataclasses.replace(agg.machine.config, grace_s=0.0)
    settle(agg, fake)
    [rep] = fake.of(Kind.TASK_REPORTED, "supervisor")
    assert rep.body["missing"] == [key("k2")] and rep.body["totals"]["cases"] == 1


def test_platform_mode_forwards_results_until_acked(tmp_path: Path) -> None:
    agg, fake = make(tmp_path, "[Platform]\nurl = http://127.0.0.1:9\n")
    planned(agg, tmp_path)
    record(agg, result("k1"))
    record(agg, result("k2"))
    fwd = fake.of(Kind.RESULT_RECORD, "uploader")
    assert [s.body["result"]["caseId"] for s in fwd] == ["k1", "k2"]
    assert agg.mailbox.on_ack is not None
    agg.mailbox.on_ack([fwd[0].msg_id])                                  # only k1 acked by the uploader
    agg.before_ack()
    agg.journal.sync()
    agg.journal.close()
    _, fake2 = make(tmp_path, "[Platform]\nurl = http://127.0.0.1:9\n")
    assert [s.body["result"]["caseId"] for s in fake2.of(Kind.RESULT_RECORD, "uploader")] == ["k2"]


def r(case_id: str, run_times: int, status: Status, outcome: str) -> CaseResult:
    return CaseResult.from_dict(result(case_id, run_times, status, outcome))


@pytest.mark.parametrize("rows, expected", [
    ([], {"cases": 0, "attempts": 0}),
    ([r("k1", 1, Status.FAIL, "failed"), r("k1", 2, Status.PASS, "flaky")], {"cases": 1, "attempts": 2, "passed": 1, "flaky": 1}),
    ([r("k1", 2, Status.PASS, "flaky"), r("k1", 1, Status.FAIL, "failed")], {"cases": 1, "attempts": 2, "passed": 1, "flaky": 1}),
    ([r("k1", 1, Status.ERROR, "broken"), r("k2", 1, Status.SKIP, "skipped"), r("k3", 1, Status.FAIL, "failed")],
     {"cases": 3, "attempts": 3, "error": 1, "broken": 1, "skipped": 1, "failed": 1}),
])
def test_totals_last_attempt_decides(rows: list[CaseResult], expected: dict[str, int]) -> None:
    zero = {"cases": 0, "attempts": 0, "passed": 0, "failed": 0, "error": 0, "skipped": 0, "flaky": 0, "broken": 0}
    assert _totals(rows) == dict(zero, **expected)


def test_partial_reports_are_written_off_the_stage_loop(tmp_path: Path) -> None:
    """No tick: the report thread alone renders the attempts and writes a running task's partial reports."""
    import time
    agg, _ = make(tmp_path)
    planned(agg, tmp_path)
    record(agg, result("k1"))
    record(agg, result("k2", status=Status.FAIL))
    path = tmp_path / "reports" / "t1" / "summary.json"
    end = time.monotonic() + 30
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.05)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert (doc["finished"], doc["stat"]["testcases"]["total"], doc["stat"]["testcases"]["failed"]) == (False, 2, 1)
    agg.on_stop()


@pytest.mark.parametrize("order", [0, 1, 2])
def test_running_counts_equal_the_totals_in_any_order(order: int) -> None:
    import random
    rows = [r("k1", 1, Status.FAIL, "failed"), r("k1", 2, Status.PASS, "flaky"), r("k2", 1, Status.ERROR, "broken"),
            r("k3", 1, Status.SKIP, "skipped"), r("k4", 1, Status.FAIL, "failed"), r("k4", 2, Status.FAIL, "failed"),
            r("k5", 1, Status.PASS, "passed")]
    random.Random(order).shuffle(rows)
    c = Counts()
    for row in rows:
        c.add(row)
    assert c.totals() == _totals(rows)


def test_a_bad_journal_record_is_skipped_with_its_place_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agg, _ = make(tmp_path)
    planned(agg, tmp_path)
    agg.journal.append(["result", "not a map", 1.0])                     # e.g. written by a buggy older build
    record(agg, result("k1"))
    agg.journal.close()
    again, _ = make(tmp_path)
    assert [r.caseId for r in again.tasks["t1"].results.values()] == ["k1"]
    assert "aggregator.journal record 1 skipped: result record: payload must be a map, got str" in caplog.text


def test_a_malformed_result_is_dead_lettered_and_the_stage_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agg, _ = make(tmp_path)
    planned(agg, tmp_path)
    agg.dispatch(envelope(Kind.RESULT_RECORD, {"result": dict(result("k1"), status=9)}, src="scheduler"))
    record(agg, result("k2"))
    assert [r.caseId for r in agg.tasks["t1"].results.values()] == ["k2"]
    assert "handler for result.record from scheduler failed: result t1|c1|k1|1|1: status must be one of 0-3, got 9" in caplog.text
