"""The run history: one SQLite row per case attempt under the storage root (``<storage>/history.sqlite``).

Why: every run used to start from zero. Stored durations let the scheduler start the longest units first
and give an honest ETA; stored outcomes give each case a flake rate. SQLite from the standard library in WAL
mode: one writer (the aggregator) and readers anywhere (scheduler, CLI, report writer) without blocking it.

History is an aid, never a dependency: a corrupt, locked or unwritable database makes the store *off* (every
read answers empty, every write is dropped), the reason is given once through ``warn``, and the run goes on.
"""
from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HISTORY_FILE",
    "OUTAGE_SHARE",
    "Attempt",
    "CaseFlake",
    "HistoryStore",
    "flake_stats",
    "history_path",
    "outage_runs",
    "reason_class",
]

HISTORY_FILE = "history.sqlite"
SCHEMA_VERSION = 1
OUTAGE_SHARE = 0.8           # a run where more than this share of its cases did not pass is an outage, not flakiness
OUTAGE_MIN_CASES = 5         # ... when it has at least this many cases (one failing case is no outage)
ESTIMATE_SAMPLES = 5         # a case's estimate: the median of its latest timed attempts

_DDL = """
CREATE TABLE IF NOT EXISTS attempts (
    run TEXT NOT NULL, task_id TEXT NOT NULL, collection_id TEXT NOT NULL, case_id TEXT NOT NULL,
    idx INTEGER NOT NULL, run_times INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
    executor TEXT NOT NULL DEFAULT '', browser TEXT NOT NULL DEFAULT '', device TEXT NOT NULL DEFAULT '',
    status INTEGER NOT NULL, outcome TEXT NOT NULL, duration_s REAL NOT NULL, steps INTEGER NOT NULL DEFAULT 0,
    reason_class TEXT NOT NULL DEFAULT '', code TEXT NOT NULL DEFAULT '', started_at REAL NOT NULL,
    PRIMARY KEY (run, collection_id, case_id, idx, run_times));
CREATE INDEX IF NOT EXISTS attempts_case ON attempts (case_id, started_at);
CREATE INDEX IF NOT EXISTS attempts_time ON attempts (started_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = ("run", "task_id", "collection_id", "case_id", "idx", "run_times", "kind", "name", "executor", "browser",
            "device", "status", "outcome", "duration_s", "steps", "reason_class", "code", "started_at")


def history_path(storage_root: str | Path) -> Path:
    return Path(storage_root) / HISTORY_FILE


@dataclass(frozen=True)
class Attempt:
    """One row: an attempt of a case in one run (``run`` = task id and the run's start, unique per run)."""

    run: str
    task_id: str
    collection_id: str
    case_id: str
    idx: int
    run_times: int
    kind: str
    status: int
    outcome: str
    duration_s: float
    started_at: float
    name: str = ""
    executor: str = ""
    browser: str = ""
    device: str = ""
    steps: int = 0
    reason_class: str = ""
    code: str = ""

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in _COLUMNS)


@dataclass(frozen=True)
class CaseFlake:
    """A case over its last runs: final outcomes (oldest first), how many runs counted, the flake rate."""

    case_id: str
    outcomes: tuple[str, ...]
    runs: int
    flaky_runs: int
    rate: float
    name: str = ""


def reason_class(outcome: str, reason: str) -> str:
    """A coarse failure class for grouping: assertion, error, timeout, crash, device, stopped, skipped ('' = passed)."""
    low = reason.lower()
    if outcome in ("passed", "flaky"):
        return ""
    if outcome == "skipped":
        return "stopped" if "stop" in low else "skipped"
    if "timeout" in low or "timed out" in low or "deadline" in low:
        return "timeout"
    if "device" in low:
        return "device"
    if outcome == "broken":
        return "crash"
    return "assertion" if outcome == "failed" else "error"


@dataclass
class _RunCase:
    statuses: list[tuple[int, int, str]] = field(default_factory=list)     # (run_times, status, outcome)
    code: str = ""
    started: float = 0.0
    name: str = ""


def _final_passed(rc: _RunCase) -> bool:
    return max(rc.statuses)[1] == 0


def _final_outcome(rc: _RunCase) -> str:
    return max(rc.statuses)[2]


def outage_runs(rows: Iterable[Sequence[Any]]) -> set[str]:
    """Runs (from rows ``(run, case key, final status)``) where more than ``OUTAGE_SHARE`` of the non-skipped cases
    did not pass, among at least ``OUTAGE_MIN_CASES``: an outage (a server down), not evidence of flakiness."""
    per: dict[str, list[int]] = {}
    for run, _key, status in rows:
        if int(status) != 3:
            per.setdefault(str(run), []).append(int(status))
    return {r for r, st in per.items() if len(st) >= OUTAGE_MIN_CASES and sum(s != 0 for s in st) > OUTAGE_SHARE * len(st)}


def flake_stats(case_id: str, runs: Sequence[_RunCase], name: str = "") -> CaseFlake:
    """Pure: a run is flaky evidence when the case passed on a retry in it, or when its final outcome differs
    from the previous counted run's on the same code (same case file); rate = flaky runs / counted runs."""
    counted = [rc for rc in sorted(runs, key=lambda r: r.started)
               if rc.statuses and _final_outcome(rc) != "skipped"]
    flaky = 0
    prev: _RunCase | None = None
    for rc in counted:
        retried = _final_passed(rc) and any(s != 0 for _, s, _o in rc.statuses)
        flipped = prev is not None and prev.code == rc.code and _final_passed(prev) != _final_passed(rc)
        flaky += bool(retried or flipped)
        prev = rc
    n = len(counted)
    return CaseFlake(case_id, tuple("flaky" if _final_passed(rc) and len(rc.statuses) > 1 and any(s != 0 for _, s, _o in rc.statuses)
                                    else _final_outcome(rc) for rc in counted), n, flaky, flaky / n if n else 0.0, name)


class HistoryStore:
    """The store. ``readonly``: a reader (scheduler, CLI, report writer) never creates the file. ``warn`` is
    called once, with the reason, when the store turns off; ``off`` then holds that reason."""

    def __init__(self, path: str | Path, *, readonly: bool = False, warn: Callable[[str], None] | None = None,
                 busy_ms: int = 500) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.warn = warn or (lambda _m: None)
        self.off: str | None = None
        self._db: sqlite3.Connection | None = None
        self._busy_ms = busy_ms

    # -- plumbing ----------------------------------------------------------------------------------
    def _fail(self, what: str, e: BaseException) -> None:
        if self.off is None:
            self.off = f"run history {self.path} unusable ({what}: {type(e).__name__}: {e}); going on without history"
            self.warn(self.off)
        self.close()

    def _conn(self) -> sqlite3.Connection | None:
        if self.off is not None:
            return None
        if self._db is not None:
            return self._db
        try:
            if self.readonly:
                if not self.path.exists():
                    return None              # no history yet: nothing to read, nothing wrong
                db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self._busy_ms / 1000,
                                     isolation_level=None, check_same_thread=False)
                try:
                    db.execute("SELECT count(*) FROM meta").fetchone()     # a corrupt file fails here, once
                except sqlite3.OperationalError as e:
                    db.close()
                    if "no such table" in str(e):
                        return None          # the writer is creating it right now: no history yet, ask again later
                    raise
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(str(self.path), timeout=self._busy_ms / 1000, isolation_level=None,
                                     check_same_thread=False)
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()
                if not mode or str(mode[0]).lower() != "wal":
                    raise sqlite3.OperationalError(f"WAL mode refused (journal_mode={mode[0] if mode else None})")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")     # takes effect on a new file: vacuum in small steps
                db.executescript(_DDL)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        except (sqlite3.Error, OSError) as e:
            self._fail("open", e)
            return None
        self._db = db
        return db

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        db = self._conn()
        if db is None:
            return []
        try:
            return list(db.execute(sql, tuple(args)).fetchall())
        except sqlite3.Error as e:
            self._fail("read", e)
            return []

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    # -- writing (the aggregator only) -------------------------------------------------------------
    def record(self, attempts: Sequence[Attempt]) -> int:
        """Insert attempts (a re-sent one is ignored: the key is the result key plus the run); returns rows added."""
        db = self._conn()
        if db is None or not attempts:
            return 0
        try:
            before = db.total_changes
            db.execute("BEGIN IMMEDIATE")
            db.executemany(f"INSERT OR IGNORE INTO attempts ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})",
                           [a.values() for a in attempts])
            db.execute("COMMIT")
            return db.total_changes - before
        except sqlite3.Error as e:
            self._fail("write", e)
            return 0

    def vacuum(self, older_than: float) -> int:
        """Delete attempts that started before ``older_than`` (epoch s) and give the space back; returns rows deleted."""
        db = self._conn()
        if db is None:
            return 0
        try:
            n = 0
            while True:                 # small transactions: the aggregator's writes never wait long
                step = db.execute("DELETE FROM attempts WHERE rowid IN (SELECT rowid FROM attempts WHERE started_at < ? "
                                  "LIMIT 2000)", (older_than,)).rowcount
                n += max(0, step)
                if step < 2000:
                    break
            if n:
                db.execute("PRAGMA incremental_vacuum")
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            return n
        except sqlite3.Error as e:
            self._fail("vacuum", e)
            return 0

    # -- reading -----------------------------------------------------------------------------------
    def durations(self, case_ids: Iterable[str]) -> dict[str, float]:
        """Per case, the median duration (s) of its latest timed attempts (passed, failed, error, flaky: a broken
        or skipped attempt says nothing about how long the case takes); cases never timed are absent.
        One query per 500 cases (a 50,000-case task is planned in 100 queries, not 50,000)."""
        ids = sorted(set(case_ids))
        out: dict[str, float] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self._query(f"SELECT case_id, duration_s FROM attempts WHERE case_id IN ({','.join('?' * len(chunk))}) "
                               "AND outcome NOT IN ('skipped', 'broken') ORDER BY case_id, started_at DESC", chunk)
            per: dict[str, list[float]] = {}
            for cid, secs in rows:
                got = per.setdefault(cid, [])
                if len(got) < ESTIMATE_SAMPLES:
                    got.append(float(secs))
            out.update({cid: float(statistics.median(v)) for cid, v in per.items()})
            if self.off is not None:
                break
        return out

    def step_rate(self) -> float | None:
        """Seconds per step over recent timed attempts: estimates a case never run from its step count."""
        rows = self._query("SELECT sum(duration_s), sum(steps) FROM (SELECT duration_s, steps FROM attempts WHERE steps > 0 "
                           "AND outcome NOT IN ('skipped', 'broken') ORDER BY started_at DESC LIMIT 500)")
        if rows and rows[0][1]:
            return float(rows[0][0]) / float(rows[0][1])
        return None

    def _runs_of(self, case_ids: Iterable[str] | None, last_runs: int) -> dict[str, list[_RunCase]]:
        where, args = "", []
        if case_ids is not None:
            ids = sorted(set(case_ids))
            if not ids:
                return {}
            where, args = f"WHERE case_id IN ({','.join('?' * len(ids))})", ids
        rows = self._query("SELECT run, collection_id, case_id, idx, run_times, status, outcome, code, started_at, name "
                           f"FROM attempts {where} ORDER BY started_at", args)
        per: dict[str, dict[str, _RunCase]] = {}
        for run, coll, cid, idx, rt, status, outcome, code, started, name in rows:
            rc = per.setdefault(cid, {}).setdefault(f"{run}\x00{coll}\x00{idx}", _RunCase(code=code, started=started))
            rc.statuses.append((int(rt), int(status), str(outcome)))
            rc.started = min(rc.started, float(started))
            rc.name = name or rc.name
        outages = self._outages({k.split("\x00")[0] for runs in per.values() for k in runs})
        return {cid: [rc for k, rc in sorted(runs.items(), key=lambda kv: kv[1].started)
                      if k.split("\x00")[0] not in outages][-last_runs:] for cid, runs in per.items()}

    def _outages(self, runs: set[str]) -> set[str]:
        if not runs:
            return set()
        ids = sorted(runs)
        rows = self._query(f"SELECT run, collection_id || '/' || case_id || '#' || idx AS k, status, max(run_times) FROM attempts "
                           f"WHERE run IN ({','.join('?' * len(ids))}) GROUP BY run, k", ids)
        return outage_runs((r[0], r[1], r[2]) for r in rows)

    def flakes(self, case_ids: Iterable[str] | None = None, last_runs: int = 20) -> dict[str, CaseFlake]:
        """Per case (all cases when ``case_ids`` is None), its outcomes and flake rate over its last counted runs."""
        return {cid: flake_stats(cid, runs, next((r.name for r in reversed(runs) if r.name), ""))
                for cid, runs in self._runs_of(case_ids, last_runs).items() if runs}

    def task_cases(self, task_id: str) -> list[str]:
        """Case ids this task ran before."""
        return [str(r[0]) for r in self._query("SELECT DISTINCT case_id FROM attempts WHERE task_id = ?", (task_id,))]

    def case_attempts(self, case_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """A case's latest attempts, newest first, as dicts of the row's columns."""
        rows = self._query(f"SELECT {','.join(_COLUMNS)} FROM attempts WHERE case_id = ? ORDER BY started_at DESC, run_times DESC "
                           "LIMIT ?", (case_id, limit))
        return [dict(zip(_COLUMNS, r)) for r in rows]

    def slowest(self, limit: int = 10, since: float | None = None) -> list[tuple[str, str, float, int]]:
        """(case id, name, median-ish duration s, attempts) of the slowest cases (mean of timed attempts)."""
        since = since if since is not None else time.time() - 30 * 86400
        rows = self._query("SELECT case_id, max(name), avg(duration_s), count(*) FROM attempts WHERE started_at >= ? AND "
                           "outcome NOT IN ('skipped', 'broken') GROUP BY case_id ORDER BY avg(duration_s) DESC LIMIT ?",
                           (since, limit))
        return [(str(r[0]), str(r[1] or ""), float(r[2]), int(r[3])) for r in rows]
