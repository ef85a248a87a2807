"""Device quarantine (pure, time injected): a device executor whose cases keep breaking gets no more work.

Only executors that own a device are subject to it: an API worker or a browser executor that crashes is
restarted by the supervisor and its work retried, but a device whose Appium server, instrumentation or USB
link is gone breaks every case it is given, and each of those costs a retry. So: ``after`` infrastructure
failures (cases reported *broken*, or the executor dying while running a case) within ``window`` seconds
quarantine the executor. A quarantined executor is dispatched nothing until ``probe`` seconds have passed;
then it may take one unit again (the probe: a real unit, so no extra message kind and no idle device
polling). A case of that unit ending without an infrastructure failure releases it; another failure puts
it back for ``probe`` seconds. Cases finishing while it is held but not probing (the rest of the unit it
was running) change nothing. ``after = 0`` turns quarantine off.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Quarantine", "Hold"]


@dataclass
class Hold:
    """Why and since when an executor is quarantined; ``probe_at`` is inf while its probe unit runs."""

    device: str
    reason: str
    since: float
    probe_at: float

    @property
    def probing(self) -> bool:
        return math.isinf(self.probe_at)


@dataclass
class Quarantine:
    after: int = 2
    window: float = 300.0
    probe: float = 60.0
    failures: dict[str, deque[float]] = field(default_factory=dict)
    held: dict[str, Hold] = field(default_factory=dict)

    def broken(self, executor: str, device: str, reason: str, now: float) -> bool:
        """Count one infrastructure failure of ``executor``; True when it is (again) quarantined by it."""
        if self.after <= 0:
            return False
        hold = self.held.get(executor)
        if hold is not None:
            if not hold.probing:
                return False                  # the rest of the unit it was running when it was held
            hold.reason, hold.since, hold.probe_at = reason, now, now + self.probe   # the probe failed
            return True
        times = self.failures.setdefault(executor, deque())
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.after:
            return False
        self.held[executor] = Hold(device, reason, now, now + self.probe)
        times.clear()
        return True

    def succeeded(self, executor: str) -> bool:
        """A case ended on ``executor`` without an infrastructure failure; True when that released it."""
        hold = self.held.get(executor)
        if hold is None or not hold.probing:
            return False
        del self.held[executor]
        self.failures.pop(executor, None)
        return True

    def blocked(self, executor: str, now: float) -> bool:
        """True while ``executor`` must not be given work (held, and its probe is not due or is running)."""
        hold = self.held.get(executor)
        return hold is not None and now < hold.probe_at

    def probing(self, executor: str) -> None:
        """The scheduler dispatched a unit to a held executor whose probe was due: that unit is the probe."""
        hold = self.held.get(executor)
        if hold is not None:
            hold.probe_at = math.inf

    def snapshot(self, now: float, wall_now: float) -> dict[str, dict[str, Any]]:
        """For ``status``: {executor: {device, reason, since (epoch s), probe_in_s (None while probing)}}."""
        return {name: {"device": h.device, "reason": h.reason, "since": round(wall_now - (now - h.since), 3),
                       "probe_in_s": None if h.probing else round(max(0.0, h.probe_at - now), 1)}
                for name, h in self.held.items()}
