"""Every message kind and its body, declared once: ``Kind`` names the kinds, one frozen dataclass per kind
(``KIND`` ties them) is the body's single truth, and ``RELIABLE`` lists the kinds delivered reliably (acked,
re-sent until acked, de-duplicated by ``msg_id`` at the receiver).

Bodies travel as str-keyed maps (``to_wire``); ``from_wire`` checks a decoded map against the dataclass's
annotations, so a message missing a field or carrying a wrong type is rejected by the codec as malformed
(dead-lettered) instead of crashing a handler. Optional fields default to None and are left off the wire
when None; unknown keys are ignored (an older or newer peer may send more). Nested maps that are read
as maps (totals, the heartbeat's current case) are ``TypedDict``s: plain dicts at run time, typed for mypy.
"""
from __future__ import annotations

import enum
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict

from .shapes import fields_of, problem

__all__ = ["BODIES", "RELIABLE", "REQUIRED", "Ack", "CaseDeadline", "CaseFinished", "CaseReported", "CaseStarted", "CasesReported",
           "ConfigReload", "Current", "DeviceProbe", "ExecutorStatus", "Kind", "Message", "Probe", "ReportsBehind", "ResultRecord",
           "StageDied", "StageFatal", "StageHeartbeat", "StageKill", "StageStop", "TaskFinished", "TaskKeepalive", "TaskPlanned",
           "TaskReleased", "TaskReported", "TaskStop", "TaskStopped", "TaskSubmit", "Totals", "UnitDone", "UnitRun", "Victim",
           "body_problem", "from_wire"]


class Kind(str, enum.Enum):
    """Who sends what to whom; the body of each is the dataclass of the same name below."""
    TASK_SUBMIT = "task.submit"            # fetcher / submit queue -> scheduler
    TASK_RELEASED = "task.released"        # scheduler -> fetcher (platform mode: the slot is free again)
    EXECUTOR_STATUS = "executor.status"    # executor -> scheduler (credit, adoption, probe answers)
    CASE_DEADLINE = "case.deadline"        # executor case thread -> supervisor, before the case runs
    CASE_STARTED = "case.started"          # executor -> scheduler
    CASE_FINISHED = "case.finished"        # executor -> scheduler (carries the result)
    UNIT_DONE = "unit.done"                # executor -> scheduler
    UNIT_RUN = "unit.run"                  # scheduler -> executor
    DEVICE_PROBE = "device.probe"          # scheduler -> executor of a quarantined device
    RESULT_RECORD = "result.record"        # scheduler / fetcher (unusable task) -> aggregator -> uploader
    TASK_PLANNED = "task.planned"          # scheduler / fetcher -> aggregator
    TASK_FINISHED = "task.finished"        # scheduler / fetcher -> aggregator
    TASK_REPORTED = "task.reported"        # aggregator -> supervisor / uploader
    TASK_STOPPED = "task.stopped"          # fetcher -> uploader (platform mode): the platform ended these tasks
    TASK_KEEPALIVE = "task.keepalive"      # fetcher -> uploader (platform mode): a task in flight needs an empty upload
    CASE_REPORTED = "case.reported"        # aggregator -> supervisor (one attempt; still accepted)
    CASES_REPORTED = "cases.reported"      # aggregator -> supervisor: the attempts of one loop turn, each a case.reported
    REPORTS_BEHIND = "reports.behind"      # aggregator -> scheduler: hold (or resume) dispatch while its reports catch up
    STAGE_HEARTBEAT = "stage.heartbeat"    # every stage -> supervisor
    STAGE_FATAL = "stage.fatal"            # a stage -> supervisor: cannot go on, do not restart (no stage sends it yet)
    STAGE_DIED = "stage.died"              # supervisor -> scheduler
    STAGE_KILL = "stage.kill"              # scheduler -> supervisor: end what an executor is running
    TASK_STOP = "task.stop"                # supervisor / fetcher -> scheduler, executors
    STAGE_STOP = "stage.stop"              # supervisor -> any stage: drain and exit
    CONFIG_RELOAD = "config.reload"        # supervisor -> every stage: settings.json was rewritten
    ACK = "msg.ack"                        # any -> sender of a reliable message


# -- nested maps ------------------------------------------------------------------------------------
# (required keys in a base class, optional ones in a total=False subclass: NotRequired is not seen in
# postponed annotations on Python 3.11)
class _ProbeKeys(TypedDict):
    ok: bool


class Probe(_ProbeKeys, total=False):
    error: str | None


class _TotalsKeys(TypedDict):
    cases: int
    passed: int
    failed: int
    error: int
    skipped: int
    flaky: int
    attempts: int


class Totals(_TotalsKeys, total=False):
    broken: int


class Current(TypedDict, total=False):
    """What a stage is doing now (the executor: its running case), in its heartbeat."""
    case: str | None
    case_id: str | None
    task_id: str | None
    index: int | None
    run_times: int | None
    step: str | None
    deadline_s: float | None
    elapsed_s: float | None


class _VictimKeys(TypedDict):
    case_id: str
    index: int
    run_times: int


class Victim(_VictimKeys, total=False):
    """The case a dead executor was running, per the supervisor."""
    started_ms: int


# -- bodies -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """Base of every body. ``KIND`` is the kind it travels as."""
    KIND: ClassVar[Kind]

    def to_wire(self) -> dict[str, Any]:
        """The map that travels: every required field, the optional ones that are not None."""
        out: dict[str, Any] = {}
        for f, required in fields_of(type(self)):
            value = getattr(self, f)
            if required or value is not None:
                out[f] = value
        return out

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> typing.Self:
        """The typed body of a decoded map; ``ValueError`` naming the first bad field when it does not fit."""
        why = problem(body, cls)
        if why:
            raise ValueError(why)
        return cls.of_checked(body)

    @classmethod
    def of_checked(cls, body: Mapping[str, Any]) -> typing.Self:
        """The typed body of a map ``body_problem`` already passed (the codec checks each frame once)."""
        return cls(**{f: body[f] for f, _ in fields_of(cls) if f in body})


@dataclass(frozen=True)
class TaskSubmit(Message):
    KIND = Kind.TASK_SUBMIT
    task: dict[str, Any]
    data_dir: str
    report_dir: str | None = None
    source: str | None = None                  # "submit" (the submit queue) or None (suite / platform)
    name: str | None = None
    case_names: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskReleased(Message):
    KIND = Kind.TASK_RELEASED
    task_id: str


@dataclass(frozen=True)
class ExecutorStatus(Message):
    KIND = Kind.EXECUTOR_STATUS
    kinds: list[str]
    idle: bool
    last_unit: str | None
    device: str | None = None
    unit: dict[str, Any] | None = None          # the unit.run body being run, plus ``running`` (a case.started body)
    probe: Probe | None = None                  # the answer to device.probe
    parked: str | None = None                   # why it withholds its credit (browsers = auto: over capacity)


@dataclass(frozen=True)
class CaseDeadline(Message):
    KIND = Kind.CASE_DEADLINE
    task_id: str
    case_id: str
    index: int
    run_times: int
    deadline_s: float
    unit_id: str | None = None
    collection_id: str | None = None
    started_ms: int | None = None
    case: str | None = None                     # the case's name, for the deadline's kill reason


@dataclass(frozen=True)
class CaseStarted(Message):
    KIND = Kind.CASE_STARTED
    unit_id: str
    task_id: str
    collection_id: str
    case_id: str
    index: int
    run_times: int
    deadline_s: float
    started_ms: int | None = None


@dataclass(frozen=True)
class CaseFinished(Message):
    KIND = Kind.CASE_FINISHED
    unit_id: str
    task_id: str
    collection_id: str
    case_id: str
    index: int
    run_times: int
    status: int
    outcome: str
    deadline_s: float | None = None
    started_ms: int | None = None
    name: str | None = None
    reason: str | None = None
    variables: dict[str, Any] | None = None     # the case's variables after it ran (passed on to the next case)
    result: dict[str, Any] | None = None        # the CaseResult (journaled by the scheduler before it acks)
    device_down: bool | None = None             # the device failed in this case: hold it now


@dataclass(frozen=True)
class UnitDone(Message):
    KIND = Kind.UNIT_DONE
    unit_id: str
    device_down: str | None = None              # why the health ladder failed ("" or None: it did not)


@dataclass(frozen=True)
class UnitRun(Message):
    KIND = Kind.UNIT_RUN
    unit_id: str
    task_id: str
    collection_id: str
    data_dir: str
    cases: list[dict[str, Any]]
    variables: dict[str, Any] | None = None
    setup_script: str | None = None
    teardown_script: str | None = None
    report_dir: str | None = None               # where the task's reports (and evidence bundles) go
    evidence: str | None = None                 # the task's evidence policy over ``[Evidence] keep``


@dataclass(frozen=True)
class DeviceProbe(Message):
    KIND = Kind.DEVICE_PROBE
    device: str


@dataclass(frozen=True)
class ResultRecord(Message):
    KIND = Kind.RESULT_RECORD
    result: dict[str, Any]                      # a CaseResult as a map


@dataclass(frozen=True)
class TaskPlanned(Message):
    KIND = Kind.TASK_PLANNED
    task_id: str
    report_dir: str
    name: str | None = None
    cases: int | None = None
    started_at: float | None = None             # wall-clock seconds


@dataclass(frozen=True)
class TaskFinished(Message):
    KIND = Kind.TASK_FINISHED
    task_id: str
    expected: list[list[Any]]                   # result keys the aggregator must hold
    stopped: str | None = None


@dataclass(frozen=True)
class TaskReported(Message):
    KIND = Kind.TASK_REPORTED
    task_id: str
    report_dir: str
    totals: Totals
    paths: dict[str, Any] | None = None
    missing: list[Any] | None = None
    storage_faults: list[str] | None = None
    by_kind: dict[str, Any] | None = None       # totals per case type (metrics)
    muted: list[Any] | None = None              # failures muted by [Flaky] mute (the run history's notes)
    mutes_expired: list[Any] | None = None      # [Flaky] mute entries past their date
    history_off: str | None = None              # why the run history is not written (unusable store)


@dataclass(frozen=True)
class TaskStopped(Message):
    """The platform stopped these tasks: the uploader delivers their rows but never their ``complete``."""
    KIND = Kind.TASK_STOPPED
    task_ids: list[str]
    reason: str


@dataclass(frozen=True)
class TaskKeepalive(Message):
    """An empty result upload is owed for this task in flight (the platform's 10-minute inactivity rule)."""
    KIND = Kind.TASK_KEEPALIVE
    task_id: str


@dataclass(frozen=True)
class CaseReported(Message):
    KIND = Kind.CASE_REPORTED
    task_id: str
    case_id: str
    status: int
    name: str | None = None
    outcome: str | None = None
    runTimes: int | None = None
    elapsed_ms: float | None = None
    reason: str | None = None
    executor: str | None = None
    collection_id: str | None = None
    index: int | None = None
    case_type: str | None = None


@dataclass(frozen=True)
class CasesReported(Message):
    """Several ``case.reported`` bodies in one frame (the aggregator sends one per loop turn: one frame per
    attempt was a third of what the supervisor decoded); each is checked on its own when unpacked, so one bad
    entry is dead-lettered alone."""
    KIND = Kind.CASES_REPORTED
    cases: list[dict[str, Any]]


@dataclass(frozen=True)
class ReportsBehind(Message):
    """Flow control: the aggregator's report thread is ``seconds`` of rendering behind what it has ingested
    (``hold``), or has caught up (not ``hold``). Best effort: repeated while holding, a hold not repeated expires."""
    KIND = Kind.REPORTS_BEHIND
    hold: bool
    seconds: float = 0.0


@dataclass(frozen=True)
class StageHeartbeat(Message):
    KIND = Kind.STAGE_HEARTBEAT
    pid: int
    state: str
    current: Current | None = None
    stats: dict[str, Any] | None = None


@dataclass(frozen=True)
class StageFatal(Message):
    KIND = Kind.STAGE_FATAL
    reason: str


@dataclass(frozen=True)
class StageDied(Message):
    KIND = Kind.STAGE_DIED
    stage: str
    inc: int
    reason: str
    case: Victim | None = None


@dataclass(frozen=True)
class StageKill(Message):
    KIND = Kind.STAGE_KILL
    stage: str
    inc: int
    reason: str


@dataclass(frozen=True)
class TaskStop(Message):
    KIND = Kind.TASK_STOP
    task_id: str | None = None                  # None: every task
    reason: str | None = None
    drain: bool | None = None                   # engine shutdown: running cases may finish


@dataclass(frozen=True)
class StageStop(Message):
    KIND = Kind.STAGE_STOP


@dataclass(frozen=True)
class ConfigReload(Message):
    KIND = Kind.CONFIG_RELOAD
    generation: int
    changed: list[str]                          # ["Section.key", ...]


@dataclass(frozen=True)
class Ack(Message):
    KIND = Kind.ACK
    ids: list[str]


BODIES: dict[Kind, type[Message]] = {c.KIND: c for c in Message.__subclasses__()}
assert set(BODIES) == set(Kind), "every kind declares its body"


def from_wire(kind: Kind, body: Mapping[str, Any]) -> Message:
    return BODIES[kind].from_wire(body)


REQUIRED: dict[Kind, tuple[str, ...]] = {k: tuple(n for n, r in fields_of(c) if r) for k, c in BODIES.items()}


def body_problem(kind: Kind, body: Mapping[str, Any]) -> str | None:
    """What makes ``body`` unfit for ``kind`` (first problem found), or None. Extra keys are allowed."""
    return problem(body, BODIES[kind])


# Kinds whose loss would lose work or a result: acked by the receiver, re-sent by the sender until acked.
RELIABLE: frozenset[Kind] = frozenset({
    Kind.TASK_SUBMIT, Kind.TASK_RELEASED, Kind.CASE_STARTED, Kind.CASE_FINISHED, Kind.UNIT_DONE, Kind.UNIT_RUN,
    Kind.RESULT_RECORD, Kind.TASK_PLANNED, Kind.TASK_FINISHED, Kind.TASK_REPORTED, Kind.STAGE_DIED, Kind.STAGE_KILL, Kind.TASK_STOP,
    Kind.TASK_STOPPED,
})
