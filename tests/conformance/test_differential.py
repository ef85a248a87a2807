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
from typing import Any

import pytest

from tests.conformance import corpus
from tests.conformance.deviations import DEVIATIONS
from tests.conformance.engines import run_oracle, run_ours
from tests.conformance.target import Target
from tests.conformance.verdict import judge

pytestmark = [pytest.mark.oracle, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def answers(oracle, tmp_path_factory) -> dict[str, Any]:
    scratch = tmp_path_factory.mktemp("conformance")
    cached = oracle.answers / f"{corpus.fingerprint()}.json"
    started = time.monotonic()
    from_cache = cached.is_file() and os.environ.get("LIUMA_ORACLE_FRESH") != "1"
    if from_cache:
        theirs = json.loads(cached.read_text())
    else:
        with Target() as target:
            theirs = run_oracle(oracle, corpus.tasks(target.url), scratch, before_attempt=target.reset)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(theirs, ensure_ascii=False))
    oracle_s = time.monotonic() - started
    with Target() as target:
        tasks = corpus.tasks(target.url)
        ours = run_ours(tasks, scratch)
    cases = {cid: c for _, cs in tasks for cid, c in cs.items()}
    print(f"\nconformance: {len(cases)} cases; original {oracle_s:.1f} s (from cache: {from_cache}), "
          f"ours {time.monotonic() - started - oracle_s:.1f} s")
    return {"theirs": theirs, "ours": ours, "cases": cases}


def test_every_case_ends_as_in_the_original(answers: dict[str, Any]) -> None:
    verdict = judge(answers["theirs"], answers["ours"], answers["cases"])
    print(f"conformance: {verdict.rows} rows of the original; {len(verdict.cases_differing)} cases end differently, "
          f"status differences explained by documented deviations: {dict(verdict.explained)}")
    assert not verdict.problems, (f"{len(verdict.problems)} undocumented differences from the original:\n"
                                  + "\n".join(verdict.problems[:40]))
    stale = [d.key for d in DEVIATIONS if d.cases and not verdict.explained[d.key]]
    assert not stale, f"allowlisted case deviations that no longer differ (remove them): {stale}"


def test_corpus_covers_every_section_broadly(answers: dict[str, Any]) -> None:
    sections = {name: sum(len(cs) for _, cs in cols) for name, cols in corpus.build("http://x").items()}
    print(f"corpus by section: {sections}")
    assert all(n >= 4 for n in sections.values()), sections
    assert sum(sections.values()) >= 300
