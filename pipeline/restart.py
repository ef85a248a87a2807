"""Pure restart policy (circus' flapping plugin + systemd's backoff): fed with monotonic times, no sleeping."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["Backoff", "FlappingDetector"]


@dataclass
class Backoff:
    """Delay before restart #n: ``first`` doubling to ``cap``; reset once a stage stayed up ``stable`` seconds.

    ``immediate_first``: the first restart after a stable period happens at once (then 1 s, 2 s, ...). Used for
    executors, whose crash is usually the case's doing (a browser or device that died) and whose absence
    stalls the pool; a crash loop still backs off and is caught by the flapping detector (#9).
    """

    first: float = 1.0
    cap: float = 60.0
    stable: float = 30.0
    failures: int = 0
    immediate_first: bool = False

    def next_delay(self, uptime: float) -> float:
        if uptime >= self.stable:
            self.failures = 0
        self.failures += 1
        if self.immediate_first:
            return 0.0 if self.failures == 1 else min(self.cap, self.first * 2.0 ** (self.failures - 2))
        return min(self.cap, self.first * 2.0 ** (self.failures - 1))


@dataclass
class FlappingDetector:
    """``max_restarts`` crashes within ``window`` seconds = flapping: give up, loudly."""

    max_restarts: int = 5
    window: float = 60.0
    _times: deque[float] = field(default_factory=deque)

    def record(self, now: float) -> bool:
        """Record a crash at ``now``; True when the stage must be given up."""
        self._times.append(now)
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        return len(self._times) > self.max_restarts
