"""UnitWorker without sockets: a unit runs in the worker thread against the demo server and emits
case.started / case.finished / unit.done in order, with runTimes and index filled in."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import DeviceDown, InfrastructureError
from pipeline.messages import Message
from pipeline.models import CaseResult, Status
from stages.executor.context import CaseOutcome, RunContext, RunSettings
from stages.executor.host import UnitWorker
from tests.system.suites import api_case

FAILING = [{"from": "resBody", "method": "jsonpath", "expression": "$.data[0].name", "assertion": "equals", "expect": "nope"}]


def write_cases(data_dir: Path, collection: str, *cases: dict[str, Any]) -> None:
    (data_dir / collection).mkdir(parents=True, exist_ok=True)
    for c in cases:
        (data_dir / collection / f"{c['caseId']}.json").write_text(json.dumps(c, ensure_ascii=False))


def unit(data_dir: Path, *cases: tuple[str, int] | tuple[str, int, list[str]], collection: str = "c1",
         case_type: str = "API", uid: str = "u-1") -> dict[str, Any]:
    """cases: (case_id, run_times[, dependencies]); indexes are 1..n."""
    return {"unit_id": uid, "task_id": "t-1", "collection_id": collection, "data_dir": str(data_dir), "variables": {"v": 1},
            "cases": [{"case_id": c[0], "index": i, "case_type": case_type, "run_times": c[1], "timeout": 30.0,
                       "dependencies": list(c[2]) if len(c) > 2 else []} for i, c in enumerate(cases, start=1)]}


Pair = tuple[str, dict[str, Any]]


def run(worker: UnitWorker, u: dict[str, Any]) -> list[Pair]:
    """The unit's events as (kind, the body that travels): the thread emits the message bodies themselves."""
    worker.start_unit(u)
    assert worker.thread is not None
    worker.thread.join(60)
    assert not worker.busy()
    events = worker.drain()
    assert all(isinstance(e, Message) for e in events)
    return [(e.KIND.value, e.to_wire()) for e in events if isinstance(e, Message)]


@pytest.fixture
def worker(tmp_path: Path) -> UnitWorker:
    return UnitWorker("executor-7", RunSettings(), tmp_path / "storage", None)


def finished(events: list[Pair]) -> dict[str, dict[str, Any]]:
    return {b["case_id"]: b for k, b in events if k == "case.finished"}


def test_api_unit_emits_events_in_order_with_ids_filled(tmp_path: Path, worker: UnitWorker, demo_url: str) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", api_case("ok", demo_url, "/api/health", name="健康检查"),
                api_case("bad", demo_url, "/api/items", assertions=FAILING))
    events = run(worker, unit(data, ("ok", 1), ("bad", 1)))
    assert [(k, b.get("case_id")) for k, b in events] == [
        ("case.started", "ok"), ("case.finished", "ok"), ("case.started", "bad"), ("case.finished", "bad"), ("unit.done", None)]
    started = dict(events[0][1])
    assert abs(started.pop("started_ms") - time.time() * 1000) < 60_000
    assert started == {"unit_id": "u-1", "task_id": "t-1", "collection_id": "c1", "case_id": "ok", "index": 1,
                       "run_times": 1, "deadline_s": 30.0}
    fin = finished(events)
    assert (fin["ok"]["status"], fin["ok"]["outcome"], fin["ok"]["name"]) == (Status.PASS, "passed", "健康检查")
    assert (fin["bad"]["status"], fin["bad"]["outcome"], fin["bad"]["index"]) == (Status.FAIL, "failed", 2)
    res = CaseResult.from_dict(fin["bad"]["result"])
    assert (res.taskId, res.collectionId, res.caseId, res.index, res.runTimes, res.executor, res.caseType) == (
        "t-1", "c1", "bad", 2, 1, "executor-7", "API")
    assert res.endTime >= res.startTime > 0 and res.transactionList
    assert fin["ok"]["variables"]["v"] == 1                      # the collection context travels back
    assert events[-1][1] == {"unit_id": "u-1", "device_down": ""} and worker.current is None and worker.running is None


def test_unreadable_case_file_becomes_an_error_result(tmp_path: Path, worker: UnitWorker, demo_url: str) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", api_case("ok", demo_url, "/api/health"))
    (data / "c1" / "broken.json").write_text("{not json")
    events = run(worker, unit(data, ("broken", 1), ("missing", 1), ("ok", 1)))
    fin = finished(events)
    assert (fin["broken"]["status"], fin["broken"]["outcome"]) == (Status.ERROR, "error")
    assert "invalid JSON" in fin["broken"]["result"]["reason"] and "broken.json" in fin["broken"]["result"]["reason"]
    assert "case file not found" in fin["missing"]["result"]["reason"]
    assert fin["broken"]["result"]["transactionList"], "an error result still carries a step"
    assert fin["ok"]["status"] == Status.PASS                    # the unit went on
    assert events[-1][0] == "unit.done"


def test_dependency_skip_inside_a_unit(tmp_path: Path, worker: UnitWorker, demo_url: str) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", api_case("login", demo_url, "/api/items", assertions=FAILING),
                api_case("order", demo_url, "/api/health"), api_case("free", demo_url, "/api/health"))
    fin = finished(run(worker, unit(data, ("login", 1), ("order", 1, ["login"]), ("free", 1, ["elsewhere"]))))
    assert (fin["order"]["status"], fin["order"]["outcome"]) == (Status.SKIP, "skipped")
    assert fin["order"]["result"]["reason"] == "skipped: dependency login did not pass"
    assert fin["free"]["status"] == Status.PASS                  # a dependency outside the unit is the scheduler's


def test_pass_on_a_later_attempt_is_flaky(tmp_path: Path, worker: UnitWorker, demo_url: str) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", api_case("ok", demo_url, "/api/health"), api_case("bad", demo_url, "/api/items", assertions=FAILING))
    fin = finished(run(worker, unit(data, ("ok", 2), ("bad", 3))))
    assert (fin["ok"]["status"], fin["ok"]["outcome"], fin["ok"]["run_times"], fin["ok"]["result"]["runTimes"]) == (Status.PASS, "flaky", 2, 2)
    assert (fin["bad"]["outcome"], fin["bad"]["result"]["runTimes"]) == ("failed", 3)


class StubRunner:
    """A runner whose behaviour the test picks; records resets."""

    case_type = "API"

    def __init__(self, behaviour: str) -> None:
        self.behaviour, self.resets = behaviour, 0

    def run(self, case: dict[str, Any], ctx: RunContext) -> CaseOutcome:
        if self.behaviour == "infra":
            raise InfrastructureError("browser lost")
        if self.behaviour == "bug":
            raise KeyError("apiList")
        ctx.variables["seen"] = ctx.collection_id
        return CaseOutcome(CaseResult(caseId=case["caseId"], caseName="stub", status=Status.PASS))

    def close_shared(self, ctx: RunContext) -> None:
        self.resets += 1


@pytest.mark.parametrize("behaviour, status, outcome, reason", [
    ("infra", Status.ERROR, "broken", "broken: browser lost"),
    ("bug", Status.ERROR, "error", "KeyError: 'apiList'"),
    ("ok", Status.PASS, "passed", ""),
])
def test_runner_exceptions_become_results(tmp_path: Path, worker: UnitWorker, behaviour: str, status: Status, outcome: str, reason: str) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", {"caseId": "k", "caseName": "下单", "apiList": []})
    worker.runners["API"] = StubRunner(behaviour)  # type: ignore[assignment]
    [fin] = finished(run(worker, unit(data, ("k", 1)))).values()
    assert (fin["status"], fin["outcome"], fin["result"]["reason"]) == (status, outcome, reason)
    assert fin["name"] == ("stub" if behaviour == "ok" else "下单")         # an engine result keeps the case's name


def test_unknown_case_type_is_an_error_result(tmp_path: Path, worker: UnitWorker) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", {"caseId": "k", "apiList": []})
    [fin] = finished(run(worker, unit(data, ("k", 1), case_type="SOAP"))).values()
    assert fin["outcome"] == "error" and "no runner for caseType 'SOAP'" in fin["result"]["reason"]


def test_shared_resources_reset_between_collections_only(tmp_path: Path, worker: UnitWorker) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", {"caseId": "k", "apiList": []})
    write_cases(data, "c2", {"caseId": "k", "apiList": []})
    stub = StubRunner("ok")
    worker.runners["API"] = stub  # type: ignore[assignment]
    run(worker, unit(data, ("k", 1), uid="u1"))
    run(worker, unit(data, ("k", 2), uid="u2"))                     # same collection: keep browser/session
    assert stub.resets == 0
    events = run(worker, unit(data, ("k", 1), collection="c2", uid="u3"))
    assert stub.resets == 1 and finished(events)["k"]["variables"]["seen"] == "c2"
    worker.close()
    assert stub.resets == 2


def test_failure_reason_is_the_first_failed_steps_error_on_one_line() -> None:
    from stages.executor.host import failure_reason
    ok = {"name": "a", "status": 0, "log": "fine", "detail": {}}
    asserted = {"name": "查询", "status": 1, "log": "x", "detail": {"validators": [
        {"check": "resCode", "message": "200 == 500", "result": False}, {"check": "$.a", "message": "ok", "result": True}]}}
    logged = {"name": "打开网页", "status": 2, "detail": {},
              "log": "2026-12-01 23:45:28.840764 - Debug - start<br>2026-12-01 23:45:29.541137 - Error - <b>boom</b> &lt;x&gt;"}
    assert failure_reason([ok, asserted, logged]) == "step 查询: resCode: 200 == 500"
    assert failure_reason([ok, logged]) == "step 打开网页: boom <x>"
    assert failure_reason([{"name": "s", "status": 2, "detail": {"error": "line1\nline2 " + "y" * 300}}]).endswith("…")
    assert failure_reason([ok]) == ""


def test_a_held_task_starts_no_further_case_of_its_unit(tmp_path: Path, worker: UnitWorker, demo_url: str) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", api_case("a", demo_url, "/api/health"), api_case("b", demo_url, "/api/health"))
    worker.hold("other-task")                            # another task's stop does not concern this unit
    assert [k for k, _ in run(worker, unit(data, ("a", 1)))] == ["case.started", "case.finished", "unit.done"]
    worker.hold(None)                                    # the engine stops: nothing more starts, the unit ends as done
    assert run(worker, unit(data, ("a", 1), ("b", 1), uid="u-2")) == [("unit.done", {"unit_id": "u-2", "device_down": ""})]


class DeviceRunner(StubRunner):
    """A device runner whose health ladder the test breaks: before the unit (``down_before``) or inside
    the case named ``down_in`` (its session start fails)."""

    def __init__(self, down_before: bool = False, down_in: str = "") -> None:
        super().__init__("ok")
        self.down_before, self.down_in, self.ran = down_before, down_in, []  # type: ignore[var-annotated]

    def check(self, ctx: RunContext) -> str:
        if self.down_before:
            raise DeviceDown("设备[phone-a]的Appium服务不可用")
        return ""

    def run(self, case: dict[str, Any], ctx: RunContext) -> CaseOutcome:
        self.ran.append(case["caseId"])
        if case["caseId"] == self.down_in:
            raise DeviceDown("设备[phone-a]无法创建Appium会话")
        return super().run(case, ctx)


def test_a_failed_ladder_before_the_unit_hands_it_back_unrun(tmp_path: Path, worker: UnitWorker) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", {"caseId": "k1"}, {"caseId": "k2"})
    runner = worker.runners["API"] = DeviceRunner(down_before=True)  # type: ignore[assignment]
    events = run(worker, unit(data, ("k1", 1), ("k2", 1)))
    assert events == [("unit.done", {"unit_id": "u-1", "device_down": "设备[phone-a]的Appium服务不可用"})]
    assert runner.ran == []


def test_device_down_inside_a_case_breaks_it_and_hands_the_rest_back(tmp_path: Path, worker: UnitWorker) -> None:
    data = tmp_path / "data"
    write_cases(data, "c1", {"caseId": "k1"}, {"caseId": "k2", "caseName": "第二"}, {"caseId": "k3"})
    runner = worker.runners["API"] = DeviceRunner(down_in="k2")  # type: ignore[assignment]
    events = run(worker, unit(data, ("k1", 1), ("k2", 1), ("k3", 1)))
    fin = finished(events)
    assert runner.ran == ["k1", "k2"] and set(fin) == {"k1", "k2"}
    assert (fin["k1"]["outcome"], fin["k1"]["device_down"]) == ("passed", False)
    assert (fin["k2"]["outcome"], fin["k2"]["device_down"], fin["k2"]["name"]) == ("broken", True, "第二")
    assert events[-1] == ("unit.done", {"unit_id": "u-1", "device_down": "设备[phone-a]无法创建Appium会话"})


def _pending_bytes(fd: int) -> int:
    import os
    n = 0
    try:
        while chunk := os.read(fd, 4096):
            n += len(chunk)
    except BlockingIOError:
        pass
    return n


def test_the_case_thread_writes_one_wake_up_per_drain_and_none_is_lost(worker: UnitWorker) -> None:
    import threading

    from stages.executor.host import ProbeDone
    for i in range(5):
        worker._emit(ProbeDone(ok=True, error=str(i)))
    assert _pending_bytes(worker.rfd) == 1                        # one wake-up for the five events
    worker._emit(ProbeDone(ok=True, error="5"))                   # the loop has not drained yet: no second byte
    assert _pending_bytes(worker.rfd) == 0
    assert [e.error for e in worker.drain()] == [str(i) for i in range(6)]   # type: ignore[union-attr]
    worker._emit(ProbeDone(ok=True, error="after"))               # after a drain the next event wakes the loop again
    assert _pending_bytes(worker.rfd) == 1
    assert [e.error for e in worker.drain()] == ["after"]         # type: ignore[union-attr]
    seen: list[str] = []                                          # a thread emitting while the loop drains
    def emit() -> None:
        for i in range(2000):
            worker._emit(ProbeDone(ok=True, error=str(i)))
    t = threading.Thread(target=emit)
    t.start()
    import select
    while len(seen) < 2000:                                       # drain only when woken, as the loop does
        assert select.select([worker.rfd], [], [], 5)[0], f"{2000 - len(seen)} events without a wake-up"
        seen += [e.error for e in worker.drain()]                 # type: ignore[union-attr]
    t.join()
    assert seen == [str(i) for i in range(2000)]


class _Gate(StubRunner):
    """A case that runs until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__("ok")
        import threading
        self.running, self.gate = threading.Event(), threading.Event()

    def run(self, case: dict[str, Any], ctx: RunContext) -> CaseOutcome:
        self.running.set()
        assert self.gate.wait(30)
        return super().run(case, ctx)


def test_a_case_start_is_queued_without_waking_the_loop_and_its_end_wakes_it(tmp_path: Path, worker: UnitWorker) -> None:
    """A short case's start reaches the loop together with its end (one wake-up, one turn); a long case's start
    is taken by the loop's next regular turn."""
    data = tmp_path / "data"
    write_cases(data, "c1", api_case("k1", "u", "/x"))
    gate = _Gate()
    worker.runners["API"] = gate
    worker.start_unit(unit(data, ("k1", 1)))
    assert gate.running.wait(30)
    assert _pending_bytes(worker.rfd) == 0                          # the start woke nobody
    assert [e.KIND.value for e in worker.drain() if isinstance(e, Message)] == ["case.started"]   # the next tick takes it
    gate.gate.set()
    assert worker.thread is not None
    worker.thread.join(30)
    assert _pending_bytes(worker.rfd) == 1                          # the end woke the loop
    assert [e.KIND.value for e in worker.drain() if isinstance(e, Message)] == ["case.finished", "unit.done"]
