"""Reference §4.5 (relations from every source) and §4.6 as used by API steps (implicit 200, stop at first false)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipeline.models import CaseResult, Status

Run = Callable[..., CaseResult]
Mk = Callable[..., dict[str, Any]]
LOGIN = '{"username": "admin", "password": "pw"}'


def rel(source: str, method: str, expression: str, name: str = "v") -> dict[str, str]:
    return {"from": source, "method": method, "expression": expression, "name": name}


@pytest.mark.parametrize("relation,wanted", [
    (rel("resBody", "jsonpath", "$.data.userId"), 1),
    (rel("resBody", "regular", '"userId": (\\d+)'), "1"),
    (rel("resHeader", "jsonpath", "$.Content-Type"), "application/json; charset=utf-8"),
    (rel("resHeader", "regular", "sid=(\\w{4})"), None),
    (rel("reqHeader", "jsonpath", "$.X-Req"), "rq"),
    (rel("reqQuery", "jsonpath", "$.q"), "qv"),
    (rel("reqBody", "jsonpath", "$.username"), "admin"),
    (rel("reqBody", "regular", '"(user)(name)"'), ["user", "name"]),      # several groups: one tuple → list
    (rel("resBody", "jsonpath", "$", "raw"), None),
    (rel("resHeader", "", "Cookies"), None),
])
def test_relation_sources(run_case: Run, mkstep: Mk, relation: dict[str, str], wanted: Any) -> None:
    login = mkstep("/api/login", "POST", headers={"X-Req": "rq"}, query={"q": "qv"},
                   body={"type": "json", "json": LOGIN}, relations=[relation])
    result = run_case([login])
    assert result.status == Status.PASS, result.transactionList[0]["log"]
    value = result.inOut["export_vars"][relation["name"]]
    if relation["expression"] == "$":
        assert isinstance(value, bytes) and b'"token"' in value
    elif relation["expression"] == "Cookies":
        assert value.startswith("sid=")
    elif wanted is None:
        assert isinstance(value, str) and len(value) == 4
    else:
        assert value == wanted


def test_several_matches_give_a_list_and_later_steps_see_it(run_case: Run, mkstep: Mk) -> None:
    items = mkstep("/api/items", query={"size": "3"}, relations=[rel("resBody", "jsonpath", "$.data[*].id", "ids")])
    use = mkstep("/api/echo", query={"first": "{{ids[0]}}", "n": "{{@lenof({{ids}})}}"})
    result = run_case([items, use])
    assert result.inOut["export_vars"]["ids"] == [1, 2, 3]
    assert result.transactionList[1]["detail"]["req_resps"][0]["response"]["body"]["query"] == {"first": "1", "n": "3"}


@pytest.mark.parametrize("relation,message", [
    (rel("resBody", "jsonpath", "$.nothing"), "jsonpath表达式错误"),
    (rel("resBody", "regular", "zzz(\\d+)"), "正则表达式匹配失败"),
    (rel("resBody", "xpath", "//a"), "不支持的提取方式"),
    (rel("resFoo", "jsonpath", "$.a"), "不支持的提取来源"),
])
def test_relation_errors_are_step_errors(run_case: Run, mkstep: Mk, relation: dict[str, str], message: str) -> None:
    result = run_case([mkstep("/api/health", relations=[relation])])
    assert result.status == Status.ERROR and message in result.transactionList[0]["log"]


def test_relations_are_visible_to_later_cases_of_the_collection(run_case: Run, mkstep: Mk, tmp_path: Any) -> None:
    from tests.stages.executor.api.conftest import make_ctx
    ctx = make_ctx(tmp_path)
    run_case([mkstep("/api/health", relations=[rel("resBody", "jsonpath", "$.status", "st")])], ctx=ctx)
    result = run_case([mkstep("/api/echo", query={"st": "{{st}}"})], ctx=ctx)
    assert result.transactionList[0]["detail"]["req_resps"][0]["response"]["body"]["query"] == {"st": "ok"}
    assert ctx.variables["st"] == "ok"


def test_implicit_status_200_check(run_case: Run, mkstep: Mk) -> None:
    assert run_case([mkstep("/api/status/200")]).status == Status.PASS
    result = run_case([mkstep("/api/status/404")])
    assert result.status == Status.FAIL
    [validator] = result.transactionList[0]["detail"]["validators"]
    assert validator["actual"] == 404 and validator["result"] is False and validator["check"] == "resCode"


def test_assertions_stop_at_first_false_and_run_relations_and_post_first(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/health", assertions=[
        {"from": "resBody", "method": "jsonpath", "expression": "$.status", "assertion": "equals", "expect": "down"},
        {"from": "resBody", "method": "jsonpath", "expression": "$.code", "assertion": "bogus", "expect": "0"}],
        relations=[rel("resBody", "jsonpath", "$.status", "st")],
        controller={"post": [{"name": "postScript", "value": "sys_put('post_ran', True)"}]})
    result = run_case([s, mkstep("/api/health")])
    assert result.status == Status.FAIL and len(result.transactionList) == 1
    assert len(result.transactionList[0]["detail"]["validators"]) == 1
    assert result.inOut["export_vars"] == {"st": "ok", "post_ran": True}


def test_extraction_error_in_assertion_is_a_failure_with_message(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/health", assertions=[{"from": "resBody", "method": "jsonpath", "expression": "$.x",
                                           "assertion": "equals", "expect": "1"}])
    result = run_case([s])
    assert result.status == Status.FAIL and "接口响应失败或" in result.transactionList[0]["log"]


def test_comparison_type_error_is_a_step_error(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/health", assertions=[{"from": "resBody", "method": "jsonpath", "expression": "$.status",
                                           "assertion": "isGreaterThan", "expect": "1"}])
    assert run_case([s]).status == Status.ERROR


def test_rendered_expect_and_header_assertion(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/health", assertions=[
        {"from": "resBody", "method": "jsonpath", "expression": "$.code", "assertion": "equals", "expect": "{{zero}}"},
        {"from": "resHeader", "method": "regular", "expression": "json", "assertion": "contains", "expect": "json"}])
    assert run_case([s], params={"zero": {"type": "Int", "value": "0"}}).status == Status.PASS
