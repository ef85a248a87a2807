"""What the scheduler's state machine is fed (events) and what it answers (commands), and how an event is
journaled: the journal is the list of events applied, each with the ``now`` (monotonic) and ``wall`` time
it was applied at, so replaying it through the same ``apply`` rebuilds the same state.

Everything the machine would otherwise read from outside comes in an event: the time, the case data
routing needs (read by the stage when a task arrives), whether storage is short of space, the settings.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.messages import Kind, Message, TaskSubmit, from_wire

__all__ = [
    "Command",
    "Configured",
    "Event",
    "ExecutorSpec",
    "Forget",
    "Log",
    "Received",
    "SaveHealth",
    "Send",
    "Settings",
    "Started",
    "Submitted",
    "Tick",
    "from_record",
    "to_record",
]


@dataclass(frozen=True)
class ExecutorSpec:
    name: str
    kinds: tuple[str, ...]
    device: str | None = None


@dataclass(frozen=True)
class Settings:
    """The configuration the machine decides with (``[Pipeline]``, ``[Retry]``, devices, executors)."""
    default_timeout: float = 300.0
    max_attempts: int = 2
    retry_failures: bool = True
    budget: int = 100
    quarantine_after: int = 3
    quarantine_window: float = 600.0
    quarantine_probe: float = 60.0
    report_dir: str = "reports"
    tags: tuple[str, ...] = ()
    devices: dict[str, dict[str, str]] = field(default_factory=dict)    # RunSpec.devices
    executors: tuple[ExecutorSpec, ...] = ()
    retired: frozenset[str] = frozenset()                               # removed by a config reload
    dispatch: str = "fifo"                                              # [Pipeline] dispatch: fifo | longest-first

    def to_map(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"], d["retired"] = list(self.tags), sorted(self.retired)
        d["executors"] = [[e.name, list(e.kinds), e.device] for e in self.executors]
        return d

    @classmethod
    def from_map(cls, d: dict[str, Any]) -> Settings:
        d = dict(d)
        d["tags"], d["retired"] = tuple(d.get("tags") or ()), frozenset(d.get("retired") or ())
        d["executors"] = tuple(ExecutorSpec(n, tuple(k), dev) for n, k, dev in d.get("executors") or ())
        return cls(**d)


# -- events ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Received:
    """A message from another stage (every kind but task.submit)."""
    src: str
    inc: int
    body: Message


@dataclass(frozen=True)
class Submitted:
    """task.submit, with the data routing needs from its APP case files: ``{"<collection>/<case>": {deviceUrl,
    deviceSystem}}``, and each case's estimated seconds (``{"<collection>/<case>": s}``, from the run history and
    step counts; ``timed``: how many the history knew) -- all read by the stage when the task arrives, never by
    the machine, and journaled with the event, so a replay plans and dispatches in the same order."""
    src: str
    body: TaskSubmit
    app_cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)
    timed: int = 0


@dataclass(frozen=True)
class Tick:
    """A loop turn: task timeouts, stranded units, probes, dispatch. ``disk_short``: why no unit may start;
    ``reports_behind``: the aggregator asked to hold dispatch while its reports catch up (flow control)."""
    disk_short: str | None = None
    reports_behind: bool = False


@dataclass(frozen=True)
class Started:
    """The stage (re)started: the settings in force and the quarantine state file's content; after a
    replay, the queue is rebuilt, no unit is dispatched for ``adopt_s`` (executors still running one
    re-announce it and are adopted) and what the aggregator may lack is sent again."""
    settings: Settings
    quarantine: dict[str, Any] | None = None
    adopt_s: float = 0.0


@dataclass(frozen=True)
class Configured:
    """A config reload: new timeouts, retry policy, devices and executors apply from now on."""
    settings: Settings


Event = Received | Submitted | Tick | Started | Configured


# -- commands --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    peer: str
    body: Message


@dataclass(frozen=True)
class SaveHealth:
    """Write the quarantine state file (``Quarantine.to_state``)."""
    state: dict[str, Any]


@dataclass(frozen=True)
class Forget:
    """Stop re-sending what was not acknowledged to ``peer``: that incarnation is gone (its unit is re-queued;
    a unit.run re-sent to its successor would run the work twice)."""
    peer: str


@dataclass(frozen=True)
class Log:
    level: int
    text: str


Command = Send | SaveHealth | Forget | Log


# -- journal records -------------------------------------------------------------------------------
def to_record(event: Event, now: float, wall: float) -> list[Any]:
    if isinstance(event, Received):
        return ["msg", now, wall, event.src, event.inc, event.body.KIND.value, event.body.to_wire()]
    if isinstance(event, Submitted):
        return ["submit", now, wall, event.src, event.body.to_wire(), event.app_cases, event.estimates, event.timed]
    if isinstance(event, Tick):
        return ["tick", now, wall, event.disk_short, event.reports_behind]
    if isinstance(event, Configured):
        return ["config", now, wall, event.settings.to_map()]
    return ["start", now, wall, event.settings.to_map(), event.quarantine, event.adopt_s]


def from_record(rec: list[Any]) -> tuple[Event, float, float]:
    """(event, now, wall) of a journal record; ``ValueError`` when it is not one."""
    if not isinstance(rec, list) or len(rec) < 3:
        raise ValueError(f"not a scheduler journal record: {rec!r:.80}")
    what, now, wall = rec[0], float(rec[1]), float(rec[2])
    if what == "msg":
        return Received(str(rec[3]), int(rec[4]), from_wire(Kind(rec[5]), rec[6])), now, wall
    if what == "submit":
        est = {str(k): float(v) for k, v in ((rec[6] if len(rec) > 6 else None) or {}).items()}   # older journals: none
        return Submitted(str(rec[3]), TaskSubmit.from_wire(rec[4]), dict(rec[5] or {}), est,
                         int(rec[7]) if len(rec) > 7 else 0), now, wall
    if what == "tick":
        return Tick(rec[3], bool(rec[4]) if len(rec) > 4 else False), now, wall     # older journals: no hold
    if what == "start":
        return Started(Settings.from_map(rec[3]), rec[4], float(rec[5])), now, wall
    if what == "config":
        return Configured(Settings.from_map(rec[3])), now, wall
    raise ValueError(f"unknown scheduler journal record {what!r}")
