"""The scheduler as a pure state machine: ``apply(event, now, wall) -> list[Command]``.

No socket, no clock, no disk: time comes with each call, the case data routing needs comes with the
task (``Submitted``), sends and state-file writes leave as commands the stage carries out. The stage
journals the events it applied; a restarted stage replays them through this same ``apply`` (the commands
of a replay are dropped), then applies ``Started``, which rebuilds the queue from what is not final and
re-sends what the aggregator may lack (see ``restart.py``).

Because an executor holds at most one unit and reports each case as it starts and ends, the machine
knows exactly what a dead executor was doing: the running case is reported *broken* with the supervisor's
reason, retried per policy (on another executor when there is one), and the unstarted rest of the unit is
queued again with the variables the collection had reached.

Once the aggregator reports a finished task (``task.reported``) its state is dropped: only the id stays, so a
duplicate submit is still ignored, and a 50,000-case task costs nothing after it (the event is journaled like
any other, so a replay drops it again).
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.messages import (
    CaseFinished,
    CaseStarted,
    ExecutorStatus,
    Message,
    ResultRecord,
    StageDied,
    StageKill,
    TaskFinished,
    TaskPlanned,
    TaskReleased,
    TaskReported,
    TaskStop,
    UnitDone,
)
from pipeline.models import UNKNOWN, Outcome, Status, Task, disabled_reason

from . import health, restart, turn
from .estimates import Estimates
from .events import (
    Command,
    Configured,
    Event,
    Forget,
    Log,
    Received,
    Send,
    Settings,
    Started,
    Submitted,
    Tick,
)
from .plan import CaseState, TaskState, Unit, build_units, synthetic_result
from .policy import DispatchPolicy, ExecutorInfo, make_policy
from .quarantine import Quarantine
from .retry import RetryPolicy
from .routed import route_units
from .routing import Router, registry_from_spec

__all__ = ["ExecState", "Machine"]


@dataclass
class ExecState:
    info: ExecutorInfo
    inc: int
    idle: bool = False
    unit: Unit | None = None
    running: dict[str, Any] | None = None          # body of the last case.started without case.finished
    done_in_unit: set[tuple[str, int]] = field(default_factory=set)
    variables: dict[str, Any] = field(default_factory=dict)
    idle_since: float = 0.0
    broke: bool = False                              # a case of the current unit was broken here


class Machine:
    """All of the scheduler's state. ``policy`` picks the next unit for an idle executor (policy.py): the one
    handed in, else the one ``Settings.dispatch`` names (switched by a reload), longest-first estimating a unit
    from ``estimates`` (the seconds each task's ``Submitted`` brought)."""

    def __init__(self, settings: Settings, policy: DispatchPolicy | None = None) -> None:
        self.fixed_policy = policy
        self.estimates = Estimates()
        self.policy: DispatchPolicy = policy or make_policy(settings.dispatch, self.estimates.unit)
        self.dispatch = settings.dispatch
        self.retry = RetryPolicy()
        self.quarantine = Quarantine()
        self.router = Router()
        self.settings = settings
        self.configure(settings)
        self.known: dict[str, ExecutorInfo] = {}        # every executor seen, alive or not (stranded-unit check)
        self.tasks: dict[str, TaskState] = {}
        self.reported: set[str] = set()                 # tasks dropped once reported (a duplicate submit stays ignored)
        self.queue: list[Unit] = []
        self.executors: dict[str, ExecState] = {}
        self.adopt_until = 0.0                          # after a restart: no dispatch before (executors re-announce)
        self.stop_all: TaskStop | None = None           # the engine is stopping: a task planned from now on is stopped too
        self.disk_short: str | None = None
        self.reports_behind = False                     # the aggregator's flow control: one unit at a time
        self.reports_holds = 0
        self.seq = 0                                    # unit ids: deterministic, so a replay names units as before
        self.now, self.wall = 0.0, 0.0
        self.changed = False                            # the last event changed state (the stage journals it then)
        self.live = False                               # set by the stage once its replay and Started are applied
        self._out: list[Command] = []

    def configure(self, s: Settings) -> None:
        self.settings = s
        self.retry.max_attempts, self.retry.retry_failures, self.retry.budget = s.max_attempts, s.retry_failures, s.budget
        q = self.quarantine
        q.after, q.window, q.probe = s.quarantine_after, s.quarantine_window, s.quarantine_probe
        self.router.devices = registry_from_spec(s.devices)
        self.router.owned |= {e.device for e in s.executors if e.device}
        if self.fixed_policy is None and s.dispatch != self.dispatch:
            self.policy, self.dispatch = make_policy(s.dispatch, self.estimates.unit), s.dispatch

    # -- the one entry point -------------------------------------------------------------------------
    def apply(self, event: Event, now: float, wall: float = 0.0) -> list[Command]:
        """Apply one event at ``now`` (monotonic s; ``wall``: epoch s, for results and reports)."""
        self.now, self.wall, self._out, self.changed = now, wall, [], True
        if isinstance(event, Submitted):
            self._on_submit(event)
        elif isinstance(event, Received):
            self._on_message(event.src, event.inc, event.body)
        elif isinstance(event, Tick):
            self._on_tick(event)
        elif isinstance(event, Started):
            restart.started(self, event)
        elif isinstance(event, Configured):
            self.configure(event.settings)
        out, self._out = self._out, []
        return out

    def emit(self, command: Command) -> None:
        self._out.append(command)

    def send(self, peer: str, body: Message) -> None:
        self._out.append(Send(peer, body))

    def log(self, level: int, text: str) -> None:
        self._out.append(Log(level, text))

    def new_unit_id(self, task_id: str) -> str:
        self.seq += 1
        return f"{task_id[:24]}.{self.seq}"

    # -- messages ------------------------------------------------------------------------------------
    def _on_message(self, src: str, inc: int, b: Message) -> None:
        if isinstance(b, ExecutorStatus):
            self._executor_status(src, inc, b)
        elif isinstance(b, CaseStarted):
            ex = self.executors.get(src)
            if ex is not None and ex.unit is not None and ex.unit.unit_id == b.unit_id:
                ex.running = b.to_wire()
        elif isinstance(b, CaseFinished):
            self._case_finished(src, b)
        elif isinstance(b, UnitDone):
            self._unit_done(src, b)
        elif isinstance(b, StageDied):
            ex = self.executors.get(b.stage)
            if ex is not None and ex.inc <= b.inc:
                self.executor_lost(b.stage, b.reason, victim=dict(b.case) if b.case else None)
                del self.executors[b.stage]
        elif isinstance(b, TaskStop):
            if b.task_id is None and b.drain:
                self.stop_all = b
            self._stop_tasks(b, src)
        elif isinstance(b, TaskReported):
            self._drop(b.task_id)
        else:
            self.changed = False
            self.log(logging.WARNING, f"{b.KIND.value} from {src} is not for the scheduler; ignored")

    def _on_submit(self, ev: Submitted) -> None:
        """A validated task and its data folder are ready (from the fetcher or the submit queue)."""
        body = ev.body
        if body.task.get("taskId") in self.tasks or body.task.get("taskId") in self.reported:
            self.changed = False
            self.log(logging.INFO, f"task {body.task.get('taskId')} already planned; duplicate submit ignored")
            return
        task = Task.from_dict(body.task)
        ts = TaskState(task, body.data_dir, body.report_dir or self.settings.report_dir, started=self.now,
                       wall_start=self.wall)
        ts.name = body.name or task.taskId
        ts.source = body.source or ""
        ts.app_cases = dict(ev.app_cases)
        units, ts.cases, disabled = build_units(task, self.settings.default_timeout, list(self.settings.tags),
                                                lambda: self.new_unit_id(task.taskId))
        ts.has_deps = any(c.get("dependencies") for u in units for c in u.cases)
        names = body.case_names or {}
        for st in ts.cases.values():
            st.name = names.get(st.ref.caseId, "")
        self.tasks[task.taskId] = ts
        work = self.estimates.plan(task.taskId, ev.estimates, ev.timed, units)
        self.send("aggregator", self.planned_body(ts))
        for st in disabled:
            self.settle(ts, st, Status.SKIP, Outcome.SKIPPED, disabled_reason(st.ref.skipReason))
        for u in self.routed(ts, units):
            self.enqueue(u)
        self.log(logging.INFO, f"task {task.taskId} planned: {len(ts.cases)} cases in {len(units)} units, "
                               f"estimated work {work:.1f} s ({ev.timed} cases timed before)")
        if self.stop_all is not None:                  # submitted while the engine stops: nothing of it runs
            self._stop_tasks(replace(self.stop_all, task_id=ts.task_id))
        self.maybe_finish(ts)

    def _drop(self, task_id: str) -> None:
        """The aggregator wrote the task's reports: forget it (its finished message went out, so nothing of it is
        queued or running; a task still running keeps its state)."""
        ts = self.tasks.get(task_id)
        if ts is None or not ts.finished_sent:
            self.changed = False
            return
        del self.tasks[task_id]
        self.reported.add(task_id)

    def _executor_status(self, src: str, inc: int, b: ExecutorStatus) -> None:
        """Sent by each executor on start, when it becomes idle, and every heartbeat interval."""
        ex = self.executors.get(src)
        self.changed = False
        if ex is not None and inc > ex.inc:
            self.executor_lost(src, f"{src} restarted (incarnation {inc})")
            ex, self.changed = None, True
        if ex is not None and inc < ex.inc:
            return                                          # a stale message from a dead incarnation
        if ex is None:
            ex = self.executors[src] = ExecState(ExecutorInfo(src, frozenset(b.kinds), b.device), inc)
            self.known[src] = ex.info
            self.router.announce(ex.info.device)
            self.changed = True
        if ex.unit is None and not b.idle and b.unit and self.now < self.adopt_until + 30:
            restart.adopt(self, ex, b.unit)
            self.changed = True
        if ex.unit is None and b.idle != ex.idle:
            ex.idle, self.changed = b.idle, True        # a parked executor (capacity) withdraws its credit
        if b.probe:
            health.probe_answered(self, ex, b.probe)
            self.changed = True

    def _case_finished(self, src: str, b: CaseFinished) -> None:
        """A case attempt ended, with its result (forwarded to the aggregator from here)."""
        ts = self.tasks.get(b.task_id)
        ex = self.executors.get(src)
        if ex is not None and ex.unit is not None and ex.unit.unit_id == b.unit_id:
            ex.running = None
            ex.done_in_unit.add((b.case_id, b.index))
            ex.variables = b.variables or ex.variables
            ex.broke = ex.broke or b.outcome == Outcome.BROKEN.value
        if ts is None:
            return
        st = ts.cases.get((b.collection_id, b.case_id, b.index))
        if st is None:
            return
        again = any(a[0] == b.run_times for a in st.attempts)      # a re-sent finish
        if ex is not None and not again:
            if b.device_down:
                health.device_down(self, ex, b.reason or f"case {b.case_id} broken: device down")
            elif b.outcome == Outcome.BROKEN.value and not ts.stopped:
                health.infra_failure(self, ex, b.reason or f"case {b.case_id} broken")
        if b.name and b.name != UNKNOWN:       # an engine result of a case whose file was unreadable
            st.name = b.name
        if b.result is not None and not again:
            self.send_result(ts, b.result)
        self.record(ts, st, b.run_times, b.status, b.outcome, variables=b.variables)

    def _unit_done(self, src: str, b: UnitDone) -> None:
        """Every case of the executor's unit has been reported."""
        ex = self.executors.get(src)
        if ex is None or ex.unit is None or ex.unit.unit_id != b.unit_id:
            self.changed = False
            return
        unit, ex.unit, ex.running = ex.unit, None, None
        ex.idle, ex.idle_since = True, self.now
        if b.device_down:
            health.device_down(self, ex, b.device_down)
        self.unit_left(unit, avoid=ex.info.name if ex.broke else None)

    def _stop_tasks(self, body: TaskStop, src: str = "") -> None:
        tid = body.task_id
        for ts in list(self.tasks.values()):
            if tid in (None, ts.task_id) and not ts.finished_sent:
                if tid is None and ts.source == "submit" and (body.drain or src == "fetcher"):
                    continue    # engine stopping: stays queued for the next start; the platform's stopAll is for its tasks
                ts.stopped = body.reason or "stopped by request"
                for u in [u for u in self.queue if u.task_id == ts.task_id]:
                    self.queue.remove(u)
                    self.give_up(ts, u.collection_id, u.cases, ts.stopped)
                if body.drain:                    # engine shutdown: running cases may finish (grace is the supervisor's)
                    self.maybe_finish(ts)
                    continue
                for ex in self.executors.values():       # running cases end now: the supervisor kills the group
                    if ex.unit is not None and ex.unit.task_id == ts.task_id:
                        self.send("supervisor", StageKill(stage=ex.info.name, inc=ex.inc,
                                                          reason=f"stopped: task {ts.task_id} ({ts.stopped})"))
                self.maybe_finish(ts)

    # -- the loop turn -------------------------------------------------------------------------------
    def _on_tick(self, ev: Tick) -> None:
        if ev.disk_short != self.disk_short:
            self.log(logging.WARNING if ev.disk_short else logging.INFO, ev.disk_short or "disk space recovered; dispatching again")
            self.disk_short = ev.disk_short
        if ev.reports_behind != self.reports_behind:
            self.reports_behind = ev.reports_behind
            self.reports_holds += ev.reports_behind
        turn.expire_tasks(self)
        turn.skip_blocked(self)
        health.fail_stranded(self)
        health.send_probes(self)
        turn.dispatch(self)
        self.changed = bool(self._out)

    # -- bookkeeping ---------------------------------------------------------------------------------
    def enqueue(self, unit: Unit) -> None:
        unit.queued_at = self.now
        keys = [(-u.priority, u.order) for u in self.queue]
        self.queue.insert(bisect.bisect_right(keys, (-unit.priority, unit.order)), unit)

    def routed(self, ts: TaskState, units: list[Unit]) -> list[Unit]:
        """Units with their devices; a unit no device can run ends at once (its cases report why)."""
        ok, unroutable = route_units(self.router, ts, units)
        for u, why in unroutable:
            self.log(logging.WARNING, f"task {ts.task_id} collection {u.collection_id} not run: {why}")
            self.end_cases(ts, u, f"not run: {why}")
        return ok

    def planned_body(self, ts: TaskState) -> TaskPlanned:
        return TaskPlanned(task_id=ts.task_id, report_dir=ts.report_dir, name=ts.name or ts.task_id,
                           cases=len(ts.cases), started_at=ts.wall_start)

    @staticmethod
    def result_body(result: dict[str, Any]) -> ResultRecord:
        return ResultRecord(result=result)

    def send_result(self, ts: TaskState, result: dict[str, Any]) -> None:
        """Forward a result. Kept only while replaying the journal, for ``Started`` to re-send (the aggregator
        de-duplicates): a live stage never reads them again, and the next restart replays them from the
        journal once more, so 50,000 result dicts are not held for the whole task."""
        if not self.live:
            ts.results.append(result)
        self.send("aggregator", ResultRecord(result=result))

    def go_live(self) -> None:
        """The replay is over and ``Started`` re-sent what it kept: results are no longer kept from now on."""
        self.live = True
        for ts in self.tasks.values():
            ts.results = []

    def record(self, ts: TaskState, st: CaseState, run_times: int, status: int, outcome: str,
               variables: dict[str, Any] | None = None) -> None:
        if any(a[0] == run_times for a in st.attempts):
            return                                           # a re-sent finish: already counted
        st.attempts.append((run_times, status, outcome))
        ts.expected.append([ts.task_id, st.collection_id, st.ref.caseId, st.ref.index, run_times])
        if status == Status.PASS or status == Status.SKIP:
            st.final = True
        else:
            st.final = not (self.retry.should_retry(st, ts.task, broken=outcome == Outcome.BROKEN.value) and not ts.stopped)
        if variables is not None:
            ts.variables[st.collection_id] = variables

    def settle(self, ts: TaskState, st: CaseState, status: Status, outcome: Outcome, reason: str, executor: str = "",
               started_ms: int | None = None) -> None:
        """Report a result the engine produced itself and record it."""
        run_times = st.next_run_times
        res = synthetic_result(ts.task_id, st, run_times, status, outcome, reason, executor=executor,
                               started_ms=started_ms, now_s=self.wall).to_dict()
        self.send_result(ts, res)
        self.record(ts, st, run_times, int(status), outcome.value)

    def end_cases(self, ts: TaskState, u: Unit, reason: str, outcome: Outcome = Outcome.ERROR) -> None:
        """Final engine results for the unsettled cases of ``u`` (no retry: nothing would change)."""
        for c in u.cases:
            st = ts.cases[(u.collection_id, c["case_id"], c["index"])]
            if not st.final:
                self.settle(ts, st, Status.ERROR, outcome, reason)
                st.final = True

    def give_up(self, ts: TaskState, collection_id: str, cases: list[dict[str, Any]], reason: str) -> None:
        """No further attempt (the task was stopped): a case that already ran keeps its last result as the
        final one; a case that never ran is reported skipped with ``reason``."""
        for c in cases:
            st = ts.cases[(collection_id, c["case_id"], c["index"])]
            if st.final:
                continue
            if st.attempts:
                st.final = True
            else:
                self.settle(ts, st, Status.SKIP, Outcome.SKIPPED, reason)

    def _requeue(self, ts: TaskState, unit: Unit, left: list[dict[str, Any]], variables: dict[str, Any], avoid: str | None) -> None:
        cases = [dict(c, run_times=ts.cases[(unit.collection_id, c["case_id"], c["index"])].next_run_times) for c in left]
        self.enqueue(replace(unit, unit_id=self.new_unit_id(ts.task_id), cases=cases, variables=dict(variables), avoid=avoid))

    def unit_left(self, unit: Unit, avoid: str | None = None) -> None:
        """A unit is over on its executor: queue retries of its cases that are not final yet (avoiding the
        executor when a case broke there); a retry starts from the collection's variables reached so far."""
        ts = self.tasks.get(unit.task_id)
        if ts is None:
            return
        ts.in_flight -= 1
        retry = [c for c in unit.cases if not ts.cases[(unit.collection_id, c["case_id"], c["index"])].final]
        if retry and ts.stopped:
            self.give_up(ts, unit.collection_id, retry, ts.stopped)
        elif retry:
            self._requeue(ts, unit, retry, ts.variables.get(unit.collection_id) or unit.variables, avoid or unit.avoid)
        self.maybe_finish(ts)

    def executor_lost(self, name: str, reason: str, victim: dict[str, Any] | None = None) -> None:
        self.emit(Forget(name))
        ex = self.executors.get(name)
        if ex is None or ex.unit is None:
            return
        unit, ts = ex.unit, self.tasks.get(ex.unit.task_id)
        ex.unit, ex.idle = None, False
        if ts is None:
            return
        ts.in_flight -= 1
        running = ex.running
        if running is None and victim is not None and any(      # its case.started never arrived (loop starved)
                (c["case_id"], c["index"], c["run_times"]) == (victim["case_id"], victim["index"], victim["run_times"]) for c in unit.cases):
            running = victim
        if running is not None:
            c = running
            st = ts.cases.get((unit.collection_id, c["case_id"], c["index"]))
            if st is not None and not any(a[0] == c["run_times"] for a in st.attempts):
                self.log(logging.WARNING, f"{name} lost while running {c['case_id']}: {reason}")
                self.settle(ts, st, Status.ERROR, Outcome.BROKEN, reason, executor=name, started_ms=c.get("started_ms"))
                if not ts.stopped:
                    health.infra_failure(self, ex, reason)
        left = [c for c in unit.cases if not ts.cases[(unit.collection_id, c["case_id"], c["index"])].final]
        if left and ts.stopped:                      # a stopped task's executor was killed: nothing runs again
            self.give_up(ts, unit.collection_id, left, ts.stopped)
        elif left:
            self._requeue(ts, unit, left, ts.variables.get(unit.collection_id) or ex.variables or unit.variables, name)
        self.maybe_finish(ts)

    def maybe_finish(self, ts: TaskState) -> None:
        if ts.finished_sent or ts.in_flight > 0 or any(u.task_id == ts.task_id for u in self.queue):
            return
        if not ts.all_final():
            return
        ts.finished_sent = True
        self.estimates.forget(ts.task_id)
        self.send("aggregator", TaskFinished(task_id=ts.task_id, expected=ts.expected, stopped=ts.stopped))
        self.send("fetcher", TaskReleased(task_id=ts.task_id))
        self.log(logging.INFO, f"task {ts.task_id} finished: {len(ts.expected)} results")
