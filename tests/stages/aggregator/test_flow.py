"""ReportsFlow: when the aggregator asks the scheduler to hold dispatch for its report thread (pure, table-tested)."""
from __future__ import annotations

import pytest

from stages.aggregator.flow import ReportsFlow

# (behind_s, now) -> what update() says: True = send a hold, False = send a resume, None = nothing
CASES = [
    ("under the hold threshold: nothing", [(0.0, 0.0), (0.2, 0.1), (0.3, 0.2)], [None, None, None]),
    ("over it: one hold, repeated every second, then a resume once caught up",
     [(0.5, 0.0), (0.4, 0.5), (0.2, 1.0), (0.1, 1.5), (0.04, 1.6), (0.01, 2.0)], [True, None, True, None, False, None]),
    ("hysteresis: between resume and hold thresholds a hold goes on, no new hold starts",
     [(0.5, 0.0), (0.1, 0.2), (0.04, 0.3), (0.2, 0.4)], [True, None, False, None]),
    ("a backlog that stops shrinking for 10 s ends the hold and starts none until it is under resume_s",
     [(1.0, 0.0), (0.9, 1.0), (0.95, 5.0), (1.2, 11.0), (2.0, 12.0), (0.01, 13.0), (0.5, 14.0)],
     [True, True, True, False, None, None, True]),
]


@pytest.mark.parametrize("name,steps,expected", CASES, ids=[c[0] for c in CASES])
def test_reports_flow(name: str, steps: list[tuple[float, float]], expected: list[bool | None]) -> None:
    flow = ReportsFlow()
    assert [flow.update(behind, now) for behind, now in steps] == expected


def test_holds_are_counted_and_giving_up_is_visible() -> None:
    flow = ReportsFlow()
    flow.update(1.0, 0.0)
    flow.update(1.0, 10.0)
    assert (flow.holds, flow.holding, flow.gave_up) == (1, False, True)
