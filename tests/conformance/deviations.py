"""The machine-readable allowlist of deliberate differences from the original engine.

Every entry names the sentence of ``docs/case-language.md`` that documents it (``doc``: a literal fragment of
that file; a test checks it is there) and says where it may show:
- ``grid(name, cid, actual, expect, oracle, ours)`` -> True when that comparator-grid cell is explained;
- ``cases``: ids of conformance-corpus cases whose final status may differ because of it.
A difference explained by no entry fails the harness. An entry that explains nothing also fails (stale).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Deviation", "DEVIATIONS", "explain_cell", "explain_case"]

GridRule = Callable[[str, str, Any, Any, str, str], bool]
_TEXT_OPS = {"contains", "notContains", "containsOnly", "startWith", "endWith", "equalIgnoreCase"}


@dataclass(frozen=True)
class Deviation:
    key: str
    doc: str
    grid: GridRule | None = None
    cases: frozenset[str] = field(default_factory=frozenset)


# Names the original does not know: the Chinese aliases it stores with a leading space, without that space.
_TRIMMED_ONLY = {"大于", "大于等于", "小于", "小于等于", "在...之间", "接近于"}


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("equals-both-texts", "`equals` compares the text of **both** sides",
              grid=lambda n, c, a, e, o, u: c == "equals" and not isinstance(e, str),
              cases=frozenset({"w-size-equals"})),
    Deviation("list-text-unquoted", "`[a, b]` list text keeps unquoted items",
              cases=frozenset({"w-isin"})),
    Deviation("notequal-negation", "`notEqual` is the negation of `equals`",
              grid=lambda n, c, a, e, o, u: c == "notEqual", cases=frozenset({"cond-05"})),
    Deviation("listlen-strict", "`listLenLessThan` is strict `<`",
              grid=lambda n, c, a, e, o, u: c == "listLenLessThan" and (o, u) == ("pass", "fail")),
    Deviation("aliases-trimmed", "Chinese aliases are accepted with and without",
              grid=lambda n, c, a, e, o, u: o == "error" and n in _TRIMMED_ONLY),
    Deviation("text-of-non-text", "search the text of numbers and of non-text expect values",
              grid=lambda n, c, a, e, o, u: c in _TEXT_OPS and o == "error"),
    Deviation("equalsdict-json", "`equalsDict` reads `{…}` text as JSON first",
              grid=lambda n, c, a, e, o, u: c == "equalsDict" and o == "error"
              and any(isinstance(v, str) and "true" in v for v in (a, e))),
    Deviation("strict-templates", "**Unresolved placeholders are errors**",
              cases=frozenset({"fn-unknown", "tpl-missing", "fx-lenofstr"})),
    Deviation("embedded-json", "**Embedded dicts/lists are inserted as JSON text**",
              cases=frozenset({"tpl-raw-obj", "tpl-query-obj", "tpl-json-obj", "tpl-header-obj"})),
    Deviation("loop-rendered-per-iteration", "A looped step is rendered afresh in every iteration",
              cases=frozenset({"ctl-for-assert"})),
    Deviation("fractional-waits", "Fractional `sleepBeforeRun`/`sleepAfterRun`",
              cases=frozenset({"ctl-sleep-frac", "ctl-timeout-frac"})),
)


def explain_cell(name: str, cid: str, actual: Any, expect: Any, oracle: str, ours: str) -> str | None:
    for d in DEVIATIONS:
        if d.grid is not None and d.grid(name, cid, actual, expect, oracle, ours):
            return d.key
    return None


def explain_case(case_id: str) -> str | None:
    for d in DEVIATIONS:
        if case_id in d.cases:
            return d.key
    return None
