"""The aggregator's history hook: one row per new attempt (never twice, never on replay), the previous runs'
outcomes and flake rate in report.html, muted failures and expired mutes in task.reported."""
from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

from pipeline.config import load_config_text
from pipeline.history import HistoryStore, history_path
from pipeline.messages import Kind, TaskReported
from pipeline.models import Status
from pipeline.topology import RunSpec
from stages.aggregator import Aggregator
from tests.fakes import FakeMailbox, envelope
from tests.stages.aggregator.test_aggregator import (
    finished,
    key,
    make,
    record,
    result,
    settle,
)


def planned_at(agg: Any, tmp_path: Path, started: float) -> None:
    agg.on_task_planned(envelope(Kind.TASK_PLANNED, {"task_id": "t1", "report_dir": str(tmp_path / "reports"), "name": "nightly",
                                                     "cases": 2, "started_at": started}, src="scheduler"))


def rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(history_path(tmp_path / "storage"))
    try:
        return db.execute("SELECT run, case_id, run_times, outcome, duration_s, executor, reason_class FROM attempts "
                          "ORDER BY case_id, run_times").fetchall()
    finally:
        db.close()


def test_each_new_attempt_is_one_row_and_a_replay_adds_none(tmp_path: Path) -> None:
    agg, _ = make(tmp_path)
    planned_at(agg, tmp_path, 1_700_000_000.0)
    record(agg, result("k1", executor="executor-1"))
    record(agg, result("k1", executor="executor-1"))                     # re-sent: no second row
    record(agg, result("k2", status=Status.FAIL, executor="executor-2"))
    record(agg, result("k2", run_times=2, outcome="flaky", executor="executor-1"))
    agg.before_ack()
    agg.journal.close()
    agg.history.close()
    again, _ = make(tmp_path)                                            # replays the journal
    record(again, result("k2", run_times=2, outcome="flaky"))            # and the executor re-sends one
    again.history.close()
    run = "t1@1700000000.000"
    assert rows(tmp_path) == [(run, "k1", 1, "passed", 0.25, "executor-1", ""),
                              (run, "k2", 1, "failed", 0.25, "executor-2", "assertion"),
                              (run, "k2", 2, "flaky", 0.25, "executor-1", "")]


def test_rows_journaled_but_not_flushed_before_a_crash_come_back_on_replay(tmp_path: Path) -> None:
    agg, _ = make(tmp_path)
    planned_at(agg, tmp_path, 1_700_000_000.0)
    record(agg, result("k1", executor="executor-1"))
    record(agg, result("k2", status=Status.FAIL, executor="executor-2"))
    agg.journal.sync()                                                   # journaled and durable ...
    assert len(agg.history.pending) == 2
    agg.history.pending.clear()                                          # ... but the crash came before the flush
    agg.journal.close()
    assert not path_rows(tmp_path)
    again, _ = make(tmp_path)                                            # the replay writes them
    again.history.close()
    run = "t1@1700000000.000"
    assert rows(tmp_path) == [(run, "k1", 1, "passed", 0.25, "executor-1", ""),
                              (run, "k2", 1, "failed", 0.25, "executor-2", "assertion")]


def path_rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    """The rows, or none when the database was never created."""
    return rows(tmp_path) if history_path(tmp_path / "storage").exists() else []


def _run(tmp_path: Path, started: float, k2: Status, ini: str = "", run: str = "run") -> dict[str, Any]:
    """One task run through a real aggregator with its own journal (``run``) on the shared storage root."""
    cfg = load_config_text(ini)
    spec = RunSpec(str(tmp_path / run), "run", cfg.values, report_dir=str(tmp_path / "reports"),
                   storage_root=str(tmp_path / "storage"))
    agg = Aggregator("aggregator", 0, spec)
    fake = FakeMailbox("aggregator")
    agg.mailbox = fake  # type: ignore[assignment]
    agg.on_start()
    planned_at(agg, tmp_path, started)
    record(agg, result("k1"))
    record(agg, result("k2", status=k2))
    finished(agg, key("k1"), key("k2"))
    settle(agg, fake)
    agg.on_stop()
    [rep] = fake.of(Kind.TASK_REPORTED, "supervisor")
    return dataclasses.asdict(TaskReported.from_wire(rep.body))        # what the supervisor decodes


def test_report_html_shows_the_previous_runs_and_the_flake_rate(tmp_path: Path) -> None:
    for i, st in enumerate((Status.PASS, Status.FAIL, Status.PASS)):
        body = _run(tmp_path, 1_700_000_000.0 + i * 100, st, run=f"run{i}")
        assert body["history_off"] is None
    page = (tmp_path / "reports" / "t1" / "report.html").read_text().replace(" ", "")
    # the third run's report shows the two runs before it: k2 passed then failed (a change on the same code)
    assert '"h":[["passed","failed"],0.5,2]' in page
    assert '"h":[["passed","passed"],0.0,2]' in page
    flakes = HistoryStore(history_path(tmp_path / "storage"), readonly=True).flakes(["k2"])
    assert flakes["k2"].outcomes == ("passed", "failed", "passed") and flakes["k2"].flaky_runs == 2


def test_task_reported_names_muted_failures_and_expired_mutes(tmp_path: Path) -> None:
    today = dt.date.today()
    ini = (f"[Flaky]\nmute = k2 until {today.isoformat()}, k9 until {(today - dt.timedelta(days=1)).isoformat()},"
           f" k1 until {today.isoformat()}\n")
    body = _run(tmp_path, 1_700_000_000.0, Status.FAIL, ini)
    assert [(m["case_id"], m["status"], m["until"]) for m in body["muted"]] == [("k2", 1, today.isoformat())]
    assert body["mutes_expired"] == [{"case_id": "k9", "until": (today - dt.timedelta(days=1)).isoformat()}]
    assert body["totals"]["failed"] == 1                                 # still reported as failed


def test_a_corrupt_history_leaves_ingest_and_reports_alone(tmp_path: Path) -> None:
    path = history_path(tmp_path / "storage")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database" * 100)
    body = _run(tmp_path, 1_700_000_000.0, Status.PASS)
    assert body["totals"]["passed"] == 2 and "going on without history" in body["history_off"]
    assert (tmp_path / "reports" / "t1" / "report.html").exists()


def test_caught_up_only_once_the_writer_thread_wrote_every_row(tmp_path: Path) -> None:
    agg, _ = make(tmp_path)
    planned_at(agg, tmp_path, 1_700_000_000.0)
    with agg.history._lock:                      # the writer thread cannot insert meanwhile
        record(agg, result("k1"))
        assert not agg.history.caught_up()
    agg.history.sync()
    assert agg.history.caught_up()
    agg.history.close()
