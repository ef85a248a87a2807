"""The scheduler's state machine alone, xdist-style: feed events at FakeClock times, check the commands.
No sockets, no sleeps, no disk: the machine gets everything in its events."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.messages import (
    CaseFinished,
    CaseStarted,
    DeviceProbe,
    ExecutorStatus,
    Kind,
    Message,
    ResultRecord,
    StageDied,
    StageKill,
    TaskFinished,
    TaskPlanned,
    TaskReleased,
    TaskReported,
    TaskStop,
    TaskSubmit,
    Totals,
    UnitDone,
    UnitRun,
)
from stages.scheduler.events import (
    Command,
    Event,
    ExecutorSpec,
    Forget,
    Received,
    SaveHealth,
    Send,
    Settings,
    Started,
    Submitted,
    Tick,
    from_record,
    to_record,
)
from stages.scheduler.machine import Machine
from stages.scheduler.plan import Unit
from stages.scheduler.policy import ExecutorInfo, FifoPolicy
from tests.fakes import FakeClock

WALL0 = 1_700_000_000.0


@dataclass
class Feed:
    """A machine, a clock, and the journal the stage would keep (the records of events that changed state)."""

    settings: Settings = field(default_factory=Settings)
    clock: FakeClock = field(default_factory=FakeClock)
    machine: Machine | None = None
    journal: list[list[Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.machine = self.machine or Machine(self.settings)

    @property
    def m(self) -> Machine:
        assert self.machine is not None
        return self.machine

    def __call__(self, event: Event) -> list[Command]:
        now = self.clock.monotonic()
        wall = WALL0 + now
        out = self.m.apply(event, now, wall)
        if self.m.changed:
            self.journal.append(to_record(event, now, wall))
        return out


def sends(cmds: list[Command], kind: type[Message] | None = None) -> list[tuple[str, Message]]:
    return [(c.peer, c.body) for c in cmds if isinstance(c, Send) and (kind is None or isinstance(c.body, kind))]


def task(task_id: str = "t1", *colls: dict[str, Any], **extra: Any) -> Submitted:
    body = dict({"taskId": task_id, "maxThread": 8, "testCollectionList": list(colls) or [coll("c1", "a", "b")]}, **extra)
    return Submitted("fetcher", TaskSubmit(task=body, data_dir=f"/data/{task_id}", report_dir="/r"))


def coll(cid: str, *cases: str, **extra: Any) -> dict[str, Any]:
    return dict({"collectionId": cid, "testCaseList": [{"index": i, "caseId": c, "caseType": "API"}
                                                       for i, c in enumerate(cases, start=1)]}, **extra)


def status(name: str, idle: bool = True, inc: int = 0, kinds: tuple[str, ...] = ("API",), device: str | None = None,
           **extra: Any) -> Received:
    return Received(name, inc, ExecutorStatus(kinds=list(kinds), idle=idle, last_unit="", device=device, **extra))


def started(ex: str, u: UnitRun, c: dict[str, Any]) -> Received:
    return Received(ex, 0, CaseStarted(unit_id=u.unit_id, task_id=u.task_id, collection_id=u.collection_id,
                                       case_id=c["case_id"], index=c["index"], run_times=c["run_times"],
                                       deadline_s=c["timeout"], started_ms=1))


def finished(ex: str, u: UnitRun, c: dict[str, Any], status_: int = 0, outcome: str = "passed", **extra: Any) -> Received:
    result = {"taskId": u.task_id, "collectionId": u.collection_id, "caseId": c["case_id"], "index": c["index"],
              "runTimes": c["run_times"], "status": status_, "outcome": outcome}
    return Received(ex, 0, CaseFinished(unit_id=u.unit_id, task_id=u.task_id, collection_id=u.collection_id,
                                        case_id=c["case_id"], index=c["index"], run_times=c["run_times"], status=status_,
                                        outcome=outcome, result=result, **extra))


def the_run(cmds: list[Command]) -> tuple[str, UnitRun]:
    [(peer, body)] = sends(cmds, UnitRun)
    assert isinstance(body, UnitRun)
    return peer, body


def play(feed: Feed, ex: str, u: UnitRun, outcomes: dict[str, tuple[int, str]] | None = None) -> list[Command]:
    """``ex`` runs the whole unit: started + finished per case, then unit.done; the commands of it all."""
    out: list[Command] = []
    for c in u.cases:
        out += feed(started(ex, u, c))
        out += feed(finished(ex, u, c, *(outcomes or {}).get(c["case_id"], (0, "passed"))))
    out += feed(Received(ex, 0, UnitDone(unit_id=u.unit_id)))
    return out


# -- a task from submit to finish ----------------------------------------------------------------------
def test_a_task_is_planned_dispatched_run_and_finished() -> None:
    feed = Feed()
    planned = feed(task())
    [(peer, body)] = sends(planned)
    assert peer == "aggregator" and isinstance(body, TaskPlanned) and (body.task_id, body.cases) == ("t1", 2)
    assert body.started_at == WALL0 + feed.clock.now
    assert sends(feed(Tick())) == []                          # nobody to run it yet
    feed(status("executor-1"))
    peer, u = the_run(feed(Tick()))
    assert peer == "executor-1" and [(c["case_id"], c["run_times"]) for c in u.cases] == [("a", 1), ("b", 1)]
    assert (u.report_dir, u.data_dir) == ("/r", "/data/t1")
    out = play(feed, "executor-1", u)
    results = [b.result["caseId"] for _, b in sends(out, ResultRecord) if isinstance(b, ResultRecord)]
    assert results == ["a", "b"]                             # forwarded as they arrive
    [(_, fin)] = sends(out, TaskFinished)
    assert isinstance(fin, TaskFinished) and sorted(map(tuple, fin.expected)) == [("t1", "c1", "a", 1, 1), ("t1", "c1", "b", 2, 1)]
    assert sends(out, TaskReleased) == [("fetcher", TaskReleased(task_id="t1"))]


def test_a_duplicate_submit_and_an_unchanged_status_are_not_journaled() -> None:
    feed = Feed()
    feed(task())
    feed(status("executor-1", idle=False))
    n = len(feed.journal)
    out = feed(task())
    assert not feed.m.changed and sends(out) == []           # a re-sent submit: nothing new
    feed(status("executor-1", idle=False))                   # the same status every heartbeat
    assert len(feed.journal) == n
    feed(status("executor-1", idle=True))                    # now idle: that matters for dispatch
    assert len(feed.journal) == n + 1


def reported(task_id: str) -> Received:
    totals = Totals(cases=2, passed=2, failed=0, error=0, skipped=0, flaky=0, attempts=2)
    return Received("aggregator", 0, TaskReported(task_id=task_id, report_dir="/r", totals=totals))


def test_a_reported_task_is_dropped_journaled_and_a_second_task_still_runs() -> None:
    feed = Feed()
    feed(task("t1"))
    feed(reported("t1"))
    assert not feed.m.changed and "t1" in feed.m.tasks        # still running: its state stays
    feed(status("executor-1"))
    _, u = the_run(feed(Tick()))
    play(feed, "executor-1", u)
    feed(reported("t1"))
    assert feed.m.changed and feed.m.tasks == {} and feed.m.reported == {"t1"}
    assert sends(feed(task("t1"))) == [] and not feed.m.changed     # a duplicate submit stays ignored
    assert replayed(feed).tasks == {}                               # a replay drops it again
    feed(task("t2", coll("c1", "x")))
    _, u2 = the_run(feed(Tick()))
    out = play(feed, "executor-1", u2)
    assert u2.task_id == "t2" and [fin.task_id for _, fin in sends(out, TaskFinished) if isinstance(fin, TaskFinished)] == ["t2"]
    assert sends(Machine(feed.settings).apply(Started(feed.settings), 0.0)) == []
    restarted = replayed(feed)
    assert sorted(restarted.tasks) == ["t2"]


def test_the_task_timeout_counts_on_the_clock_it_is_handed() -> None:
    feed = Feed()
    feed(task("t1", coll("c1", "a"), timeout=60))
    feed.clock.advance(59)
    assert sends(feed(Tick())) == []
    feed.clock.advance(2)
    out = feed(Tick())
    [(_, res)] = sends(out, ResultRecord)
    assert isinstance(res, ResultRecord) and res.result["outcome"] == "broken"
    assert res.result["reason"] == "not run: task timeout after 60 s" and res.result["endTime"] == int((WALL0 + feed.clock.now) * 1000)
    assert sends(out, TaskFinished)


# -- failures ------------------------------------------------------------------------------------------
def test_an_executor_lost_mid_case_gets_a_broken_attempt_and_the_rest_moves_elsewhere() -> None:
    feed = Feed(Settings(max_attempts=2))
    feed(task("t1", coll("c1", "a", "b")))
    feed(status("executor-1"))
    feed(status("executor-2"))
    peer, u = the_run(feed(Tick()))
    feed(started(peer, u, u.cases[0]))
    out = feed(Received("supervisor", 0, StageDied(stage=peer, inc=0, reason=f"{peer} killed by signal SIGKILL (9)")))
    assert out[0] == Forget(peer)                            # its unacked unit.run must not reach its successor
    [(_, res)] = sends(out, ResultRecord)
    assert isinstance(res, ResultRecord) and (res.result["caseId"], res.result["outcome"]) == ("a", "broken")
    assert res.result["reason"].startswith(f"{peer} killed")
    other, again = the_run(feed(Tick()))
    assert other != peer and [(c["case_id"], c["run_times"]) for c in again.cases] == [("a", 2), ("b", 1)]
    assert again.unit_id != u.unit_id


def test_a_stop_kills_running_work_but_a_drain_lets_it_finish() -> None:
    for drain, killed in ((False, True), (None, True), (True, False)):
        feed = Feed()
        feed(task("t1", coll("c1", "a"), coll("c2", "b")))
        feed(status("executor-1"))
        _peer, _u = the_run(feed(Tick()))
        out = feed(Received("supervisor", 0, TaskStop(task_id=None if drain else "t1", reason="enough", drain=drain)))
        kills = sends(out, StageKill)
        assert bool(kills) is killed, drain
        skipped = [b.result for _, b in sends(out, ResultRecord) if isinstance(b, ResultRecord)]
        assert [(r["caseId"], r["outcome"], r["reason"]) for r in skipped] == [("b", "skipped", "enough")]


def test_a_down_device_is_held_probed_on_the_clock_and_re_admitted() -> None:
    feed = Feed(Settings(quarantine_probe=30.0))
    feed(status("executor-1", kinds=("APP",), device="phone-a"))
    feed(task("t1", {"collectionId": "c1", "testCaseList": [{"index": 1, "caseId": "a", "caseType": "APP"}]}))
    peer, u = the_run(feed(Tick()))
    out = feed(Received(peer, 0, UnitDone(unit_id=u.unit_id, device_down="Appium服务不可用")))
    [save] = [c for c in out if isinstance(c, SaveHealth)]
    assert save.state["held"]["executor-1"]["reason"] == "Appium服务不可用"
    out = feed(Tick())                                       # the only device is held: the handed-back case ends
    assert sends(out, DeviceProbe) == []                      # not due yet
    [(_, res)] = sends(out, ResultRecord)
    assert isinstance(res, ResultRecord) and res.result["reason"] == "no healthy device: phone-a quarantined: Appium服务不可用"
    feed.clock.advance(30)
    assert sends(feed(Tick()), DeviceProbe) == [("executor-1", DeviceProbe(device="phone-a"))]
    assert sends(feed(Tick()), DeviceProbe) == []             # not again while unanswered
    out = feed(status("executor-1", kinds=("APP",), device="phone-a", probe={"ok": True}))
    assert next(c for c in out if isinstance(c, SaveHealth)).state["held"] == {}
    feed(task("t2", {"collectionId": "c1", "testCaseList": [{"index": 1, "caseId": "a", "caseType": "APP"}]}))
    peer, again = the_run(feed(Tick()))
    assert (peer, again.task_id) == ("executor-1", "t2")


# -- the policy seam -----------------------------------------------------------------------------------
def test_the_policy_is_handed_the_queue_the_executor_and_now() -> None:
    seen: list[tuple[str, list[str], float]] = []

    class LastFirst(FifoPolicy):
        def next_for(self, ex: ExecutorInfo, queue: list[Unit], allowed: Callable[[Unit], bool],
                     others_can: Callable[[Unit], bool], *, now: float = 0.0) -> Unit | None:
            seen.append((ex.name, [u.collection_id for u in queue], now))
            return queue.pop() if queue else None

    feed = Feed(machine=Machine(Settings(), LastFirst()))
    feed(task("t1", coll("c1", "a"), coll("c2", "b")))
    feed(status("executor-1"))
    feed.clock.advance(5)
    _, u = the_run(feed(Tick()))
    assert u.collection_id == "c2" and seen == [("executor-1", ["c1", "c2"], feed.clock.now)]


# -- the journal: replay through the same apply, then Started --------------------------------------------
def replayed(feed: Feed) -> Machine:
    fresh = Machine(feed.settings)
    for rec in feed.journal:
        event, now, wall = from_record(rec)
        fresh.apply(event, now, wall)
    return fresh


def snapshot(m: Machine) -> Any:
    return ({tid: ({k: (st.attempts, st.final) for k, st in ts.cases.items()}, ts.expected, ts.in_flight, ts.stopped,
                   ts.finished_sent, ts.results) for tid, ts in m.tasks.items()},
            [(u.unit_id, u.cases) for u in m.queue],
            {n: (e.unit.unit_id if e.unit else None, e.idle, e.running) for n, e in m.executors.items()},
            m.retry.used, m.seq)


def test_replaying_the_journal_rebuilds_exactly_the_live_state() -> None:
    feed = Feed(Settings(max_attempts=2, executors=(ExecutorSpec("executor-1", ("API",)), ExecutorSpec("executor-2", ("API",)))))
    feed(task("t1", coll("c1", "a", "b"), coll("c2", "c")))
    feed(status("executor-1"))
    feed(status("executor-2"))
    out = feed(Tick())
    (p1, u1), (p2, u2) = [(p, b) for p, b in sends(out, UnitRun) if isinstance(b, UnitRun)]
    feed.clock.advance(1)
    play(feed, p1, u1, {"b": (1, "failed")})
    feed(started(p2, u2, u2.cases[0]))
    feed(Received("supervisor", 0, StageDied(stage=p2, inc=0, reason="gone")))
    feed(Tick())
    assert snapshot(replayed(feed)) == snapshot(feed.m)
    assert len(feed.journal) < 20                            # ticks that did nothing are not journaled


def test_started_after_a_replay_rebuilds_the_queue_resends_and_adopts() -> None:
    feed = Feed()
    feed(task("t1", coll("c1", "a", "b"), coll("c2", "c")))
    feed(status("executor-1"))
    feed(status("executor-2"))
    out = feed(Tick())
    (p1, u1), (p2, _u2) = [(p, b) for p, b in sends(out, UnitRun) if isinstance(b, UnitRun)]
    feed(started(p1, u1, u1.cases[0]))
    feed(finished(p1, u1, u1.cases[0]))                      # a is done; b is running when the scheduler dies
    feed(started(p1, u1, u1.cases[1]))

    again = Feed(machine=replayed(feed), clock=feed.clock, journal=list(feed.journal))
    feed.clock.advance(3)
    out = again(Started(Settings(), None, adopt_s=2.0))
    assert [b.task_id for _, b in sends(out, TaskPlanned) if isinstance(b, TaskPlanned)] == ["t1"]
    assert [b.result["caseId"] for _, b in sends(out, ResultRecord) if isinstance(b, ResultRecord)] == ["a"]
    again.m.go_live()                                        # what the stage does after Started
    assert again.m.tasks["t1"].results == []                 # re-sent: a live machine keeps none
    assert sorted((u.collection_id, [c["case_id"] for c in u.cases]) for u in again.m.queue) == [("c1", ["b"]), ("c2", ["c"])]
    assert again.m.executors == {}                           # they re-announce
    running = dict(u1.to_wire(), running=None)
    again(status(p1, idle=False, inc=0, unit=running))      # still running c1: adopted, not dispatched twice
    again(status(p2))
    assert sends(again(Tick())) == []                        # inside the adoption window
    feed.clock.advance(2)
    peer, u = the_run(again(Tick()))
    assert (peer, u.collection_id) == (p2, "c2")
    assert Kind.UNIT_RUN is UnitRun.KIND
    again(started(peer, u, u.cases[0]))
    again(finished(peer, u, u.cases[0]))
    assert again.m.tasks["t1"].results == []
    twice = Machine(Settings())                              # a second restart: the journal, with the first Started in it
    for rec in again.journal:
        twice.apply(*from_record(rec))
    out = twice.apply(Started(Settings()), 0.0)
    assert sorted(b.result["caseId"] for _, b in sends(out, ResultRecord) if isinstance(b, ResultRecord)) == ["a", "c"]


def test_while_the_reports_are_behind_one_unit_runs_at_a_time_and_the_hold_is_journaled() -> None:
    feed = Feed()
    feed(task("t1", coll("c1", "a"), coll("c2", "b"), coll("c3", "c")))
    feed(status("executor-1"))
    feed(status("executor-2"))
    first = sends(feed(Tick(reports_behind=True)), UnitRun)
    assert len(first) == 1                                  # two idle executors, one unit while behind
    assert feed.m.reports_behind and feed.m.reports_holds == 1
    assert sends(feed(Tick(reports_behind=True)), UnitRun) == []     # that unit still runs: nothing more
    peer, u = first[0]
    assert isinstance(u, UnitRun)
    play(feed, peer, u)
    assert len(sends(feed(Tick(reports_behind=True)), UnitRun)) == 1  # it ended: the next one
    resumed = sends(feed(Tick()), UnitRun)
    assert len(resumed) == 1 and not feed.m.reports_behind           # caught up: every idle executor again
    ticks = [r for r in feed.journal if r[0] == "tick"]
    assert ticks and all(len(r) == 5 for r in ticks)
    assert from_record(["tick", 1.0, 2.0, None])[0] == Tick(None, False)   # an older journal's tick: no hold
