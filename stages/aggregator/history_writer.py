"""The aggregator's one hook into the run history: every newly recorded attempt becomes a row of
``<storage>/history.sqlite`` (pipeline/history.py), and the report and the recap read from it.

The aggregator is the history's only writer. A row carries what later answers need: duration and steps
(estimates), outcome and the case file's hash (flakiness on the same code), executor, browser and device.
History never stops ingest: the store turns itself off on the first database error, said once. Rows are
built and inserted on a writer thread (reading each case file for its hash and the insert cost ~0.4 ms per
attempt on the stage's loop at 10,000 cases); the journal, not this thread, is what makes a row durable:
a replay re-records every attempt and the insert ignores rows already there. Reads (the report's history,
the recap's notes) first wait for the rows handed over before them.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipeline.history import (
    Attempt,
    CaseFlake,
    HistoryStore,
    history_path,
    reason_class,
)
from pipeline.models import CaseResult
from pipeline.mute import expired_mutes, muted_failures, parse_mutes

__all__ = ["HistoryWriter"]


class HistoryWriter:
    def __init__(self, spec: Callable[[], Any], log: logging.Logger) -> None:
        """``spec`` returns the stage's current RunSpec: mutes and flaky-runs follow a config reload."""
        self.log = log
        self.spec = spec
        first = spec()
        self.enabled = bool((first.config.get("History") or {}).get("enabled", True))
        self.store = HistoryStore(history_path(first.storage_root), warn=log.warning) if self.enabled else None
        self.data = Path(first.storage_root) / "data"
        self.devices = {e.name: e.device or "" for e in first.executor_specs()}
        web = first.config.get("WebDriver") or {}
        self.browser = "remote" if web.get("options") == "remote" else Path(str(web.get("binary") or "chromium")).name
        self._codes: dict[tuple[str, str, str], str] = {}
        self.pending: list[tuple[CaseResult, float]] = []     # recorded since the last flush (the stage's thread)
        self._lock = threading.Lock()                         # the store: the writer thread's inserts, our reads
        self._q: queue.SimpleQueue[list[tuple[CaseResult, float]] | threading.Event | str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._handed = self._done = 0                         # items put on the queue / handled by the thread

    def _setting(self, section: str, key: str, default: Any) -> Any:
        return (self.spec().config.get(section) or {}).get(key, default)

    def _code(self, res: CaseResult) -> str:
        """A short hash of the case file: outcomes that differ on the same code are flakiness, not a change."""
        key = (res.taskId, res.collectionId, res.caseId)
        if key not in self._codes:
            try:
                raw = (self.data / res.taskId / res.collectionId / f"{res.caseId}.json").read_bytes()
                self._codes[key] = hashlib.sha1(raw).hexdigest()[:16]
            except OSError:
                self._codes[key] = ""
        return self._codes[key]

    def record(self, res: CaseResult, run_started: float) -> None:
        """Called once per new attempt, also on journal replay (the insert ignores rows already there, so an
        attempt journaled just before a crash is not missing); ``run_started``: the task's start (epoch s).
        Rows go to the writer thread on ``flush`` (the aggregator's before-ack), one transaction per batch: a
        commit per attempt would cost ~0.2 ms each on a loaded machine."""
        if self.store is None:
            return
        self.pending.append((res, run_started))
        if len(self.pending) >= 2000:
            self.flush()

    def _attempt(self, res: CaseResult, run_started: float) -> Attempt:
        return Attempt(
            run=f"{res.taskId}@{run_started:.3f}", task_id=res.taskId, collection_id=res.collectionId, case_id=res.caseId,
            idx=int(res.index), run_times=int(res.runTimes), kind=res.caseType, name=res.caseName, executor=res.executor,
            browser=self.browser if res.caseType == "WEB" else "", device=self.devices.get(res.executor, ""),
            status=int(res.status), outcome=res.outcome, duration_s=max(0, res.endTime - res.startTime) / 1000,
            steps=len(res.transactionList), reason_class=reason_class(res.outcome, res.reason or ""),
            code=self._code(res), started_at=(res.startTime or 0) / 1000 or run_started)

    def flush(self) -> None:
        """Hand the pending rows to the writer thread (returns at once)."""
        if self.pending and self.store is not None:
            rows, self.pending = self.pending, []
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="aggregator-history", daemon=True)
                self._thread.start()
            self._put(rows)

    def sync(self, timeout: float = 30.0) -> None:
        """Flush and wait until every row handed over so far is written (or the thread is gone)."""
        self.flush()
        if self._thread is not None and self._thread.is_alive():
            done = threading.Event()
            self._put(done)
            if not done.wait(timeout):
                self.log.warning("history: rows still being written after %.0f s; reading without them", timeout)

    def caught_up(self) -> bool:
        """Every row recorded so far is written (the pending ones are handed over now): a read now
        (``report_notes``) does not wait for the writer."""
        self.flush()
        return self._done == self._handed

    def forget(self, task_id: str) -> None:
        """The task is reported and dropped: its case files' hashes go (on the writer thread, after its rows)."""
        self.flush()
        if self._thread is None:
            self._codes = {k: v for k, v in self._codes.items() if k[0] != task_id}
        else:
            self._put(task_id)

    def _put(self, item: list[tuple[CaseResult, float]] | threading.Event | str) -> None:
        self._handed += 1
        self._q.put(item)

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            try:
                self._handle(item)
            finally:
                self._done += 1

    def _handle(self, item: list[tuple[CaseResult, float]] | threading.Event | str) -> None:
        if isinstance(item, threading.Event):
            item.set()
        elif isinstance(item, str):
            self._codes = {k: v for k, v in self._codes.items() if k[0] != item}
        else:
            try:
                rows = [self._attempt(res, started) for res, started in item]
                with self._lock:
                    if self.store is not None:
                        self.store.record(rows)
            except Exception as e:      # noqa: BLE001 - history never stops ingest; the store says its own errors
                self.log.error("history: %d rows not written: %s", len(item), e)

    def report_history(self, task_id: str) -> dict[str, CaseFlake]:
        """Each case's outcomes and flake rate over its previous runs, for report.html (empty: no history)."""
        if self.store is None:
            return {}
        self.sync()
        with self._lock:
            return self.store.flakes(self.store.task_cases(task_id), int(self._setting("History", "flaky-runs", 20)))

    def report_notes(self, finals: Iterable[CaseResult], today: dt.date) -> dict[str, Any]:
        """For ``task.reported``: the muted cases that did not pass (out of the exit code), mutes that expired,
        and why the history is off (None when it works), for the recap."""
        self.sync()
        mutes = parse_mutes(str(self._setting("Flaky", "mute", "") or ""))
        return {"muted": muted_failures(finals, mutes, today),
                "mutes_expired": [{"case_id": m.case_id, "until": m.until.isoformat()} for m in expired_mutes(mutes, today)],
                "history_off": self.store.off if self.store is not None else None}

    def close(self) -> None:
        self.sync()
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(10.0)
            self._thread = None
        if self.store is not None:
            with self._lock:
                self.store.close()
