"""The aggregator's report thread: every task's :class:`ReportBuilder` lives here, off the receive/ack path.

The stage's own thread only journals, de-duplicates and acks; it hands each new attempt to this thread
through a queue and never renders or writes a report itself. The thread renders attempts as they come and
appends them to each task's ``results.jsonl`` when its batch (the queue drained) ends,
rewrites a running task's partial reports when it has been idle for long enough (throttled: at least
``min_gap`` s apart and ``PARTIAL_DUTY``x the last write's cost, so a large task spends at most a tenth of
this thread on rewrites: at 50,000 cases one rewrite costs ~2 s of the core the run needs), and writes a final report when asked, after every attempt queued before the request (FIFO),
answering through a :class:`~concurrent.futures.Future` the stage polls on its ticks.

The thread competes for the GIL, not for the stage's loop: the rendering and joins are short calls and file
writes release the GIL, so the stage's loop is never held for more than a few milliseconds at a time.
A failing write is logged and answered with ``{}``: an output error never kills a run.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.models import CaseResult
from pipeline.profiling import profiled
from pipeline.storage import fault_text
from stages.aggregator.pace import Pace
from stages.aggregator.writers import TaskReportMeta
from stages.aggregator.writers.builder import ReportBuilder

__all__ = ["ReportThread"]

_STOP = object()
PARTIAL_DUTY = 10       # the gap after a partial rewrite, in multiples of what it cost
SHED_PER_TURN = 2000    # cases of a written task's builder freed per turn of the thread


class ReportThread:
    def __init__(self, log: logging.Logger, *, min_gap: float = 2.0) -> None:
        self.log = log
        self.min_gap = min_gap
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._builders: dict[str, ReportBuilder] = {}
        self._dirty: set[str] = set()
        self._unflushed: set[str] = set()       # tasks with attempts not yet in their results.jsonl
        self._written: list[ReportBuilder] = []  # finished builders, freed a slice per turn (shed)
        self._gap = min_gap
        self._render = Pace(0.0002)         # one attempt's rendering (a no-op attempt ~0.1-0.2 ms)
        self._newest: ReportBuilder | None = None  # the builder an attempt last went to: its Allure files queued
        self._last_partial = time.monotonic()
        self._thread = threading.Thread(target=profiled(self._run, "aggregator-reports"), name="aggregator-reports", daemon=True)
        self.stats: dict[str, Any] = {"partials": 0, "partial_max_s": 0.0, "final_s": 0.0, "rendered": 0}
        self.faults: list[str] = []     # failed writes (fault_text), drained by the stage's loop: sockets stay on it

    def start(self) -> None:
        self._thread.start()

    # -- called from the stage's thread -------------------------------------------------------------
    def open(self, task_id: str, report_dir: Path, meta: TaskReportMeta, *, resume: bool = False) -> None:
        """Start a task's builder (``meta.finished_at`` None); a second open of the same task is ignored;
        ``resume``: after a restart (``results.jsonl`` is appended to, not started afresh)."""
        self._q.put(("open", task_id, report_dir, meta, resume))

    def add(self, task_id: str, result: CaseResult) -> None:
        self._q.put(("add", task_id, result))

    def final(self, task_id: str, finished_at: datetime | None, stop_reason: str | None = None) -> Future[dict[str, Path]]:
        """Write the task's final reports once everything queued before is in; the builder is dropped after."""
        fut: Future[dict[str, Path]] = Future()
        self._q.put(("final", task_id, finished_at, fut, time.monotonic(), stop_reason))
        return fut

    def held(self) -> int:
        """Builders alive here (open, or written and being freed): the heap is not small yet."""
        return len(self._builders) + len(self._written)

    def backlog(self) -> int:
        return self._q.qsize()

    def behind_s(self) -> float:
        """Seconds of work queued here: attempts to render (at the recent cost of one) and the newest task's
        files not written yet (flow control, ``flow.py``)."""
        newest = self._newest
        return self._q.qsize() * self._render.seconds + (newest.files_behind_s() if newest is not None else 0.0)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join(timeout)

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                cmd = self._q.get(timeout=0.2)
            except queue.Empty:
                while self._written and self._written[-1].shed(SHED_PER_TURN):
                    self._written.pop()
                self._maybe_partial(idle=True)
                continue
            if cmd is _STOP:
                return
            try:
                self._handle(cmd)
            except Exception as e:          # one bad result must not stop the reports of the others
                self.log.exception("report thread: %s failed: %s", cmd[0], e)
                if cmd[0] == "final":
                    cmd[3].set_result({})
            idle = self._q.empty()
            if self._written and self._written[-1].shed(SHED_PER_TURN):
                self._written.pop()
            if idle:
                self._flush_lines()         # the batch is in: its attempts go to results.jsonl
            self._maybe_partial(idle=idle)

    def _flush_lines(self) -> None:
        for task_id in self._unflushed:
            b = self._builders.get(task_id)
            try:
                if b is not None:
                    b.flush_lines()
            except OSError as e:
                self.log.error("results.jsonl of %s: %s", task_id, e)
                self.faults.append(fault_text(e, b.lines.path))     # type: ignore[union-attr]
        self._unflushed.clear()

    def _handle(self, cmd: tuple[Any, ...]) -> None:
        kind, task_id = cmd[0], cmd[1]
        if kind == "open":
            if task_id not in self._builders:
                self._builders[task_id] = ReportBuilder(cmd[2], cmd[3], resume=cmd[4])
        elif kind == "add":
            b = self._builders.get(task_id)
            if b is None:
                self.log.error("report thread: result for unknown task %s dropped from the reports", task_id)
                return
            t0 = time.perf_counter()
            backlogged = self._q.qsize() > 0
            if b.add(cmd[2]):
                self._dirty.add(task_id)
                self._unflushed.add(task_id)
                self.stats["rendered"] += 1
                self._render.done(t0, backlogged)
            self._newest = b
        elif kind == "final":
            fut: Future[dict[str, Path]] = cmd[3]
            b = self._builders.pop(task_id, None)
            if self._newest is b:
                self._newest = None
            self._dirty.discard(task_id)
            self._unflushed.discard(task_id)
            if b is None:
                self.log.error("report thread: final report of unknown task %s", task_id)
                fut.set_result({})
                return
            t0 = time.monotonic()
            try:
                paths = b.write(cmd[2], stop_reason=cmd[5])
            except Exception as e:              # output errors never kill a run, but they make it fail loudly
                self.log.exception("writing reports for %s failed: %s", task_id, e)
                self.faults.append(fault_text(e, b.report_dir))
                paths = {}
            try:
                b.close()                       # results.jsonl: its last lines, then the descriptor
            except OSError as e:
                self.faults.append(fault_text(e, b.lines.path))
            self._written.append(b)
            self.stats["final_s"] = round(time.monotonic() - t0, 3)
            self.log.info("final reports of %s: %d attempts; waited %.2f s for the attempts queued before, wrote in %.2f s "
                          "(%.2f s of it for the Allure files queued)", task_id, len(b), t0 - cmd[4], self.stats["final_s"], b.drain_s)
            fut.set_result(paths)

    def _maybe_partial(self, *, idle: bool) -> None:
        """Rewrite dirty tasks' partial reports when due; under load (queue not empty) only every 4 gaps, so
        the backlog of attempts is rendered first."""
        now = time.monotonic()
        due = self._gap if idle else 4 * self._gap
        if not self._dirty or now - self._last_partial < due:
            return
        t0 = now
        for task_id in sorted(self._dirty):
            try:
                self._builders[task_id].write(None, partial=True)
            except Exception as e:
                self.log.exception("partial reports for %s failed: %s", task_id, e)
                self.faults.append(fault_text(e, self._builders[task_id].report_dir))
        self._dirty.clear()
        self._render.pause()                # the rewrite is not part of an attempt's cost
        cost = time.monotonic() - t0
        self._last_partial = time.monotonic()
        self._gap = max(self.min_gap, PARTIAL_DUTY * cost)
        self.stats["partials"] += 1
        self.stats["partial_max_s"] = max(self.stats["partial_max_s"], round(cost, 3))
