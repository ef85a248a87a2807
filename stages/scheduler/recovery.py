"""Scheduler recovery: the journal of accepted tasks and settled attempts, replayed after a crash.

Every accepted task and every settled attempt is appended (fsync before the acks go out), so a restarted
scheduler rebuilds its plan, waits a few heartbeats to *adopt* the units executors are still running
(their status carries the unit), never re-dispatches a case already reported, and re-sends what the
aggregator might not have got (it de-duplicates). Mixed into ``Scheduler``; uses its state.
"""
from __future__ import annotations

import time
from typing import Any

from pipeline.messages import ResultRecord, TaskSubmit

from .plan import Unit, build_units
from .routing import Unroutable, unit_requirements

__all__ = ["RecoveryMixin"]


class RecoveryMixin:
    """Needs from the host class: journal, tasks, queue, spec, mailbox, log, hb_interval, default_timeout,
    _enqueue, _maybe_finish, _planned_body, _plan, _routed, router, _case_reader."""

    def on_start(self) -> None:
        self._replaying = True
        n = 0
        for rec in self.journal.replay():
            self._replay(rec)
            n += 1
        self._replaying = False
        self.journal.open()
        if n:
            self._rebuild_queue()
            self.adopt_until = time.monotonic() + 2.5 * self.hb_interval + 0.5
            for ts in self.tasks.values():
                self.mailbox.send("aggregator", self._planned_body(ts))
            for res in self._synthetic:
                self.mailbox.send("aggregator", ResultRecord(result=res))
            for ts in self.tasks.values():
                if ts.finished_sent:
                    ts.finished_sent = False
                    self._maybe_finish(ts)
            self.log.warning("restarted: rebuilt %d tasks from %d journal records; %d units queued; adopting running units",
                             len(self.tasks), n, len(self.queue))

    def _write(self, rec: list[Any]) -> None:
        if not self._replaying:
            self.journal.append(rec)
            self._unsynced = True

    def before_ack(self) -> None:
        if self._unsynced:
            self.journal.sync()
            self._unsynced = False

    def _replay(self, rec: list[Any]) -> None:
        kind = rec[0]
        if kind == "task":
            self._plan(TaskSubmit.from_wire(rec[1]), send=False)     # the journaled task.submit body
        elif kind == "attempt":
            _, task_id, key, run_times, status, outcome, final, variables, result = rec
            ts = self.tasks.get(task_id)
            st = ts.cases.get(tuple(key)) if ts else None  # type: ignore[arg-type]
            if ts is None or st is None:
                return
            st.attempts.append((run_times, status, outcome))
            st.final = final
            ts.expected.append([task_id, st.collection_id, st.ref.caseId, st.ref.index, run_times])
            if variables is not None:
                ts.variables[st.collection_id] = variables
            if result is not None:
                self._synthetic.append(result)
        elif kind == "final" and rec[1] in self.tasks:
            st = self.tasks[rec[1]].cases.get(tuple(rec[2]))  # type: ignore[arg-type]
            if st is not None:
                st.final = True
        elif kind == "stopped" and rec[1] in self.tasks:
            self.tasks[rec[1]].stopped = rec[2]
        elif kind == "finished" and rec[1] in self.tasks:
            self.tasks[rec[1]].finished_sent = True

    def _rebuild_queue(self) -> None:
        self.queue.clear()
        for ts in self.tasks.values():
            if ts.finished_sent:
                continue
            units, _, _ = build_units(ts.task, self.default_timeout, list(self.spec.tags))
            for u in self._routed(ts, units):
                u.cases = [dict(c, run_times=ts.cases[(u.collection_id, c["case_id"], c["index"])].next_run_times)
                           for c in u.cases if not ts.cases[(u.collection_id, c["case_id"], c["index"])].final]
                if u.cases:
                    u.variables = dict(ts.variables.get(u.collection_id) or u.variables)
                    self._enqueue(u)

    def _adopt(self, ex: Any, body: dict[str, Any]) -> None:
        """After a scheduler restart: an executor is still running a unit we planned; take it over instead
        of dispatching its cases a second time."""
        ts = self.tasks.get(body["task_id"])
        if ts is None or ts.finished_sent:
            return
        keys = {(body["collection_id"], c["case_id"], c["index"]) for c in body["cases"]}
        for u in list(self.queue):
            if u.task_id == ts.task_id and u.collection_id == body["collection_id"]:
                u.cases = [c for c in u.cases if (u.collection_id, c["case_id"], c["index"]) not in keys]
                if not u.cases:
                    self.queue.remove(u)
        unit = Unit(body["unit_id"], ts.task_id, body["collection_id"], list(body["cases"]), dict(body.get("variables") or {}))
        coll = next((c for c in ts.task.collections() if c.collectionId == unit.collection_id), None)
        if "APP" in unit.kinds and coll is not None:          # its retries stay bound to the same devices
            unit.device = coll.deviceId
            try:
                unit.devices = self.router.resolve(unit_requirements(unit.device, unit.cases, self._case_reader(ts, unit)))
            except Unroutable:
                unit.devices = frozenset({ex.info.device}) if ex.info.device else None
        ex.unit, ex.idle, ex.running = unit, False, body.get("running")
        ex.done_in_unit = set()
        ts.in_flight += 1
        self.log.info("adopted unit %s running on %s (%d cases)", unit.unit_id, ex.info.name, len(unit.cases))

