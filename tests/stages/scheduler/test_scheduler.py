"""Scheduler logic without processes: handlers driven with envelopes, sends recorded by a FakeMailbox."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config_text
from pipeline.messages import Kind
from pipeline.models import Status
from pipeline.topology import RunSpec
from stages.scheduler import Scheduler
from tests.fakes import FakeMailbox, Sent, envelope


def make(tmp_path: Path, ini: str = "", tags: list[str] | None = None) -> tuple[Scheduler, FakeMailbox]:
    cfg = load_config_text(ini)
    spec = RunSpec(str(tmp_path), "run", cfg.values, tags=tags or [], report_dir=str(tmp_path / "reports"),
                   storage_root=str(tmp_path / "storage"))
    sched = Scheduler("scheduler", 0, spec)
    fake = FakeMailbox("scheduler")
    sched.mailbox = fake  # type: ignore[assignment]
    return sched, fake


def coll(cid: str, *cases: str | dict[str, Any], **extra: Any) -> dict[str, Any]:
    refs = []
    for i, c in enumerate(cases, start=1):
        ref = {"caseId": c, "caseType": "API"} if isinstance(c, str) else dict({"caseType": "API"}, **c)
        refs.append(dict({"index": i}, **ref))
    return dict({"collectionId": cid, "testCaseList": refs}, **extra)


def submit(sched: Scheduler, *colls: dict[str, Any], task_id: str = "t1", **task: Any) -> None:
    body = {"taskId": task_id, "maxThread": 8, "testCollectionList": list(colls)}
    body.update(task)
    sched.on_task_submit(envelope(Kind.TASK_SUBMIT, {"task": body, "data_dir": "/data/" + task_id, "report_dir": "/r"}, src="fetcher"))


def executor(sched: Scheduler, name: str, kinds: tuple[str, ...] = ("API",), inc: int = 0, idle: bool = True) -> None:
    sched.on_executor_status(envelope(Kind.EXECUTOR_STATUS, {"kinds": list(kinds), "device": None, "idle": idle, "last_unit": ""},
                                      src=name, inc=inc))


def runs(fake: FakeMailbox) -> list[Sent]:
    return fake.of(Kind.UNIT_RUN)


def cases_of(s: Sent) -> list[tuple[str, int]]:
    return [(c["case_id"], c["run_times"]) for c in s.body["cases"]]


def start(sched: Scheduler, ex: str, unit: dict[str, Any], case: dict[str, Any]) -> None:
    sched.on_case_started(envelope(Kind.CASE_STARTED, {
        "unit_id": unit["unit_id"], "task_id": unit["task_id"], "collection_id": unit["collection_id"], "case_id": case["case_id"],
        "index": case["index"], "run_times": case["run_times"], "deadline_s": case["timeout"]}, src=ex))


def finish(sched: Scheduler, ex: str, unit: dict[str, Any], case: dict[str, Any], status: Status = Status.PASS,
           variables: dict[str, Any] | None = None) -> None:
    outcome = {Status.PASS: "passed", Status.FAIL: "failed", Status.ERROR: "error", Status.SKIP: "skipped"}[status]
    sched.on_case_finished(envelope(Kind.CASE_FINISHED, {
        "unit_id": unit["unit_id"], "task_id": unit["task_id"], "collection_id": unit["collection_id"], "case_id": case["case_id"],
        "index": case["index"], "run_times": case["run_times"], "status": int(status), "outcome": outcome,
        "variables": variables or {}}, src=ex))


def done(sched: Scheduler, ex: str, unit: dict[str, Any]) -> None:
    sched.on_unit_done(envelope(Kind.UNIT_DONE, {"unit_id": unit["unit_id"]}, src=ex))


def run_unit(sched: Scheduler, s: Sent, statuses: dict[str, Status] | None = None) -> None:
    """The executor named by ``s.peer`` runs the whole unit: started/finished per case, then unit.done."""
    for c in s.body["cases"]:
        start(sched, s.peer, s.body, c)
        finish(sched, s.peer, s.body, c, (statuses or {}).get(c["case_id"], Status.PASS))
    done(sched, s.peer, s.body)


def results(fake: FakeMailbox) -> list[dict[str, Any]]:
    return [s.body["result"] for s in fake.of(Kind.RESULT_RECORD)]


# -- credit, maxThread, order ---------------------------------------------------------------------------
def test_one_unit_per_idle_executor_and_no_second_before_unit_done(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a", "b"), coll("c2", "c"), coll("c3", "d"))
    executor(sched, "executor-1")
    executor(sched, "executor-2")
    sched._dispatch()
    first = runs(fake)
    assert sorted(s.peer for s in first) == ["executor-1", "executor-2"]
    assert [cases_of(s) for s in first] == [[("a", 1), ("b", 1)], [("c", 1)]]
    executor(sched, "executor-1")                       # a heartbeat status saying idle while it holds a unit
    sched._dispatch()
    sched._dispatch()
    assert len(runs(fake)) == 2
    run_unit(sched, first[0])
    sched._dispatch()
    assert [(s.peer, cases_of(s)) for s in runs(fake)[2:]] == [("executor-1", [("d", 1)])]


def test_unit_body_carries_what_the_executor_needs(tmp_path: Path) -> None:
    sched, fake = make(tmp_path, "[Pipeline]\ncase-timeout = 42\n")
    submit(sched, coll("c1", {"caseId": "a", "timeout": 5}, "b", variables={"host": "x"}, setupScript="s1"))
    executor(sched, "executor-1")
    sched._dispatch()
    [s] = runs(fake)
    assert s.body["task_id"] == "t1" and s.body["collection_id"] == "c1" and s.body["data_dir"] == "/data/t1"
    assert s.body["variables"] == {"host": "x"} and s.body["setup_script"] == "s1"
    assert [(c["case_id"], c["index"], c["case_type"], c["timeout"]) for c in s.body["cases"]] == [("a", 1, "API", 5.0), ("b", 2, "API", 42.0)]


@pytest.mark.parametrize("max_thread, expected", [(1, 1), (2, 2), (5, 3)])
def test_max_thread_caps_units_in_flight(tmp_path: Path, max_thread: int, expected: int) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a"), coll("c2", "b"), coll("c3", "c"), maxThread=max_thread)
    for i in range(4):
        executor(sched, f"executor-{i}")
    sched._dispatch()
    assert len(runs(fake)) == expected


def test_collection_order_then_list_order(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("late", "x", order=2), coll("first", "y", order=0), coll("second", "z", order=1), maxThread=1)
    executor(sched, "executor-1")
    seen = []
    for _ in range(3):
        sched._dispatch()
        s = runs(fake)[-1]
        seen.append(s.body["collection_id"])
        run_unit(sched, s)
    assert seen == ["first", "second", "late"]


def test_higher_priority_task_goes_first(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a"), task_id="low", priority=0)
    submit(sched, coll("c1", "a"), task_id="high", priority=5)
    submit(sched, coll("c1", "a"), task_id="mid", priority=1)
    executor(sched, "executor-1")
    order = []
    for _ in range(3):
        sched._dispatch()
        s = runs(fake)[-1]
        order.append(s.body["task_id"])
        run_unit(sched, s)
    assert order == ["high", "mid", "low"]


def test_parallel_collection_is_split_per_case(tmp_path: Path) -> None:
    sched, fake = make(tmp_path, "[Pipeline]\ndispatch = fifo\n")      # the FIFO order (longest-first: test_longest_first.py)
    submit(sched, coll("p", "a", "b", {"caseId": "c", "priority": 9}, parallel=True), coll("s", "d", "e"))
    for i in range(5):
        executor(sched, f"executor-{i}")
    sched._dispatch()
    assert [cases_of(s) for s in runs(fake)] == [[("c", 1)], [("a", 1)], [("b", 1)], [("d", 1), ("e", 1)]]


def test_executor_only_gets_units_of_kinds_it_runs(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("web", {"caseId": "w", "caseType": "WEB"}), coll("api", "a"))
    executor(sched, "executor-1", ("API",))
    sched._dispatch()
    assert [(s.peer, s.body["collection_id"]) for s in runs(fake)] == [("executor-1", "api")]
    executor(sched, "executor-2", ("API", "WEB"))
    sched._dispatch()
    assert [(s.peer, s.body["collection_id"]) for s in runs(fake)][1:] == [("executor-2", "web")]


# -- planning: tags, disabled, dependencies ---------------------------------------------------------------
def test_tags_filter_plans_only_matching_cases(tmp_path: Path) -> None:
    sched, fake = make(tmp_path, tags=["smoke"])
    submit(sched, coll("c1", {"caseId": "a", "tags": ["smoke", "api"]}, {"caseId": "b", "tags": ["slow"]}, "c"))
    executor(sched, "executor-1")
    sched._dispatch()
    [s] = runs(fake)
    assert cases_of(s) == [("a", 1)]
    run_unit(sched, s)
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert fin.body["expected"] == [["t1", "c1", "a", 1, 1]]


def test_disabled_case_is_skipped_with_its_reason(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a", {"caseId": "b", "enabled": False, "skipReason": "env not ready"}, {"caseId": "c", "enabled": False}))
    [planned] = fake.of(Kind.TASK_PLANNED, "aggregator")
    assert planned.body["task_id"] == "t1" and planned.body["cases"] == 3
    skipped = {r["caseId"]: r for r in results(fake)}
    assert set(skipped) == {"b", "c"}
    assert skipped["b"]["status"] == Status.SKIP and skipped["b"]["outcome"] == "skipped" and skipped["b"]["reason"] == "case disabled: env not ready"
    assert skipped["c"]["reason"] == "case disabled (enabled=false)"
    assert skipped["b"]["transactionList"], "the platform refuses a result without steps"
    executor(sched, "executor-1")
    sched._dispatch()
    assert [cases_of(s) for s in runs(fake)] == [[("a", 1)]]


def test_all_disabled_task_finishes_at_once(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", {"caseId": "a", "enabled": False}))
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert fin.body["expected"] == [["t1", "c1", "a", 1, 1]]
    assert fake.of(Kind.TASK_RELEASED, "fetcher")[0].body == {"task_id": "t1"}


def test_dependency_waits_until_the_dependency_passed(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "login"), coll("c2", {"caseId": "order", "dependencies": ["login"]}))
    executor(sched, "executor-1")
    executor(sched, "executor-2")
    sched._dispatch()
    [first] = runs(fake)
    assert cases_of(first) == [("login", 1)]               # "order" waits though an executor is idle
    sched.on_tick()
    assert len(runs(fake)) == 1
    run_unit(sched, first)
    sched.on_tick()
    assert cases_of(runs(fake)[1]) == [("order", 1)]


def test_dependency_that_failed_skips_the_dependent_with_the_reason(tmp_path: Path) -> None:
    sched, fake = make(tmp_path, "[Retry]\nretry-failures = false\n")
    submit(sched, coll("c1", "login"), coll("c2", {"caseId": "order", "dependencies": ["login"]}, "after"))
    executor(sched, "executor-1")
    sched._dispatch()
    run_unit(sched, runs(fake)[0], {"login": Status.FAIL})
    sched.on_tick()
    skip = [r for r in results(fake) if r["caseId"] == "order"]
    assert [(r["status"], r["reason"]) for r in skip] == [(Status.SKIP, "skipped: dependency login did not pass")]
    assert cases_of(runs(fake)[-1]) == [("after", 1)]      # the rest of the collection still runs
    run_unit(sched, runs(fake)[-1])
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert sorted(map(tuple, fin.body["expected"])) == [("t1", "c1", "login", 1, 1), ("t1", "c2", "after", 2, 1), ("t1", "c2", "order", 1, 1)]


# -- executor death ---------------------------------------------------------------------------------------
def test_executor_death_mid_case(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a", "b", "c", variables={"v": 0}))
    executor(sched, "executor-1")
    sched._dispatch()
    [s] = runs(fake)
    a, b, _ = s.body["cases"]
    start(sched, "executor-1", s.body, a)
    finish(sched, "executor-1", s.body, a, variables={"v": 1, "token": "abc"})
    start(sched, "executor-1", s.body, b)
    executor(sched, "executor-2")
    reason = "executor-1 killed by SIGKILL while running case b (b#2, attempt 1)"
    sched.on_stage_died(envelope(Kind.STAGE_DIED, {"stage": "executor-1", "inc": 0, "reason": reason}, src="supervisor"))
    [broken] = [r for r in results(fake) if r["caseId"] == "b"]
    assert (broken["status"], broken["outcome"], broken["reason"], broken["runTimes"], broken["executor"]) == (
        Status.ERROR, "broken", reason, 1, "executor-1")
    executor(sched, "executor-1", inc=1)                  # restarted, and idle before executor-2 asks
    sched.executors["executor-1"].idle_since = -1.0
    sched._dispatch()
    retry = runs(fake)[-1]
    assert retry.peer == "executor-2", "the retry prefers an executor that did not just break on it"
    assert cases_of(retry) == [("b", 2), ("c", 1)]
    assert retry.body["variables"] == {"v": 1, "token": "abc"}   # the collection context it had reached
    run_unit(sched, retry)
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert sorted(map(tuple, fin.body["expected"])) == [
        ("t1", "c1", "a", 1, 1), ("t1", "c1", "b", 2, 1), ("t1", "c1", "b", 2, 2), ("t1", "c1", "c", 3, 1)]


def test_lone_executor_takes_back_the_unit_it_broke_on(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a"))
    executor(sched, "executor-1")
    sched._dispatch()
    s = runs(fake)[0]
    start(sched, "executor-1", s.body, s.body["cases"][0])
    executor(sched, "executor-1", inc=1)                  # the new incarnation's status comes first
    assert [r["reason"] for r in results(fake)] == ["executor-1 restarted (incarnation 1)"]
    sched._dispatch()
    assert (runs(fake)[-1].peer, cases_of(runs(fake)[-1])) == ("executor-1", [("a", 2)])


def test_stale_stage_died_and_old_incarnation_status_are_ignored(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a"))
    executor(sched, "executor-1", inc=3)
    sched._dispatch()
    sched.on_stage_died(envelope(Kind.STAGE_DIED, {"stage": "executor-1", "inc": 2, "reason": "old"}, src="supervisor"))
    executor(sched, "executor-1", inc=2)
    assert results(fake) == [] and sched.executors["executor-1"].unit is not None


def test_death_of_an_idle_executor_changes_nothing(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    executor(sched, "executor-1")
    sched.on_stage_died(envelope(Kind.STAGE_DIED, {"stage": "executor-1", "inc": 0, "reason": "x"}, src="supervisor"))
    assert "executor-1" not in sched.executors and fake.sent == []


# -- retries and the finish ------------------------------------------------------------------------------
@pytest.mark.parametrize("ini, rerun, case_retry, statuses, expected_attempts", [
    ("", False, 0, [Status.FAIL], 1),                                   # no reRun: one round
    ("", True, 0, [Status.FAIL, Status.FAIL], 2),                       # reRun = one more round
    ("", True, 0, [Status.FAIL, Status.PASS], 2),
    ("", False, 2, [Status.ERROR, Status.FAIL, Status.FAIL], 3),         # the case's own retry count
    ("[Retry]\nretry-failures = false\n", True, 2, [Status.FAIL], 1),   # product failures not retried
    ("[Retry]\nbudget = 0\n", True, 0, [Status.FAIL], 1),               # budget spent
    ("", True, 0, [Status.PASS], 1),
    ("", True, 0, [Status.SKIP], 1),
])
def test_retry_policy(tmp_path: Path, ini: str, rerun: bool, case_retry: int, statuses: list[Status], expected_attempts: int) -> None:
    sched, fake = make(tmp_path, ini)
    submit(sched, coll("c1", {"caseId": "a", "retry": case_retry}), reRun=rerun)
    executor(sched, "executor-1")
    for st in statuses:
        sched._dispatch()
        s = runs(fake)[-1]
        run_unit(sched, s, {"a": st})
    sched._dispatch()
    assert [cases_of(s) for s in runs(fake)] == [[("a", n)] for n in range(1, expected_attempts + 1)]
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert fin.body["expected"] == [["t1", "c1", "a", 1, n] for n in range(1, expected_attempts + 1)]


def test_broken_attempts_retry_up_to_max_attempts_even_without_retry_failures(tmp_path: Path) -> None:
    sched, fake = make(tmp_path, "[Retry]\nretry-failures = false\nmax-attempts = 3\n")
    submit(sched, coll("c1", "a"))
    for inc in range(3):
        executor(sched, "executor-1", inc=inc)
        sched._dispatch()
        s = runs(fake)[-1]
        start(sched, "executor-1", s.body, s.body["cases"][0])
        sched.on_stage_died(envelope(Kind.STAGE_DIED, {"stage": "executor-1", "inc": inc, "reason": f"crash {inc}"}, src="supervisor"))
    executor(sched, "executor-1", inc=3)
    sched._dispatch()
    assert len(runs(fake)) == 3
    assert [(r["runTimes"], r["reason"]) for r in results(fake)] == [(1, "crash 0"), (2, "crash 1"), (3, "crash 2")]
    assert len(fake.of(Kind.TASK_FINISHED)) == 1


def test_resent_case_finished_is_counted_once(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a", "b"))
    executor(sched, "executor-1")
    sched._dispatch()
    s = runs(fake)[0]
    a = s.body["cases"][0]
    finish(sched, "executor-1", s.body, a)
    finish(sched, "executor-1", s.body, a)
    assert sched.tasks["t1"].expected == [["t1", "c1", "a", 1, 1]]


def test_task_finished_carries_exactly_the_expected_keys(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a", {"caseId": "b", "enabled": False}), coll("c2", "c"), reRun=True)
    executor(sched, "executor-1")
    executor(sched, "executor-2")
    sched._dispatch()
    u1, u2 = runs(fake)
    run_unit(sched, u1)
    assert fake.of(Kind.TASK_FINISHED) == []               # c2 is still running
    run_unit(sched, u2, {"c": Status.FAIL})
    assert fake.of(Kind.TASK_FINISHED) == []               # c gets its rerun
    sched._dispatch()
    run_unit(sched, runs(fake)[-1])
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert fin.peer == "aggregator" and set(fin.body) == {"task_id", "expected", "stopped"}
    assert fin.body["task_id"] == "t1" and fin.body["stopped"] == ""
    assert sorted(map(tuple, fin.body["expected"])) == [
        ("t1", "c1", "a", 1, 1), ("t1", "c1", "b", 2, 1), ("t1", "c2", "c", 1, 1), ("t1", "c2", "c", 1, 2)]
    assert [s.body for s in fake.of(Kind.TASK_RELEASED)] == [{"task_id": "t1"}]
    sched.on_tick()
    assert len(fake.of(Kind.TASK_FINISHED)) == 1           # once


def test_duplicate_submit_is_ignored(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a"))
    submit(sched, coll("c1", "a", "b"))
    assert len(fake.of(Kind.TASK_PLANNED)) == 1 and len(sched.queue) == 1


# -- stop ------------------------------------------------------------------------------------------------
def test_stop_skips_queued_work_and_finishes_after_running_units(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a"), coll("c2", "b"), maxThread=1)
    executor(sched, "executor-1")
    sched._dispatch()
    sched.on_task_stop(envelope(Kind.TASK_STOP, {"task_id": None, "reason": "engine stopping"}, src="supervisor"))
    assert [(r["caseId"], r["status"], r["reason"]) for r in results(fake)] == [("b", Status.SKIP, "engine stopping")]
    assert fake.of(Kind.TASK_FINISHED) == []
    run_unit(sched, runs(fake)[0])
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert fin.body["stopped"] == "engine stopping"


def test_rerun_round_starts_from_the_collection_variables_reached(tmp_path: Path) -> None:
    """LiuMa reRun: a failed case runs again with the context the collection reached (a token extracted by a
    later case included), not the variables its unit started with (conformance corpus rr-flaky)."""
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a", "b", variables={"v": 0}), reRun=True)
    executor(sched, "executor-1")
    sched._dispatch()
    s = runs(fake)[0]
    a, b = s.body["cases"]
    finish(sched, "executor-1", s.body, a, Status.FAIL, variables={"v": 0, "n": 1})
    finish(sched, "executor-1", s.body, b, variables={"v": 0, "n": 1, "token": "tk"})
    done(sched, "executor-1", s.body)
    sched._dispatch()
    rerun = runs(fake)[-1]
    assert cases_of(rerun) == [("a", 2)]
    assert rerun.body["variables"] == {"v": 0, "n": 1, "token": "tk"}


def test_stop_with_a_pending_retry_still_finishes(tmp_path: Path) -> None:
    """A failed case waiting for its rerun keeps its failure when the task is stopped; the task finishes."""
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a", "b"), reRun=True)
    executor(sched, "executor-1")
    sched._dispatch()
    s = runs(fake)[0]
    a, b = s.body["cases"]
    finish(sched, "executor-1", s.body, a, Status.FAIL)     # eligible for a rerun
    sched.on_task_stop(envelope(Kind.TASK_STOP, {"task_id": "t1"}, src="supervisor"))
    finish(sched, "executor-1", s.body, b)
    done(sched, "executor-1", s.body)
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert sorted(map(tuple, fin.body["expected"])) == [("t1", "c1", "a", 1, 1), ("t1", "c1", "b", 2, 1)]


def test_stop_then_executor_death_does_not_requeue(tmp_path: Path) -> None:
    """Cases a killed executor had not reached are skipped when the task was stopped, not run elsewhere."""
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a", "b"))
    executor(sched, "executor-1")
    executor(sched, "executor-2")
    sched._dispatch()
    s = runs(fake)[0]
    start(sched, "executor-1", s.body, s.body["cases"][0])
    sched.on_task_stop(envelope(Kind.TASK_STOP, {"task_id": None, "reason": "engine stopping"}, src="supervisor"))
    sched.on_stage_died(envelope(Kind.STAGE_DIED, {"stage": "executor-1", "inc": 0, "reason": "stopped: engine shutting down"}, src="supervisor"))
    sched._dispatch()
    assert len(runs(fake)) == 1
    assert [(r["caseId"], r["outcome"]) for r in results(fake)] == [("a", "broken"), ("b", "skipped")]
    assert len(fake.of(Kind.TASK_FINISHED)) == 1


def test_stop_asks_the_supervisor_to_kill_running_executors(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a"), coll("c2", "b"))
    executor(sched, "executor-1", inc=4)
    sched._dispatch()
    sched.on_task_stop(envelope(Kind.TASK_STOP, {"task_id": "t1", "reason": "user"}, src="supervisor"))
    assert [s.body for s in fake.of(Kind.STAGE_KILL, "supervisor")] == [
        {"stage": "executor-1", "inc": 4, "reason": "stopped: task t1 (user)"}]


# -- restart from the journal ------------------------------------------------------------------------------
def test_restarted_scheduler_rebuilds_from_its_journal(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a", "b"), coll("c2", {"caseId": "x", "enabled": False}), reRun=True)
    executor(sched, "executor-1")
    sched._dispatch()
    s = runs(fake)[0]
    a, b = s.body["cases"]
    finish(sched, "executor-1", s.body, a, variables={"tok": "1"})
    finish(sched, "executor-1", s.body, b, Status.FAIL, variables={"tok": "1", "n": 2})   # the context so far
    sched.before_ack()                                      # fsync before the acks would go out
    sched.journal.close()

    again, fake2 = make(tmp_path)                           # the same run dir: a new incarnation
    again.on_start()
    assert [s.body["task_id"] for s in fake2.of(Kind.TASK_PLANNED)] == ["t1"]
    assert [r["caseId"] for r in results(fake2)] == ["x"]  # its own synthetic results are re-sent
    assert [[(c["case_id"], c["run_times"]) for c in u.cases] for u in again.queue] == [[("b", 2)]]
    assert again.queue[0].variables == {"tok": "1", "n": 2}
    again.adopt_until = 0.0
    executor(again, "executor-1", inc=1)
    again._dispatch()
    run_unit(again, runs(fake2)[0])
    [fin] = fake2.of(Kind.TASK_FINISHED)
    assert sorted(map(tuple, fin.body["expected"])) == [
        ("t1", "c1", "a", 1, 1), ("t1", "c1", "b", 2, 1), ("t1", "c1", "b", 2, 2), ("t1", "c2", "x", 1, 1)]


def test_given_up_case_stays_final_after_a_restart(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, coll("c1", "a"), reRun=True)
    executor(sched, "executor-1")
    sched._dispatch()
    s = runs(fake)[0]
    finish(sched, "executor-1", s.body, s.body["cases"][0], Status.FAIL)
    sched.on_task_stop(envelope(Kind.TASK_STOP, {"task_id": None}, src="supervisor"))
    done(sched, "executor-1", s.body)
    assert len(fake.of(Kind.TASK_FINISHED)) == 1
    sched.before_ack()
    sched.journal.close()
    again, fake2 = make(tmp_path)
    again.on_start()
    assert again.queue == [] and again.tasks["t1"].all_final()
