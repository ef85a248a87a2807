"""The screencast burst policy (pure): one start per period at most, never a burst to catch up."""
from __future__ import annotations

from stages.executor.web.grabber import BurstPacer


def test_at_most_one_start_per_period_and_no_catch_up() -> None:
    p = BurstPacer(4.0)
    assert p.due(10.0) == 10.0                     # the first at once
    p.started(10.0)
    assert p.due(10.1) == 10.25                    # a frame came quickly: wait for the period
    p.started(10.25)
    assert p.due(13.0) == 13.0                     # after a long quiet spell: at once, one start, not twelve
