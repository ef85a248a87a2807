"""Both engines' comparators over the same few ten thousand (comparator, actual, expect) cells.

Where the original passes or fails, ours must end the same way; where it differs, a documented deviation
(tests/conformance/deviations.py, each tied to a sentence of docs/case-language.md) must explain the cell.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from stages.executor.common.assertion import resolve
from tests.conformance import grid
from tests.conformance.deviations import DEVIATIONS, explain_cell

pytestmark = pytest.mark.oracle
PROBE = Path(__file__).with_name("oracle_probe.py")
DOC = Path(__file__).resolve().parents[2] / "docs" / "case-language.md"


def test_every_deviation_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [d.key for d in DEVIATIONS if d.doc not in text]
    assert not missing, f"deviations without their sentence in {DOC.name}: {missing}"


def test_comparator_grid_matches_the_original(oracle) -> None:
    cells = grid.triples()
    ours = grid.ours(cells)
    theirs = grid.oracle(str(oracle.python), str(oracle.tree), str(PROBE), cells)
    used: Counter[str] = Counter()
    unexplained = []
    for (name, actual, expect), u, o in zip(cells, ours, theirs):
        if u == o:
            continue
        key = explain_cell(name, resolve(name).id, actual, expect, o, u)
        if key is None:
            unexplained.append(f"{name}({actual!r}, {expect!r}): original {o}, ours {u}")
        else:
            used[key] += 1
    equal = sum(u == o for u, o in zip(ours, theirs))
    print(f"comparator grid: {len(cells)} cells, {equal} equal, {len(cells) - equal} differ "
          f"(all documented: {dict(used)})")
    assert not unexplained, f"{len(unexplained)} undocumented differences, e.g.:\n" + "\n".join(unexplained[:30])
    stale = [d.key for d in DEVIATIONS if d.grid is not None and not used[d.key]]
    assert not stale, f"grid deviations that explain no cell (stale allowlist entries): {stale}"
