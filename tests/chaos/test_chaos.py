"""Chaos: ~300 API cases and a few WEB cases while random stages are SIGKILLed several times and one is
hung (SIGSTOP). Nothing may be lost or duplicated, final statuses must equal a run without chaos, and no
process (stage, browser, driver) may be left behind."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.chaos.harness import chaos_suite, final_statuses, kill_leftovers, leftovers, run_engine

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _rows(tmp: Path) -> list[dict]:
    return json.loads((tmp / "reports" / "chaos" / "results.json").read_text())["caseResultList"]


def test_chaos_run_loses_nothing_duplicates_nothing_and_matches_a_calm_run(tmp_path: Path, demo_url: str) -> None:
    suite = chaos_suite(tmp_path / "suite", demo_url)
    try:
        calm = run_engine(suite, tmp_path / "calm", chaos=False)
        assert calm.code == 1, calm.err                      # the deterministic failures
        calm_rows = _rows(tmp_path / "calm")
        assert len(calm_rows) == 306

        wild = run_engine(suite, tmp_path / "wild", chaos=True, kills=8)
        assert wild.code == 1, (wild.out[-2000:], wild.err[-2000:])
        rows = _rows(tmp_path / "wild")
        keys = Counter((r["collectionId"], r["caseId"], r["index"], r["runTimes"]) for r in rows)
        assert max(keys.values()) == 1                         # no duplicates
        per_case: dict[tuple, list[int]] = {}
        for (c, case, i, rt) in keys:
            per_case.setdefault((c, case, i), []).append(rt)
        assert len(per_case) == 306                            # nothing lost
        assert all(sorted(v) == list(range(1, len(v) + 1)) for v in per_case.values())   # attempts numbered 1..n
        assert final_statuses(rows) == final_statuses(calm_rows)
        for r in rows:
            if r["runTimes"] > 1:                             # a retried attempt follows a broken one
                prev = next(x for x in rows if (x["collectionId"], x["caseId"], x["index"], x["runTimes"]) ==
                            (r["collectionId"], r["caseId"], r["index"], r["runTimes"] - 1))
                assert prev["status"] == 2 and prev["transactionList"][0]["log"]
        summary = json.loads((tmp_path / "wild" / "reports" / "chaos" / "summary.json").read_text())
        assert len(summary["details"]) == len(per_case)          # one detail per case (HttpRunner's invariant)
        assert summary["stat"]["testcases"]["attempts"] == len(rows)
        assert sum(1 for k in wild.kills if k[2] == "SIGKILL") == 8
        assert sum(wild.restarts.values()) >= 8
        assert wild.restarts.get("janitor", 0) >= 1            # the SIGSTOPped janitor was found hung and replaced
        assert not leftovers(tmp_path)
    finally:
        kill_leftovers(tmp_path)
