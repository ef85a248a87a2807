"""The aggregator's one hook into the run history: every newly recorded attempt becomes a row of
``<storage>/history.sqlite`` (pipeline/history.py), and the report and the recap read from it.

The aggregator is the history's only writer. A row carries what later answers need: duration and steps
(estimates), outcome and the case file's hash (flakiness on the same code), executor, browser and device.
History never stops ingest: the store turns itself off on the first database error, said once.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
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
        self.pending: list[Attempt] = []

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
        Rows are written by ``flush`` (the aggregator's before-ack), one transaction per batch: a commit per
        attempt would cost ~0.2 ms each on a loaded machine."""
        if self.store is None:
            return
        self.pending.append(Attempt(
            run=f"{res.taskId}@{run_started:.3f}", task_id=res.taskId, collection_id=res.collectionId, case_id=res.caseId,
            idx=int(res.index), run_times=int(res.runTimes), kind=res.caseType, name=res.caseName, executor=res.executor,
            browser=self.browser if res.caseType == "WEB" else "", device=self.devices.get(res.executor, ""),
            status=int(res.status), outcome=res.outcome, duration_s=max(0, res.endTime - res.startTime) / 1000,
            steps=len(res.transactionList), reason_class=reason_class(res.outcome, res.reason or ""),
            code=self._code(res), started_at=(res.startTime or 0) / 1000 or run_started))
        if len(self.pending) >= 2000:
            self.flush()

    def flush(self) -> None:
        if self.pending and self.store is not None:
            rows, self.pending = self.pending, []
            self.store.record(rows)

    def report_history(self, task_id: str) -> dict[str, CaseFlake]:
        """Each case's outcomes and flake rate over its previous runs, for report.html (empty: no history)."""
        if self.store is None:
            return {}
        self.flush()
        return self.store.flakes(self.store.task_cases(task_id), int(self._setting("History", "flaky-runs", 20)))

    def report_notes(self, finals: Iterable[CaseResult], today: dt.date) -> dict[str, Any]:
        """For ``task.reported``: the muted cases that did not pass (out of the exit code), mutes that expired,
        and why the history is off (None when it works), for the recap."""
        self.flush()
        mutes = parse_mutes(str(self._setting("Flaky", "mute", "") or ""))
        return {"muted": muted_failures(finals, mutes, today),
                "mutes_expired": [{"case_id": m.case_id, "until": m.until.isoformat()} for m in expired_mutes(mutes, today)],
                "history_off": self.store.off if self.store is not None else None}

    def close(self) -> None:
        self.flush()
        if self.store is not None:
            self.store.close()
