"""The run history store: rows in, estimates and flake rates out; a corrupt or locked database turns it off
(said once) and everything goes on answering empty."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from pipeline.history import Attempt, HistoryStore, outage_runs, reason_class


def att(run: str, case: str, status: int = 0, outcome: str = "passed", *, rt: int = 1, secs: float = 1.0,
        at: float = 1000.0, code: str = "c1", steps: int = 2, coll: str = "c") -> Attempt:
    return Attempt(run=run, task_id="t", collection_id=coll, case_id=case, idx=1, run_times=rt, kind="API", status=status,
                   outcome=outcome, duration_s=secs, started_at=at, steps=steps, code=code, name=f"name {case}")


def test_rows_round_trip_in_wal_mode_and_a_resent_attempt_is_not_doubled(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    assert store.record([att("r1", "a", secs=2.0), att("r1", "b", secs=4.0)]) == 2
    assert store.record([att("r1", "a", secs=2.0)]) == 0
    assert sqlite3.connect(tmp_path / "h.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader = HistoryStore(tmp_path / "h.sqlite", readonly=True)
    assert reader.durations(["a", "b", "never"]) == {"a": 2.0, "b": 4.0}
    assert reader.step_rate() == (2.0 + 4.0) / 4
    assert [r["duration_s"] for r in reader.case_attempts("b")] == [4.0]
    assert reader.off is None and store.off is None


def test_estimate_is_the_median_of_recent_timed_attempts(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    store.record([att(f"r{i}", "a", secs=s, at=1000.0 + i) for i, s in enumerate([100.0, 1.0, 2.0, 3.0, 50.0, 2.5])])
    store.record([att("rb", "a", 2, "broken", secs=300.0, at=2000.0)])      # a crash says nothing about its length
    assert store.durations(["a"]) == {"a": 2.5}           # latest five: 1, 2, 3, 50, 2.5


def test_reader_of_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    reader = HistoryStore(tmp_path / "none.sqlite", readonly=True)
    assert reader.durations(["a"]) == {} and reader.flakes() == {} and reader.off is None
    assert not (tmp_path / "none.sqlite").exists()


def test_corrupt_database_turns_the_store_off_and_says_so_once(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not a database at all" * 200)
    said: list[str] = []
    store = HistoryStore(path, warn=said.append)
    assert store.record([att("r1", "a")]) == 0
    assert store.record([att("r1", "b")]) == 0
    assert store.durations(["a"]) == {} and store.flakes() == {} and store.slowest() == []
    assert len(said) == 1 and str(path) in said[0] and "going on without history" in said[0]
    reader_said: list[str] = []
    reader = HistoryStore(path, readonly=True, warn=reader_said.append)
    assert reader.durations(["a"]) == {} and reader.step_rate() is None
    assert len(reader_said) == 1 and "DatabaseError" in reader_said[0]


def test_locked_database_turns_the_writer_off_once(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    HistoryStore(path).record([att("r0", "a")])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")                      # someone holds the write lock
    said: list[str] = []
    store = HistoryStore(path, warn=said.append, busy_ms=50)
    try:
        assert store.record([att("r1", "a")]) == 0
        assert store.record([att("r2", "a")]) == 0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(said) == 1 and "locked" in said[0]


def test_flake_rate_counts_pass_on_retry_and_changed_outcomes_on_the_same_code(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    rows = []
    for i, (final, retried, code) in enumerate([(0, False, "c1"), (1, False, "c1"), (0, True, "c1"), (0, False, "c1"),
                                                (1, False, "c2"), (1, False, "c2")]):
        t = 1000.0 + i * 10
        rows.append(att(f"r{i}", "a", 1 if (retried or final) else 0, "failed" if (retried or final) else "passed", at=t, code=code))
        if retried:
            rows.append(att(f"r{i}", "a", 0, "flaky", rt=2, at=t + 1, code=code))
        rows += [att(f"r{i}", f"other{k}", 0, at=t) for k in range(5)]   # the rest of each run passed: no outage
    store.record(rows)
    f = store.flakes(["a"])["a"]
    # r1 flips from r0, r2 passes on retry (and flips back), r3 same as r2, r4 is new code (no flip), r5 same
    assert (f.runs, f.flaky_runs) == (6, 2)
    assert f.outcomes == ("passed", "failed", "flaky", "passed", "failed", "failed")
    assert abs(f.rate - 2 / 6) < 1e-9 and f.name == "name a"
    assert store.flakes(["a"], last_runs=2)["a"].runs == 2


def test_outage_runs_are_ignored(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    rows = []
    for i in range(3):
        t = 1000.0 + i * 10
        outage = i == 1                               # run r1: the server was down, 5 of 6 cases failed
        rows.append(att(f"r{i}", "a", 1 if outage else 0, "failed" if outage else "passed", at=t))
        rows += [att(f"r{i}", f"o{k}", 1 if outage else 0, "failed" if outage else "passed", at=t) for k in range(4)]
        rows.append(att(f"r{i}", "fine", 0, at=t))
    store.record(rows)
    f = store.flakes(["a"])["a"]
    assert (f.runs, f.flaky_runs, f.outcomes) == (2, 0, ("passed", "passed"))
    assert outage_runs([("r", "k1", 1), ("r", "k2", 1)]) == set()     # too few cases to call it an outage


def test_vacuum_removes_old_rows_only(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    store.record([att("old", "a", at=100.0), att("new", "a", at=5000.0)])
    assert store.vacuum(older_than=1000.0) == 1
    assert [r["run"] for r in store.case_attempts("a")] == ["new"]


def test_reason_classes() -> None:
    assert reason_class("passed", "") == "" and reason_class("flaky", "x") == ""
    assert reason_class("failed", "assert 1 == 2") == "assertion"
    assert reason_class("error", "timeout after 300 s") == "timeout"
    assert reason_class("broken", "executor-2 crashed (SIGKILL)") == "crash"
    assert reason_class("broken", "device d1 down") == "device"
    assert reason_class("skipped", "engine stopping (signal SIGINT)") == "stopped"


def test_a_reader_meeting_a_database_not_set_up_yet_asks_again_later(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.close()    # created, schema not yet written
    said: list[str] = []
    reader = HistoryStore(path, readonly=True, warn=said.append)
    assert reader.durations(["a"]) == {} and reader.off is None and said == []
    HistoryStore(path).record([att("r1", "a", secs=3.0)])
    assert reader.durations(["a"]) == {"a": 3.0}
