"""What the aggregator's state machine is fed (events) and what it asks its shell to do (commands).

Events that change durable state are journaled as ``[tag, payload, now]`` and replayed through the same
``apply`` on restart; ``Tick`` and ``Recovered`` are never journaled (they only derive commands from state).
Records written before events carried their time (``[tag, payload]``) are still read: their time is the
replay's. Commands are plain data, so a test checks them as values and the shell executes them in order.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pipeline.messages import Message, TaskFinished, TaskPlanned
from pipeline.models import CaseResult

from .writers import TaskReportMeta

_M = TypeVar("_M", bound=Message)

__all__ = [
    "AddToReport",
    "AttemptRecorded",
    "Command",
    "Drop",
    "Dropped",
    "Event",
    "Finished",
    "Forward",
    "Forwarded",
    "Journal",
    "JournalRecordError",
    "LogError",
    "OpenReport",
    "Planned",
    "Recorded",
    "Recovered",
    "Reported",
    "Send",
    "Sync",
    "Tick",
    "WriteFinal",
    "WriteMetadata",
    "event_of",
    "record_of",
]


# -- events ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Planned:
    """``task.planned`` from the scheduler (or the fetcher, for an unusable package): where reports go."""
    body: TaskPlanned


@dataclass(frozen=True)
class Recorded:
    """``result.record``: one attempt's result (a ``CaseResult`` as a dict)."""
    result: dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """``task.finished``: every case is settled; ``body.expected`` lists the result keys we must hold."""
    body: TaskFinished


@dataclass(frozen=True)
class Forwarded:
    """The uploader acked a forward (``result:<key>`` or ``reported:<task_id>``): never forward it again."""
    mark: str


@dataclass(frozen=True)
class Reported:
    """The report thread wrote a task's final reports (``paths``; empty when the write failed)."""
    task_id: str
    paths: dict[str, str]
    storage_faults: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dropped:
    """The shell forgot a reported task (``Drop``): its state goes too, and a result, plan or ack that
    arrives for it later is ignored, so a 50,000-case task costs nothing once reported."""
    task_id: str


@dataclass(frozen=True)
class Tick:
    """Time passed: final reports whose grace ran out, periodic metadata."""


@dataclass(frozen=True)
class Recovered:
    """The journal has been replayed: reopen unfinished reports, re-forward what the uploader never acked."""


Event = Planned | Recorded | Finished | Forwarded | Reported | Dropped | Tick | Recovered


# -- commands ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Journal:
    """Append this record; it is fsynced before the acks of the turn leave (``before_ack``)."""
    record: list[Any]


@dataclass(frozen=True)
class Sync:
    """fsync the journal now (before telling anyone a task is reported)."""


@dataclass(frozen=True)
class OpenReport:
    """Start the task's reports; ``resume`` after a restart (``results.jsonl`` keeps the lines it holds)."""
    task_id: str
    report_dir: Path
    meta: TaskReportMeta
    resume: bool = False


@dataclass(frozen=True)
class AddToReport:
    task_id: str
    result: CaseResult


@dataclass(frozen=True)
class WriteFinal:
    """Ask the report thread for the final reports; its answer comes back as ``Reported``."""
    task_id: str
    meta: TaskReportMeta


@dataclass(frozen=True)
class WriteMetadata:
    """Rewrite ``<storage>/data/<taskId>/metadata.json`` atomically with ``doc``."""
    path: Path
    doc: dict[str, Any]


@dataclass(frozen=True)
class Send:
    peer: str
    body: Message


@dataclass(frozen=True)
class Forward:
    """Send reliably to the uploader; once acked, the shell feeds ``Forwarded(mark)`` back."""
    body: Message
    mark: str


@dataclass(frozen=True)
class AttemptRecorded:
    """A new attempt was journaled (never on replay): announce it (``case.reported``); the place for
    per-attempt side effects such as a run-history write."""
    result: CaseResult


@dataclass(frozen=True)
class Drop:
    """A reported task (and, with a platform, everything of it acked by the uploader): the shell forgets what
    it keeps per task, then feeds ``Dropped`` back."""
    task_id: str


@dataclass(frozen=True)
class LogError:
    text: str


Command = (Journal | Sync | OpenReport | AddToReport | WriteFinal | WriteMetadata | Send | Forward | AttemptRecorded
           | Drop | LogError)


# -- journal records ---------------------------------------------------------------------------------
class JournalRecordError(ValueError):
    """A journal record that is no event this aggregator knows."""


_TAGS: dict[str, type] = {"planned": Planned, "result": Recorded, "finished": Finished, "fwd": Forwarded, "reported": Reported,
                          "drop": Dropped}


def record_of(event: Event, now: float) -> list[Any]:
    """The journal record of an applied event."""
    if isinstance(event, Planned):
        return ["planned", event.body.to_wire(), now]
    if isinstance(event, Recorded):
        return ["result", event.result, now]
    if isinstance(event, Finished):
        return ["finished", event.body.to_wire(), now]
    if isinstance(event, Forwarded):
        return ["fwd", event.mark, now]
    if isinstance(event, Reported):
        return ["reported", event.task_id, now]
    if isinstance(event, Dropped):
        return ["drop", event.task_id, now]
    raise JournalRecordError(f"{type(event).__name__} is never journaled")


def event_of(record: Any) -> tuple[Event, float | None]:
    """The event a journal record holds and the time it was applied at (None in records before 16g)."""
    if not isinstance(record, list) or len(record) not in (2, 3) or record[0] not in _TAGS:
        raise JournalRecordError(f"not an aggregator event: {str(record)[:80]}")
    tag, payload = record[0], record[1]
    at = record[2] if len(record) == 3 else None
    if at is not None and (isinstance(at, bool) or not isinstance(at, (int, float))):
        raise JournalRecordError(f"{tag} record: time must be a number, got {at!r}")
    if tag in ("planned", "result", "finished") and not isinstance(payload, dict):
        raise JournalRecordError(f"{tag} record: payload must be a map, got {type(payload).__name__}")
    if tag in ("fwd", "reported", "drop") and not isinstance(payload, str):
        raise JournalRecordError(f"{tag} record: payload must be a string, got {type(payload).__name__}")
    if tag == "planned":
        return Planned(_typed(TaskPlanned, tag, payload)), at
    if tag == "result":
        return Recorded(payload), at
    if tag == "finished":
        return Finished(_typed(TaskFinished, tag, payload)), at
    if tag == "fwd":
        return Forwarded(payload), at
    if tag == "drop":
        return Dropped(payload), at
    return Reported(payload, {}), at


def _typed(cls: type[_M], tag: str, payload: dict[str, Any]) -> _M:
    """A journaled body (its wire map) typed again; JournalRecordError naming the record and field."""
    try:
        return cls.from_wire(payload)
    except ValueError as e:
        raise JournalRecordError(f"{tag} record: {e}") from e
