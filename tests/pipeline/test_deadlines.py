"""Per-case deadline table: started/step/finished and each victim returned exactly once."""
from __future__ import annotations

from pipeline.deadlines import DeadlineTable


def test_deadline_accounts_for_time_already_spent() -> None:
    t = DeadlineTable()
    t.started("executor-1", 0, "login (k1#1, attempt 1)", budget=10.0, elapsed=3.0, now=100.0)
    r = t.get("executor-1")
    assert r is not None and r.deadline == 107.0 and r.budget == 10.0
    assert t.expired(106.99) == []
    [victim] = t.expired(107.0)
    assert (victim.stage, victim.inc, victim.case, victim.signalled_at) == ("executor-1", 0, "login (k1#1, attempt 1)", 107.0)


def test_each_victim_is_returned_once() -> None:
    t = DeadlineTable()
    t.started("executor-1", 0, "a", 5.0, 0.0, now=0.0)
    t.started("executor-2", 0, "b", 50.0, 0.0, now=0.0)
    assert [r.stage for r in t.expired(10.0)] == ["executor-1"]
    assert t.expired(11.0) == [] and t.expired(20.0) == []
    assert [r.stage for r in t.expired(50.0)] == ["executor-2"]


def test_repeated_heartbeats_of_the_same_case_do_not_move_the_deadline() -> None:
    t = DeadlineTable()
    t.started("executor-1", 2, "a", 10.0, 0.0, now=0.0)
    t.started("executor-1", 2, "a", 10.0, 4.0, now=5.0)        # a later heartbeat of the same attempt
    assert t.get("executor-1").deadline == 10.0  # type: ignore[union-attr]


def test_a_new_case_or_incarnation_restarts_the_clock() -> None:
    t = DeadlineTable()
    t.started("executor-1", 0, "a", 10.0, 0.0, now=0.0)
    t.step("executor-1", "step 3")
    t.started("executor-1", 0, "b", 10.0, 0.0, now=8.0)
    r = t.get("executor-1")
    assert r is not None and (r.case, r.deadline, r.step) == ("b", 18.0, "")
    t.started("executor-1", 1, "b", 10.0, 1.0, now=9.0)         # restarted executor, same case: new attempt
    assert t.get("executor-1").inc == 1 and t.get("executor-1").deadline == 18.0  # type: ignore[union-attr]


def test_step_names_the_victim_and_finished_clears() -> None:
    t = DeadlineTable()
    t.step("executor-9", "ignored: nothing running")
    assert t.get("executor-9") is None
    t.started("executor-1", 0, "a", 1.0, 0.0, now=0.0)
    t.step("executor-1", "打开页面")
    assert t.expired(2.0)[0].step == "打开页面"
    t.finished("executor-1")
    t.finished("executor-1")                                   # idempotent
    assert t.get("executor-1") is None and t.expired(100.0) == []


def test_same_case_reported_again_keeps_its_deadline_and_takes_the_better_label() -> None:
    t = DeadlineTable()
    t.started("executor-1", 0, "k (k#1, attempt 1)", 3.0, 0.0, now=10.0, key=("k", 1, 1), since=100.0, named=False)
    t.started("executor-1", 0, "登录 (k#1, attempt 1)", 3.0, 0.5, now=11.0, key=("k", 1, 1), since=100.5)   # heartbeat
    t.started("executor-1", 0, "k (k#1, attempt 1)", 3.0, 0.0, now=11.5, key=("k", 1, 1), since=100.0, named=False)  # late
    r = t.get("executor-1")
    assert r is not None and (r.case, r.deadline) == ("登录 (k#1, attempt 1)", 13.0)
    assert [x.case for x in t.expired(13.0)] == ["登录 (k#1, attempt 1)"]


def test_a_stale_nothing_running_report_does_not_clear_a_newer_case() -> None:
    t = DeadlineTable()
    t.started("executor-1", 0, "k", 3.0, 0.0, now=10.0, key=("k", 1, 1), since=100.0)
    t.finished("executor-1", as_of=99.9)              # a heartbeat built before the case started
    assert t.get("executor-1") is not None
    t.finished("executor-1", as_of=100.2)
    assert t.get("executor-1") is None
