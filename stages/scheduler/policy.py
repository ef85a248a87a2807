"""Dispatch policies behind one small Protocol (xdist-style): the scheduler never branches on which one runs.

An executor with credit asks ``next_for``; the policy picks from the queue a unit the executor can run. It
is handed the units, the executor and ``now`` (the state machine's time: a policy never reads a clock), so
a longest-first or history-aware policy plugs in without touching the machine (``Machine(policy=...)``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .plan import Unit

__all__ = ["DispatchPolicy", "ExecutorInfo", "FifoPolicy", "LongestFirstPolicy", "make_policy"]


@dataclass
class ExecutorInfo:
    name: str
    kinds: frozenset[str]
    device: str | None = None


class DispatchPolicy(Protocol):
    def fits(self, unit: Unit, ex: ExecutorInfo) -> bool:
        """True when ``ex`` can run ``unit`` at all (case types, device binding)."""

    def next_for(self, ex: ExecutorInfo, queue: list[Unit], allowed: Callable[[Unit], bool], others_can: Callable[[Unit], bool],
                 *, now: float = 0.0) -> Unit | None:
        """Remove and return the unit ``ex`` should run next, or None."""


class FifoPolicy:
    """The queue is kept sorted (task priority, plan order) by the scheduler; take the first unit this
    executor may run. An APP unit runs only on a device routing gave it (``Unit.devices``, resolved when the
    task was planned), never elsewhere: binding does not depend on which executor asks first. A unit that
    broke an executor avoids it when another executor could take it."""

    @staticmethod
    def fits(unit: Unit, ex: ExecutorInfo) -> bool:
        return unit.kind_set <= ex.kinds and (unit.devices is None or ex.device in unit.devices)

    def next_for(self, ex: ExecutorInfo, queue: list[Unit], allowed: Callable[[Unit], bool], others_can: Callable[[Unit], bool],
                 *, now: float = 0.0) -> Unit | None:
        for i, u in enumerate(queue):
            if not self.fits(u, ex) or not allowed(u):
                continue
            if u.avoid == ex.name and others_can(u):
                continue
            del queue[i]
            return u
        return None


class LongestFirstPolicy(FifoPolicy):
    """Longest processing time first (LPT): among the units this executor may take at the queue's best
    priority, the one with the largest estimate (s) goes first, so a long unit never starts last and
    straggles; ties keep the queue's order (no estimates at all = FIFO). Priority still rules: a lower
    priority unit never overtakes a higher one. ``estimate`` is handed in (history, step counts): pure."""

    def __init__(self, estimate: Callable[[Unit], float]) -> None:
        self.estimate = estimate

    def next_for(self, ex: ExecutorInfo, queue: list[Unit], allowed: Callable[[Unit], bool], others_can: Callable[[Unit], bool],
                 *, now: float = 0.0) -> Unit | None:
        best: tuple[float, int] | None = None
        priority: int | None = None
        for i, u in enumerate(queue):
            if priority is not None and u.priority != priority:
                break                               # the queue is sorted by priority: the rest ranks lower
            if not self.fits(u, ex) or not allowed(u) or (u.avoid == ex.name and others_can(u)):
                continue
            priority = u.priority
            est = self.estimate(u)
            if best is None or est > best[0]:
                best = (est, i)
        if best is None:
            return None
        return queue.pop(best[1])


def make_policy(name: str, estimate: Callable[[Unit], float]) -> DispatchPolicy:
    """``[Pipeline] dispatch``: ``longest-first`` (default) or ``fifo``."""
    return LongestFirstPolicy(estimate) if name == "longest-first" else FifoPolicy()
