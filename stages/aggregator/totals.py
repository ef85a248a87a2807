"""Counting a task's results: per case (collection, case, index) the last attempt decides; attempts are
counted separately. ``Counts`` keeps the same totals up to date per attempt (O(1) each), so the running
task's metadata costs nothing per case however large the task."""
from __future__ import annotations

from collections.abc import Iterable

from pipeline.models import CaseResult, Status

__all__ = ["Counts", "by_kind", "totals"]

_STATUS_KEY = {Status.PASS: "passed", Status.FAIL: "failed", Status.ERROR: "error", Status.SKIP: "skipped"}
_ZERO = {"cases": 0, "attempts": 0, "passed": 0, "failed": 0, "error": 0, "skipped": 0, "flaky": 0, "broken": 0}


class Counts:
    def __init__(self) -> None:
        self.last: dict[tuple[str, str, int], CaseResult] = {}
        self.t = dict(_ZERO)

    def _count(self, r: CaseResult, sign: int) -> None:
        if r.outcome in ("flaky", "broken"):
            self.t[r.outcome] += sign
        self.t[_STATUS_KEY[Status(r.status)]] += sign

    def add(self, r: CaseResult) -> None:
        self.t["attempts"] += 1
        k = (r.collectionId, r.caseId, r.index)
        old = self.last.get(k)
        if old is None:
            self.t["cases"] += 1
        elif r.runTimes <= old.runTimes:
            return
        else:
            self._count(old, -1)
        self.last[k] = r
        self._count(r, +1)

    def totals(self) -> dict[str, int]:
        return dict(self.t)


def _last(results: Iterable[CaseResult]) -> tuple[dict[tuple[str, str, int], CaseResult], int]:
    last: dict[tuple[str, str, int], CaseResult] = {}
    attempts = 0
    for r in results:
        attempts += 1
        k = (r.collectionId, r.caseId, r.index)
        if k not in last or r.runTimes > last[k].runTimes:
            last[k] = r
    return last, attempts


def totals(results: Iterable[CaseResult]) -> dict[str, int]:
    """The ``totals`` of ``task.reported``: cases, attempts, and the final status of each case."""
    last, attempts = _last(results)
    t = dict(_ZERO, cases=len(last), attempts=attempts)
    for r in last.values():
        if r.outcome in ("flaky", "broken"):
            t[r.outcome] += 1
        t[_STATUS_KEY[Status(r.status)]] += 1
    return t


def by_kind(results: Iterable[CaseResult]) -> dict[str, dict[str, int]]:
    """Final status per case counted by case type, for the supervisor's ``liuma_cases_total{kind,status}``."""
    out: dict[str, dict[str, int]] = {}
    for r in _last(results)[0].values():
        by = out.setdefault(r.caseType, {})
        name = _STATUS_KEY[Status(r.status)]
        by[name] = by.get(name, 0) + 1
    return out
