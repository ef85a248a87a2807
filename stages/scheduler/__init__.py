"""Scheduler stage: plans tasks into units and hands them to executors one at a time (credit = 1).

Because an executor holds at most one unit and reports each case as it starts and ends, the scheduler
knows exactly what a dead executor was doing: the running case is reported *broken* with the supervisor's
reason, retried per policy (on another executor when there is one), and the unstarted rest of the unit is
queued again with the variables the collection had reached. Tasks finish when every case is settled; the
aggregator is then told which result keys it must hold before it writes the final reports.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from pathlib import Path

from pipeline.codec import Envelope
from pipeline.journal import AppendLog
from pipeline.storage import short_of_space
from pipeline.messages import Kind
from pipeline.models import UNKNOWN, Outcome, Status, Task, disabled_reason
from pipeline.stage import Handler, Stage

from .health import HealthMixin
from .plan import CaseState, TaskState, Unit, build_units, synthetic_result
from .estimates import Estimates, open_history, scheduler_eta
from .policy import DispatchPolicy, ExecutorInfo, make_policy
from .quarantine import Quarantine
from .recovery import RecoveryMixin
from .retry import RetryPolicy
from .routed import RoutingMixin
from .routing import Router, registry_from_spec

__all__ = ["Scheduler", "STAGE"]


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


class Scheduler(RoutingMixin, HealthMixin, RecoveryMixin, Stage):
    POLL_MS = 100

    def __init__(self, name: str, inc: int, spec: Any) -> None:
        super().__init__(name, inc, spec)
        self.estimates = Estimates(open_history(spec, self.log.warning))    # run history: longest first, ETA
        self.policy: DispatchPolicy = make_policy(str(spec.config["Pipeline"].get("dispatch")), self.estimates.unit)
        self.retry = RetryPolicy(max_attempts=int(spec.setting("Retry", "max-attempts")),
                                 retry_failures=bool(spec.setting("Retry", "retry-failures")),
                                 budget=int(spec.setting("Retry", "budget")))
        self.default_timeout = float(spec.setting("Pipeline", "case-timeout"))
        self.quarantine = Quarantine(after=int(spec.setting("Retry", "quarantine-after")),
                                     window=float(spec.setting("Retry", "quarantine-window")),
                                     probe=float(spec.setting("Retry", "quarantine-probe")))
        self.known: dict[str, ExecutorInfo] = {}        # every executor seen, alive or not (stranded-unit check)
        self.router = Router(registry_from_spec(spec.devices), {e.device for e in spec.executor_specs() if e.device})
        self.tasks: dict[str, TaskState] = {}
        self.queue: list[Unit] = []
        self.executors: dict[str, ExecState] = {}
        # Durable state: every accepted task and every settled attempt is journaled (fsync before ack), so a
        # restarted scheduler rebuilds its plan, adopts the units executors are still running, and re-sends
        # what the aggregator might not have got (it de-duplicates).
        self.journal = AppendLog(Path(spec.run_dir) / "state" / "scheduler.journal", on_error=self.storage_fault)
        self.disk_short: str | None = None
        self._disk_checked = -1e9
        self._unsynced = False
        self._replaying = False
        self.adopt_until = 0.0
        self._synthetic: list[dict[str, Any]] = []
        self.stop_all: dict[str, Any] | None = None    # the engine is stopping: a task planned from now on is stopped too
        self._load_health()                              # quarantine survives a restart (health.py)

    def _planned_body(self, ts: TaskState) -> dict[str, Any]:
        return {"task_id": ts.task_id, "report_dir": ts.report_dir, "name": ts.name or ts.task_id,
                "cases": len(ts.cases), "started_at": ts.wall_start}

    # -- messages ---------------------------------------------------------------------------------
    def on_task_submit(self, env: Envelope) -> None:
        """Sent by the fetcher when a validated task and its data folder are ready."""
        if env.body["task"].get("taskId") in self.tasks:
            self.log.info("task %s already planned; duplicate submit ignored", env.body["task"].get("taskId"))
            return
        self._write(["task", env.body])
        self._plan(env.body, send=True)

    def _plan(self, body: dict[str, Any], *, send: bool) -> None:
        task = Task.from_dict(body["task"])
        ts = TaskState(task, body["data_dir"], body.get("report_dir") or self.spec.report_dir)
        ts.name = body.get("name") or task.taskId
        ts.source = str(body.get("source") or "")
        units, ts.cases, disabled = build_units(task, self.default_timeout, list(self.spec.tags))
        work = self.estimates.plan(task.taskId, ts.data_dir, units)
        names = body.get("case_names") or {}
        for st in ts.cases.values():
            st.name = names.get(st.ref.caseId, "")
        self.tasks[task.taskId] = ts
        if not send:
            return
        self.mailbox.send("aggregator", Kind.TASK_PLANNED, self._planned_body(ts))
        for st in disabled:
            self._settle(ts, st, Status.SKIP, Outcome.SKIPPED, disabled_reason(st.ref.skipReason))
        for u in self._routed(ts, units):
            self._enqueue(u)
        self.log.info("task %s planned: %d cases in %d units, estimated work %.1f s (%d cases timed before)",
                      task.taskId, len(ts.cases), len(units), work, self.estimates.known.get(task.taskId, 0))
        if self.stop_all is not None:                  # submitted while the engine stops: nothing of it runs
            self._stop_tasks(dict(self.stop_all, task_id=ts.task_id))
        self._maybe_finish(ts)

    def on_executor_status(self, env: Envelope) -> None:
        """Sent by each executor on start, when it becomes idle, and every heartbeat interval."""
        b = env.body
        ex = self.executors.get(env.src)
        if ex is not None and env.inc > ex.inc:
            self._executor_lost(env.src, ex.inc, f"{env.src} restarted (incarnation {env.inc})")
            ex = None
        if ex is not None and env.inc < ex.inc:
            return                                          # a stale message from a dead incarnation
        if ex is None:
            ex = self.executors[env.src] = ExecState(ExecutorInfo(env.src, frozenset(b["kinds"]), b.get("device")), env.inc)
            self.known[env.src] = ex.info
            self.router.announce(ex.info.device)
        if ex.unit is None and not b["idle"] and b.get("unit") and time.monotonic() < self.adopt_until + 30:
            self._adopt(ex, b["unit"])
        if ex.unit is None and b["idle"]:
            ex.idle = True
        if b.get("probe"):
            self._probe_answered(ex, b["probe"])

    def on_case_started(self, env: Envelope) -> None:
        """Sent by an executor as a case of its unit begins."""
        ex = self.executors.get(env.src)
        if ex is not None and ex.unit is not None and ex.unit.unit_id == env.body["unit_id"]:
            ex.running = env.body

    def on_case_finished(self, env: Envelope) -> None:
        """Sent by an executor when a case attempt ended, with its result (forwarded to the aggregator from here)."""
        b = env.body
        ts = self.tasks.get(b["task_id"])
        ex = self.executors.get(env.src)
        if ex is not None and ex.unit is not None and ex.unit.unit_id == b["unit_id"]:
            ex.running = None
            ex.done_in_unit.add((b["case_id"], b["index"]))
            ex.variables = b.get("variables") or ex.variables
            ex.broke = ex.broke or b["outcome"] == Outcome.BROKEN.value
        if ts is None:
            return
        st = ts.cases.get((b["collection_id"], b["case_id"], b["index"]))
        if st is None:
            return
        if ex is not None and not any(a[0] == b["run_times"] for a in st.attempts):     # not a re-sent finish
            if b.get("device_down"):
                self._device_down(ex, b.get("reason") or f"case {b['case_id']} broken: device down")
            elif b["outcome"] == Outcome.BROKEN.value and not ts.stopped:
                self._infra_failure(ex, b.get("reason") or f"case {b['case_id']} broken")
        if b.get("name") and b["name"] != UNKNOWN:       # an engine result of a case whose file was unreadable
            st.name = b["name"]
        res = b.get("result")
        if isinstance(res, dict) and not any(a[0] == b["run_times"] for a in st.attempts):
            self.mailbox.send("aggregator", Kind.RESULT_RECORD, {"result": res})   # journaled below, before the ack
        self._record(ts, st, b["run_times"], int(b["status"]), b["outcome"], executor=env.src, variables=b.get("variables"),
                     result=res if isinstance(res, dict) else None)

    def on_unit_done(self, env: Envelope) -> None:
        """Sent by an executor when every case of its unit has been reported."""
        ex = self.executors.get(env.src)
        if ex is None or ex.unit is None or ex.unit.unit_id != env.body["unit_id"]:
            return
        unit, ex.unit, ex.running = ex.unit, None, None
        ex.idle, ex.idle_since = True, time.monotonic()
        if env.body.get("device_down"):
            self._device_down(ex, env.body["device_down"])
        self._unit_left(unit, avoid=ex.info.name if ex.broke else None)

    def on_stage_died(self, env: Envelope) -> None:
        """Sent by the supervisor when a stage process exited or was killed (crash, timeout, stop)."""
        b = env.body
        ex = self.executors.get(b["stage"])
        if ex is not None and ex.inc <= int(b["inc"]):
            self._executor_lost(b["stage"], ex.inc, b["reason"], victim=b.get("case"))
            del self.executors[b["stage"]]

    def on_task_stop(self, env: Envelope) -> None:
        """Sent by the supervisor/fetcher: stop one task (``task_id``) or all (``task_id`` None)."""
        if env.body.get("task_id") is None and env.body.get("drain"):
            self.stop_all = dict(env.body)
        self._stop_tasks(env.body, env.src)

    def _stop_tasks(self, body: dict[str, Any], src: str = "") -> None:
        tid = body.get("task_id")
        for ts in list(self.tasks.values()):
            if tid in (None, ts.task_id) and not ts.finished_sent:
                if tid is None and ts.source == "submit" and (body.get("drain") or src == "fetcher"):
                    continue    # engine stopping: stays queued for the next start; the platform's stopAll is for its tasks
                ts.stopped = body.get("reason") or "stopped by request"
                self._write(["stopped", ts.task_id, ts.stopped])
                for u in [u for u in self.queue if u.task_id == ts.task_id]:
                    self.queue.remove(u)
                    self._skip_unit(ts, u, ts.stopped)
                if body.get("drain"):                    # engine shutdown: running cases may finish (grace is the supervisor's)
                    self._maybe_finish(ts)
                    continue
                for ex in self.executors.values():       # running cases end now: the supervisor kills the group
                    if ex.unit is not None and ex.unit.task_id == ts.task_id:
                        self.mailbox.send("supervisor", Kind.STAGE_KILL, {
                            "stage": ex.info.name, "inc": ex.inc, "reason": f"stopped: task {ts.task_id} ({ts.stopped})"})
                self._maybe_finish(ts)

    HANDLERS: ClassVar[dict[Kind, Handler]] = {
        Kind.TASK_SUBMIT: on_task_submit, Kind.EXECUTOR_STATUS: on_executor_status,
        Kind.CASE_STARTED: on_case_started, Kind.CASE_FINISHED: on_case_finished, Kind.UNIT_DONE: on_unit_done,
        Kind.STAGE_DIED: on_stage_died, Kind.TASK_STOP: on_task_stop,
    }

    # -- loop -------------------------------------------------------------------------------------
    def on_tick(self) -> None:
        self._expire_tasks()
        self._fail_stranded()
        self._send_probes()
        self._dispatch()

    def _disk_short(self, now: float) -> str | None:
        """``[Pipeline] min-free-mb``: no new unit starts while storage or reports are short of space."""
        if now - self._disk_checked >= 2.0:
            self._disk_checked = now
            was, self.disk_short = self.disk_short, short_of_space(
                (self.spec.storage_root, self.spec.report_dir), float(self.spec.setting("Pipeline", "min-free-mb")))
            if self.disk_short != was:
                (self.log.warning if self.disk_short else self.log.info)("%s", self.disk_short or "disk space recovered; dispatching again")
        return self.disk_short

    def _dispatch(self) -> None:
        if not self.queue or time.monotonic() < self.adopt_until:
            return
        now = time.monotonic()
        if self._disk_short(now):
            return
        retired = self._retired()            # executors a reload removes get no new work
        for ex in sorted((e for e in self.executors.values() if e.idle and e.unit is None and e.info.name not in retired),
                         key=lambda e: e.idle_since):
            if not self.queue:
                return
            if self.quarantine.blocked(ex.info.name, now):
                continue
            unit = self.policy.next_for(ex.info, self.queue, self._allowed, lambda u, me=ex.info.name: self._others_can(u, me))
            if unit is None:
                continue
            ts = self.tasks[unit.task_id]
            unit.cases = [c for c in unit.cases if not self._already_ran(ts, unit, c)]
            if not unit.cases:                    # everything was reported meanwhile (after a restart)
                self._maybe_finish(ts)
                continue
            ts.in_flight += 1
            ex.unit, ex.idle, ex.running, ex.done_in_unit, ex.variables = unit, False, None, set(), dict(unit.variables)
            ex.broke = False
            body = unit.body(ts.data_dir, max(1.0, ts.deadline_left(time.monotonic())))
            body.update(report_dir=ts.report_dir, evidence=ts.task.evidence)     # where and what evidence to keep
            self.mailbox.send(ex.info.name, Kind.UNIT_RUN, body)

    def _end_cases(self, ts: TaskState, u: Unit, reason: str, outcome: Outcome = Outcome.ERROR) -> None:
        """Final engine results for the unsettled cases of ``u`` (no retry: nothing would change)."""
        for c in u.cases:
            st = ts.cases[(u.collection_id, c["case_id"], c["index"])]
            if st.final:
                continue
            self._settle(ts, st, Status.ERROR, outcome, reason)
            if not st.final:
                st.final = True
                self._write(["final", ts.task_id, list(st.key)])

    def _allowed(self, unit: Unit) -> bool:
        ts = self.tasks[unit.task_id]
        if ts.in_flight >= max(1, ts.task.maxThread or 1):
            return False
        first = unit.cases[0]
        return all(self._dep_state(ts, d) != "pending" for d in first.get("dependencies") or ())

    @staticmethod
    def _already_ran(ts: TaskState, unit: Unit, c: dict[str, Any]) -> bool:
        st = ts.cases[(unit.collection_id, c["case_id"], c["index"])]
        return st.final or any(a[0] >= c["run_times"] for a in st.attempts)

    def _others_can(self, unit: Unit, me: str) -> bool:
        now = time.monotonic()
        return any(self.policy.fits(unit, e.info) for n, e in self.executors.items()
                   if n != me and not self.quarantine.blocked(n, now))

    def _dep_state(self, ts: TaskState, case_id: str) -> str:
        states = [c for c in ts.cases.values() if c.ref.caseId == case_id]
        if not states:
            return "missing"
        if all(c.final for c in states):
            return "passed" if all(c.passed for c in states) else "failed"
        return "pending"

    def _enqueue(self, unit: Unit) -> None:
        unit.queued_at = time.monotonic()
        keys = [(-u.priority, u.order) for u in self.queue]
        self.queue.insert(bisect.bisect_right(keys, (-unit.priority, unit.order)), unit)

    # -- bookkeeping -------------------------------------------------------------------------------
    def _record(self, ts: TaskState, st: CaseState, run_times: int, status: int, outcome: str, executor: str,
                variables: dict[str, Any] | None = None, result: dict[str, Any] | None = None) -> None:
        if any(a[0] == run_times for a in st.attempts):
            return                                           # a re-sent finish: already counted
        st.attempts.append((run_times, status, outcome))
        ts.expected.append([ts.task_id, st.collection_id, st.ref.caseId, st.ref.index, run_times])
        if status == Status.PASS or status == Status.SKIP:
            st.final = True
        elif self.retry.should_retry(st, ts.task, broken=outcome == Outcome.BROKEN.value) and not ts.stopped:
            st.final = False
        else:
            st.final = True
        if variables is not None:
            ts.variables[st.collection_id] = variables
        self._write(["attempt", ts.task_id, list(st.key), run_times, status, outcome, st.final, variables, result])

    def _settle(self, ts: TaskState, st: CaseState, status: Status, outcome: Outcome, reason: str, executor: str = "",
                started_ms: int | None = None) -> None:
        """Report a result the engine produced itself and record it."""
        run_times = st.next_run_times
        res = synthetic_result(ts.task_id, st, run_times, status, outcome, reason, executor=executor,
                               started_ms=started_ms).to_dict()
        self.mailbox.send("aggregator", Kind.RESULT_RECORD, {"result": res})
        self._record(ts, st, run_times, int(status), outcome.value, executor, result=res)

    def _unit_left(self, unit: Unit, avoid: str | None = None) -> None:
        """A unit is over on its executor: queue retries of its cases that are not final yet (avoiding the
        executor when a case broke there)."""
        ts = self.tasks.get(unit.task_id)
        if ts is None:
            return
        ts.in_flight -= 1
        retry = [c for c in unit.cases if not ts.cases[(unit.collection_id, c["case_id"], c["index"])].final]
        if retry and ts.stopped:
            self._give_up(ts, unit.collection_id, retry, ts.stopped)
        elif retry:
            cases = [dict(c, run_times=ts.cases[(unit.collection_id, c["case_id"], c["index"])].next_run_times) for c in retry]
            # a retried case starts from the collection's variables reached so far, as the original's rerun round
            variables = ts.variables.get(unit.collection_id) or unit.variables
            self._enqueue(replace(unit, unit_id=_new_id(), cases=cases, variables=dict(variables),
                                  avoid=avoid or unit.avoid))
        self._maybe_finish(ts)

    def _executor_lost(self, name: str, inc: int, reason: str, victim: dict[str, Any] | None = None) -> None:
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
                self.log.warning("%s lost while running %s: %s", name, c["case_id"], reason)
                self._settle(ts, st, Status.ERROR, Outcome.BROKEN, reason, executor=name, started_ms=c.get("started_ms"))
                if not ts.stopped:
                    self._infra_failure(ex, reason)
        left = [dict(c, run_times=ts.cases[(unit.collection_id, c["case_id"], c["index"])].next_run_times)
                for c in unit.cases if not ts.cases[(unit.collection_id, c["case_id"], c["index"])].final]
        if left and ts.stopped:                      # a stopped task's executor was killed: nothing runs again
            self._give_up(ts, unit.collection_id, left, ts.stopped)
        elif left:
            variables = ts.variables.get(unit.collection_id) or ex.variables or unit.variables
            self._enqueue(replace(unit, unit_id=_new_id(), cases=left, variables=dict(variables), avoid=name))
        self._maybe_finish(ts)

    def _infra_failure(self, ex: ExecState, reason: str) -> None:
        """A case broke on ``ex``: a device executor failing too often is quarantined (see quarantine.py)."""
        if not ex.info.device:
            return
        if self.quarantine.broken(ex.info.name, ex.info.device, reason, time.monotonic()):
            self.log.warning("%s (device %s) quarantined: %s; probe in %.0f s", ex.info.name, ex.info.device,
                             reason, self.quarantine.probe)
        self._save_health()

    def _fail_stranded(self) -> None:
        """Queued units that only quarantined executors could run end as broken with the reason, so the task
        finishes instead of waiting for a device that keeps failing."""
        now = time.monotonic()
        if now < self.adopt_until:               # just restarted: executors have not all announced yet
            return
        retired = self._retired()
        engine = {e.name: ExecutorInfo(e.name, frozenset(e.kinds), e.device) for e in self.spec.executor_specs()
                  if e.name not in retired}       # configured but not announced yet: still capable
        pool = list({**engine, **self.known}.values())
        for u in list(self.queue):
            capable = [i for i in pool if self.policy.fits(u, i) and i.name not in retired]
            if not capable or not all(self.quarantine.blocked(i.name, now) for i in capable):
                continue
            held = [self.quarantine.held[i.name] for i in capable]
            reason = "no healthy device: " + "; ".join(f"{h.device} quarantined: {h.reason}" for h in held)
            self.queue.remove(u)
            ts = self.tasks[u.task_id]
            self._end_cases(ts, u, reason, Outcome.BROKEN)
            self.log.warning("unit %s (%d cases) not run: %s", u.unit_id, len(u.cases), reason)
            self._maybe_finish(ts)

    def _skip_unit(self, ts: TaskState, unit: Unit, reason: str) -> None:
        self._give_up(ts, unit.collection_id, unit.cases, reason)

    def _give_up(self, ts: TaskState, collection_id: str, cases: list[dict[str, Any]], reason: str) -> None:
        """No further attempt (the task was stopped): a case that already ran keeps its last result as the
        final one; a case that never ran is reported skipped with ``reason``."""
        for c in cases:
            st = ts.cases[(collection_id, c["case_id"], c["index"])]
            if st.final:
                continue
            if st.attempts:
                st.final = True
                self._write(["final", ts.task_id, list(st.key)])
            else:
                self._settle(ts, st, Status.SKIP, Outcome.SKIPPED, reason)

    def _expire_tasks(self) -> None:
        now = time.monotonic()
        for ts in self.tasks.values():
            if ts.finished_sent or ts.deadline_left(now) > 0:
                continue
            waiting = [u for u in self.queue if u.task_id == ts.task_id]
            for u in waiting:
                self.queue.remove(u)
                for c in u.cases:
                    st = ts.cases[(u.collection_id, c["case_id"], c["index"])]
                    if not st.final:
                        self._settle(ts, st, Status.ERROR, Outcome.BROKEN, f"not run: task timeout after {ts.task.timeout} s")
                        st.final = True
            self._maybe_finish(ts)
        self._skip_blocked()

    def _skip_blocked(self) -> None:
        """Units whose first case depends on a case that did not pass: skip that case with the reason."""
        for u in list(self.queue):
            ts = self.tasks[u.task_id]
            deps = u.cases[0].get("dependencies") or ()
            bad = [d for d in deps if self._dep_state(ts, d) in ("failed", "missing")]
            if not bad:
                continue
            first, rest = u.cases[0], u.cases[1:]
            st = ts.cases[(u.collection_id, first["case_id"], first["index"])]
            self._settle(ts, st, Status.SKIP, Outcome.SKIPPED, f"skipped: dependency {', '.join(bad)} did not pass")
            self.queue.remove(u)
            if rest:
                u.cases = rest
                self._enqueue(u)
            self._maybe_finish(ts)

    def _maybe_finish(self, ts: TaskState) -> None:
        if ts.finished_sent or ts.in_flight > 0 or any(u.task_id == ts.task_id for u in self.queue):
            return
        if not ts.all_final():
            return
        ts.finished_sent = True
        self.estimates.forget(ts.task_id)
        self._write(["finished", ts.task_id])
        self.mailbox.send("aggregator", Kind.TASK_FINISHED, {"task_id": ts.task_id, "expected": ts.expected,
                                                             "stopped": ts.stopped})
        self.mailbox.send("fetcher", Kind.TASK_RELEASED, {"task_id": ts.task_id})
        self.log.info("task %s finished: %d results", ts.task_id, len(ts.expected))

    def on_reload(self, old: Any) -> None:
        """A reloaded config: new case timeout and retry policy apply to work planned from now on."""
        self.default_timeout = float(self.spec.setting("Pipeline", "case-timeout"))
        self.retry.max_attempts = int(self.spec.setting("Retry", "max-attempts"))
        self.retry.retry_failures = bool(self.spec.setting("Retry", "retry-failures"))
        self.retry.budget = int(self.spec.setting("Retry", "budget"))
        self.router.devices = registry_from_spec(self.spec.devices)
        self.router.owned |= {e.device for e in self.spec.executor_specs() if e.device}
        self.policy = make_policy(str(self.spec.config["Pipeline"].get("dispatch")), self.estimates.unit)

    def _retired(self) -> set[str]:
        return {e["name"] for e in self.spec.executors if e.get("retired")}

    def on_stop(self) -> None:
        self.journal.sync()
        self.journal.close()

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        now = time.monotonic()
        base.update({"queued_units": len(self.queue), "tasks": len([t for t in self.tasks.values() if not t.finished_sent]),
                     "queued_cases": sum(len(u.cases) for u in self.queue),
                     "oldest_wait_s": round(now - min(u.queued_at for u in self.queue), 3) if self.queue else 0.0,
                     "executors": {n: {"idle": e.idle, "unit": e.unit.unit_id if e.unit else None,
                                       "case": (e.running or {}).get("case_id")} for n, e in self.executors.items()},
                     "quarantined": self.quarantine.snapshot(time.monotonic(), time.time()), "disk_short": self.disk_short,
                     "devices": self.devices_status(), "eta_s": scheduler_eta(self)})
        return base


def _new_id() -> str:
    import uuid
    return uuid.uuid4().hex


STAGE = Scheduler
