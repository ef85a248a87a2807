"""Per-case deadline table kept by the supervisor (pure: times are passed in).

An executor reports the case it started (with the case's budget and the time already spent); the
supervisor asks ``expired(now)`` each tick and kills the victims from outside, so a case stuck in a hung
HTTP call, WebDriver command or endless loop cannot outlive its deadline + grace.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Running", "DeadlineTable"]


@dataclass(slots=True)
class Running:
    stage: str
    inc: int
    case: str            # "<caseName> (<caseId>#<index>, attempt <runTimes>)"
    step: str
    budget: float        # seconds the case may take
    deadline: float      # monotonic
    signalled_at: float | None = None


class DeadlineTable:
    def __init__(self) -> None:
        self._running: dict[str, Running] = {}

    def started(self, stage: str, inc: int, case: str, budget: float, elapsed: float, now: float) -> None:
        cur = self._running.get(stage)
        if cur is not None and cur.case == case and cur.inc == inc:
            return
        self._running[stage] = Running(stage, inc, case, "", budget, now - elapsed + budget)

    def step(self, stage: str, step: str) -> None:
        if stage in self._running:
            self._running[stage].step = step

    def finished(self, stage: str) -> None:
        self._running.pop(stage, None)

    def get(self, stage: str) -> Running | None:
        return self._running.get(stage)

    def expired(self, now: float) -> list[Running]:
        """Cases past their deadline that were not yet signalled (each is returned once)."""
        out = [r for r in self._running.values() if r.signalled_at is None and now >= r.deadline]
        for r in out:
            r.signalled_at = now
        return out
