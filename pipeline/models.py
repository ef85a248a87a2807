"""Domain value objects: the seed's Task / TestCollection / TestCase / CaseResult / Transaction / AssertData.

Field names follow the LiuMa wire format (camelCase) so a platform task or result maps 1:1; every class
round-trips through plain dicts (``to_dict``/``from_dict``) and therefore through msgpack. ``CaseResult``
carries engine-only extras (attempt, reason, executor, in_out) that ``to_platform()`` strips: the platform
receives exactly the keys of reference §7.
"""
from __future__ import annotations

import copy
import dataclasses
import enum
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

__all__ = [
    "Status", "Outcome", "CaseType", "AssertData", "Transaction", "CaseResult", "CaseRef",
    "TestCase", "TestCollection", "Task", "result_key", "engine_result", "UNKNOWN",
    "DISABLED_REASON", "disabled_reason", "skipped_by_accident",
]

UNKNOWN = "未知"  # the platform's placeholder for names/content of a synthetic step (§7.2)


class Status(enum.IntEnum):
    """Step and case statuses exactly as the platform stores them (§7.1-7.3)."""

    PASS = 0
    FAIL = 1
    ERROR = 2
    SKIP = 3


class Outcome(enum.Enum):
    """What a case attempt means to a person; richer than ``Status`` (broken = infrastructure, not product)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    BROKEN = "broken"      # executor crash, timeout, lost device: never a product failure
    FLAKY = "flaky"        # failed first, passed on a retry


class CaseType(str, enum.Enum):
    API = "API"
    WEB = "WEB"
    APP = "APP"


T = TypeVar("T", bound="_Record")


class _Record:
    """dict round-trip for the dataclasses below; unknown keys are ignored, missing ones take defaults."""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = _names(cls)
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict`` (same result: nested records as dicts, containers and values copied), without
        its per-field reflection: a result was converted once per attempt in the executor and the aggregator."""
        out: dict[str, Any] = _plain(self)
        return out


_NAMES: dict[type, frozenset[str]] = {}
_ORDER: dict[type, tuple[str, ...]] = {}
_ATOMS = (str, int, float, bool, type(None), bytes)


def _names(cls: type) -> frozenset[str]:
    names = _NAMES.get(cls)
    if names is None:
        _ORDER[cls] = tuple(f.name for f in dataclasses.fields(cls))
        names = _NAMES[cls] = frozenset(_ORDER[cls])
    return names


def _plain(v: Any) -> Any:
    t = type(v)
    if t in _ATOMS:
        return v
    if t is list:
        return [_plain(x) for x in v]
    if t is dict:
        return {_plain(k): _plain(x) for k, x in v.items()}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        if t not in _ORDER:
            _names(t)
        return {name: _plain(getattr(v, name)) for name in _ORDER[t]}
    if isinstance(v, enum.Enum):
        return v                            # deepcopy keeps an enum member itself
    if isinstance(v, tuple):                # asdict's rules for the rarer shapes
        items = [_plain(x) for x in v]
        return t(*items) if hasattr(v, "_fields") else t(items)
    if isinstance(v, list):
        return t(_plain(x) for x in v)
    if isinstance(v, dict):
        return t((_plain(k), _plain(x)) for k, x in v.items())
    return copy.deepcopy(v)


@dataclass(slots=True)
class AssertData(_Record):
    """One evaluated comparison (API assertion, UI assertion, condition)."""

    type: str = ""            # comparator id as written (equals, contains, ...)
    actual: Any = None
    expected: Any = None
    result: bool = False
    message: str = ""
    check: str = ""           # what was checked: "resCode", "$.data.id", "页面标题" ...


@dataclass(slots=True)
class Transaction(_Record):
    """One step result. The first eight fields are the platform's ``TransResultRequest`` (§7.2).

    ``startTime``/``stepType``/``detail`` are engine extras used by the reports (HttpRunner summary,
    JUnit, Allure): ``detail`` may hold ``req_resps``, ``validators`` (list of AssertData dicts),
    ``actions`` (UI ActionResults), ``export_vars`` and ``error`` (error text).
    """

    id: str = ""
    name: str = ""
    content: str = ""
    description: str | None = None
    log: str = ""
    during: int = 0
    status: int = Status.PASS
    screenShotList: list[str] = field(default_factory=list)
    startTime: int = 0                       # epoch ms
    stepType: str = ""                       # request-GET / browser / android / ios
    detail: dict[str, Any] = field(default_factory=dict)

    PLATFORM_KEYS: ClassVar[tuple[str, ...]] = (
        "id", "name", "content", "description", "log", "during", "status", "screenShotList")

    def to_platform(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.PLATFORM_KEYS}


@dataclass(slots=True)
class CaseResult(_Record):
    """One attempt of one case. Platform keys first (§7.1), then engine extras.

    Identity: ``result_key`` = (taskId, collectionId, caseId, index, runTimes); the aggregator is idempotent
    on it. ``runTimes`` is the platform's round number (1, 2, ...); ``reason`` explains broken/timeout/skip.
    """

    taskId: str = ""
    collectionId: str = ""
    caseId: str = ""
    caseType: str = "API"
    caseName: str = UNKNOWN
    caseDesc: str | None = None
    index: int = 0
    runTimes: int = 1
    status: int = Status.PASS
    startTime: int = 0                       # epoch ms (ints: the platform truncates floats anyway)
    endTime: int = 0
    transactionList: list[dict[str, Any]] = field(default_factory=list)
    # engine extras ------------------------------------------------------------------------------
    outcome: str = Outcome.PASSED.value
    reason: str = ""                         # "timeout after 300 s ...", "executor-2 crashed ...", skip reason
    executor: str = ""
    tags: list[str] = field(default_factory=list)
    inOut: dict[str, Any] = field(default_factory=dict)   # {"config_vars": params, "export_vars": context}
    # failure evidence kept for this attempt (pipeline.evidence): {"dir": "attachments/<case>/<attempt>",
    # "files": [{"name", "kind", "bytes"}], "notes": [what was not recorded, and why]}; empty = none kept
    evidence: dict[str, Any] = field(default_factory=dict)

    PLATFORM_KEYS: ClassVar[tuple[str, ...]] = (
        "status", "startTime", "endTime", "collectionId", "caseId", "caseType", "caseName", "caseDesc",
        "index", "runTimes", "transactionList")

    @property
    def key(self) -> tuple[str, str, str, int, int]:
        return result_key(self.taskId, self.collectionId, self.caseId, self.index, self.runTimes)

    def transactions(self) -> list[Transaction]:
        return [Transaction.from_dict(t) for t in self.transactionList]

    def to_platform(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.PLATFORM_KEYS}
        out["transactionList"] = [Transaction.from_dict(t).to_platform() for t in self.transactionList]
        return out


def engine_result(*, task_id: str, collection_id: str, case_id: str, case_type: str, index: int, run_times: int,
                  status: Status, outcome: Outcome, reason: str, case_name: str = UNKNOWN, started_ms: int | None = None,
                  executor: str = "", tags: list[str] | None = None, now_s: float | None = None) -> CaseResult:
    """A result the engine writes for a case it could not run (crash, timeout, skip, stop, unusable package).

    It carries one synthetic step ``{id: caseId, name: 未知, content: 未知}`` (§7.3) with ``reason`` as its log
    line, so the platform accepts the row (§10: no empty transactionList). ``started_ms`` is when the attempt
    began, when known, so a crashed or timed-out case shows how long it really ran. ``now_s`` (epoch s, default
    the clock) is when it ends: the scheduler's state machine hands in its event's time."""
    from pipeline.secrets import redact_urls
    reason = redact_urls(reason)
    now_s = time.time() if now_s is None else now_s
    now = int(now_s * 1000)
    level = "Debug" if status == Status.SKIP else "Error"
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now_s))}.{int(now_s % 1 * 1e6):06d} - {level} - {reason}"
    start = min(started_ms or now, now)
    step = Transaction(id=case_id, name=UNKNOWN, content=UNKNOWN, description=None, log=line, during=0,
                       status=int(status), screenShotList=[], startTime=start, detail={"error": reason})
    return CaseResult(taskId=task_id, collectionId=collection_id, caseId=case_id, caseType=case_type,
                      caseName=case_name or UNKNOWN, index=index, runTimes=run_times, status=int(status),
                      startTime=start, endTime=now, transactionList=[step.to_dict()], outcome=outcome.value,
                      reason=reason, executor=executor, tags=list(tags or []))


def result_key(task_id: str, collection_id: str, case_id: str, index: int, run_times: int) -> tuple[str, str, str, int, int]:
    """The aggregator's idempotency key for one attempt."""
    return (task_id, collection_id, case_id, int(index), int(run_times))


@dataclass(slots=True)
class CaseRef(_Record):
    """A case entry of a collection in the task object: ``{"index", "caseId", "caseType"}`` plus seed planning fields."""

    caseId: str = ""
    caseType: str = "API"
    index: int = 1
    priority: int = 0
    timeout: int | None = None       # seconds; None -> engine default (300)
    retry: int = 0
    tags: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)   # caseIds that must pass first
    enabled: bool = True
    skipReason: str = ""


@dataclass(slots=True)
class TestCase(_Record):
    """A case file's common envelope (§3.3); the full JSON stays in ``data`` for the runners."""

    caseId: str = ""
    caseName: str = UNKNOWN
    comment: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TestCollection(_Record):
    """A collection of the task object (§3.1) with the seed's planning fields."""

    collectionId: str = ""
    collectionName: str = ""
    deviceId: str | None = None
    testCaseList: list[dict[str, Any]] = field(default_factory=list)
    order: int = 0
    parallel: bool = False
    variables: dict[str, Any] = field(default_factory=dict)
    setupScript: str = ""
    teardownScript: str = ""

    def cases(self) -> list[CaseRef]:
        return [CaseRef.from_dict(c) for c in self.testCaseList]


@dataclass(slots=True)
class Task(_Record):
    """The platform's task object (§3.1) plus the seed's ``priority``/``timeout``/``createTime``."""

    taskId: str = ""
    taskType: str = "run"
    downloadUrl: str | None = None
    maxThread: int = 1
    reRun: bool = False
    testCollectionList: list[dict[str, Any]] = field(default_factory=list)
    debugData: dict[str, Any] | None = None
    createTime: str = ""
    priority: int = 0
    timeout: int = 3600
    evidence: str = ""                # [Evidence] keep for this task (pipeline.evidence); "" = the engine's

    def collections(self) -> list[TestCollection]:
        return [TestCollection.from_dict(c) for c in self.testCollectionList]


DISABLED_REASON = "case disabled"      # how the reason of a case skipped by ``enabled: false`` begins


def disabled_reason(skip_reason: str) -> str:
    """The reason of a case skipped by ``enabled: false`` (its ``skipReason`` when it has one)."""
    return f"{DISABLED_REASON}: {skip_reason}" if skip_reason else f"{DISABLED_REASON} (enabled=false)"


def skipped_by_accident(finals: Any) -> bool:
    """The one rule for an all-skipped run: ``finals`` = (skipped?, reason) per case by its final attempt.
    True when there are cases, every one was skipped and not all by ``enabled: false`` (a stop before
    dispatch, failed dependencies...): nothing was tested, so the run is no success. Cases left out by
    ``--tags`` are not in the task at all; a run where they are all left out has no finals and is not this."""
    items = list(finals)
    return bool(items) and all(skipped for skipped, _ in items) and \
        not all(str(reason or "").startswith(DISABLED_REASON) for _, reason in items)
