"""Aggregator stage: the durable home of results.

Each ``result.record`` is journaled (append + fsync) *before* it is acknowledged, and de-duplicated by
its result key (taskId, collectionId, caseId, index, runTimes), so a re-sent result is never counted twice
and an aggregator crash loses nothing: on restart the journal is replayed. Reports are rewritten
incrementally while the task runs and finally once the scheduler's list of expected results is complete.

Reports are built on a separate thread (``report_thread``): this stage's loop only journals, de-duplicates,
acks and hands each new attempt over, so report writing never stalls ingest; each attempt's part of every
format is rendered once (``writers.builder``), so the cost per case stays flat however large the task.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from pipeline.codec import Envelope
from pipeline.journal import AppendLog
from pipeline.messages import Kind
from pipeline.models import CaseResult, Status
from pipeline.stage import Handler, Stage
from pipeline.storage import fault_text

from .history_writer import HistoryWriter
from .report_thread import ReportThread
from .writers import TaskReportMeta

__all__ = ["Aggregator", "STAGE", "ENGINE_VERSION"]

ENGINE_VERSION = "0.1.0"
MISSING_GRACE_S = 30.0       # results the scheduler counted but we never got: report loudly after this


@dataclass
class TaskAgg:
    task_id: str
    name: str
    report_dir: Path
    started_at: float
    results: dict[tuple[Any, ...], CaseResult] = field(default_factory=dict)
    expected: list[tuple[Any, ...]] | None = None
    finished_at: float | None = None
    reported: bool = False
    dirty: bool = False
    waiting_since: float | None = None
    cases: int | None = None
    stopped: str | None = None
    final: Future[dict[str, Path]] | None = None          # the report thread's answer to the final write
    missing: list[tuple[Any, ...]] = field(default_factory=list)
    counts: _Counts = field(default_factory=lambda: _Counts())


class Aggregator(Stage):
    POLL_MS = 100

    def __init__(self, name: str, inc: int, spec: Any) -> None:
        super().__init__(name, inc, spec)
        self.tasks: dict[str, TaskAgg] = {}
        self.journal = AppendLog(Path(spec.run_dir) / "state" / "aggregator.journal", on_error=self.storage_fault)
        self._unsynced = False
        self._last_meta = 0.0
        self._ingest_max = 0.0
        self._ingest_n = self._ingest_slow = 0
        self._tick_max = 0.0
        self.reports = ReportThread(self.log)
        self.history = HistoryWriter(lambda: self.spec, self.log)    # <storage>/history.sqlite: a row per new attempt
        from pipeline.platform import engine_secret
        from pipeline.secrets import url_secrets
        self.secrets = [s for s in (spec.setting("Engine", "engine-secret"), engine_secret(spec), spec.headers.get("token", "")) if s]
        self.secrets += url_secrets([str(d.get("appium_url") or "") for d in spec.devices.values()]
                                    + [str(v) for v in spec.config.get("WebDriver", {}).values()])
        # platform mode: every result and every task.reported is forwarded to the uploader; a forward counts
        # as done only when the uploader acked it (journaled as "fwd"), so a crash re-forwards on replay.
        self.platform = bool(spec.setting("Platform", "url"))
        self.forwarded: set[str] = set()
        self._fwd_pending: dict[str, str] = {}

    def on_start(self) -> None:
        n = 0
        for rec in self.journal.replay():
            self._apply(rec, replay=True)
            n += 1
        self.journal.open()
        if n:
            self.log.info("rebuilt state from %d journal records (%d tasks)", n, len(self.tasks))
        self.reports.start()
        for agg in self.tasks.values():
            if not agg.reported:
                self._open_reports(agg)
                for res in agg.results.values():
                    self.reports.add(agg.task_id, res)
        self.mailbox.on_ack = self._acked
        if self.platform:
            for agg in self.tasks.values():
                for res in agg.results.values():
                    self._forward_result(res)
                if agg.reported and f"reported:{agg.task_id}" not in self.forwarded:
                    self._forward(Kind.TASK_REPORTED, {"task_id": agg.task_id, "report_dir": str(agg.report_dir),
                                                       "totals": _totals(agg.results.values())}, f"reported:{agg.task_id}")

    def _forward(self, kind: Kind, body: dict[str, Any], mark: str) -> None:
        if mark in self.forwarded:
            return
        msg_id = self.mailbox.send("uploader", kind, body)
        self._fwd_pending[msg_id] = mark

    def _forward_result(self, res: CaseResult) -> None:
        self._forward(Kind.RESULT_RECORD, {"result": res.to_dict()}, "result:" + "|".join(map(str, res.key)))

    def _acked(self, ids: list[str]) -> None:
        for i in ids:
            mark = self._fwd_pending.pop(i, None)
            if mark is not None and mark not in self.forwarded:
                self.forwarded.add(mark)
                self.journal.append(["fwd", mark])

    # -- messages ---------------------------------------------------------------------------------
    def on_task_planned(self, env: Envelope) -> None:
        """Sent by the scheduler when it planned a task: where its reports go."""
        self._journal(["planned", env.body])

    def on_result_record(self, env: Envelope) -> None:
        """Sent by an executor (or the scheduler, for broken/skipped cases) with one attempt's result."""
        self._journal(["result", env.body["result"]])

    def on_task_finished(self, env: Envelope) -> None:
        """Sent by the scheduler when every case is settled, with the result keys we must hold."""
        self._journal(["finished", env.body])

    HANDLERS: ClassVar[dict[Kind, Handler]] = {
        Kind.TASK_PLANNED: on_task_planned, Kind.RESULT_RECORD: on_result_record, Kind.TASK_FINISHED: on_task_finished,
    }

    def dispatch(self, env: Envelope) -> None:
        t0 = time.perf_counter()
        super().dispatch(env)
        took = time.perf_counter() - t0                 # stats: what handling one message took (stalls show here)
        self._ingest_max = max(self._ingest_max, took)
        self._ingest_n += 1
        if took > 0.05:
            self._ingest_slow += 1

    def _journal(self, rec: list[Any]) -> None:
        if self._apply(rec, replay=False):
            self.journal.append(rec)
            self._unsynced = True

    def before_ack(self) -> None:
        self.history.flush()             # this batch's history rows in one transaction (a failure only turns history off)
        if self._unsynced:
            self.journal.sync()          # acks go out only after this: at-least-once, durably
            self._unsynced = False

    def _apply(self, rec: list[Any], *, replay: bool) -> bool:
        kind, body = rec[0], rec[1]
        if kind == "planned":
            if body["task_id"] in self.tasks:
                return False
            agg = self.tasks[body["task_id"]] = TaskAgg(body["task_id"], body.get("name") or body["task_id"],
                                                        Path(body["report_dir"]) / body["task_id"], body.get("started_at") or time.time())
            agg.cases = body.get("cases")
            if not replay:
                self._open_reports(agg)
                self._write_metadata(agg)
            return True
        if kind == "result":
            res = CaseResult.from_dict(body)
            agg = self.tasks.get(res.taskId)
            if agg is None:
                agg = self.tasks[res.taskId] = TaskAgg(res.taskId, res.taskId, Path(self.spec.report_dir) / res.taskId, time.time())
                if not replay:
                    self._open_reports(agg)
            if res.key in agg.results:
                return False
            agg.results[res.key] = res
            agg.counts.add(res)
            agg.dirty = True
            self.history.record(res, agg.started_at)
            if not replay:
                if agg.final is None and not agg.reported:
                    self.reports.add(agg.task_id, res)
                self._announce(res)
                if self.platform:
                    self._forward_result(res)
            return True
        if kind == "finished":
            agg = self.tasks.get(body["task_id"])
            if agg is None or agg.expected is not None:
                return False
            agg.expected = [tuple(k) for k in body["expected"]]
            agg.finished_at = time.time()
            agg.stopped = body.get("stopped") or None
            return True
        if kind == "fwd":
            self.forwarded.add(body)
            return True
        if kind == "reported":
            if body in self.tasks:
                self.tasks[body].reported = True
            return True
        return False

    def _announce(self, res: CaseResult) -> None:
        elapsed = max(0, res.endTime - res.startTime)
        try:
            self.mailbox.send("supervisor", Kind.CASE_REPORTED, {
                "task_id": res.taskId, "case_id": res.caseId, "name": res.caseName, "status": res.status,
                "outcome": res.outcome, "runTimes": res.runTimes, "elapsed_ms": elapsed, "reason": res.reason,
                "executor": res.executor, "collection_id": res.collectionId, "index": res.index, "case_type": res.caseType})
        except Exception as e:
            self.log.debug("case.reported not sent: %s", e)

    # -- reports ----------------------------------------------------------------------------------
    def on_tick(self) -> None:
        t0 = time.perf_counter()
        self._on_tick()
        self._tick_max = max(self._tick_max, time.perf_counter() - t0)      # stats: the loop's own bookkeeping

    def _on_tick(self) -> None:
        now = time.monotonic()
        while self.reports.faults:              # report writes that failed on the report thread: loud, on this one
            self.storage_fault(self.reports.faults.pop(0))
        for agg in self.tasks.values():
            if agg.reported or agg.expected is None:
                continue
            if agg.final is not None:
                if agg.final.done():
                    self._final_report(agg, agg.final.result())
                continue
            missing = [k for k in agg.expected if k not in agg.results]
            if missing:
                agg.waiting_since = agg.waiting_since or now
                if now - agg.waiting_since < MISSING_GRACE_S:
                    continue
                self.log.error("task %s: %d expected results never arrived: %s", agg.task_id, len(missing), missing[:10])
            agg.missing = missing
            final_meta = self._meta(agg, final=True)
            agg.final = self.reports.final(agg.task_id, final_meta.finished_at, final_meta.stop_reason)
        if now - self._last_meta >= 5.0:
            self._last_meta = now
            for agg in self.tasks.values():
                if agg.dirty and not agg.reported:
                    agg.dirty = False
                    self._write_metadata(agg)

    def _meta(self, agg: TaskAgg, *, final: bool) -> TaskReportMeta:
        return TaskReportMeta(
            task_id=agg.task_id, task_name=agg.name,
            started_at=dt.datetime.fromtimestamp(agg.started_at, dt.timezone.utc).astimezone(),
            finished_at=dt.datetime.fromtimestamp(agg.finished_at, dt.timezone.utc).astimezone() if final and agg.finished_at else None,
            engine_version=ENGINE_VERSION, engine_code=self.spec.setting("Engine", "engine-code") or "local",
            secrets=tuple(self.secrets), storage_root=Path(self.spec.storage_root),
            stop_reason=agg.stopped if final else None)

    def _open_reports(self, agg: TaskAgg) -> None:
        meta = replace(self._meta(agg, final=False), history=self.history.report_history(agg.task_id))
        self.reports.open(agg.task_id, agg.report_dir, meta)

    def _final_report(self, agg: TaskAgg, paths: dict[str, Path]) -> None:
        missing = agg.missing
        totals = agg.counts.totals()
        self._write_metadata(agg, final=True)
        self.journal.append(["reported", agg.task_id])
        self.journal.sync()
        agg.reported = True
        body = {"task_id": agg.task_id, "report_dir": str(agg.report_dir), "totals": totals,
                "paths": {k: str(v) for k, v in paths.items()}, "missing": [list(k) for k in missing],
                "by_kind": _by_kind(agg.results.values()), "storage_faults": list(self.storage_faults),
                **self.history.report_notes(agg.counts.last.values(), dt.date.today())}
        self.mailbox.send("supervisor", Kind.TASK_REPORTED, body)
        if self.platform:
            self._forward(Kind.TASK_REPORTED, body, f"reported:{agg.task_id}")
        self.log.info("task %s reported: %s", agg.task_id, totals)

    def _write_metadata(self, agg: TaskAgg, *, final: bool = False) -> None:
        """``<storage>/data/<taskId>/metadata.json``: the task's status record (seed: data lifecycle), read by
        people and scripts; rewritten atomically when the task is planned, while it runs and when it ends."""
        status = ("stopped" if agg.stopped else "finished") if final else "running"
        iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).astimezone().isoformat(timespec="seconds")  # noqa: E731
        meta = {"taskId": agg.task_id, "name": agg.name, "status": status, "create_time": iso(agg.started_at),
                "update_time": iso(time.time()), "finish_time": iso(agg.finished_at) if final and agg.finished_at else None,
                "stop_reason": agg.stopped if final else None, "cases": agg.cases,
                "counts": agg.counts.totals(), "report_dir": str(agg.report_dir)}
        path = Path(self.spec.storage_root) / "data" / agg.task_id / "metadata.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".metadata.json.{os.getpid()}")
            tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
            tmp.replace(path)
        except OSError as e:
            self.storage_fault(fault_text(e, path))

    def on_stop(self) -> None:
        self.history.close()
        self.reports.stop()
        self.journal.sync()
        self.journal.close()

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        base["results"] = sum(len(a.results) for a in self.tasks.values())
        base["reports"] = {"backlog": self.reports.backlog(), "ingest_max_ms": round(self._ingest_max * 1000, 1),
                           "ingested": self._ingest_n, "ingest_over_50ms": self._ingest_slow,
                           "tick_max_ms": round(self._tick_max * 1000, 1),
                           **self.reports.stats}
        base["tasks"] = [{"task_id": a.task_id, "name": a.name, "cases": a.cases, "results": len(a.results),
                          "started_at": a.started_at, "finishing": a.expected is not None}
                         for a in self.tasks.values() if not a.reported]
        return base


_STATUS_KEY = {Status.PASS: "passed", Status.FAIL: "failed", Status.ERROR: "error", Status.SKIP: "skipped"}


class _Counts:
    """:func:`_totals` kept up to date per attempt (O(1) each), so the running task's metadata, written from
    the stage's loop every few seconds, costs nothing per case however large the task."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str, int], CaseResult] = {}
        self.t = {"cases": 0, "attempts": 0, "passed": 0, "failed": 0, "error": 0, "skipped": 0, "flaky": 0, "broken": 0}

    def _count(self, r: CaseResult, sign: int) -> None:
        if r.outcome in ("flaky", "broken"):
            self.t[r.outcome] += sign
        self.t[_STATUS_KEY[Status(r.status)]] += sign

    def add(self, r: CaseResult) -> None:
        self.t["attempts"] += 1
        k = (r.collectionId, r.caseId, r.index)
        old = self.last.get(k)
        if old is None:
            self.t["cases"] += 1
        elif r.runTimes <= old.runTimes:
            return
        else:
            self._count(old, -1)
        self.last[k] = r
        self._count(r, +1)

    def totals(self) -> dict[str, int]:
        return dict(self.t)


def _totals(results: Any) -> dict[str, int]:
    """Per case (collection, case, index) the last attempt decides; attempts are counted separately."""
    last: dict[tuple[str, str, int], CaseResult] = {}
    attempts = 0
    for r in results:
        attempts += 1
        k = (r.collectionId, r.caseId, r.index)
        if k not in last or r.runTimes > last[k].runTimes:
            last[k] = r
    t = {"cases": len(last), "attempts": attempts, "passed": 0, "failed": 0, "error": 0, "skipped": 0, "flaky": 0, "broken": 0}
    for r in last.values():
        if r.outcome == "flaky":
            t["flaky"] += 1
        if r.outcome == "broken":
            t["broken"] += 1
        t[{Status.PASS: "passed", Status.FAIL: "failed", Status.ERROR: "error", Status.SKIP: "skipped"}[Status(r.status)]] += 1
    return t


def _by_kind(results: Any) -> dict[str, dict[str, int]]:
    """Final status per case (its last attempt) counted by case type, for the supervisor's
    ``liuma_cases_total{kind,status}`` (statuses: passed, failed, error, skipped)."""
    last: dict[tuple[str, str, int], CaseResult] = {}
    for r in results:
        k = (r.collectionId, r.caseId, r.index)
        if k not in last or r.runTimes > last[k].runTimes:
            last[k] = r
    out: dict[str, dict[str, int]] = {}
    names = {Status.PASS: "passed", Status.FAIL: "failed", Status.ERROR: "error", Status.SKIP: "skipped"}
    for r in last.values():
        by = out.setdefault(r.caseType, {})
        by[names[Status(r.status)]] = by.get(names[Status(r.status)], 0) + 1
    return out


STAGE = Aggregator
