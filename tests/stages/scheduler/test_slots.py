"""Slots that never leak (stages/scheduler/slots.py): the pure check with hand-given times, then the real
Scheduler with a lost ``unit.done`` and a lost ``unit.run`` (the message is simply never delivered)."""
from __future__ import annotations

import time
from pathlib import Path

from pipeline.messages import Kind
from stages.scheduler.slots import SlotWatch
from tests.fakes import envelope
from tests.stages.scheduler.test_scheduler import (
    coll,
    executor,
    finish,
    make,
    runs,
    start,
    submit,
)


def test_a_disagreement_is_acted_on_once_after_reports_span_the_grace() -> None:
    w = SlotWatch(grace=5.0)
    w.report("e1", False, "u0", 0.0)                       # may predate the unit.run: never enough alone
    assert w.check({"e1": "u1"}, False, 0.1) == []
    w.report("e1", False, "u0", 3.0)
    assert w.check({"e1": "u1"}, False, 3.0) == []
    w.report("e1", True, "u1", 4.0)                        # it got the unit after all: start over
    assert w.check({"e1": "u1"}, False, 4.0) == []
    w.report("e1", False, "u0", 5.0)
    assert w.check({"e1": "u1"}, False, 5.0) == []
    w.report("e1", False, "u0", 10.5)
    [a] = w.check({"e1": "u1"}, False, 10.5)
    assert a.kind == "replace" and a.executor == "e1" and "never received unit u1" in a.reason
    w.report("e1", False, "u0", 12.0)
    assert w.check({"e1": "u1"}, False, 12.0) == []        # once


def test_a_finished_unit_whose_done_was_lost_is_finished() -> None:
    w = SlotWatch(grace=2.0)
    for t in (0.0, 1.0, 2.5):
        w.report("e1", False, "u1", t)
        actions = w.check({"e1": "u1"}, False, t)
    assert [(a.kind, a.unit_id) for a in actions] == [("finish", "u1")]


def test_idle_executors_beside_runnable_work_are_logged_once_per_episode() -> None:
    w = SlotWatch(grace=2.0)
    assert w.check({}, True, 0.0) == []
    [a] = w.check({}, True, 2.0)
    assert a.kind == "stuck" and "2.0 s" in a.reason
    assert w.check({}, True, 9.0) == []
    assert w.check({}, False, 9.5) == [] and w.check({}, True, 10.0) == []


def _status(sched: object, name: str, last_unit: str) -> None:
    sched.on_executor_status(envelope(Kind.EXECUTOR_STATUS, {"kinds": ["API"], "device": None, "idle": True,  # type: ignore[attr-defined]
                                                             "last_unit": last_unit}, src=name))


def test_lost_unit_done_heals_and_the_task_finishes(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    sched.slots.grace = 0.2
    submit(sched, coll("c1", "a"), coll("c2", "b"), maxThread=1)
    executor(sched, "executor-1")
    sched.on_tick()
    [first] = runs(fake)
    c = first.body["cases"][0]
    start(sched, "executor-1", first.body, c)
    finish(sched, "executor-1", first.body, c)
    # its unit.done is lost on purpose: the executor goes on reporting itself idle after that unit
    for _ in range(3):
        _status(sched, "executor-1", first.body["unit_id"])
        sched.on_tick()
        time.sleep(0.15)
    _status(sched, "executor-1", first.body["unit_id"])
    sched.on_tick()
    assert len(runs(fake)) == 2, "the leaked slot was not healed"
    second = runs(fake)[1]
    assert second.peer == "executor-1" and second.body["collection_id"] != first.body["collection_id"]
    assert not fake.of(Kind.STAGE_KILL)


def test_lost_unit_run_replaces_the_executor_and_the_unit_runs_elsewhere(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    sched.slots.grace = 0.2
    submit(sched, coll("c1", "a"))
    executor(sched, "executor-1")
    sched.on_tick()
    [lost] = runs(fake)                          # never delivered: executor-1 keeps reporting no unit
    for _ in range(3):
        _status(sched, "executor-1", "")
        sched.on_tick()
        time.sleep(0.15)
    _status(sched, "executor-1", "")
    sched.on_tick()
    [kill] = fake.of(Kind.STAGE_KILL)
    assert kill.peer == "supervisor" and kill.body["stage"] == "executor-1" and "never received" in kill.body["reason"]
    sched.on_stage_died(envelope(Kind.STAGE_DIED, {"stage": "executor-1", "inc": 0, "reason": kill.body["reason"]},
                                 src="supervisor"))
    executor(sched, "executor-2")
    sched.on_tick()
    again = runs(fake)[-1]
    assert again.peer == "executor-2" and [x["case_id"] for x in again.body["cases"]] == ["a"]
    assert again.body["cases"][0]["run_times"] == lost.body["cases"][0]["run_times"]    # not an attempt: it never ran
