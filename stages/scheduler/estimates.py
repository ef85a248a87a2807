"""How long each queued unit will take, from the run history: what longest-first dispatch sorts by and
what the ETA in ``status`` and the progress bar is computed from (one source, so they agree).

A case timed before is estimated by the median of its latest attempts (pipeline/history.py); a case never
timed by its step count times the history's seconds per step (``DEFAULT_STEP_S`` with no history at all).
Reading case files for step counts costs ~0.1 ms each on a loaded machine, so a task with more than
``MAX_STEP_READS`` unknown cases counts one step each instead (its first run keeps plan order).
``eta`` is pure: it replays longest-first list scheduling of what is left onto the executors.
"""
from __future__ import annotations

import heapq
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.history import HistoryStore, history_path

from .plan import Unit

__all__ = ["DEFAULT_STEP_S", "Estimates", "case_steps", "eta", "eta_now", "open_history"]

DEFAULT_STEP_S = 1.0
MAX_STEP_READS = 2000        # case files read for step counts per task: planning stays well under a second


def case_steps(data_dir: str, collection_id: str, case_id: str) -> int:
    """Steps of a case file (API + UI steps); 1 when the file cannot be read (the runner will say why)."""
    try:
        data = json.loads((Path(data_dir) / collection_id / f"{case_id}.json").read_text(encoding="utf-8"))
        return max(1, len(data.get("apiList") or []) + len(data.get("optList") or []))
    except (OSError, ValueError, AttributeError, TypeError):
        return 1


def open_history(spec: Any, warn: Any) -> HistoryStore | None:
    """The history reader of ``spec`` (``[History] enabled``), or None."""
    if not (spec.config.get("History") or {}).get("enabled", True):
        return None
    return HistoryStore(history_path(spec.storage_root), readonly=True, warn=warn)


class Estimates:
    """Seconds per planned case, keyed (task, collection, case, index); filled when a task is planned."""

    def __init__(self, store: HistoryStore | None, log: logging.Logger | None = None) -> None:
        self.store = store
        self.log = log
        self.case_s: dict[tuple[str, str, str, int], float] = {}
        self.known: dict[str, int] = {}          # task -> cases estimated from their own history

    def plan(self, task_id: str, data_dir: str, units: Iterable[Unit]) -> float:
        """Estimate every case of ``units``; returns the task's total work (s)."""
        cases = [(u.collection_id, c) for u in units for c in u.cases]
        timed = self.store.durations(c["case_id"] for _, c in cases) if self.store is not None else {}
        rate = (self.store.step_rate() if self.store is not None else None) or DEFAULT_STEP_S
        total = 0.0
        unknown = sum(1 for _, c in cases if c["case_id"] not in timed)
        for coll, c in cases:
            s = timed.get(c["case_id"])
            if s is None:          # beyond MAX_STEP_READS unknown cases, one step each (ties keep plan order)
                s = (case_steps(data_dir, coll, c["case_id"]) if unknown <= MAX_STEP_READS else 1) * rate
            self.case_s[(task_id, coll, c["case_id"], c["index"])] = s
            total += s
        self.known[task_id] = sum(1 for _, c in cases if c["case_id"] in timed)
        return total

    def case(self, task_id: str, collection_id: str, case_id: str, index: int) -> float:
        return self.case_s.get((task_id, collection_id, case_id, index), DEFAULT_STEP_S)

    def unit(self, u: Unit) -> float:
        return sum(self.case(u.task_id, u.collection_id, c["case_id"], c["index"]) for c in u.cases)

    def left_in_unit(self, u: Unit, done: set[tuple[str, int]], running_for: float) -> float:
        """What a running unit still needs: its cases not reported yet, less what the current one has run."""
        left = sum(self.case(u.task_id, u.collection_id, c["case_id"], c["index"]) for c in u.cases
                   if (c["case_id"], c["index"]) not in done)
        return max(0.0, left - running_for)

    def forget(self, task_id: str) -> None:
        for k in [k for k in self.case_s if k[0] == task_id]:
            del self.case_s[k]
        self.known.pop(task_id, None)


def eta(busy: list[float], queued: list[float], workers: int) -> float:
    """Seconds until everything is done: each busy executor frees after its remaining time, queued units
    go longest first to whichever executor frees first (pure; ``workers`` >= the busy ones)."""
    free = sorted(busy) + [0.0] * max(0, max(1, workers) - len(busy))
    heapq.heapify(free)
    for s in sorted(queued, reverse=True):
        t = heapq.heappop(free)
        heapq.heappush(free, t + s)
    return max(free) if free else 0.0


def eta_now(queue: list[Unit], executors: Iterable[Any], est: Estimates, now_epoch: float, configured: int,
            threads: int) -> float:
    """The scheduler's ETA: its queue and its executors (objects with ``unit``, ``done_in_unit``, ``running``).
    ``configured`` executors count before they announced themselves (a run's first seconds); ``threads`` (the
    tasks' maxThread summed) caps how many run at once."""
    execs = list(executors)
    busy = []
    for ex in execs:
        if ex.unit is not None:
            started = (ex.running or {}).get("started_ms")
            busy.append(est.left_in_unit(ex.unit, ex.done_in_unit, max(0.0, now_epoch - started / 1000) if started else 0.0))
    return eta(busy, [est.unit(u) for u in queue], max(len(busy), min(max(len(execs), configured), threads)))


def scheduler_eta(sched: Any) -> float:
    """``eta_now`` for the scheduler stage (its ``stats``: what ``status`` and the progress bar show)."""
    retired = {e["name"] for e in sched.spec.executors if e.get("retired")}
    threads = sum(max(1, t.task.maxThread or 1) for t in sched.tasks.values() if not t.finished_sent)
    return round(eta_now(sched.queue, sched.executors.values(), sched.estimates, time.time(),
                         len(sched.spec.executors) - len(retired), threads), 1)
