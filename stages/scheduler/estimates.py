"""How long each queued unit will take, from the run history: what longest-first dispatch sorts by and
what the ETA in ``status`` and the progress bar is computed from (one source, so they agree).

Two halves, so the machine stays pure and its replay deterministic:

- the stage reads (``task_estimates``, IO): when a task arrives, every case's seconds, looked up in the
  history store, handed IN the ``Submitted`` event (journaled with it, so a replay decides the same order);
- the machine keeps them per task (``Estimates``, pure) and asks ``unit``/``eta_of`` with its own time.

A case timed before is estimated by the median of its latest attempts (pipeline/history.py); a case never
timed by its step count times the history's seconds per step (``DEFAULT_STEP_S`` with no history at all).
Reading case files for step counts costs ~0.1 ms each on a loaded machine, so a task with more than
``MAX_STEP_READS`` unknown cases counts one step each instead (its first run keeps plan order).
"""
from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.history import HistoryStore, history_path
from pipeline.models import Task

from .plan import Unit

if TYPE_CHECKING:
    from .machine import Machine

__all__ = ["DEFAULT_STEP_S", "MAX_STEP_READS", "Estimates", "case_key", "case_steps", "eta", "eta_of", "open_history",
           "task_estimates"]

DEFAULT_STEP_S = 1.0
MAX_STEP_READS = 2000        # case files read for step counts per task: planning stays well under a second


def case_key(collection_id: str, case_id: str) -> str:
    """How a case's estimate is keyed in ``Submitted.estimates`` (like ``app_cases``)."""
    return f"{collection_id}/{case_id}"


# -- the stage's half: reading ------------------------------------------------------------------------
def case_steps(data_dir: str, collection_id: str, case_id: str) -> int:
    """Steps of a case file (API + UI steps); 1 when the file cannot be read (the runner will say why)."""
    try:
        data = json.loads((Path(data_dir) / collection_id / f"{case_id}.json").read_text(encoding="utf-8"))
        return max(1, len(data.get("apiList") or []) + len(data.get("optList") or []))
    except (OSError, ValueError, AttributeError, TypeError):
        return 1


def open_history(spec: Any, warn: Callable[..., None]) -> HistoryStore | None:
    """The history reader of ``spec`` (``[History] enabled``), or None."""
    if not (spec.config.get("History") or {}).get("enabled", True):
        return None
    return HistoryStore(history_path(spec.storage_root), readonly=True, warn=warn)


def task_estimates(store: HistoryStore | None, task: dict[str, Any], data_dir: str) -> tuple[dict[str, float], int]:
    """({"<collection>/<case>": seconds} for every case of ``task``, how many of them the history timed)."""
    if task.get("taskId") is None:
        return {}, 0
    cases = list(dict.fromkeys((coll.collectionId, ref.caseId) for coll in Task.from_dict(task).collections()
                               for ref in coll.cases()))
    timed = store.durations(c for _, c in cases) if store is not None else {}
    rate = (store.step_rate() if store is not None else None) or DEFAULT_STEP_S
    unknown = sum(1 for _, c in cases if c not in timed)
    out: dict[str, float] = {}
    for coll, case in cases:
        s = timed.get(case)
        if s is None:          # beyond MAX_STEP_READS unknown cases, one step each (ties keep plan order)
            s = (case_steps(data_dir, coll, case) if unknown <= MAX_STEP_READS else 1) * rate
        out[case_key(coll, case)] = float(s)
    return out, sum(1 for _, c in cases if c in timed)


# -- the machine's half: pure -------------------------------------------------------------------------
@dataclass
class Estimates:
    """Seconds per case of each task in the machine (from its ``Submitted``), forgotten when it finishes."""
    by_task: dict[str, dict[str, float]] = field(default_factory=dict)
    known: dict[str, int] = field(default_factory=dict)          # task -> cases estimated from their own history
    # task -> unit_id -> (the unit's case list, its estimate): longest-first asks for every queued unit on each
    # dispatch and the ETA on each status, ~100 lookups per case at 10,000 cases; the list is held, so an `is`
    # check sees a unit whose cases were replaced (a retry unit) and recomputes
    _units: dict[str, dict[str, tuple[list[Any], float, int]]] = field(default_factory=dict)

    def plan(self, task_id: str, table: dict[str, float], timed: int, units: Iterable[Unit]) -> float:
        """Keep ``task_id``'s table; returns the task's total work (s) over its planned ``units``."""
        self.by_task[task_id] = dict(table)
        self.known[task_id] = timed
        self._units.pop(task_id, None)
        return sum(self.unit(u) for u in units)

    def case(self, task_id: str, collection_id: str, case_id: str) -> float:
        return self.by_task.get(task_id, {}).get(case_key(collection_id, case_id), DEFAULT_STEP_S)

    def unit(self, u: Unit) -> float:
        memo = self._units.setdefault(u.task_id, {})
        hit = memo.get(u.unit_id)
        if hit is not None and hit[0] is u.cases and len(u.cases) == hit[2]:
            return hit[1]
        table = self.by_task.get(u.task_id, {})
        est = sum(table.get(case_key(u.collection_id, c["case_id"]), DEFAULT_STEP_S) for c in u.cases)
        memo[u.unit_id] = (u.cases, est, len(u.cases))
        return est

    def left_in_unit(self, u: Unit, done: set[tuple[str, int]], running_for: float) -> float:
        """What a running unit still needs: its cases not reported yet, less what the current one has run."""
        left = sum(self.case(u.task_id, u.collection_id, c["case_id"]) for c in u.cases
                   if (c["case_id"], c["index"]) not in done)
        return max(0.0, left - running_for)

    def forget(self, task_id: str) -> None:
        self.by_task.pop(task_id, None)
        self.known.pop(task_id, None)
        self._units.pop(task_id, None)


def eta(busy: list[float], queued: list[float], workers: int) -> float:
    """Seconds until everything is done: each busy executor frees after its remaining time, queued units
    go longest first to whichever executor frees first (pure; ``workers`` >= the busy ones)."""
    free = sorted(busy) + [0.0] * max(0, max(1, workers) - len(busy))
    heapq.heapify(free)
    for s in sorted(queued, reverse=True):
        t = heapq.heappop(free)
        heapq.heappush(free, t + s)
    return max(free) if free else 0.0


def eta_of(m: Machine, wall: float) -> float:
    """The machine's ETA at epoch ``wall``: its queue and its executors. Configured executors count before
    they announced themselves (a run's first seconds); the tasks' maxThread summed caps how many run at once."""
    busy = []
    for ex in m.executors.values():
        if ex.unit is not None:
            started = (ex.running or {}).get("started_ms")
            busy.append(m.estimates.left_in_unit(ex.unit, ex.done_in_unit,
                                                 max(0.0, wall - started / 1000) if started else 0.0))
    configured = sum(1 for e in m.settings.executors if e.name not in m.settings.retired)
    threads = sum(max(1, t.task.maxThread or 1) for t in m.tasks.values() if not t.finished_sent)
    workers = max(len(busy), min(max(len(m.executors), configured), threads))
    return round(eta(busy, [m.estimates.unit(u) for u in m.queue], workers), 1)
