"""Every message kind, declared once: ``Kind`` + the body fields each kind must carry + which kinds are
delivered reliably (acked, re-sent until acked, de-duplicated by ``msg_id`` at the receiver).

Bodies travel as str-keyed maps; ``REQUIRED`` lists the keys a receiver may rely on, so a message missing
one is rejected by the codec as malformed (dead-lettered) instead of crashing a handler.
"""
from __future__ import annotations

import enum

__all__ = ["Kind", "REQUIRED", "RELIABLE"]


class Kind(str, enum.Enum):
    # fetcher -> scheduler
    TASK_SUBMIT = "task.submit"            # {task, data_dir, report_dir, source}
    # scheduler -> fetcher (platform mode: the slot is free again)
    TASK_RELEASED = "task.released"        # {task_id}
    # executor -> scheduler
    EXECUTOR_STATUS = "executor.status"    # {kinds, device, idle, last_unit, probe?: {ok, error}}
    CASE_STARTED = "case.started"          # {unit_id, task_id, collection_id, case_id, index, run_times, deadline_s, name}
    CASE_FINISHED = "case.finished"        # {unit_id, task_id, collection_id, case_id, index, run_times, status, outcome, variables}
    UNIT_DONE = "unit.done"                # {unit_id, device_down?}  device_down: why the health ladder failed
    # scheduler -> executor
    UNIT_RUN = "unit.run"                  # {unit_id, task_id, collection_id, data_dir, cases, variables, reset}
    # scheduler -> executor of a quarantined device: run the health ladder, answer with executor.status {probe}
    DEVICE_PROBE = "device.probe"          # {device}
    # executor/scheduler -> aggregator
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


REQUIRED: dict[Kind, tuple[str, ...]] = {
    Kind.TASK_SUBMIT: ("task", "data_dir"),
    Kind.TASK_RELEASED: ("task_id",),
    Kind.EXECUTOR_STATUS: ("kinds", "idle", "last_unit"),
    Kind.CASE_STARTED: ("unit_id", "task_id", "collection_id", "case_id", "index", "run_times", "deadline_s"),
    Kind.CASE_FINISHED: ("unit_id", "task_id", "collection_id", "case_id", "index", "run_times", "status", "outcome"),
    Kind.UNIT_DONE: ("unit_id",),
    Kind.UNIT_RUN: ("unit_id", "task_id", "collection_id", "data_dir", "cases"),
    Kind.DEVICE_PROBE: ("device",),
    Kind.RESULT_RECORD: ("result",),
    Kind.TASK_PLANNED: ("task_id", "report_dir"),
    Kind.TASK_FINISHED: ("task_id", "expected"),
    Kind.TASK_REPORTED: ("task_id", "report_dir", "totals"),
    Kind.CASE_REPORTED: ("task_id", "case_id", "status"),
    Kind.STAGE_HEARTBEAT: ("pid", "state"),
    Kind.STAGE_FATAL: ("reason",),
    Kind.STAGE_DIED: ("stage", "inc", "reason"),
    Kind.STAGE_KILL: ("stage", "inc", "reason"),
    Kind.TASK_STOP: (),
    Kind.STAGE_STOP: (),
    Kind.CONFIG_RELOAD: ("generation", "changed"),
    Kind.ACK: ("ids",),
}

# Kinds whose loss would lose work or a result: acked by the receiver, re-sent by the sender until acked.
RELIABLE: frozenset[Kind] = frozenset({
    Kind.TASK_SUBMIT, Kind.TASK_RELEASED, Kind.CASE_STARTED, Kind.CASE_FINISHED, Kind.UNIT_DONE,
    Kind.RESULT_RECORD, Kind.TASK_PLANNED, Kind.TASK_FINISHED, Kind.TASK_REPORTED, Kind.STAGE_DIED, Kind.STAGE_KILL, Kind.TASK_STOP,
})
assert set(REQUIRED) == set(Kind), "every kind declares its required body keys"
