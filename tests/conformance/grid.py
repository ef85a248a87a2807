"""The comparator grid: both engines' comparators over the same (comparator, actual, expect) triples.

Actual values are what extraction yields (JSON types, numeric text, lists, dicts, null, booleans, empty,
unicode); expect values are what a rendered ``expect`` can be (text, or a typed value when the whole expect is
one placeholder). Every comparator id runs the full cross product; every alias a sample, to check that the
alias resolves to the same comparator. Outcomes are "pass" / "fail" / "error".
"""
from __future__ import annotations

import json
import subprocess
from typing import Any

from stages.executor.common.assertion import ALIASES, COMPARATORS, ComparisonError, compare

__all__ = ["ACTUALS", "EXPECTS", "triples", "ours", "oracle"]

ACTUALS: list[Any] = [
    200, "200", 0, "0", 1.5, "1.5", -3, "-3", " 5 ", "1e3", "", "hello", "Hello", "HELLO", "abc123", "abc", "a,b",
    "流马", None, "null", "None", True, False, "true", "false", [], ["alice", "bob"], [1, 2, 3], ["1", "2"],
    "[1, 2, 3]", "['alice', 'bob']", {"a": 1}, {}, {"k": "v", "n": None}, '{"a": 1}', "{'a': 1}", '{"a": true}',
]
EXPECTS: list[Any] = [
    "200", "0", "1.5", "-3", "5", "", "hello", "HELLO", "ali", "alice", "abc", "a", "流", "None", "null", "true",
    "false", "[1, 2, 3]", "[1,2]", "['alice', 'bob']", '["alice", "bob"]', "[0, 300]", "[1.5, 0.1]", "{'a': 1}",
    '{"a": 1}', '{"a": true}', "1", 200, 1.5, None, True, [1, 2, 3],
]


def triples() -> list[tuple[str, Any, Any]]:
    out = [(cid, a, e) for cid in COMPARATORS for a in ACTUALS for e in EXPECTS]
    sample = [(a, e) for i, a in enumerate(ACTUALS) for j, e in enumerate(EXPECTS) if (i * 7 + j) % 11 == 0]
    out += [(alias, a, e) for alias in sorted(ALIASES) if alias not in COMPARATORS for a, e in sample]
    return out


def ours(items: list[tuple[str, Any, Any]]) -> list[str]:
    result = []
    for cid, actual, expect in items:
        try:
            ok, _ = compare(cid, actual, expect)
        except ComparisonError:
            result.append("error")
        else:
            result.append("pass" if ok else "fail")
    return result


def oracle(python: str, tree: str, probe: str, items: list[tuple[str, Any, Any]]) -> list[str]:
    proc = subprocess.run([python, probe, tree], input=json.dumps(items), capture_output=True, text=True,
                          timeout=300, check=True)
    answer = json.loads(proc.stdout)
    if len(answer) != len(items):
        raise RuntimeError(f"oracle probe answered {len(answer)} outcomes for {len(items)} triples")
    return answer
