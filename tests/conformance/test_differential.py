"""The same LiuMa tasks through the original engine and through ours: every case must end the same way.

The corpus (tests/conformance/corpus.py, by reference section) runs once per session through each engine,
each against its own target server. A status difference must be explained by a documented deviation
(tests/conformance/deviations.py, tied to docs/case-language.md); a row-shape difference (keys, value types,
transaction ids/names/count, screenshot counts) is never allowed. The original's answer is cached per corpus
hash in the oracle's cache dir (``LIUMA_ORACLE_FRESH=1`` runs it again).
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stages.executor.common.assertion import resolve
from tests.conformance import corpus
from tests.conformance.compare import Difference, diff_rows
from tests.conformance.deviations import DEVIATIONS, explain_case, explain_cell
from tests.conformance.engines import run_oracle, run_ours
from tests.conformance.target import DATA, Target

pytestmark = [pytest.mark.oracle, pytest.mark.slow, pytest.mark.timeout(1200)]
_OUTCOME = {0: "pass", 1: "fail", 2: "error"}
_RENDERED = {"{{n}}": 200, "{{flag}}": True, "{{lst}}": [1, 2, 3]}


@pytest.fixture(scope="module")
def answers(oracle, tmp_path_factory) -> dict[str, Any]:
    scratch = tmp_path_factory.mktemp("conformance")
    cached = oracle.answers / f"{corpus.fingerprint()}.json"
    started = time.monotonic()
    if cached.is_file() and os.environ.get("LIUMA_ORACLE_FRESH") != "1":
        theirs = json.loads(cached.read_text())
    else:
        with Target() as target:
            theirs = run_oracle(oracle, corpus.tasks(target.url), scratch)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(theirs, ensure_ascii=False))
    oracle_s = time.monotonic() - started
    with Target() as target:
        tasks = corpus.tasks(target.url)
        ours = run_ours(tasks, scratch)
    cases = {cid: c for _, cs in tasks for cid, c in cs.items()}
    print(f"\nconformance: {len(cases)} cases; original {oracle_s:.1f} s (cached: {cached.is_file()}), "
          f"ours {time.monotonic() - started - oracle_s:.1f} s")
    return {"theirs": theirs, "ours": ours, "cases": cases}


def _comparator_cell(case: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """(comparator name, actual, rendered expect) of a one-assertion comparator case on /data."""
    steps = case.get("apiList") or []
    if len(steps) != 1 or steps[0]["path"] != "/data" or len(steps[0]["assertions"]) != 1:
        return None
    a = steps[0]["assertions"][0]
    field = a["expression"][2:]
    if field not in DATA:
        return None
    return a["assertion"], DATA[field], _RENDERED.get(a["expect"], a["expect"])


def _explain(d: Difference, case: dict[str, Any], theirs: dict, ours: dict) -> str | None:
    key = explain_case(d.case_id)
    if key is not None:
        return key
    cell = _comparator_cell(case)
    if cell is None or d.kind != "status" or d.key not in theirs or d.key not in ours:
        return None
    name, actual, expect = cell
    o, u = _OUTCOME[theirs[d.key]["status"]], _OUTCOME[ours[d.key]["status"]]
    return explain_cell(name, resolve(name).id, actual, expect, o, u)


def test_every_case_ends_as_in_the_original(answers: dict[str, Any]) -> None:
    theirs_all, ours_all, cases = answers["theirs"], answers["ours"], answers["cases"]
    assert set(theirs_all) == set(ours_all)
    used: Counter[str] = Counter()
    problems: list[str] = []
    explained_cases: set[str] = set()
    for task_id in theirs_all:
        theirs = {(r["collectionId"], r["caseId"], r["index"], r["runTimes"]): r for r in theirs_all[task_id]}
        ours = {(r["collectionId"], r["caseId"], r["index"], r["runTimes"]): r for r in ours_all[task_id]}
        diffs = diff_rows(theirs_all[task_id], ours_all[task_id])
        for d in [d for d in diffs if d.kind == "status"]:
            key = _explain(d, cases[d.case_id], theirs, ours)
            if key is None:
                problems.append(f"{d.case_id} run {d.key[3]}: {d.detail}")
            else:
                used[key] += 1
                explained_cases.add(d.case_id)
        for d in [d for d in diffs if d.kind != "status"]:
            # a rerun row exists only for a case that failed: explained status differences move it
            if d.kind in ("missing", "extra") and d.key[3] > 1 and d.case_id in explained_cases:
                continue
            problems.append(f"{d.case_id} run {d.key[3]}: {d.kind}: {d.detail}")
    print(f"conformance: {sum(len(v) for v in theirs_all.values())} rows; status differences explained by "
          f"documented deviations: {dict(used)}")
    assert not problems, f"{len(problems)} undocumented differences from the original:\n" + "\n".join(problems[:40])
    stale = [d.key for d in DEVIATIONS if d.cases and not used[d.key]]
    assert not stale, f"allowlisted case deviations that no longer differ (remove them): {stale}"


def test_corpus_covers_every_section_broadly(answers: dict[str, Any]) -> None:
    sections = {name: sum(len(cs) for _, cs in cols) for name, cols in corpus.build("http://x").items()}
    print(f"corpus by section: {sections}")
    assert all(n >= 4 for n in sections.values()), sections
    assert sum(sections.values()) >= 300
