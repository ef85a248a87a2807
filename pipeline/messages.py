"""Every message kind, declared once: ``Kind`` + the body fields each kind must carry + which kinds are
delivered reliably (acked, re-sent until acked, de-duplicated by ``msg_id`` at the receiver).

Bodies travel as str-keyed maps; ``BODIES`` gives each kind's fields and their types, so a message missing
one or carrying a wrong type is rejected by the codec as malformed (dead-lettered) instead of crashing a handler.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Kind", "BODIES", "Body", "ListOf", "REQUIRED", "RELIABLE", "body_problem"]


class Kind(str, enum.Enum):
    # fetcher -> scheduler
    TASK_SUBMIT = "task.submit"            # {task, data_dir, report_dir, source}
    # scheduler -> fetcher (platform mode: the slot is free again)
    TASK_RELEASED = "task.released"        # {task_id}
    # executor -> scheduler
    EXECUTOR_STATUS = "executor.status"    # {kinds, device, idle, last_unit, probe?: {ok, error}}
    # executor case thread -> supervisor, before the case runs (the deadline never depends on the victim's loop)
    CASE_DEADLINE = "case.deadline"        # {task_id, case_id, index, run_times, deadline_s, name}
    CASE_STARTED = "case.started"          # {unit_id, task_id, collection_id, case_id, index, run_times, deadline_s, name}
    CASE_FINISHED = "case.finished"        # {unit_id, task_id, collection_id, case_id, index, run_times, status, outcome, variables, result}
    UNIT_DONE = "unit.done"                # {unit_id, device_down?}  device_down: why the health ladder failed
    # scheduler -> executor
    UNIT_RUN = "unit.run"                  # {unit_id, task_id, collection_id, data_dir, cases, variables, reset}
    # scheduler -> executor of a quarantined device: run the health ladder, answer with executor.status {probe}
    DEVICE_PROBE = "device.probe"          # {device}
    # scheduler -> aggregator (every result: the executor's arrive with case.finished and are journaled first)
    RESULT_RECORD = "result.record"        # {result}
    TASK_PLANNED = "task.planned"          # {task_id, name, report_dir, expected, started_at, secrets}
    TASK_FINISHED = "task.finished"        # {task_id, expected}  expected = list of result keys
    # aggregator -> supervisor / uploader
    TASK_REPORTED = "task.reported"        # {task_id, report_dir, totals, status}
    CASE_REPORTED = "case.reported"        # {task_id, case_id, name, status, outcome, runTimes, elapsed_ms, reason, executor}
    # every stage -> supervisor
    STAGE_HEARTBEAT = "stage.heartbeat"    # {pid, state, current}  current = {case, step, deadline_s, started} | None
    STAGE_FATAL = "stage.fatal"            # {reason}  the stage cannot go on (bad config): do not restart
    # supervisor -> scheduler
    STAGE_DIED = "stage.died"              # {stage, inc, reason}
    # scheduler -> supervisor: end what an executor is running (task stopped)
    STAGE_KILL = "stage.kill"              # {stage, inc, reason}
    # supervisor -> fetcher / scheduler
    TASK_STOP = "task.stop"                # {task_id | None (all)}
    STAGE_STOP = "stage.stop"              # {}  drain and exit
    # supervisor -> every stage: settings.json was rewritten by a config reload; re-read and apply
    CONFIG_RELOAD = "config.reload"        # {generation, changed}  changed = ["Section.key", ...]
    # any -> sender of a reliable message
    ACK = "msg.ack"                        # {ids}


# -- body types ------------------------------------------------------------------------------------
# Each kind's body, declared once: required and optional fields with the wire types a receiver may rely on.
# The codec checks every decoded body against it (``body_problem``), so a well-formed but wrongly typed
# message ({"changed": 5}, {"totals": null}) is dead-lettered with its kind and sender instead of crashing
# a handler. This is the natural seed of typed bodies: one ``Body`` per kind, one field per entry.
Types = tuple[Any, ...]          # accepted: plain types, ListOf(...), or a nested Body


@dataclass(frozen=True)
class ListOf:
    item: Types


@dataclass(frozen=True)
class Body:
    required: Mapping[str, Types] = field(default_factory=dict)
    optional: Mapping[str, Types] = field(default_factory=dict)


STR, INT, BOOL, MAP, NONE = (str,), (int,), (bool,), (dict,), (type(None),)
NUM = (int, float)
OPT_STR, OPT_INT, OPT_NUM, OPT_MAP = STR + NONE, INT + NONE, NUM + NONE, MAP + NONE
STRS = (ListOf(STR),)
_CASE = {"unit_id": STR, "task_id": STR, "collection_id": STR, "case_id": STR, "index": INT, "run_times": INT}
_TOTALS = Body({k: INT for k in ("cases", "passed", "failed", "error", "skipped", "flaky", "attempts")}, {"broken": INT})
_CURRENT = Body({}, {"case": OPT_STR, "case_id": OPT_STR, "task_id": OPT_STR, "index": OPT_INT, "run_times": OPT_INT,
                     "step": OPT_STR, "deadline_s": OPT_NUM, "elapsed_s": OPT_NUM})
_STAGE = {"stage": STR, "inc": INT, "reason": STR}
_PROBE = Body({"ok": BOOL}, {"error": OPT_STR})
_VICTIM = Body({"case_id": STR, "index": INT, "run_times": INT}, {"started_ms": INT})

BODIES: dict[Kind, Body] = {
    Kind.TASK_SUBMIT: Body({"task": MAP, "data_dir": STR},
                           {"report_dir": OPT_STR, "source": OPT_STR, "name": OPT_STR, "case_names": OPT_MAP}),
    Kind.TASK_RELEASED: Body({"task_id": STR}),
    Kind.EXECUTOR_STATUS: Body({"kinds": STRS, "idle": BOOL, "last_unit": OPT_STR}, {"device": OPT_STR, "unit": OPT_MAP,
                                                                                   "probe": (_PROBE,) + NONE}),
    Kind.CASE_STARTED: Body(dict(_CASE, deadline_s=NUM), {"started_ms": INT, "name": OPT_STR}),
    Kind.CASE_DEADLINE: Body({"task_id": STR, "case_id": STR, "index": INT, "run_times": INT, "deadline_s": NUM},
                             {"name": OPT_STR, "unit_id": STR, "collection_id": STR, "started_ms": INT}),
    Kind.CASE_FINISHED: Body(dict(_CASE, status=INT, outcome=STR),
                             {"deadline_s": NUM, "started_ms": INT, "name": OPT_STR, "reason": OPT_STR, "variables": OPT_MAP,
                              "result": OPT_MAP}),
    Kind.UNIT_DONE: Body({"unit_id": STR}, {"device_down": OPT_STR}),
    Kind.DEVICE_PROBE: Body({"device": STR}),
    Kind.UNIT_RUN: Body({"unit_id": STR, "task_id": STR, "collection_id": STR, "data_dir": STR, "cases": (ListOf(MAP),)},
                        {"variables": OPT_MAP, "setup_script": OPT_STR, "teardown_script": OPT_STR, "reset": BOOL}),
    Kind.RESULT_RECORD: Body({"result": MAP}),
    Kind.TASK_PLANNED: Body({"task_id": STR, "report_dir": STR},
                            {"name": OPT_STR, "cases": INT, "started_at": OPT_NUM, "secrets": (ListOf(STR),) + NONE}),
    Kind.TASK_FINISHED: Body({"task_id": STR, "expected": (ListOf((list,)),)}, {"stopped": OPT_STR}),
    Kind.TASK_REPORTED: Body({"task_id": STR, "report_dir": STR, "totals": (_TOTALS,)},
                             {"paths": OPT_MAP, "missing": (list,) + NONE, "status": OPT_STR, "storage_faults": STRS,
                              "muted": (list,) + NONE, "mutes_expired": (list,) + NONE, "history_off": OPT_STR}),
    Kind.CASE_REPORTED: Body({"task_id": STR, "case_id": STR, "status": INT},
                             {"name": OPT_STR, "outcome": OPT_STR, "runTimes": OPT_INT, "elapsed_ms": OPT_NUM, "reason": OPT_STR,
                              "executor": OPT_STR, "collection_id": OPT_STR, "index": OPT_INT}),
    Kind.STAGE_HEARTBEAT: Body({"pid": INT, "state": STR}, {"current": (_CURRENT,) + NONE, "stats": OPT_MAP}),
    Kind.STAGE_FATAL: Body({"reason": STR}),
    Kind.STAGE_DIED: Body(_STAGE, {"case": (_VICTIM,) + NONE}),   # case: what it was running, per the supervisor
    Kind.STAGE_KILL: Body(_STAGE),
    Kind.TASK_STOP: Body({}, {"task_id": OPT_STR, "reason": OPT_STR, "drain": BOOL + NONE}),
    Kind.STAGE_STOP: Body(),
    Kind.CONFIG_RELOAD: Body({"generation": INT, "changed": STRS}),
    Kind.ACK: Body({"ids": STRS}),
}
REQUIRED: dict[Kind, tuple[str, ...]] = {k: tuple(b.required) for k, b in BODIES.items()}


def _matches(value: Any, types: Types) -> str | None:
    """None when ``value`` is one of ``types``; else what is wrong (bool is not an int here)."""
    nested = ""
    for t in types:
        if isinstance(t, ListOf):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    why = _matches(item, t.item)
                    if why:
                        return f"[{i}] {why}"
                return None
        elif isinstance(t, Body):
            if isinstance(value, dict):
                why = _problem(value, t)
                if why is None:
                    return None
                nested = why
        elif isinstance(value, t) and not (isinstance(value, bool) and t is not bool):
            return None
    return nested or f"must be {_names(types)}, got {type(value).__name__} {_short(value)}"


def _problem(body: dict[str, Any], spec: Body) -> str | None:
    for key, types in spec.required.items():
        if key not in body:
            return f"lacks field {key}"
        why = _matches(body[key], types)
        if why:
            return _at(key, why)
    for key, types in spec.optional.items():
        if key in body:
            why = _matches(body[key], types)
            if why:
                return _at(key, why)
    return None


def _at(key: str, why: str) -> str:
    """Prefix a nested problem with the field it is in: ``field totals.passed ...``, ``field changed[1] ...``."""
    if why.startswith("field "):
        return f"field {key}.{why[6:]}"
    return f"field {key}{why}" if why.startswith("[") else f"field {key} {why}"


def body_problem(kind: Kind, body: dict[str, Any]) -> str | None:
    """What makes ``body`` unfit for ``kind`` (first problem found), or None. Extra keys are allowed."""
    return _problem(body, BODIES[kind])


def _names(types: Types) -> str:
    out = []
    for t in types:
        out.append(f"a list of {_names(t.item)}" if isinstance(t, ListOf) else "a map" if isinstance(t, Body)
                   else {str: "a string", int: "an int", float: "a float", bool: "a bool", dict: "a map", list: "a list",
                         type(None): "null"}.get(t, t.__name__))
    return " or ".join(out)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


# Kinds whose loss would lose work or a result: acked by the receiver, re-sent by the sender until acked.
RELIABLE: frozenset[Kind] = frozenset({
    Kind.TASK_SUBMIT, Kind.TASK_RELEASED, Kind.CASE_STARTED, Kind.CASE_FINISHED, Kind.UNIT_DONE,
    Kind.RESULT_RECORD, Kind.TASK_PLANNED, Kind.TASK_FINISHED, Kind.TASK_REPORTED, Kind.STAGE_DIED, Kind.STAGE_KILL, Kind.TASK_STOP,
})
assert set(BODIES) == set(Kind), "every kind declares its body"
