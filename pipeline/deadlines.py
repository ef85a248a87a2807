"""Per-case deadline table kept by the supervisor (pure: times are passed in).

An executor's case thread reports each case before it runs it (``case.deadline``), and heartbeats repeat
it with the step; the supervisor asks ``expired(now)`` each tick and kills the victims from outside, so a
case stuck in a hung HTTP call, WebDriver command, endless loop or native code holding the GIL cannot
outlive its deadline + grace. ``key`` = (case_id, index, run_times) says which case an entry is, so a
later report of the same case refines its label without moving its deadline.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeadlineTable", "Running", "death_reason"]


@dataclass(slots=True)
class Running:
    stage: str
    inc: int
    case: str            # "<caseName> (<caseId>#<index>, attempt <runTimes>)"
    step: str
    budget: float        # seconds the case may take
    deadline: float      # monotonic
    signalled_at: float | None = None
    key: tuple[str, int, int] | None = None   # (case_id, index, run_times)
    since: float = 0.0   # wall time the case was reported started (a heartbeat older than that is stale)
    named: bool = False  # the label carries the case's name (heartbeats), not only its id (case.deadline)

    def victim(self) -> dict[str, object] | None:
        """The case as ``stage.died`` names it to the scheduler (None when only its label is known)."""
        if self.key is None:
            return None
        return {"case_id": self.key[0], "index": self.key[1], "run_times": self.key[2], "started_ms": int(self.since * 1000)}


def death_reason(stage: str, cause: str, running: Running | None) -> str:
    """Why an executor's case ended, for the scheduler: our own kill reasons stand alone (they name the case
    already); a crash names the stage and, when it ran one, the case and step."""
    reason = cause if cause.startswith(("timeout", "hung", "stopped")) else f"{stage} {cause}"
    if running and not cause.startswith("timeout"):
        reason += f" while running case {running.case}" + (f" at step {running.step!r}" if running.step else "")
    return reason


class DeadlineTable:
    def __init__(self) -> None:
        self._running: dict[str, Running] = {}

    def started(self, stage: str, inc: int, case: str, budget: float, elapsed: float, now: float,
                key: tuple[str, int, int] | None = None, since: float = 0.0, named: bool = True) -> None:
        cur = self._running.get(stage)
        if cur is not None and cur.inc == inc and (cur.case == case or (key is not None and cur.key == key)):
            if named or not cur.named:
                cur.case, cur.named = case, cur.named or named
            return
        self._running[stage] = Running(stage, inc, case, "", budget, now - elapsed + budget, key=key, since=since, named=named)

    def step(self, stage: str, step: str) -> None:
        if stage in self._running:
            self._running[stage].step = step

    def finished(self, stage: str, as_of: float | None = None) -> None:
        """``as_of``: wall time the "nothing running" report was made; an entry reported after it stays."""
        cur = self._running.get(stage)
        if cur is not None and (as_of is None or as_of >= cur.since):
            del self._running[stage]

    def get(self, stage: str) -> Running | None:
        return self._running.get(stage)

    def expired(self, now: float) -> list[Running]:
        """Cases past their deadline that were not yet signalled (each is returned once)."""
        out = [r for r in self._running.values() if r.signalled_at is None and now >= r.deadline]
        for r in out:
            r.signalled_at = now
        return out
