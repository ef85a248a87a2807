"""Aggregator stage: the durable home of results — a thin shell around :class:`~.machine.AggregatorMachine`.

The shell receives a message, turns it into an event, applies it with the wall-clock time and executes the
commands in order: journal appends (fsynced in ``before_ack``, so a result is acked only once durable),
report-thread requests, metadata files, messages. On restart the journal's events are replayed through the
same ``apply`` and ``Recovered`` says what to redo; nothing here decides anything about results.

Reports are built on a separate thread (``report_thread``), so report writing never stalls ingest; its
final answers come back to the machine as ``Reported`` events on the stage's ticks.
"""
from __future__ import annotations

import datetime as dt
import gc
import json
import os
import sys
import time
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pipeline.codec import Envelope
from pipeline.gc_policy import FreezePolicy, freeze_young, thaw
from pipeline.journal import AppendLog
from pipeline.messages import (
    CaseReported,
    CasesReported,
    Kind,
    Message,
    ReportsBehind,
    ResultRecord,
    TaskFinished,
    TaskPlanned,
    TaskReported,
)
from pipeline.models import CaseResult
from pipeline.stage import Handler, Stage
from pipeline.storage import fault_text

from .events import (
    AddToReport,
    AttemptRecorded,
    Command,
    Drop,
    Dropped,
    Event,
    Finished,
    Forward,
    Forwarded,
    Journal,
    JournalRecordError,
    LogError,
    OpenReport,
    Planned,
    Recorded,
    Recovered,
    Reported,
    Send,
    Sync,
    Tick,
    WriteFinal,
    WriteMetadata,
    event_of,
)
from .flow import ReportsFlow
from .history_writer import HistoryWriter
from .machine import ENGINE_VERSION, AggregatorMachine, MachineConfig, TaskAgg
from .report_thread import ReportThread

__all__ = ["ENGINE_VERSION", "STAGE", "Aggregator"]

SWITCH_INTERVAL_S = 0.0005
HISTORY_WAIT_S = 30.0           # a final report waits at most this long for the history writer to catch up
RELEASE_PER_TICK = 2000         # results of a dropped task freed per loop turn: 50,000 at once held the loop ~0.1 s


class Aggregator(Stage):
    POLL_MS = 100

    def __init__(self, name: str, inc: int, spec: Any) -> None:
        super().__init__(name, inc, spec)
        from pipeline.secrets import spec_secrets
        secrets = spec_secrets(spec)          # the executors mask evidence files with the same list
        self.machine = AggregatorMachine(MachineConfig(
            report_dir=str(spec.report_dir), storage_root=Path(spec.storage_root),
            engine_code=spec.setting("Engine", "engine-code") or "local", secrets=tuple(secrets),
            platform=bool(spec.setting("Platform", "url"))))
        # buffered until before_ack's sync: everything this stage sends about a record leaves after that
        self.journal = AppendLog(Path(spec.run_dir) / "state" / "aggregator.journal", on_error=self.storage_fault,
                                 flush_each=False)
        self.reports = ReportThread(self.log)
        self.history = HistoryWriter(lambda: self.spec, self.log)    # <storage>/history.sqlite: a row per new attempt
        self._notes: dict[str, dict[str, Any]] = {}       # task -> its task.reported's history notes (sent and forwarded)
        self._finals: dict[str, Future[dict[str, Path]]] = {}
        self._final_seen: dict[str, float] = {}          # task -> when its final reports were first seen written
        self._fwd_pending: dict[str, str] = {}            # msg_id -> forward mark, until the uploader acks
        self._unsynced = False
        self._progress: list[dict[str, Any]] = []         # case.reported bodies of this loop turn
        self._switch = sys.getswitchinterval()
        self._ingest_max = self._tick_max = 0.0
        self._ingest_n = self._ingest_slow = 0
        self._gc_t0 = self._gc_c0 = 0.0
        self._gc_cpu: dict[int, float] = {}
        self._gc_max: dict[int, float] = {}               # generation -> its longest collection (s): stats
        gc.callbacks.append(self._gc_timed)
        self._freeze = FreezePolicy()
        self._graveyard: list[TaskAgg] = []               # dropped tasks, freed a slice per tick (_release)
        self._flow = ReportsFlow()                        # dispatch held while the report thread is behind

    def _gc_timed(self, phase: str, info: dict[str, int]) -> None:
        """Stats: each generation's longest collection, wall and CPU (on a loaded machine the wall time of a
        collection also holds the time the process was not scheduled)."""
        if phase == "start":
            self._gc_t0, self._gc_c0 = time.perf_counter(), time.thread_time()
        else:
            gen = info.get("generation", 0)
            self._gc_max[gen] = max(self._gc_max.get(gen, 0.0), time.perf_counter() - self._gc_t0)
            self._gc_cpu[gen] = max(self._gc_cpu.get(gen, 0.0), time.thread_time() - self._gc_c0)

    @property
    def tasks(self) -> dict[str, TaskAgg]:
        return self.machine.tasks

    def on_start(self) -> None:
        now = self.clock.wall()
        n = 0
        for i, rec in enumerate(self.journal.replay()):
            try:
                event, at = event_of(rec)
                for cmd in self.machine.apply(event, now if at is None else at):   # state only: the effects happened
                    if isinstance(cmd, AttemptRecorded):    # before, except maybe the history row (flushed before the
                        self._history_row(cmd.result)       # ack, after the journal append): inserted idempotently
                n += 1
            except (JournalRecordError, KeyError, TypeError, ValueError) as e:
                self.log.error("%s record %d skipped: %s", self.journal.path, i, e)
        self.history.flush()
        self.journal.open()
        if n:
            self.log.info("rebuilt state from %d journal records (%d tasks)", n, len(self.tasks))
        # the report thread renders in pure Python: every socket, journal or database call of this loop releases
        # the GIL and then waited up to the default 5 ms switch interval to get it back, once per message; at
        # 0.5 ms ingest waits at most that long per call, and the report thread still gets the rest
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.reports.start()
        self.mailbox.on_ack = self._acked
        self.feed(Recovered())

    def feed(self, event: Event) -> None:
        """Apply one event now and execute its commands, in order."""
        for cmd in self.machine.apply(event, self.clock.wall()):
            self._execute(cmd)

    # -- messages ---------------------------------------------------------------------------------
    def on_task_planned(self, env: Envelope[TaskPlanned]) -> None:
        """Sent by the scheduler when it planned a task: where its reports go."""
        self.feed(Planned(env.body))

    def on_result_record(self, env: Envelope[ResultRecord]) -> None:
        """Sent by the scheduler (or the fetcher, for an unusable package) with one attempt's result."""
        self.feed(Recorded(env.body.result))

    def on_task_finished(self, env: Envelope[TaskFinished]) -> None:
        """Sent by the scheduler when every case is settled, with the result keys we must hold."""
        self.feed(Finished(env.body))

    HANDLERS: ClassVar[dict[Kind, Handler]] = {
        Kind.TASK_PLANNED: on_task_planned, Kind.RESULT_RECORD: on_result_record, Kind.TASK_FINISHED: on_task_finished,
    }

    def _acked(self, ids: list[str]) -> None:
        for i in ids:
            mark = self._fwd_pending.pop(i, None)
            if mark is not None:
                self.feed(Forwarded(mark))

    def dispatch(self, env: Envelope[Message]) -> None:
        t0 = time.perf_counter()
        super().dispatch(env)
        took = time.perf_counter() - t0                 # stats: what handling one message took (stalls show here)
        self._ingest_max = max(self._ingest_max, took)
        self._ingest_n += 1
        self._ingest_slow += took > 0.05

    def before_ack(self) -> None:
        self.history.flush()             # this batch's history rows in one transaction (a failure only turns history off)
        if self._unsynced:
            self.journal.sync()          # acks go out only after this: at-least-once, durably
            self._unsynced = False
        self._send_progress()            # the turn's attempts, journaled: one cases.reported

    def on_tick(self) -> None:
        t0 = time.perf_counter()
        while self.reports.faults:              # report writes that failed on the report thread: loud, on this one
            self.storage_fault(self.reports.faults.pop(0))
        for task_id, fut in list(self._finals.items()):
            if fut.done() and self._history_ready(task_id):
                del self._finals[task_id]
                self._final_seen.pop(task_id, None)
                self.feed(Reported(task_id, {k: str(v) for k, v in fut.result().items()}, tuple(self.storage_faults)))
        self.feed(Tick())
        self._release()
        self._flow_control()
        if self._freeze.due(self.clock.monotonic(), self._ingest_n, len(self.tasks)):
            freeze_young()                      # the heap of results out of full collections (pipeline/gc_policy.py)
        elif self._freeze.thaw_due(len(self.tasks) + len(self._graveyard) + self.reports.held()):
            thaw()                              # every task reported and dropped: the collector gets it all back
        self._tick_max = max(self._tick_max, time.perf_counter() - t0)      # stats: the loop's own bookkeeping

    def _flow_control(self) -> None:
        """Ask the scheduler to hold dispatch while the report thread is behind (``flow.py``); best effort."""
        behind = self.reports.behind_s()
        hold = self._flow.update(behind, self.clock.monotonic())
        if hold is None:
            return
        if hold is False and self._flow.gave_up:
            self.log.warning("report thread %.1f s behind and not catching up: dispatch no longer held for it", behind)
        try:
            self.mailbox.send("scheduler", ReportsBehind(hold=hold, seconds=round(behind, 3)))
        except Exception as e:  # noqa: BLE001 - flow control is best effort: the scheduler lets a hold lapse
            self.log.debug("reports.behind not sent: %s", e)

    # -- commands ---------------------------------------------------------------------------------
    def _execute(self, cmd: Command) -> None:
        if isinstance(cmd, Journal):
            self.journal.append(cmd.record)
            self._unsynced = True
        elif isinstance(cmd, Sync):
            self.journal.sync()
        elif isinstance(cmd, OpenReport):
            meta = replace(cmd.meta, history=self.history.report_history(cmd.task_id))   # previous runs, flake rate
            self.reports.open(cmd.task_id, cmd.report_dir, meta, resume=cmd.resume)
        elif isinstance(cmd, AddToReport):
            self.reports.add(cmd.task_id, cmd.result)
        elif isinstance(cmd, WriteFinal):
            self._finals[cmd.task_id] = self.reports.final(cmd.task_id, cmd.meta.finished_at, cmd.meta.stop_reason)
        elif isinstance(cmd, WriteMetadata):
            self._write_metadata(cmd.path, cmd.doc)
        elif isinstance(cmd, Send):
            body = self._noted(cmd.body)
            self.mailbox.send(cmd.peer, body)
            if isinstance(cmd.body, TaskReported):
                self.log.info("task %s reported: %s", cmd.body.task_id, cmd.body.totals)
        elif isinstance(cmd, Forward):                  # the machine forwards each mark once per incarnation
            self._fwd_pending[self.mailbox.send("uploader", self._noted(cmd.body))] = cmd.mark
        elif isinstance(cmd, AttemptRecorded):
            self.attempt_recorded(cmd.result)
        elif isinstance(cmd, Drop):                     # after the task.reported that read the notes
            self.history.forget(cmd.task_id)
            self._notes.pop(cmd.task_id, None)
            agg = self.tasks.get(cmd.task_id)
            self.feed(Dropped(cmd.task_id))
            if agg is not None and agg.task_id not in self.tasks:
                self._graveyard.append(agg)
        elif isinstance(cmd, LogError):
            self.log.error("%s", cmd.text)

    def _history_ready(self, task_id: str) -> bool:
        """Its task.reported reads the run history (``report_notes``), which first waits for the writer thread:
        asked once that thread caught up (at 50,000 cases the wait held a tick ~0.2 s), or after HISTORY_WAIT_S."""
        seen = self._final_seen.setdefault(task_id, self.clock.monotonic())
        return self.history.caught_up() or self.clock.monotonic() - seen >= HISTORY_WAIT_S

    def _release(self, budget: int = RELEASE_PER_TICK) -> None:
        """Free a slice of the dropped tasks' results: deallocating a 50,000-result task in one go is one long
        C call that holds the GIL, and the loop with it."""
        while self._graveyard and budget > 0:
            agg = self._graveyard[-1]
            for d in (agg.results, agg.counts.last):
                n = min(budget, len(d))
                for _ in range(n):
                    d.popitem()
                budget -= n
            if not agg.results and not agg.counts.last:
                self._graveyard.pop()

    def _history_row(self, res: CaseResult) -> None:
        agg = self.tasks.get(res.taskId)
        self.history.record(res, agg.started_at if agg is not None else self.clock.wall())

    def _noted(self, body: Message) -> Message:
        """A task.reported with the run history's notes (muted failures, expired mutes, history off), read
        once per task: what the supervisor's recap and exit code use."""
        if not isinstance(body, TaskReported):
            return body
        notes = self._notes.get(body.task_id)
        if notes is None:
            agg = self.tasks.get(body.task_id)
            finals = list(agg.counts.last.values()) if agg is not None else []
            notes = self._notes[body.task_id] = self.history.report_notes(finals, dt.date.today())
        return replace(body, **notes)

    def attempt_recorded(self, res: CaseResult) -> None:
        """Once per new attempt, after it is journaled: its run-history row (written by the before-ack flush)
        and the supervisor's live progress (``case.reported``, sent with the loop turn's others as one
        ``cases.reported`` by ``_send_progress``)."""
        self._history_row(res)
        self._progress.append(CaseReported(
            task_id=res.taskId, case_id=res.caseId, name=res.caseName, status=res.status, outcome=res.outcome,
            runTimes=res.runTimes, elapsed_ms=max(0, res.endTime - res.startTime), reason=res.reason,
            executor=res.executor, collection_id=res.collectionId, index=res.index, case_type=res.caseType).to_wire())

    def _send_progress(self) -> None:
        """This loop turn's ``case.reported`` bodies in one frame: best effort (the results are journaled)."""
        if not self._progress:
            return
        batch, self._progress = self._progress, []
        try:
            self.mailbox.send("supervisor", CasesReported(cases=batch))
        except Exception as e:  # noqa: BLE001 - progress is best effort; the result is journaled already
            self.log.debug("cases.reported (%d) not sent: %s", len(batch), e)

    def _write_metadata(self, path: Path, doc: dict[str, Any]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".metadata.json.{os.getpid()}")
            tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
            tmp.replace(path)
        except OSError as e:
            self.storage_fault(fault_text(e, path))

    def on_stop(self) -> None:
        self._send_progress()
        self.reports.stop()
        sys.setswitchinterval(self._switch)
        self.history.close()
        self.journal.sync()
        self.journal.close()

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        base["results"] = sum(len(a.results) for a in self.tasks.values())
        base["held"] = len(self.tasks)                  # tasks with state here: reported ones are dropped
        base["reports"] = {"backlog": self.reports.backlog(), "ingest_max_ms": round(self._ingest_max * 1000, 1),
                           "ingested": self._ingest_n, "ingest_over_50ms": self._ingest_slow,
                           "tick_max_ms": round(self._tick_max * 1000, 1),
                           "gc_max_ms": {str(g): round(t * 1000, 1) for g, t in sorted(self._gc_max.items())},
                           "gc_cpu_max_ms": {str(g): round(t * 1000, 1) for g, t in sorted(self._gc_cpu.items())},
                           "behind_s": round(self.reports.behind_s(), 3), "holds": self._flow.holds,
                           **self.reports.stats}
        base["tasks"] = [{"task_id": a.task_id, "name": a.name, "cases": a.cases, "results": len(a.results),
                          "started_at": a.started_at, "finishing": a.expected is not None}
                         for a in self.tasks.values() if not a.reported]
        return base


STAGE = Aggregator
