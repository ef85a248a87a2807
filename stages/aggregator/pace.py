"""What one item really costs a worker thread of the aggregator (the report thread, the Allure file thread).

While items wait, the time between two completions is the cost that matters for catching up: it includes
the waits for the GIL and for a core that the item's own time leaves out (on two busy cores, several times
it). When nothing waits it is the item's own time. A moving average of that feeds flow control (``flow.py``).
"""
from __future__ import annotations

import time

__all__ = ["Pace"]


class Pace:
    """``start()`` before an item, ``done(t0, backlogged)`` after it; ``seconds``: the moving average."""

    def __init__(self, seconds: float, window: int = 64) -> None:
        self.seconds = seconds
        self._window = window
        self._last = time.perf_counter()

    def done(self, t0: float, backlogged: bool) -> None:
        now = time.perf_counter()
        self.seconds += ((now - self._last if backlogged else now - t0) - self.seconds) / self._window
        self._last = now

    def pause(self) -> None:
        """Time spent on something else (a partial rewrite) is not the next item's cost."""
        self._last = time.perf_counter()
