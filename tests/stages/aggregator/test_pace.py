"""Pace: an item's own time when nothing waits, the time between completions while items wait."""
from __future__ import annotations

import pytest

from stages.aggregator import pace as pace_mod
from stages.aggregator.pace import Pace


def test_pace_counts_the_time_between_completions_while_backlogged(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 2.0, 2.5, 3.0])                 # construction, then one perf_counter per call
    monkeypatch.setattr(pace_mod.time, "perf_counter", lambda: next(clock))
    p = Pace(0.0, window=1)                                  # window 1: the latest cost itself
    p.done(t0=0.9, backlogged=False)                         # at 1.0: its own 0.1 s
    assert p.seconds == pytest.approx(0.1)
    p.done(t0=1.9, backlogged=True)                          # at 2.0: 1.0 s since the last completion
    assert p.seconds == pytest.approx(1.0)
    p.pause()                                                # at 2.5: something else ran
    p.done(t0=2.8, backlogged=True)                          # at 3.0: 0.5 s since the pause, not 1.0
    assert p.seconds == pytest.approx(0.5)
