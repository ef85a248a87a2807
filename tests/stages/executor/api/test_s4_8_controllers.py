"""Reference §4.1/§4.8: conditions, FOR/WHILE loops (nested), errorContinue, waits, on_step, §7.3 statuses."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.models import CaseResult, Status
from tests.stages.executor.api.conftest import make_ctx

Run = Callable[..., CaseResult]
Mk = Callable[..., dict[str, Any]]


def cond(target: str, assertion: str, expect: str) -> str:
    return json.dumps([{"target": target, "assertion": assertion, "expect": expect}])


def test_condition_false_or_broken_skips_the_step(run_case: Run, mkstep: Mk) -> None:
    steps = [mkstep("/api/health", controller={"whetherExec": cond("{{flag}}", "equals", "yes")}),
             mkstep("/api/health", controller={"whetherExec": cond("{{missing}}", "notEmpty", "")}),
             mkstep("/api/health", controller={"whetherExec": cond("{{flag}}", "equals", "no")})]
    result = run_case(steps, params={"flag": {"type": "String", "value": "no"}})
    assert [t["status"] for t in result.transactionList] == [Status.SKIP, Status.SKIP, Status.PASS]
    assert result.status == Status.PASS and "条件不满足" in result.transactionList[0]["log"]
    assert "detail" in result.transactionList[2] and result.transactionList[2]["detail"]["req_resps"]


def test_for_loop_over_following_steps_with_index(run_case: Run, mkstep: Mk) -> None:
    loop = json.dumps({"type": "FOR", "num": 2, "indexName": "i", "times": "{{n}}"})
    steps = [mkstep("/api/echo", apiName="a", query={"i": "{{i}}"}, controller={"loopExec": loop}),
             mkstep("/api/echo", apiName="b"), mkstep("/api/health", apiName="after")]
    result = run_case(steps, params={"n": {"type": "Int", "value": "3"}})
    assert [t["name"] for t in result.transactionList] == ["a", "b", "a", "b", "a", "b", "after"]
    assert [t["detail"]["req_resps"][0]["response"]["body"]["query"]["i"] for t in result.transactionList[0:6:2]] == ["0", "1", "2"]


def test_nested_loops(run_case: Run, mkstep: Mk) -> None:
    outer = json.dumps({"type": "FOR", "num": 3, "indexName": "i", "times": 2})
    inner = json.dumps({"type": "FOR", "num": 1, "indexName": "j", "times": 2})
    steps = [mkstep("/api/health", apiName="o", controller={"loopExec": outer}),
             mkstep("/api/echo", apiName="in", query={"ij": "{{i}}{{j}}"}, controller={"loopExec": inner}),
             mkstep("/api/health", apiName="tail")]
    result = run_case(steps)
    assert [t["name"] for t in result.transactionList] == ["o", "in", "in", "tail", "o", "in", "in", "tail"]
    seen = [t["detail"]["req_resps"][0]["response"]["body"]["query"]["ij"] for t in result.transactionList if t["name"] == "in"]
    assert seen == ["00", "01", "10", "11"]


def test_while_loop_until_condition_false(run_case: Run, mkstep: Mk) -> None:
    loop = json.dumps({"type": "WHILE", "num": 1, "target": "{{count}}", "assertion": "isLessThan", "expect": "3", "timeout": 5000})
    s = mkstep("/api/health", controller={"loopExec": loop, "post": [
        {"name": "postScript", "value": "sys_put('count', sys_get('count') + 1)"}]})
    result = run_case([s], params={"count": {"type": "Int", "value": "0"}})
    assert len(result.transactionList) == 3 and result.inOut["export_vars"]["count"] == 3


def test_while_loop_timeout_and_zero_timeout_bounded_by_case_deadline(run_case: Run, mkstep: Mk, tmp_path: Path) -> None:
    loop = json.dumps({"type": "WHILE", "num": 1, "target": "1", "assertion": "equals", "expect": "1", "timeout": 300})
    started = time.monotonic()
    result = run_case([mkstep("/api/slow", query={"ms": "50"}, controller={"loopExec": loop})])
    assert result.status == Status.PASS and 2 <= len(result.transactionList) <= 10
    forever = json.dumps({"type": "WHILE", "num": 1, "target": "1", "assertion": "equals", "expect": "1", "timeout": 0})
    ctx = make_ctx(tmp_path, deadline=time.monotonic() + 0.5)
    result = run_case([mkstep("/api/slow", query={"ms": "50"}, controller={"loopExec": forever})], ctx=ctx)
    assert result.status == Status.ERROR and "超时" in result.transactionList[-1]["log"]
    assert time.monotonic() - started < 5


def test_error_continue(run_case: Run, mkstep: Mk) -> None:
    steps = [mkstep("/api/status/500", controller={"errorContinue": "true"}),
             mkstep("/api/health", relations=[{"from": "resBody", "method": "jsonpath", "expression": "$.x", "name": "x"}],
                    controller={"errorContinue": "true"}),
             mkstep("/api/health")]
    result = run_case(steps)
    assert [t["status"] for t in result.transactionList] == [Status.FAIL, Status.ERROR, Status.PASS]
    assert result.status == Status.ERROR
    stopped = run_case([mkstep("/api/status/500"), mkstep("/api/health")])
    assert len(stopped.transactionList) == 1 and stopped.status == Status.FAIL


def test_sleeps_and_on_step(run_case: Run, mkstep: Mk, tmp_path: Path) -> None:
    seen: list[str] = []
    ctx = make_ctx(tmp_path, on_step=seen.append)
    started = time.monotonic()
    result = run_case([mkstep("/api/health", apiName="s1", controller={"sleepBeforeRun": "0.3", "sleepAfterRun": "0.3"}),
                       mkstep("/api/health", apiName="s2")], ctx=ctx)
    assert time.monotonic() - started >= 0.6 and seen == ["s1", "s2"] and result.status == Status.PASS
    assert result.transactionList[0]["during"] < 300      # during is the HTTP call, not the waits


def test_case_level_problems_become_the_synthetic_step(run_case: Run) -> None:
    result = run_case("not a list")   # type: ignore[arg-type]
    [t] = result.transactionList
    assert (t["id"], t["name"], t["status"]) == ("case-1", "未知", Status.ERROR) and result.caseName == "用例"


def test_result_fields(run_case: Run, mkstep: Mk) -> None:
    result = run_case([mkstep("/api/health", apiId="x1", apiName="健康", apiDesc="d")],
                      params={"p": {"type": "Int", "value": "1"}})
    t = result.transactionList[0]
    assert (result.caseId, result.caseType, result.caseName, result.caseDesc) == ("case-1", "API", "用例", "说明")
    assert (t["id"], t["name"], t["content"], t["description"], t["stepType"]) == ("x1", "健康", "/api/health", "d", "request-GET")
    assert result.inOut["config_vars"] == {"p": 1} and t["startTime"] >= result.startTime


def test_condition_that_is_not_json_is_a_step_error_not_a_silent_skip(run_case: Run, mkstep: Mk) -> None:
    steps = [mkstep("/api/health", apiName="bad", controller={"whetherExec": "[{target: x"}),
             mkstep("/api/health", apiName="after")]
    result = run_case(steps)
    assert [t["name"] for t in result.transactionList] == ["bad"]
    assert result.transactionList[0]["status"] == Status.ERROR and result.status == Status.ERROR
    assert "条件控制器不是合法的JSON" in result.transactionList[0]["log"]
    steps[0]["controller"]["errorContinue"] = "true"
    steps[0]["controller"]["whetherExec"] = "5"
    result = run_case(steps)
    assert [t["status"] for t in result.transactionList] == [Status.ERROR, Status.PASS]
    assert "条件控制器必须是对象或对象列表" in result.transactionList[0]["log"]
