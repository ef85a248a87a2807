"""Longest-first dispatch seeded from the run history, driven through ``Scheduler.tick()``: the history is
written by the real aggregator (its per-attempt hook) from a previous run's results, then read by the scheduler."""
from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

from pipeline.codec import Envelope
from pipeline.config import load_config_text
from pipeline.messages import Kind
from pipeline.models import CaseResult, Status
from pipeline.topology import RunSpec
from stages.aggregator import Aggregator
from stages.scheduler import Scheduler
from stages.scheduler.estimates import eta
from tests.fakes import FakeMailbox, envelope


class InboxMailbox(FakeMailbox):
    """A FakeMailbox that also delivers: ``tick()`` reads what the test put in ``inbox``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.inbox: collections.deque[Envelope] = collections.deque()

    def poll(self, timeout_ms: int) -> list[Any]:
        return []

    def recv_nowait(self) -> Envelope | None:
        return self.inbox.popleft() if self.inbox else None


def _spec(tmp_path: Path, ini: str) -> RunSpec:
    cfg = load_config_text(ini)
    return RunSpec(str(tmp_path / "run"), "run", cfg.values, report_dir=str(tmp_path / "reports"),
                   storage_root=str(tmp_path / "storage"))


def seed_history(tmp_path: Path, durations: dict[tuple[str, str], float]) -> None:
    """A previous run of task t1 through the real aggregator: one attempt per (collection, case) of that length."""
    agg = Aggregator("aggregator", 0, _spec(tmp_path, ""))
    agg.mailbox = FakeMailbox("aggregator")  # type: ignore[assignment]
    agg.on_start()
    agg.on_task_planned(envelope(Kind.TASK_PLANNED, {"task_id": "t1", "report_dir": str(tmp_path / "reports"),
                                                     "cases": len(durations), "started_at": 1_700_000_000.0}, src="scheduler"))
    for i, ((coll, case), secs) in enumerate(durations.items()):
        res = CaseResult(taskId="t1", collectionId=coll, caseId=case, index=1, runTimes=1, status=int(Status.PASS),
                         startTime=1_700_000_000_000 + i, endTime=1_700_000_000_000 + i + int(secs * 1000), outcome="passed",
                         executor="executor-1", transactionList=[{"id": "s", "name": "step", "status": 0}])
        agg.on_result_record(envelope(Kind.RESULT_RECORD, {"result": res.to_dict()}, src="scheduler"))
    agg.on_stop()


def scheduler(tmp_path: Path, ini: str = "") -> tuple[Scheduler, InboxMailbox]:
    sched = Scheduler("scheduler", 0, _spec(tmp_path, ini))
    box = InboxMailbox("scheduler")
    sched.mailbox = box
    return sched, box


def task(*colls: tuple[str, list[str]], parallel: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {"taskId": "t1", "maxThread": 8, "testCollectionList": [
        {"collectionId": c, "parallel": c in parallel,
         "testCaseList": [{"caseId": k, "caseType": "API", "index": 1 if c in parallel else i + 1} for i, k in enumerate(cases)]}
        for c, cases in colls]}


def dispatched(box: InboxMailbox) -> list[str]:
    return [s.body["collection_id"] + "/" + ",".join(c["case_id"] for c in s.body["cases"]) for s in box.of(Kind.UNIT_RUN)]


def drive(sched: Scheduler, box: InboxMailbox, body: dict[str, Any], executors: int) -> None:
    box.inbox.append(envelope(Kind.TASK_SUBMIT, {"task": body, "data_dir": "/nonexistent", "report_dir": "/r"}, src="fetcher"))
    sched.tick()                                  # planned; nobody to run it yet
    assert not box.of(Kind.UNIT_RUN)
    for i in range(executors):
        box.inbox.append(envelope(Kind.EXECUTOR_STATUS, {"kinds": ["API"], "device": None, "idle": True, "last_unit": ""},
                                  src=f"executor-{i + 1}"))
    sched.tick()


SUITE = (("short-a", ["a"]), ("short-b", ["b"]), ("long", ["l1", "l2"]), ("short-c", ["c"]), ("mid", ["m"]))
TIMES = {("short-a", "a"): 0.2, ("short-b", "b"): 0.3, ("long", "l1"): 4.0, ("long", "l2"): 5.0,
         ("short-c", "c"): 0.1, ("mid", "m"): 2.0}


def test_the_longest_unit_goes_first_from_history(tmp_path: Path) -> None:
    seed_history(tmp_path, TIMES)
    sched, box = scheduler(tmp_path)
    drive(sched, box, task(*SUITE), executors=1)
    assert dispatched(box) == ["long/l1,l2"]              # 9 s of history: first, though listed third
    stats = sched.stats()
    assert stats["eta_s"] == round(9.0 + 2.0 + 0.3 + 0.2 + 0.1, 1)     # one executor: everything in a row


def test_longest_first_over_several_executors_and_parallel_cases(tmp_path: Path) -> None:
    seed_history(tmp_path, {**TIMES, ("par", "p1"): 0.5, ("par", "p2"): 6.0})
    sched, box = scheduler(tmp_path)
    drive(sched, box, task(*SUITE, ("par", ["p1", "p2"]), parallel=frozenset({"par"})), executors=3)
    assert dispatched(box) == ["long/l1,l2", "par/p2", "mid/m"]     # a parallel collection's cases are units


def test_fifo_stays_available_and_ignores_history(tmp_path: Path) -> None:
    seed_history(tmp_path, TIMES)
    sched, box = scheduler(tmp_path, "[Pipeline]\ndispatch = fifo\n")
    drive(sched, box, task(*SUITE), executors=1)
    assert dispatched(box) == ["short-a/a"]


def test_unknown_cases_are_estimated_from_their_step_count(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for coll, steps in (("one", 1), ("five", 5), ("three", 3)):
        (data / coll).mkdir(parents=True)
        (data / coll / f"{coll}-case.json").write_text(
            json.dumps({"caseId": f"{coll}-case", "apiList": [{}] * steps}))
    sched, box = scheduler(tmp_path)                   # no history at all
    body = task(("one", ["one-case"]), ("five", ["five-case"]), ("three", ["three-case"]))
    box.inbox.append(envelope(Kind.TASK_SUBMIT, {"task": body, "data_dir": str(data), "report_dir": "/r"}, src="fetcher"))
    box.inbox.append(envelope(Kind.EXECUTOR_STATUS, {"kinds": ["API"], "device": None, "idle": True, "last_unit": ""},
                              src="executor-1"))
    sched.tick()
    assert dispatched(box) == ["five/five-case"]


def test_priority_still_rules_over_length(tmp_path: Path) -> None:
    seed_history(tmp_path, TIMES)
    sched, box = scheduler(tmp_path)
    low = task(*SUITE)
    high = {"taskId": "t2", "maxThread": 8, "priority": 5, "testCollectionList": [
        {"collectionId": "urgent", "testCaseList": [{"caseId": "u", "caseType": "API", "index": 1}]}]}
    box.inbox.append(envelope(Kind.TASK_SUBMIT, {"task": low, "data_dir": "/nonexistent", "report_dir": "/r"}, src="fetcher"))
    box.inbox.append(envelope(Kind.TASK_SUBMIT, {"task": high, "data_dir": "/nonexistent", "report_dir": "/r"}, src="fetcher"))
    box.inbox.append(envelope(Kind.EXECUTOR_STATUS, {"kinds": ["API"], "device": None, "idle": True, "last_unit": ""},
                              src="executor-1"))
    sched.tick()
    assert dispatched(box) == ["urgent/u"]


def test_eta_replays_longest_first_onto_the_executors() -> None:
    assert eta([], [], 4) == 0.0
    assert eta([], [5.0, 1.0, 1.0, 1.0, 1.0, 1.0], 2) == 5.0
    assert eta([3.0], [2.0, 2.0], 2) == 4.0          # the idle one takes a 2, then whoever frees first
    assert eta([], [1.0] * 8, 4) == 2.0
