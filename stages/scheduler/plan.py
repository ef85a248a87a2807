"""Turning a task into dispatch units, and the bookkeeping of every case attempt (pure: no sockets).

A *unit* is what one executor runs in one go: by default all cases of a collection, in index order (they
share variables, HTTP session and browser); a ``parallel`` collection yields one unit per case. Each case
of a unit carries its ``runTimes`` (the platform's attempt number) and its deadline budget.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.messages import UnitRun
from pipeline.models import (
    UNKNOWN,
    CaseRef,
    CaseResult,
    Outcome,
    Status,
    Task,
    TestCollection,
    engine_result,
)

__all__ = ["CaseState", "TaskState", "Unit", "build_units", "case_matches_tags", "synthetic_result"]


@dataclass
class CaseState:
    """One case of a task: its reference, the attempts reported so far, and whether it is settled."""

    collection_id: str
    ref: CaseRef
    name: str = ""
    attempts: list[tuple[int, int, str]] = field(default_factory=list)   # (runTimes, status, outcome)
    final: bool = False

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.collection_id, self.ref.caseId, self.ref.index)

    @property
    def passed(self) -> bool:
        return bool(self.attempts) and self.attempts[-1][1] == Status.PASS

    @property
    def next_run_times(self) -> int:
        return (self.attempts[-1][0] + 1) if self.attempts else 1


@dataclass
class Unit:
    unit_id: str
    task_id: str
    collection_id: str
    cases: list[dict[str, Any]]             # {case_id, index, case_type, run_times, timeout, dependencies}
    variables: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    order: tuple[int, int] = (0, 0)         # (collection order, position) for a stable FIFO
    avoid: str | None = None                # executor that broke on this work last time
    device: str | None = None               # the collection's deviceId, as planned
    setup_script: str = ""
    teardown_script: str = ""
    devices: frozenset[str] | None = None   # APP: the devices it may run on (routing.py); None = any executor of its kinds
    queued_at: float = 0.0                  # monotonic time it (last) entered the queue: liuma_queue_oldest_wait_seconds

    @property
    def kinds(self) -> set[str]:
        """The case types in the unit (a copy: callers may change it)."""
        return set(self.kind_set)

    @property
    def kind_set(self) -> frozenset[str]:
        """The case types, remembered for the case list they were read from (every dispatch asks each queued
        unit; a unit whose ``cases`` were replaced is read again); not copied."""
        memo: tuple[list[dict[str, Any]], int, frozenset[str]] | None = self.__dict__.get("_kinds")
        if memo is None or memo[0] is not self.cases or memo[1] != len(self.cases):
            memo = (self.cases, len(self.cases), frozenset(c["case_type"] for c in self.cases))
            self.__dict__["_kinds"] = memo          # not a field: not in asdict, repr or ==
        return memo[2]

    def body(self, data_dir: str, deadline_cap: float) -> UnitRun:
        cases = [dict(c, timeout=min(c["timeout"], deadline_cap)) for c in self.cases]
        return UnitRun(unit_id=self.unit_id, task_id=self.task_id, collection_id=self.collection_id,
                       data_dir=data_dir, cases=cases, variables=self.variables,
                       setup_script=self.setup_script, teardown_script=self.teardown_script)


@dataclass
class TaskState:
    task: Task
    data_dir: str
    report_dir: str
    cases: dict[tuple[str, str, int], CaseState] = field(default_factory=dict)
    started: float = 0.0                    # monotonic s it was planned at (the task timeout counts from it)
    expected: list[list[Any]] = field(default_factory=list)      # result keys the aggregator must hold
    in_flight: int = 0
    finished_sent: bool = False
    stopped: str = ""
    name: str = ""
    wall_start: float = 0.0                 # epoch s it was planned at
    app_cases: dict[str, dict[str, Any]] = field(default_factory=dict)   # "<collection>/<case>" -> routing data
    results: list[dict[str, Any]] = field(default_factory=list)         # every result sent to the aggregator
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)   # latest context per collection
    source: str = ""                        # "submit": handed over by `liuma-pipeline submit` (kept across engine restarts)
    has_deps: bool = False                  # some case names dependencies (else no unit of it is ever blocked)

    @property
    def task_id(self) -> str:
        return self.task.taskId

    def deadline_left(self, now: float) -> float:
        return self.started + float(self.task.timeout or 3600) - now

    def all_final(self) -> bool:
        return all(c.final for c in self.cases.values())


def case_matches_tags(ref: CaseRef, tags: list[str]) -> bool:
    return not tags or bool(set(tags) & set(ref.tags))


def build_units(task: Task, default_timeout: float, tags: list[str], new_id: Callable[[], str] | None = None,
                ) -> tuple[list[Unit], dict[tuple[str, str, int], CaseState], list[CaseState]]:
    """Plan ``task``: units in (collection order, list order); returns (units, case states, disabled cases).
    ``new_id`` names each unit (the state machine's are deterministic; default a random id)."""
    units: list[Unit] = []
    states: dict[tuple[str, str, int], CaseState] = {}
    disabled: list[CaseState] = []
    colls = sorted(enumerate(task.collections()), key=lambda ic: (ic[1].order, ic[0]))
    for pos, coll in colls:
        refs = sorted((r for r in coll.cases() if case_matches_tags(r, tags)), key=lambda r: (r.index, -r.priority))
        runnable: list[CaseState] = []
        for ref in refs:
            st = CaseState(coll.collectionId, ref)
            states[st.key] = st
            (runnable if ref.enabled else disabled).append(st)
        entries = [_case_entry(st, default_timeout) for st in runnable]
        if not entries:
            continue
        groups = [[e] for e in sorted(entries, key=lambda e: -e["priority"])] if coll.parallel else [entries]
        for g in groups:
            units.append(_unit(task, coll, g, (coll.order, pos), (new_id or _random_id)()))
    return units, states, disabled


def _case_entry(st: CaseState, default_timeout: float) -> dict[str, Any]:
    r = st.ref
    return {"case_id": r.caseId, "index": r.index, "case_type": r.caseType, "run_times": st.next_run_times,
            "timeout": float(r.timeout or default_timeout), "dependencies": list(r.dependencies),
            "priority": r.priority}


def _random_id() -> str:
    return uuid.uuid4().hex


def _unit(task: Task, coll: TestCollection, cases: list[dict[str, Any]], order: tuple[int, int], unit_id: str) -> Unit:
    return Unit(unit_id, task.taskId, coll.collectionId, cases, dict(coll.variables or {}),
                priority=task.priority, order=order, device=coll.deviceId,
                setup_script=coll.setupScript or "", teardown_script=coll.teardownScript or "")


def synthetic_result(task_id: str, st: CaseState, run_times: int, status: Status, outcome: Outcome,
                     reason: str, case_type: str | None = None, executor: str = "", started_ms: int | None = None,
                     now_s: float | None = None) -> CaseResult:
    """The scheduler's engine result for ``st`` (crash, timeout, skip, stop): see ``pipeline.models.engine_result``."""
    return engine_result(task_id=task_id, collection_id=st.collection_id, case_id=st.ref.caseId,
                         case_type=case_type or st.ref.caseType, index=st.ref.index, run_times=run_times, status=status,
                         outcome=outcome, reason=reason, case_name=st.name or UNKNOWN, started_ms=started_ms,
                         executor=executor, tags=list(st.ref.tags), now_s=now_s)
