"""Pure restart policy: Backoff doubling to its cap and resetting after a stable run; flapping window."""
from __future__ import annotations

import pytest

from pipeline.restart import Backoff, FlappingDetector


@pytest.mark.parametrize("first, cap, expected", [
    (1.0, 60.0, [1, 2, 4, 8, 16, 32, 60, 60]),
    (0.5, 3.0, [0.5, 1, 2, 3, 3, 3, 3, 3]),
    (5.0, 5.0, [5] * 8),
])
def test_backoff_doubles_to_the_cap(first: float, cap: float, expected: list[float]) -> None:
    b = Backoff(first=first, cap=cap, stable=30.0)
    assert [b.next_delay(uptime=1.0) for _ in expected] == expected


@pytest.mark.parametrize("uptime, expected", [(29.9, 8.0), (30.0, 1.0), (3600.0, 1.0)])
def test_backoff_resets_after_a_stable_uptime(uptime: float, expected: float) -> None:
    b = Backoff(first=1.0, cap=60.0, stable=30.0)
    assert [b.next_delay(0.1) for _ in range(3)] == [1, 2, 4]
    assert b.next_delay(uptime) == expected


@pytest.mark.parametrize("times, gives_up_at", [
    ([0, 1, 2, 3, 4, 5], 5),                  # 6 crashes within 60 s: the 6th gives up
    ([0, 1, 2, 3, 4], None),                  # 5 crashes are still allowed
    ([0, 20, 40, 60, 80, 100, 120], None),    # spread out: the window slides
    ([0, 10, 20, 30, 40, 60], 5),             # 60 - 0 is not > window: still counted
    ([0, 10, 20, 30, 40, 60.01], None),       # the first one has just left the window
])
def test_flapping_window(times: list[float], gives_up_at: int | None) -> None:
    f = FlappingDetector(max_restarts=5, window=60.0)
    verdicts = [f.record(t) for t in times]
    first = next((i for i, v in enumerate(verdicts) if v), None)
    assert first == gives_up_at
