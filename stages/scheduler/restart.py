"""What ``Started`` does to the machine, and adopting a unit an executor still runs after a restart.

A restarted stage replays its journal through ``Machine.apply`` (same code, commands dropped), then
applies ``Started``: executors are forgotten (they re-announce; one still running a unit we planned is
*adopted* instead of its cases being dispatched twice), the queue is rebuilt from every case not final,
and what the aggregator might not have got is sent again (it de-duplicates).
"""
from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from .events import Started
from .plan import Unit, build_units
from .quarantine import Quarantine
from .routed import case_reader
from .routing import Unroutable, unit_requirements

if TYPE_CHECKING:
    from .machine import ExecState, Machine

__all__ = ["adopt", "started"]


def started(m: Machine, ev: Started) -> None:
    m.configure(ev.settings)
    if ev.quarantine is not None:                   # the state file is the truth about holds across restarts
        m.quarantine = Quarantine(m.quarantine.after, m.quarantine.window, m.quarantine.probe)
        m.quarantine.from_state(ev.quarantine, m.now, m.wall)
        for name, h in m.quarantine.held.items():
            m.log(logging.WARNING, f"{name} (device {h.device}) still quarantined after the restart: {h.reason}")
    m.executors.clear()
    m.stop_all = None
    if not m.tasks:
        return
    _rebuild_queue(m)
    m.adopt_until = m.now + ev.adopt_s
    for ts in m.tasks.values():
        m.send("aggregator", m.planned_body(ts))
    for ts in m.tasks.values():
        for res in ts.results:
            m.send("aggregator", m.result_body(res))
    for ts in m.tasks.values():
        if ts.finished_sent:
            ts.finished_sent = False
            m.maybe_finish(ts)
    m.log(logging.WARNING, f"restarted: rebuilt {len(m.tasks)} tasks; {len(m.queue)} units queued; adopting running units")


def _rebuild_queue(m: Machine) -> None:
    m.queue.clear()
    for ts in m.tasks.values():
        ts.in_flight = 0
        if ts.finished_sent:
            continue
        units, _, _ = build_units(ts.task, m.settings.default_timeout, list(m.settings.tags), partial(m.new_unit_id, ts.task_id))
        for u in m.routed(ts, units):
            states = [(c, ts.cases[(u.collection_id, c["case_id"], c["index"])]) for c in u.cases]
            u.cases = [dict(c, run_times=st.next_run_times) for c, st in states if not st.final]
            if u.cases:
                u.variables = dict(ts.variables.get(u.collection_id) or u.variables)
                m.enqueue(u)


def adopt(m: Machine, ex: ExecState, body: dict[str, Any]) -> None:
    """After a scheduler restart: an executor is still running a unit we planned; take it over instead
    of dispatching its cases a second time."""
    ts = m.tasks.get(str(body.get("task_id")))
    if ts is None or ts.finished_sent:
        return
    keys = {(body["collection_id"], c["case_id"], c["index"]) for c in body["cases"]}
    for u in list(m.queue):
        if u.task_id == ts.task_id and u.collection_id == body["collection_id"]:
            u.cases = [c for c in u.cases if (u.collection_id, c["case_id"], c["index"]) not in keys]
            if not u.cases:
                m.queue.remove(u)
    unit = Unit(body["unit_id"], ts.task_id, body["collection_id"], list(body["cases"]), dict(body.get("variables") or {}))
    coll = next((c for c in ts.task.collections() if c.collectionId == unit.collection_id), None)
    if "APP" in unit.kinds and coll is not None:          # its retries stay bound to the same devices
        unit.device = coll.deviceId
        try:
            unit.devices = m.router.resolve(unit_requirements(unit.device, unit.cases, case_reader(ts, unit)))
        except Unroutable:
            unit.devices = frozenset({ex.info.device}) if ex.info.device else None
    ex.unit, ex.idle, ex.running = unit, False, body.get("running")
    ex.done_in_unit = set()
    ts.in_flight += 1
    m.log(logging.INFO, f"adopted unit {unit.unit_id} running on {ex.info.name} ({len(unit.cases)} cases)")
