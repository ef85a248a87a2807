"""Flow control between ingest and the report thread: when to ask the scheduler to hold dispatch.

The aggregator journals and acks each result at once, but renders it later on its report thread. When
results arrive faster than that thread renders (a no-op suite on two cores: executors reach ~2,000 cases/s,
and every stage competes for the same cores), its queue grows without bound: memory grows, the live report
lags, and the final report waits for the whole backlog (seconds at 50,000 cases). Holding new dispatch
while the backlog is more than ``hold_s`` of rendering gives the cores to the report thread until it is back
under ``resume_s``; the units already running finish. Never a stall: a backlog that has not shrunk for
``stuck_s`` (a report disk that hangs) stops the hold until the thread catches up on its own.

Pure: handed the backlog (seconds of rendering) and the time; says what to send.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReportsFlow"]


@dataclass
class ReportsFlow:
    """``update(behind_s, now)`` -> True (send a hold), False (send a resume) or None (nothing to send)."""

    hold_s: float = 0.3
    resume_s: float = 0.05
    repeat_s: float = 1.0           # a hold is repeated this often (the scheduler lets one lapse after 3 s)
    stuck_s: float = 10.0
    holding: bool = False
    gave_up: bool = False           # the backlog stopped shrinking: no hold until it is under resume_s again
    holds: int = 0
    _sent: float = 0.0
    _best: float = 0.0              # the smallest backlog seen during this hold, and when
    _best_at: float = 0.0

    def update(self, behind_s: float, now: float) -> bool | None:
        if behind_s < self.resume_s:
            self.gave_up = False
            if self.holding:
                self.holding = False
                return False
            return None
        if not self.holding:
            if behind_s <= self.hold_s or self.gave_up:
                return None
            self.holding, self.holds = True, self.holds + 1
            self._sent, self._best, self._best_at = now, behind_s, now
            return True
        if behind_s < self._best:
            self._best, self._best_at = behind_s, now
        elif now - self._best_at >= self.stuck_s:
            self.holding, self.gave_up = False, True
            return False
        if now - self._sent >= self.repeat_s:
            self._sent = now
            return True
        return None
