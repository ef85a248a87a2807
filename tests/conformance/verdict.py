"""Judge two engines' answers to the conformance corpus: which differences are documented, which are not."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stages.executor.common.assertion import resolve
from tests.conformance.compare import Difference, diff_rows
from tests.conformance.deviations import explain_case, explain_cell
from tests.conformance.target import DATA

__all__ = ["Verdict", "judge"]

_OUTCOME = {0: "pass", 1: "fail", 2: "error"}
_RENDERED = {"{{n}}": 200, "{{flag}}": True, "{{lst}}": [1, 2, 3]}   # corpus._PARAMS as rendered expects


@dataclass
class Verdict:
    rows: int = 0
    cases_differing: set[str] = field(default_factory=set)     # final status of some round differs
    explained: Counter[str] = field(default_factory=Counter)    # deviation key -> status differences
    problems: list[str] = field(default_factory=list)           # undocumented differences


def _comparator_cell(case: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """(comparator name, actual, rendered expect) of a one-assertion comparator case on /data."""
    steps = case.get("apiList") or []
    if len(steps) != 1 or steps[0]["path"] != "/data" or len(steps[0]["assertions"]) != 1:
        return None
    a = steps[0]["assertions"][0]
    name = a["expression"][2:]
    if name not in DATA:
        return None
    return a["assertion"], DATA[name], _RENDERED.get(a["expect"], a["expect"])


def _explain(d: Difference, case: dict[str, Any], theirs: dict, ours: dict) -> str | None:
    key = explain_case(d.case_id)
    if key is not None:
        return key
    cell = _comparator_cell(case)
    if cell is None or d.key not in theirs or d.key not in ours:
        return None
    name, actual, expect = cell
    o, u = _OUTCOME[theirs[d.key]["status"]], _OUTCOME[ours[d.key]["status"]]
    return explain_cell(name, resolve(name).id, actual, expect, o, u)


def _index(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {(r["collectionId"], r["caseId"], r["index"], r["runTimes"]): r for r in rows}


def judge(theirs_all: dict[str, list], ours_all: dict[str, list], cases: dict[str, dict[str, Any]]) -> Verdict:
    v = Verdict()
    if set(theirs_all) != set(ours_all):
        v.problems.append(f"tasks: original {sorted(theirs_all)}, ours {sorted(ours_all)}")
    for task_id in theirs_all:
        theirs, ours = _index(theirs_all[task_id]), _index(ours_all.get(task_id, []))
        v.rows += len(theirs)
        diffs = diff_rows(theirs_all[task_id], ours_all.get(task_id, []))
        explained_cases: set[str] = set()
        for d in [d for d in diffs if d.kind == "status"]:
            v.cases_differing.add(d.case_id)
            key = _explain(d, cases[d.case_id], theirs, ours)
            if key is None:
                v.problems.append(f"{d.case_id} run {d.key[3]}: {d.detail}")
            else:
                v.explained[key] += 1
                explained_cases.add(d.case_id)
        for d in [d for d in diffs if d.kind != "status"]:
            if d.kind in ("missing", "extra"):
                v.cases_differing.add(d.case_id)
                # a rerun row exists only for a case that failed: an explained status difference moves it
                if d.key[3] > 1 and d.case_id in explained_cases:
                    continue
            v.problems.append(f"{d.case_id} run {d.key[3]}: {d.kind}: {d.detail}")
    return v
