"""A unit whose first cases all depend on something that did not pass (or does not exist) is settled in one
go: none of them reaches an idle executor (the rest of a unit re-queued after its first case was skipped
used to wait for the next turn, and an executor that was idle already got it dispatched)."""
from __future__ import annotations

from pathlib import Path

from pipeline.messages import Kind
from pipeline.models import Status
from tests.stages.scheduler.test_scheduler import cases_of, coll, executor, make, results, runs, submit


def test_every_blocked_first_case_is_skipped_before_dispatch(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    executor(sched, "executor-1")                   # idle before the task arrives
    submit(sched, coll("c1", {"caseId": "a", "dependencies": ["gone"]}, {"caseId": "b", "dependencies": ["gone"]}, "c"))
    sched.on_tick()
    skipped = [(r["caseId"], r["status"], r["reason"]) for r in results(fake)]
    assert skipped == [("a", Status.SKIP, "skipped: dependency gone did not pass"),
                       ("b", Status.SKIP, "skipped: dependency gone did not pass")]
    assert [cases_of(r) for r in runs(fake)] == [[("c", 1)]]      # only the free case runs


def test_a_unit_of_blocked_cases_only_finishes_the_task(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    executor(sched, "executor-1")
    submit(sched, coll("c1", {"caseId": "a", "dependencies": ["gone"]}, {"caseId": "b", "dependencies": ["gone"]}))
    sched.on_tick()
    assert runs(fake) == []
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert sorted(map(tuple, fin.body["expected"])) == [("t1", "c1", "a", 1, 1), ("t1", "c1", "b", 2, 1)]
