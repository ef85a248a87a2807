"""Shared writer helpers: secret masking (fast path and exact walk), log-to-text, XML safety."""
from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

from pipeline.models import CaseResult
from stages.aggregator.writers._common import Redactor, dumps, html_log_to_text, xml_safe


def _case(log: str, config: dict[str, Any] | None = None) -> CaseResult:
    return CaseResult(caseId="c", transactionList=[{"id": "s", "log": log, "detail": {"error": log}}],
                      inOut={"config_vars": config or {}})


@pytest.mark.parametrize("secrets, log, expected", [
    (["pw123"], "login pw123 ok", "login ****** ok"),
    (["a\"b\\c"], "quote a\"b\\c end", "quote ****** end"),                 # JSON-escaped form differs
    (["newpass"], "line\newpass", "line\newpass"),                             # "\n"+"ewpass" is no secret
    (["newpass"], "line\nnewpass", "line\n******"),
    (["abc", "abcdef"], "x abcdef y abc", "x ****** y ******"),             # longest first
    (["", "k1"], "k1 and nothing else", "****** and nothing else"),          # "" ignored
    (["密钥"], "值=密钥", "值=******"),
])
def test_redactor_masks_results(secrets: list[str], log: str, expected: str) -> None:
    red = Redactor(secrets)
    out = red.result(_case(log))
    assert out.transactionList[0]["log"] == expected
    assert out.transactionList[0]["detail"]["error"] == expected


def test_redactor_masks_keys_and_leaves_input_alone() -> None:
    original = _case("t0k", {"t0k": ["t0k", 1, None]})
    out = Redactor(["t0k"]).result(original)
    assert out.inOut == {"config_vars": {"******": ["******", 1, None]}}
    assert original.inOut == {"config_vars": {"t0k": ["t0k", 1, None]}}


def test_redactor_returns_same_object_without_secret() -> None:
    case = _case("nothing here")
    assert Redactor(["zzz"]).result(case) is case
    assert Redactor([]).result(case) is case and not Redactor([""])


def test_log_to_text_and_xml_safe() -> None:
    assert html_log_to_text("a<br>b<br/><span>体: <x></span><b>y</b>") == "a\nb\n体: <x>y"
    assert xml_safe("ok\x00\x01\x1f\ttab\nnl") == "ok\ttab\nnl"


def test_dumps_keeps_no_more_memory_than_its_json() -> None:
    row = {f"k{i}": "v" * 20 for i in range(15)}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [dumps(row) for _ in range(1000)]
        per = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert json.loads(kept[0]) == row
    assert per < 2 * len(kept[0]) + 200, per          # orjson's own bytes hold ~8 KB each
