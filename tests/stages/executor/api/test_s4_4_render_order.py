"""Reference §4.4: render order of headers/query/body and ``#{…}`` markers seeing rendered values."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from pipeline.models import CaseResult, Status
from stages.executor.api.render import part_order

Run = Callable[..., CaseResult]
Mk = Callable[..., dict[str, Any]]
MD5 = [{"name": "md5", "code": "import hashlib\nsys_return(hashlib.md5(s.encode('utf-8')).hexdigest())",
        "params": {"names": ["s"], "types": ["String"]}}]


def echo(result: CaseResult) -> dict[str, Any]:
    return result.transactionList[0]["detail"]["req_resps"][0]["response"]["body"]  # type: ignore[no-any-return]


def test_part_order_rules() -> None:
    assert part_order({"a": "{{x}}"}, {}, {}) == ["headers", "query", "body"]
    assert part_order({"s": "{{@md5(#{_request_body})}}"}, {}, {}) == ["query", "body", "headers"]
    assert part_order({}, {"s": "{{@extract(#{_request_body.a})}}"}, {}) == ["headers", "body", "query"]


def test_header_signs_the_rendered_body(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/echo", "POST", headers={"X-Sign": "{{@md5(#{_request_body})}}"},
               body={"type": "json", "json": '{"user": "{{who}}", "n": 1}'})
    result = run_case([s], params={"who": {"type": "String", "value": "bob"}}, functions=MD5)
    got = echo(result)
    assert result.status == Status.PASS
    expected = hashlib.md5(json.dumps({"user": "bob", "n": 1}, ensure_ascii=False).encode()).hexdigest()
    assert got["headers"]["X-Sign"] == expected


def test_leaf_referencing_another_leaf_comes_after_it(run_case: Run, mkstep: Mk) -> None:
    body = '{"copy": "{{@extract(#{_request_body.src})}}", "src": "{{who}}", "whole": "{{@lenof(#{_request_body.list})}}", "list": ["{{who}}", "x"]}'
    s = mkstep("/api/echo", "POST", body={"type": "json", "json": body},
               query={"u": "{{@extract(#{$.src})}}"})
    got = echo(run_case([s], params={"who": {"type": "String", "value": "bob"}}))
    assert got["json"] == {"copy": "bob", "src": "bob", "whole": 2, "list": ["bob", "x"]}
    assert got["query"] == {"u": "bob"}


def test_request_url_and_query_markers(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/{p}", rest={"p": "echo"}, query={"a": "{{n}}"},
               headers={"X-Url": "{{@extract(#{_request_url})}}", "X-Q": "{{@extract(#{_request_query.a})}}"})
    got = echo(run_case([s], params={"n": {"type": "Int", "value": "4"}}))
    assert got["headers"]["X-Url"].endswith("/api/echo") and got["headers"]["X-Q"] == "4"


def test_unresolved_placeholder_is_a_step_error_naming_it(run_case: Run, mkstep: Mk) -> None:
    result = run_case([mkstep("/api/echo", query={"a": "{{nobody}}"}, apiName="查")])
    assert result.status == Status.ERROR
    assert "步骤[查]无法解析 {{nobody}}" in result.transactionList[0]["log"]
