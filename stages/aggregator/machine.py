"""The aggregator's state as a pure machine: ``apply(event, now) -> list[Command]``.

No socket, no clock, no disk here: ``now`` (wall-clock seconds) is handed in with every event, and every
effect — journal append, report write, metadata file, message — is a command the stage shell executes.
An event that changes state returns a ``Journal`` of itself (before any message that tells others about it),
so the journal is exactly the list of events applied; recovery replays it through this same ``apply`` (dropping the commands, whose effects
happened before the crash) and then applies ``Recovered`` for what must be redone.

Once a task is reported (and, with a platform, the uploader acked all of it) the machine asks for a ``Drop``;
the shell forgets its own per-task state and feeds ``Dropped`` back, which is journaled and deletes the task
here: only its id stays (in ``dropped``), so a late re-sent result or plan is ignored instead of reopening
reports, and the aggregator's memory after a task is what it was before it.

Results are de-duplicated by their key (taskId, collectionId, caseId, index, runTimes), so a re-sent
result is counted once. A task's final report is asked for once every expected key is in, or, when some
never arrive, ``grace_s`` after that was first seen (reported loudly as missing). ``now`` is wall-clock
time because it ends up in reports and metadata; a clock step only lengthens or shortens that grace.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.messages import Message, ResultRecord, TaskReported, Totals
from pipeline.models import CaseResult, Status

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
    record_of,
)
from .totals import Counts, by_kind, totals
from .writers import TaskReportMeta

__all__ = ["ENGINE_VERSION", "AggregatorMachine", "MachineConfig", "TaskAgg"]

ENGINE_VERSION = "0.1.0"
Key = tuple[Any, ...]
_STATUSES = frozenset(s.value for s in Status)


@dataclass(frozen=True)
class MachineConfig:
    report_dir: str                           # where a task nobody planned gets its reports
    storage_root: Path
    engine_code: str = "local"
    secrets: tuple[str, ...] = ()
    platform: bool = False                    # forward results and task.reported to the uploader
    grace_s: float = 30.0                     # expected results that never came: final report after this
    meta_every_s: float = 5.0                 # a running task's metadata.json at most this often


@dataclass
class TaskAgg:
    task_id: str
    name: str
    report_dir: Path
    started_at: float
    results: dict[Key, CaseResult] = field(default_factory=dict)
    expected: list[Key] | None = None
    finished_at: float | None = None
    reported: bool = False
    dirty: bool = False
    waiting_since: float | None = None
    cases: int | None = None
    stopped: str | None = None
    final_asked: bool = False                 # WriteFinal sent; its Reported not yet applied (not journaled)
    missing: list[Key] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    unacked: set[str] = field(default_factory=set)     # platform: result forwards the uploader has not acked


class AggregatorMachine:
    def __init__(self, config: MachineConfig) -> None:
        self.config = config
        self.tasks: dict[str, TaskAgg] = {}
        self.forwarded: set[str] = set()
        self.dropped: set[str] = set()            # reported tasks whose state is gone: what arrives for them is ignored
        self._last_meta: float | None = None

    def apply(self, event: Event, now: float) -> list[Command]:
        if isinstance(event, Planned):
            return self._planned(event, now)
        if isinstance(event, Recorded):
            return self._recorded(event, now)
        if isinstance(event, Finished):
            return self._finished(event, now)
        if isinstance(event, Forwarded):
            return self._forwarded(event, now)
        if isinstance(event, Reported):
            return self._reported(event, now)
        if isinstance(event, Dropped):
            return self._dropped(event, now)
        if isinstance(event, Tick):
            return self._tick(now)
        if isinstance(event, Recovered):
            return self._recovered()
        raise TypeError(f"not an aggregator event: {event!r}")

    # -- events ------------------------------------------------------------------------------------
    def _planned(self, event: Planned, now: float) -> list[Command]:
        body = event.body
        task_id = body.task_id
        if task_id in self.tasks or task_id in self.dropped:
            return []
        agg = self.tasks[task_id] = TaskAgg(task_id, body.name or task_id, Path(body.report_dir) / task_id, body.started_at or now)
        agg.cases = body.cases
        return [Journal(record_of(event, now)), OpenReport(task_id, agg.report_dir, self.meta(agg, final=False)),
                self._metadata(agg, now)]

    def _recorded(self, event: Recorded, now: float) -> list[Command]:
        res = _checked(event.result)
        out: list[Command] = []
        if res.taskId in self.dropped:        # re-sent after its task was reported and forgotten
            return out
        agg = self.tasks.get(res.taskId)
        if agg is None:                       # a result before (or without) its task.planned: kept, reported
            agg = self.tasks[res.taskId] = TaskAgg(res.taskId, res.taskId, Path(self.config.report_dir) / res.taskId, now)
            out.append(OpenReport(agg.task_id, agg.report_dir, self.meta(agg, final=False)))
        if res.key in agg.results:
            return out
        agg.results[res.key] = res
        agg.counts.add(res)
        agg.dirty = True
        if self.config.platform and _result_mark(res.key) not in self.forwarded:
            agg.unacked.add(_result_mark(res.key))
        out.insert(0, Journal(record_of(event, now)))
        if not agg.final_asked and not agg.reported:
            out.append(AddToReport(agg.task_id, res))
        out.append(AttemptRecorded(res))
        out += self._forward_result(res)
        return out

    def _finished(self, event: Finished, now: float) -> list[Command]:
        agg = self.tasks.get(event.body.task_id)
        if agg is None or agg.expected is not None:
            return []
        agg.expected = [tuple(k) for k in event.body.expected]
        agg.finished_at = now
        agg.stopped = event.body.stopped or None
        return [Journal(record_of(event, now))]

    def _reported(self, event: Reported, now: float) -> list[Command]:
        agg = self.tasks.get(event.task_id)
        if agg is None or agg.reported:
            return []
        agg.reported, agg.final_asked = True, False
        body = TaskReported(task_id=agg.task_id, report_dir=str(agg.report_dir), totals=_totals(agg.counts.totals()),
                            paths=dict(event.paths), missing=[list(k) for k in agg.missing],
                            by_kind=by_kind(agg.results.values()), storage_faults=list(event.storage_faults))
        out: list[Command] = [self._metadata(agg, now, final=True), Journal(record_of(event, now)), Sync(),
                              Send("supervisor", body), Send("scheduler", body)]
        if self.config.platform:
            out += self._forward(body, f"reported:{agg.task_id}")
        return out + self._drop_if_done(agg)

    def _forwarded(self, event: Forwarded, now: float) -> list[Command]:
        if event.mark in self.forwarded:
            return []
        self.forwarded.add(event.mark)
        out: list[Command] = [Journal(record_of(event, now))]
        for agg in self.tasks.values():                   # a handful of tasks at a time
            if event.mark in agg.unacked or event.mark == f"reported:{agg.task_id}":
                agg.unacked.discard(event.mark)
                out += self._drop_if_done(agg)
                break
        return out

    def _drop_if_done(self, agg: TaskAgg) -> list[Command]:
        """``Drop`` once nothing is owed for the task: reported, and with a platform every forward acked."""
        if not agg.reported:
            return []
        if self.config.platform and (agg.unacked or f"reported:{agg.task_id}" not in self.forwarded):
            return []
        return [Drop(agg.task_id)]

    def _dropped(self, event: Dropped, now: float) -> list[Command]:
        agg = self.tasks.pop(event.task_id, None)
        if agg is None:
            return []
        self.dropped.add(agg.task_id)
        if self.config.platform:
            for key in agg.results:                       # its acked marks are no longer needed either
                self.forwarded.discard(_result_mark(key))
            self.forwarded.discard(f"reported:{agg.task_id}")
        return [Journal(record_of(event, now))]

    def _tick(self, now: float) -> list[Command]:
        out: list[Command] = []
        for agg in self.tasks.values():
            if agg.reported or agg.expected is None or agg.final_asked:
                continue
            missing = [k for k in agg.expected if k not in agg.results]
            if missing:
                agg.waiting_since = agg.waiting_since if agg.waiting_since is not None else now
                if now - agg.waiting_since < self.config.grace_s:
                    continue
                out.append(LogError(f"task {agg.task_id}: {len(missing)} expected results never arrived: {missing[:10]}"))
            agg.missing = missing
            agg.final_asked = True
            out.append(WriteFinal(agg.task_id, self.meta(agg, final=True)))
        if self._last_meta is None or now - self._last_meta >= self.config.meta_every_s:
            self._last_meta = now
            for agg in self.tasks.values():
                if agg.dirty and not agg.reported:
                    agg.dirty = False
                    out.append(self._metadata(agg, now))
        return out

    def _recovered(self) -> list[Command]:
        out: list[Command] = []
        for agg in self.tasks.values():
            if not agg.reported:
                out.append(OpenReport(agg.task_id, agg.report_dir, self.meta(agg, final=False), resume=True))
                out += [AddToReport(agg.task_id, res) for res in agg.results.values()]
        if self.config.platform:
            for agg in self.tasks.values():
                for res in agg.results.values():
                    out += self._forward_result(res)
                if agg.reported:
                    out += self._forward(TaskReported(task_id=agg.task_id, report_dir=str(agg.report_dir),
                                                      totals=_totals(totals(agg.results.values()))), f"reported:{agg.task_id}")
        for agg in self.tasks.values():           # reported, but the crash came before its drop
            out += self._drop_if_done(agg)
        return out

    # -- derived ------------------------------------------------------------------------------------
    def _forward(self, body: Message, mark: str) -> list[Command]:
        return [] if mark in self.forwarded else [Forward(body, mark)]

    def _forward_result(self, res: CaseResult) -> list[Command]:
        if not self.config.platform:
            return []
        return self._forward(ResultRecord(result=res.to_dict()), _result_mark(res.key))

    def meta(self, agg: TaskAgg, *, final: bool) -> TaskReportMeta:
        return TaskReportMeta(
            task_id=agg.task_id, task_name=agg.name, started_at=_local(agg.started_at),
            finished_at=_local(agg.finished_at) if final and agg.finished_at else None,
            engine_version=ENGINE_VERSION, engine_code=self.config.engine_code, secrets=self.config.secrets,
            storage_root=self.config.storage_root, stop_reason=agg.stopped if final else None)

    def _metadata(self, agg: TaskAgg, now: float, *, final: bool = False) -> WriteMetadata:
        """The task's status record, read by people and scripts: running while results arrive, then
        finished or stopped."""
        doc = {"taskId": agg.task_id, "name": agg.name,
               "status": ("stopped" if agg.stopped else "finished") if final else "running",
               "create_time": _iso(agg.started_at), "update_time": _iso(now),
               "finish_time": _iso(agg.finished_at) if final and agg.finished_at else None,
               "stop_reason": agg.stopped if final else None, "cases": agg.cases,
               "counts": agg.counts.totals(), "report_dir": str(agg.report_dir)}
        return WriteMetadata(self.config.storage_root / "data" / agg.task_id / "metadata.json", doc)


def _result_mark(key: Key) -> str:
    return "result:" + "|".join(map(str, key))


def _checked(result: dict[str, Any]) -> CaseResult:
    """The result as a ``CaseResult``, or a ValueError naming what is wrong (raised before any state changes)."""
    res = CaseResult.from_dict(result)
    why = _problem(res)
    if why:
        raise ValueError(why)
    return res


def _problem(res: CaseResult) -> str | None:
    if not isinstance(res.taskId, str) or not res.taskId:
        return f"result of case {res.caseId!r} has no taskId"
    if isinstance(res.status, bool) or res.status not in _STATUSES:
        return f"result {'|'.join(map(str, res.key))}: status must be one of 0-3, got {res.status!r}"
    for name, typ in (("collectionId", str), ("caseId", str), ("index", int), ("runTimes", int)):
        value = getattr(res, name)
        if isinstance(value, bool) or not isinstance(value, typ):
            return f"result of task {res.taskId}: {name} must be {'a string' if typ is str else 'an int'}, got {value!r}"
    return None


def _totals(counts: dict[str, int]) -> Totals:
    return Totals(cases=counts["cases"], passed=counts["passed"], failed=counts["failed"], error=counts["error"],
                  skipped=counts["skipped"], flaky=counts["flaky"], attempts=counts["attempts"], broken=counts["broken"])


def _iso(t: float) -> str:
    return _local(t).isoformat(timespec="seconds")


def _local(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC).astimezone()
