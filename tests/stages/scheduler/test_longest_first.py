"""Longest-first dispatch seeded from the run history, driven through ``Scheduler.tick()`` and through the
machine alone (the estimates come in ``Submitted``): the history is written by the real aggregator (its
per-attempt hook) from a previous run's results, then read by the scheduler stage."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.codec import Envelope
from pipeline.config import load_config_text
from pipeline.messages import Kind, TaskSubmit, UnitRun
from pipeline.models import CaseResult, Status
from pipeline.topology import RunSpec
from stages.aggregator import Aggregator
from stages.scheduler import Scheduler
from stages.scheduler.estimates import eta, eta_of, open_history, task_estimates
from stages.scheduler.events import (
    Command,
    Configured,
    ExecutorSpec,
    Log,
    Settings,
    Submitted,
    Tick,
    from_record,
    to_record,
)
from stages.scheduler.policy import FifoPolicy, LongestFirstPolicy
from tests.fakes import FakeMailbox, envelope
from tests.stages.scheduler.test_machine import WALL0, Feed, finished, play, replayed, sends, snapshot, started, status, the_run


def env(kind: Kind, body: dict[str, Any], src: str) -> Envelope[Any]:
    """The real codec's typed envelope, for any handler (each is typed with its own body)."""
    return envelope(kind, body, src=src)


def _spec(tmp_path: Path, ini: str) -> RunSpec:
    cfg = load_config_text(ini)
    return RunSpec(str(tmp_path / "run"), "run", cfg.values, report_dir=str(tmp_path / "reports"),
                   storage_root=str(tmp_path / "storage"))


def seed_history(tmp_path: Path, durations: dict[tuple[str, str], float]) -> None:
    """A previous run of task t1 through the real aggregator: one attempt per (collection, case) of that length."""
    agg = Aggregator("aggregator", 0, _spec(tmp_path, ""))
    agg.mailbox = FakeMailbox("aggregator")  # type: ignore[assignment]
    agg.on_start()
    agg.on_task_planned(env(Kind.TASK_PLANNED, {"task_id": "t1", "report_dir": str(tmp_path / "reports"),
                                                     "cases": len(durations), "started_at": 1_700_000_000.0}, src="scheduler"))
    for i, ((coll, case), secs) in enumerate(durations.items()):
        res = CaseResult(taskId="t1", collectionId=coll, caseId=case, index=1, runTimes=1, status=int(Status.PASS),
                         startTime=1_700_000_000_000 + i, endTime=1_700_000_000_000 + i + int(secs * 1000), outcome="passed",
                         executor="executor-1", transactionList=[{"id": "s", "name": "step", "status": 0}])
        agg.on_result_record(env(Kind.RESULT_RECORD, {"result": res.to_dict()}, src="scheduler"))
    agg.on_stop()


def scheduler(tmp_path: Path, ini: str = "") -> tuple[Scheduler, FakeMailbox]:
    sched = Scheduler("scheduler", 0, _spec(tmp_path, ini))
    box = FakeMailbox("scheduler")                    # tick() reads what the test put in its inbox
    sched.mailbox = box  # type: ignore[assignment]
    return sched, box


def task(*colls: tuple[str, list[str]], parallel: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {"taskId": "t1", "maxThread": 8, "testCollectionList": [
        {"collectionId": c, "parallel": c in parallel,
         "testCaseList": [{"caseId": k, "caseType": "API", "index": 1 if c in parallel else i + 1} for i, k in enumerate(cases)]}
        for c, cases in colls]}


def dispatched(box: FakeMailbox) -> list[str]:
    return [s.body["collection_id"] + "/" + ",".join(c["case_id"] for c in s.body["cases"]) for s in box.of(Kind.UNIT_RUN)]


def drive(sched: Scheduler, box: FakeMailbox, body: dict[str, Any], executors: int) -> None:
    box.deliver(env(Kind.TASK_SUBMIT, {"task": body, "data_dir": "/nonexistent", "report_dir": "/r"}, src="fetcher"))
    sched.tick()                                  # planned; nobody to run it yet
    assert not box.of(Kind.UNIT_RUN)
    for i in range(executors):
        box.deliver(env(Kind.EXECUTOR_STATUS, {"kinds": ["API"], "device": None, "idle": True, "last_unit": ""},
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
    box.deliver(env(Kind.TASK_SUBMIT, {"task": body, "data_dir": str(data), "report_dir": "/r"}, src="fetcher"))
    box.deliver(env(Kind.EXECUTOR_STATUS, {"kinds": ["API"], "device": None, "idle": True, "last_unit": ""},
                              src="executor-1"))
    sched.tick()
    assert dispatched(box) == ["five/five-case"]


def test_priority_still_rules_over_length(tmp_path: Path) -> None:
    seed_history(tmp_path, TIMES)
    sched, box = scheduler(tmp_path)
    low = task(*SUITE)
    high = {"taskId": "t2", "maxThread": 8, "priority": 5, "testCollectionList": [
        {"collectionId": "urgent", "testCaseList": [{"caseId": "u", "caseType": "API", "index": 1}]}]}
    box.deliver(env(Kind.TASK_SUBMIT, {"task": low, "data_dir": "/nonexistent", "report_dir": "/r"}, src="fetcher"))
    box.deliver(env(Kind.TASK_SUBMIT, {"task": high, "data_dir": "/nonexistent", "report_dir": "/r"}, src="fetcher"))
    box.deliver(env(Kind.EXECUTOR_STATUS, {"kinds": ["API"], "device": None, "idle": True, "last_unit": ""},
                              src="executor-1"))
    sched.tick()
    assert dispatched(box) == ["urgent/u"]


def test_eta_replays_longest_first_onto_the_executors() -> None:
    assert eta([], [], 4) == 0.0
    assert eta([], [5.0, 1.0, 1.0, 1.0, 1.0, 1.0], 2) == 5.0
    assert eta([3.0], [2.0, 2.0], 2) == 4.0          # the idle one takes a 2, then whoever frees first
    assert eta([], [1.0] * 8, 4) == 2.0


# -- the machine alone: the estimates come IN the Submitted event, journaled with it -------------------------
def history_submitted(tmp_path: Path, body: dict[str, Any], data_dir: str = "/nonexistent") -> Submitted:
    """What the stage hands the machine: the estimates read from the real history store (written by the
    real aggregator in ``seed_history``)."""
    store = open_history(_spec(tmp_path, ""), lambda *a: None)
    try:
        estimates, timed = task_estimates(store, body, data_dir)
    finally:
        if store is not None:
            store.close()
    return Submitted("fetcher", TaskSubmit(task=body, data_dir=data_dir, report_dir="/r"), estimates=estimates, timed=timed)


def units_run(cmds: list[Command]) -> list[str]:
    return [b.collection_id + "/" + ",".join(c["case_id"] for c in b.cases)
            for _, b in sends(cmds, UnitRun) if isinstance(b, UnitRun)]


def one_at_a_time(feed: Feed, executor: str = "executor-1") -> list[str]:
    """The order the machine runs the task's units in with one executor: each unit played to its end."""
    order: list[str] = []
    feed(status(executor))
    while True:
        out = feed(Tick())
        if not sends(out, UnitRun):
            return order
        order += units_run(out)
        _, u = the_run(out)
        play(feed, executor, u)


def test_a_history_seeded_submit_dispatches_the_longest_unit_first_and_a_replay_in_the_same_order(tmp_path: Path) -> None:
    seed_history(tmp_path, TIMES)
    ev = history_submitted(tmp_path, task(*SUITE))
    assert ev.timed == 6 and ev.estimates["long/l2"] == 5.0
    feed = Feed(Settings(dispatch="longest-first"))
    planned = feed(ev)
    assert any(isinstance(c, Log) and "estimated work 11.6 s (6 cases timed before)" in c.text for c in planned)
    assert feed.m.estimates.unit(feed.m.queue[0]) == 0.2 and eta_of(feed.m, WALL0) == 11.6     # queue: plan order
    order = one_at_a_time(feed)
    assert order == ["long/l1,l2", "mid/m", "short-b/b", "short-a/a", "short-c/c"]
    assert feed.m.estimates.by_task == {}                    # forgotten when the task finished
    # the journal carries the estimates: a replay decides the same order with no history to read at all
    assert [r for r in feed.journal if r[0] == "submit"][0][6] == ev.estimates
    again = Feed(Settings(dispatch="longest-first"))
    again.journal = []
    for rec in feed.journal[:1]:                             # replay just the submit, then run it again
        event, now, wall = from_record(rec)
        again.m.apply(event, now, wall)
    assert isinstance(event, Submitted) and event.estimates == ev.estimates and event.timed == 6
    assert one_at_a_time(again) == order
    assert snapshot(replayed(feed)) == snapshot(feed.m)       # the whole journal rebuilds the same state


def test_without_estimates_longest_first_counts_cases_and_fifo_keeps_plan_order() -> None:
    body = task(("one", ["a"]), ("three", ["b", "c", "d"]), ("two", ["e", "f"]))
    plain = Submitted("fetcher", TaskSubmit(task=body, data_dir="/nonexistent", report_dir="/r"))   # older journal
    assert one_at_a_time(_fed(Settings(dispatch="longest-first"), plain)) == ["three/b,c,d", "two/e,f", "one/a"]
    assert one_at_a_time(_fed(Settings(dispatch="fifo"), plain)) == ["one/a", "three/b,c,d", "two/e,f"]
    rec = to_record(plain, 1.0, WALL0)[:6]                   # a record written before estimates travelled
    event, _, _ = from_record(rec)
    assert isinstance(event, Submitted) and event.estimates == {} and event.timed == 0


def _fed(settings: Settings, ev: Submitted) -> Feed:
    feed = Feed(settings)
    feed(ev)
    return feed


def test_a_reload_switches_the_dispatch_policy(tmp_path: Path) -> None:
    seed_history(tmp_path, TIMES)
    feed = Feed(Settings(dispatch="fifo"))
    feed(history_submitted(tmp_path, task(*SUITE)))
    feed(status("executor-1"))
    out = feed(Tick())
    assert units_run(out) == ["short-a/a"]
    play(feed, "executor-1", the_run(out)[1])
    feed(Configured(Settings(dispatch="longest-first")))
    assert isinstance(feed.m.policy, LongestFirstPolicy)
    assert units_run(feed(Tick())) == ["long/l1,l2"]
    feed(Configured(Settings(dispatch="fifo")))
    assert isinstance(feed.m.policy, FifoPolicy) and not isinstance(feed.m.policy, LongestFirstPolicy)


def test_the_eta_counts_what_runs_and_what_waits_from_machine_state(tmp_path: Path) -> None:
    seed_history(tmp_path, TIMES)
    feed = Feed(Settings(dispatch="longest-first", executors=(ExecutorSpec("executor-1", ("API",)),
                                                              ExecutorSpec("executor-2", ("API",)))))
    feed(history_submitted(tmp_path, task(*SUITE)))
    assert eta_of(feed.m, WALL0) == 9.0                      # two configured executors: long (9) | 2 + .3 + .2 + .1
    feed(status("executor-1"))
    _, u = the_run(feed(Tick()))
    assert u.collection_id == "long"
    feed(started("executor-1", u, u.cases[0]))
    feed(finished("executor-1", u, u.cases[0]))
    assert eta_of(feed.m, WALL0) == 5.0                      # l1 done, l2 (5 s) not started; the rest (2.6) beside it
    feed(started("executor-1", u, u.cases[1]))                # started_ms=1: running since the epoch's first ms
    assert eta_of(feed.m, 1 / 1000 + 1.0) == 4.0             # one second into l2: 4 s left, still the longest
    assert eta_of(feed.m, 1 / 1000 + 4.0) == 2.0             # l2 frees in 1 s: 2 | 1 + .3 + .2 + .1


def test_a_restarted_scheduler_keeps_the_order_its_journal_decided_whatever_the_history_says_now(tmp_path: Path) -> None:
    seed_history(tmp_path, {**TIMES, ("mid", "m"): 30.0})    # mid, one case, the longest (without estimates: long)
    sched, box = scheduler(tmp_path)
    box.deliver(env(Kind.TASK_SUBMIT, {"task": task(*SUITE), "data_dir": "/nonexistent", "report_dir": "/r"}, src="fetcher"))
    sched.tick()
    sched.on_stop()                                           # dies before any unit ran
    flipped = {k: (20.0 if k == ("short-c", "c") else 0.1) for k in TIMES}     # the history now says short-c is longest
    seed_history(tmp_path / "flip", flipped)
    (tmp_path / "storage" / "history.sqlite").unlink()
    (tmp_path / "flip" / "storage" / "history.sqlite").rename(tmp_path / "storage" / "history.sqlite")
    control = Feed(Settings(dispatch="longest-first"))         # a task planned now would start with short-c ...
    control(history_submitted(tmp_path, task(*SUITE)))
    assert one_at_a_time(control)[0] == "short-c/c"
    again, box2 = scheduler(tmp_path)
    again.on_start()                                          # replays the journaled Submitted, estimates included
    again.adopt_until = 0.0                                   # no executor to wait for
    box2.deliver(env(Kind.EXECUTOR_STATUS, {"kinds": ["API"], "device": None, "idle": True, "last_unit": ""},
                     src="executor-1"))
    again.tick()
    assert dispatched(box2) == ["mid/m"]                      # ... the journaled one keeps the order it was planned with
    again.on_stop()
