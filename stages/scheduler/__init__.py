"""Scheduler stage: plans tasks into units and hands them to executors one at a time (credit = 1).

The decisions are the pure state machine's (``machine.Machine``: events in, commands out; the events and
commands are in ``events.py``). This stage is the thin shell around it: it receives a message, reads
what the machine may not read itself (the time, the APP case files routing needs, free disk space),
applies the event, journals it when it changed anything (fsynced before the acks go out), and carries out
the commands (sends, the quarantine state file, log lines). A restart replays the journal through the
same ``apply``, then applies ``Started``.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from pipeline.codec import Envelope
from pipeline.errors import PipelineError
from pipeline.gc_policy import FreezePolicy, freeze_young, thaw
from pipeline.journal import AppendLog
from pipeline.messages import ExecutorStatus, Kind, Message, ReportsBehind, TaskSubmit
from pipeline.models import Task
from pipeline.stage import Handler, Stage
from pipeline.storage import fault_text, short_of_space
from pipeline.suite import case_path, read_case

from .estimates import eta_of, open_history, task_estimates
from .events import (
    Configured,
    Event,
    ExecutorSpec,
    Forget,
    Log,
    Received,
    SaveHealth,
    Send,
    Settings,
    Started,
    Submitted,
    Tick,
    from_record,
    to_record,
)
from .machine import ExecState, Machine
from .plan import TaskState, Unit
from .quarantine import Quarantine
from .routed import ROUTING_KEYS
from .routing import Router
from .slots import SlotWatch, heal, watch

__all__ = ["JOURNAL", "STAGE", "STATE_FILE", "Scheduler", "settings_of"]

log = logging.getLogger("stages.scheduler")
JOURNAL = "scheduler.events"          # under <run_dir>/state/: the events applied, one msgpack record each
STATE_FILE = "quarantine.json"        # next to it: the device holds (read at start, written on every change)
REPORTS_HOLD_S = 3.0                   # a reports.behind hold not repeated within this long lapses


def settings_of(spec: Any) -> Settings:
    s = spec.setting
    return Settings(
        default_timeout=float(s("Pipeline", "case-timeout")), max_attempts=int(s("Retry", "max-attempts")),
        retry_failures=bool(s("Retry", "retry-failures")), budget=int(s("Retry", "budget")),
        quarantine_after=int(s("Retry", "quarantine-after")), quarantine_window=float(s("Retry", "quarantine-window")),
        quarantine_probe=float(s("Retry", "quarantine-probe")), report_dir=str(spec.report_dir), tags=tuple(spec.tags),
        devices={k: dict(v) for k, v in spec.devices.items()},
        executors=tuple(ExecutorSpec(e.name, tuple(e.kinds), e.device) for e in spec.executor_specs()),
        retired=frozenset(e["name"] for e in spec.executors if e.get("retired")),
        dispatch=str(spec.config["Pipeline"].get("dispatch") or "longest-first"))


class Scheduler(Stage):
    POLL_MS = 100

    def __init__(self, name: str, inc: int, spec: Any) -> None:
        super().__init__(name, inc, spec)
        self.machine = Machine(settings_of(spec))
        self.history = open_history(spec, self.log.warning)      # run history (read-only): longest first, ETA
        self.journal = AppendLog(Path(spec.run_dir) / "state" / JOURNAL, on_error=self.storage_fault)
        self._unsynced = False
        self._freeze = FreezePolicy()
        self._disk_checked = -1e9
        self._disk_short: str | None = None
        self._reports_hold_until = 0.0          # monotonic s: no dispatch before (the aggregator's reports are behind)
        self.slots = SlotWatch(grace=max(5.0, 3 * self.hb_interval))   # leaked-slot self-check (slots.py)
        err = self.machine.quarantine.load(self._health_path(), time.monotonic(), time.time())   # for status before start
        if err:
            self.log.error("device quarantine state not restored: %s", err)

    # -- the machine's state, read by stats and tests ----------------------------------------------------
    @property
    def tasks(self) -> dict[str, TaskState]:
        return self.machine.tasks

    @property
    def queue(self) -> list[Unit]:
        return self.machine.queue

    @property
    def quarantine(self) -> Quarantine:
        return self.machine.quarantine

    @property
    def executors(self) -> dict[str, ExecState]:
        return self.machine.executors

    @property
    def router(self) -> Router:
        return self.machine.router

    @property
    def adopt_until(self) -> float:
        return self.machine.adopt_until

    @adopt_until.setter
    def adopt_until(self, value: float) -> None:
        self.machine.adopt_until = value

    # -- applying events -----------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        now, wall = time.monotonic(), time.time()
        commands = self.machine.apply(event, now, wall)
        if self.machine.changed:
            self.journal.append(to_record(event, now, wall))
            self._unsynced = True
        for c in commands:
            if isinstance(c, Send):
                try:
                    self.mailbox.send(c.peer, c.body)
                except PipelineError as e:      # an unreliable kind to a full or gone peer: the rest still goes
                    self.log.warning("%s to %s not sent: %s", c.body.KIND.value, c.peer, e)
            elif isinstance(c, Forget):
                self.mailbox.outbox.drop_peer(c.peer)
            elif isinstance(c, SaveHealth):
                self._save_health(c.state)
            elif isinstance(c, Log):
                self.log.log(c.level, "%s", c.text)

    def on_start(self) -> None:
        n = self._replay()
        self.journal.open()
        state = self._health_state()
        self.apply(Started(settings_of(self.spec), state, 2.5 * self.hb_interval + 0.5 if n else 0.0))
        self.machine.go_live()          # the results Started re-sent are not held for the rest of the task
        if n:
            self.log.warning("restarted: %d journal records replayed", n)

    def _replay(self) -> int:
        """Rebuild the machine from the journal: the same ``apply``, its commands dropped."""
        self.machine = Machine(settings_of(self.spec), self.machine.fixed_policy)   # its own: over its own estimates
        n = 0
        for rec in self.journal.replay():
            try:
                event, now, wall = from_record(rec)
            except (ValueError, TypeError, KeyError, IndexError) as e:
                self.log.error("scheduler journal: record %d skipped: %s", n + 1, e)
                continue
            self.machine.apply(event, now, wall)
            n += 1
        return n

    def before_ack(self) -> None:
        if self._unsynced:
            self.journal.sync()          # acks go out only after this: what was acked is journaled
            self._unsynced = False

    # -- messages ------------------------------------------------------------------------------------
    def on_task_submit(self, env: Envelope[TaskSubmit]) -> None:
        """Sent by the fetcher (or the submit queue) when a validated task and its data folder are ready."""
        estimates, timed = self._estimates(env.body)
        self.apply(Submitted(env.src, env.body, self._app_cases(env.body), estimates, timed))

    def _estimates(self, body: TaskSubmit) -> tuple[dict[str, float], int]:
        """Each case's seconds from the run history and step counts (read here: the machine reads nothing)."""
        if body.task.get("taskId") in self.machine.tasks:
            return {}, 0                   # a duplicate submit: the machine ignores it, no need to read
        return task_estimates(self.history, body.task, body.data_dir)

    def on_message(self, env: Envelope[Message]) -> None:
        self.apply(Received(env.src, env.inc, env.body))

    def on_reports_behind(self, env: Envelope[ReportsBehind]) -> None:
        """The aggregator's flow control: a hold lasts ``REPORTS_HOLD_S`` unless repeated (an aggregator that
        dies while holding stops nothing for long), a resume ends it now."""
        self._reports_hold_until = time.monotonic() + REPORTS_HOLD_S if env.body.hold else 0.0

    def on_executor_status(self, env: Envelope[ExecutorStatus]) -> None:
        watch(self, env)                     # what it says it holds (slot self-check, slots.py)
        self.apply(Received(env.src, env.inc, env.body))

    on_case_started = on_case_finished = on_unit_done = on_stage_died = on_task_stop = on_task_reported = on_message

    HANDLERS: ClassVar[dict[Kind, Handler]] = {
        Kind.TASK_SUBMIT: on_task_submit, Kind.EXECUTOR_STATUS: on_executor_status, Kind.CASE_STARTED: on_message,
        Kind.CASE_FINISHED: on_message, Kind.UNIT_DONE: on_message, Kind.STAGE_DIED: on_message, Kind.TASK_STOP: on_message,
        Kind.TASK_REPORTED: on_message,     # from the aggregator: the task's state is dropped
        Kind.REPORTS_BEHIND: on_reports_behind,
    }

    @staticmethod
    def _app_cases(body: TaskSubmit) -> dict[str, dict[str, Any]]:
        """What routing reads from each APP case file (an unreadable one: nothing; the executor reports it)."""
        out: dict[str, dict[str, Any]] = {}
        if body.task.get("taskId") is None:
            return out
        for coll in Task.from_dict(body.task).collections():
            for ref in coll.cases():
                if ref.caseType != "APP":
                    continue
                try:
                    data = read_case(case_path(Path(body.data_dir), coll.collectionId, ref.caseId))
                except Exception as e:       # noqa: BLE001 - the executor reports an unreadable case itself
                    log.debug("routing: case %s/%s unreadable (%s)", coll.collectionId, ref.caseId, e)
                    continue
                out[f"{coll.collectionId}/{ref.caseId}"] = {k: data.get(k) for k in ROUTING_KEYS if data.get(k) is not None}
        return out

    # -- loop ----------------------------------------------------------------------------------------
    def on_tick(self) -> None:
        now = time.monotonic()
        self.apply(Tick(self._disk(now), now < self._reports_hold_until))
        heal(self)
        if self._freeze.due(self.clock.monotonic(), self.mailbox.received, len(self.machine.tasks)):
            freeze_young()               # the task's state out of full collections (pipeline/gc_policy.py)
        elif self._freeze.thaw_due(len(self.machine.tasks)):
            thaw()                       # every task reported and dropped: the collector gets it all back

    _dispatch = on_tick

    def _disk(self, now: float) -> str | None:
        """``[Pipeline] min-free-mb``: no new unit starts while storage or reports are short of space."""
        if now - self._disk_checked >= 2.0:
            self._disk_checked = now
            self._disk_short = short_of_space((self.spec.storage_root, self.spec.report_dir),
                                              float(self.spec.setting("Pipeline", "min-free-mb")))
        return self._disk_short

    def on_reload(self, old: Any) -> None:
        """A reloaded config: new case timeout, retry policy and devices apply to work planned from now on."""
        self.apply(Configured(settings_of(self.spec)))

    def on_stop(self) -> None:
        self.journal.sync()
        self.journal.close()
        if self.history is not None:
            self.history.close()

    # -- the quarantine state file -------------------------------------------------------------------
    def _health_path(self) -> Path:
        return Path(self.spec.run_dir) / "state" / STATE_FILE

    def _health_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self._health_path().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            self.log.error("device quarantine state not restored: %s: %s", self._health_path(), e)
            return None
        return state if isinstance(state, dict) else None

    def _save_health(self, state: dict[str, Any]) -> None:
        """Atomically (temp file, fsync, rename): a crash leaves the old state or the new one."""
        path = self._health_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(state, f, ensure_ascii=False)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:                  # a full disk must not stop scheduling; the next change retries
            self.log.error("device quarantine state not saved: %s", fault_text(e, path))

    # -- status --------------------------------------------------------------------------------------
    def devices_status(self) -> dict[str, dict[str, Any]]:
        """{device: {executor, state, last_error, last_error_at, since, next_probe_at, next_probe_in_s}}
        for every device an executor owns (``status``)."""
        m, now, wall = self.machine, time.monotonic(), time.time()
        owners = {e.device: e.name for e in m.settings.executors if e.device}
        owners.update({i.device: n for n, i in m.known.items() if i.device})
        owners.update({h.device: n for n, h in m.quarantine.held.items()})
        return {dev: m.quarantine.device_state(ex, dev, now, wall) for dev, ex in sorted(owners.items())}

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        m, now = self.machine, time.monotonic()
        base.update({"queued_units": len(m.queue), "tasks": len([t for t in m.tasks.values() if not t.finished_sent]),
                     "held": len(m.tasks),            # tasks with state here: reported ones are dropped
                     "queued_cases": sum(len(u.cases) for u in m.queue),
                     "oldest_wait_s": round(now - min(u.queued_at for u in m.queue), 3) if m.queue else 0.0,
                     "executors": {n: {"idle": e.idle, "unit": e.unit.unit_id if e.unit else None,
                                       "case": (e.running or {}).get("case_id")} for n, e in m.executors.items()},
                     "quarantined": m.quarantine.snapshot(now, time.time()), "disk_short": m.disk_short,
                     "reports_behind": m.reports_behind, "reports_holds": m.reports_holds,
                     "devices": self.devices_status(), "eta_s": eta_of(m, time.time())})
        return base


STAGE = Scheduler
