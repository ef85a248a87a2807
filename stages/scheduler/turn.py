"""One loop turn of the machine (``Tick``), besides health: task timeouts, units blocked by a dependency
that did not pass, and dispatch. Dispatch asks the policy (``policy.py``: handed the queue, the executor
and ``now``) which unit an idle executor runs next; everything else about a unit is decided here.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from pipeline.models import Outcome, Status

from .plan import TaskState, Unit

if TYPE_CHECKING:
    from .machine import Machine

__all__ = ["already_ran", "dep_state", "dispatch", "expire_tasks", "skip_blocked"]


def dispatch(m: Machine) -> None:
    """Hand each idle executor (longest idle first) the unit the policy picks for it; none while the disk is
    short. While the aggregator's reports are behind, one unit at a time: the cores the other executors
    would take go to the report thread, and the run still moves (stopping every executor left a core idle)."""
    if not m.queue or m.now < m.adopt_until or m.disk_short:
        return
    busy = sum(1 for e in m.executors.values() if e.unit is not None) if m.reports_behind else 0
    retired = m.settings.retired            # executors a reload removes get no new work
    for ex in sorted((e for e in m.executors.values() if e.idle and e.unit is None and e.info.name not in retired),
                     key=lambda e: e.idle_since):
        if not m.queue or busy >= 1 and m.reports_behind:
            return
        if m.quarantine.blocked(ex.info.name, m.now):
            continue
        unit = m.policy.next_for(ex.info, m.queue, partial(allowed, m), partial(others_can, m, me=ex.info.name), now=m.now)
        if unit is None:
            continue
        ts = m.tasks[unit.task_id]
        unit.cases = [c for c in unit.cases if not already_ran(ts, unit, c)]
        if not unit.cases:                    # everything was reported meanwhile (after a restart)
            m.maybe_finish(ts)
            continue
        ts.in_flight += 1
        busy += 1
        ex.unit, ex.idle, ex.running, ex.done_in_unit, ex.variables = unit, False, None, set(), dict(unit.variables)
        ex.broke = False
        body = replace(unit.body(ts.data_dir, max(1.0, ts.deadline_left(m.now))),
                       report_dir=ts.report_dir, evidence=ts.task.evidence)     # where and what evidence to keep
        m.send(ex.info.name, body)


def expire_tasks(m: Machine) -> None:
    """Tasks past their timeout: their queued cases end broken with the reason."""
    for ts in m.tasks.values():
        if ts.finished_sent or ts.deadline_left(m.now) > 0:
            continue
        for u in [u for u in m.queue if u.task_id == ts.task_id]:
            m.queue.remove(u)
            for c in u.cases:
                st = ts.cases[(u.collection_id, c["case_id"], c["index"])]
                if not st.final:
                    m.settle(ts, st, Status.ERROR, Outcome.BROKEN, f"not run: task timeout after {ts.task.timeout} s")
                    st.final = True
        m.maybe_finish(ts)


def skip_blocked(m: Machine) -> None:
    """Units whose first case depends on a case that did not pass: skip that case with the reason, until no
    unit's first case is blocked (the rest of a unit re-queued here may start with a blocked case too: left
    to the next turn, an idle executor would get it dispatched first)."""
    skipped = any(ts.has_deps for ts in m.tasks.values())      # per loop turn: O(queue) only when it can matter
    while skipped:
        skipped = False
        for u in list(m.queue):
            ts = m.tasks[u.task_id]
            bad = [d for d in u.cases[0].get("dependencies") or () if dep_state(ts, d) in ("failed", "missing")]
            if not bad:
                continue
            skipped = True
            first, rest = u.cases[0], u.cases[1:]
            st = ts.cases[(u.collection_id, first["case_id"], first["index"])]
            m.settle(ts, st, Status.SKIP, Outcome.SKIPPED, f"skipped: dependency {', '.join(bad)} did not pass")
            m.queue.remove(u)
            if rest:
                u.cases = rest
                m.enqueue(u)
            m.maybe_finish(ts)


def allowed(m: Machine, unit: Unit) -> bool:
    ts = m.tasks[unit.task_id]
    if ts.in_flight >= max(1, ts.task.maxThread or 1):
        return False
    return all(dep_state(ts, d) != "pending" for d in unit.cases[0].get("dependencies") or ())


def already_ran(ts: TaskState, unit: Unit, c: dict[str, Any]) -> bool:
    st = ts.cases[(unit.collection_id, c["case_id"], c["index"])]
    return st.final or any(a[0] >= c["run_times"] for a in st.attempts)


def others_can(m: Machine, unit: Unit, me: str) -> bool:
    return any(m.policy.fits(unit, e.info) for n, e in m.executors.items()
               if n != me and not m.quarantine.blocked(n, m.now))


def dep_state(ts: TaskState, case_id: str) -> str:
    states = [c for c in ts.cases.values() if c.ref.caseId == case_id]
    if not states:
        return "missing"
    if all(c.final for c in states):
        return "passed" if all(c.passed for c in states) else "failed"
    return "pending"
