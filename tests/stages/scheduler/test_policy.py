"""Pure dispatch and retry policies, table-tested."""
from __future__ import annotations

import pytest

from pipeline.models import CaseRef, Task
from stages.scheduler.plan import CaseState, Unit
from stages.scheduler.policy import ExecutorInfo, FifoPolicy
from stages.scheduler.retry import RetryPolicy


def unit(uid: str, kinds: tuple[str, ...] = ("API",), device: str | None = None, avoid: str | None = None) -> Unit:
    return Unit(uid, "t", "c", [{"case_id": f"k{i}", "case_type": k} for i, k in enumerate(kinds)], avoid=avoid,
                devices=frozenset({device}) if device else None)


@pytest.mark.parametrize("ex, queue, others_can, picked", [
    (ExecutorInfo("e1", frozenset({"API"})), [unit("web", ("WEB",)), unit("api")], True, "api"),
    (ExecutorInfo("e1", frozenset({"API"})), [unit("mixed", ("API", "WEB"))], True, None),
    (ExecutorInfo("e1", frozenset({"API"})), [unit("a", avoid="e1"), unit("b")], True, "b"),
    (ExecutorInfo("e1", frozenset({"API"})), [unit("a", avoid="e1")], False, "a"),           # nobody else: take it back
    (ExecutorInfo("e1", frozenset({"APP"}), "pixel"), [unit("x", ("APP",), "iphone"), unit("y", ("APP",), "pixel")], True, "y"),
    (ExecutorInfo("e1", frozenset({"APP"}), "pixel"), [unit("x", ("APP",), "iphone")], False, None),   # bound: never elsewhere
    (ExecutorInfo("e1", frozenset({"APP"}), "pixel"), [unit("x", ("APP",), "pixel", avoid="e1")], False, "x"),  # nobody else owns pixel
    (ExecutorInfo("e1", frozenset({"APP"}), "pixel"), [unit("x", ("APP",))], True, "x"),             # devices None: any APP executor
    (ExecutorInfo("e1", frozenset({"API"})), [unit("x", ("APP",))], True, None),
])
def test_fifo_policy(ex: ExecutorInfo, queue: list[Unit], others_can: bool, picked: str | None) -> None:
    before = [u.unit_id for u in queue]
    got = FifoPolicy().next_for(ex, queue, lambda u: True, lambda u: others_can)
    assert (got.unit_id if got else None) == picked
    assert [u.unit_id for u in queue] == [u for u in before if u != picked]     # removed only when picked


def test_fifo_policy_respects_allowed() -> None:
    q = [unit("a"), unit("b")]
    got = FifoPolicy().next_for(ExecutorInfo("e", frozenset({"API"})), q, lambda u: u.unit_id == "b", lambda u: True)
    assert got is not None and got.unit_id == "b" and [u.unit_id for u in q] == ["a"]


def state(attempts: int, retry: int = 0) -> CaseState:
    return CaseState("c", CaseRef(caseId="k", retry=retry), attempts=[(i + 1, 1, "failed") for i in range(attempts)])


@pytest.mark.parametrize("policy, rerun, st, broken, expected", [
    (RetryPolicy(), False, state(1), False, False),
    (RetryPolicy(), True, state(1), False, True),
    (RetryPolicy(), True, state(2), False, False),
    (RetryPolicy(), False, state(1, retry=2), False, True),
    (RetryPolicy(), False, state(3, retry=2), False, False),
    (RetryPolicy(retry_failures=False), True, state(1, retry=3), False, False),
    (RetryPolicy(retry_failures=False), False, state(1), True, True),               # broken: infrastructure
    (RetryPolicy(max_attempts=2), False, state(2), True, False),
    (RetryPolicy(max_attempts=1), False, state(1, retry=1), True, True),           # the case's retry counts too
    (RetryPolicy(budget=0), True, state(1), True, False),
])
def test_retry_policy(policy: RetryPolicy, rerun: bool, st: CaseState, broken: bool, expected: bool) -> None:
    assert policy.should_retry(st, Task(taskId="t", reRun=rerun), broken=broken) is expected
    assert policy.used == (1 if expected else 0)


def test_retry_budget_is_shared_by_the_run() -> None:
    p = RetryPolicy(budget=2)
    task = Task(taskId="t", reRun=True)
    assert [p.should_retry(state(1), task, broken=False) for _ in range(4)] == [True, True, False, False]
