"""Slots that never leak: the scheduler checks its belief about each executor against what the executor
itself reports (``executor.status``, every heartbeat interval) and heals a disagreement that lasts.

A slot leaks when one message of the credit protocol is lost: a ``unit.done`` (the scheduler still thinks
the executor busy, the executor sits idle forever) or a ``unit.run`` (the scheduler thinks the unit runs,
the executor never got it). Both look the same from here: the scheduler holds unit U for an executor whose
reports say it holds no unit. :class:`SlotWatch` is pure (reports and the time in, actions out):

- the executor's last finished unit *is* U → ``finish``: U is treated as done (its cases were reported one
  by one, so nothing is lost; unreported ones are re-queued) and the credit is offered again;
- it is not → ``replace``: the executor is killed through the supervisor and restarted, so a ``unit.run``
  delivered late can never run U a second time, and U is re-queued as for any lost executor.

Separately, queued work that could run while an executor the scheduler counts idle waits for more than the
grace is logged once per episode (``stuck``): that is a scheduler bug, named so it can be found.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pipeline.codec import Envelope
from pipeline.messages import ExecutorStatus, StageKill, UnitDone

from .events import Received
from .turn import allowed

if TYPE_CHECKING:
    from . import Scheduler

__all__ = ["Report", "SlotAction", "SlotWatch", "heal", "watch"]

log = logging.getLogger("stages.scheduler")


@dataclass(frozen=True, slots=True)
class Report:
    holds_unit: bool          # the executor says it runs a unit
    last_unit: str            # the last unit it received
    at: float


@dataclass(frozen=True, slots=True)
class SlotAction:
    kind: Literal["finish", "replace", "stuck"]
    executor: str
    unit_id: str
    reason: str


@dataclass
class SlotWatch:
    grace: float = 5.0
    reports: dict[str, Report] = field(default_factory=dict)
    since: dict[str, tuple[str, float]] = field(default_factory=dict)     # executor -> (unit held, disagreeing since)
    acted: set[tuple[str, str]] = field(default_factory=set)
    idle_since: float | None = None
    stuck_logged: bool = False

    def report(self, executor: str, holds_unit: bool, last_unit: str, now: float) -> None:
        self.reports[executor] = Report(holds_unit, last_unit, now)

    def check(self, held: dict[str, str], idle_with_work: bool, now: float) -> list[SlotAction]:
        """``held``: executor -> unit id the scheduler believes it runs; ``idle_with_work``: some queued unit
        fits an executor the scheduler counts idle (and may run now)."""
        out: list[SlotAction] = []
        for name, unit_id in held.items():
            r = self.reports.get(name)
            mark = self.since.get(name)
            if r is None or r.holds_unit or (mark is not None and mark[0] != unit_id):
                self.since.pop(name, None)             # it agrees (or holds another unit now): start over
                if r is None or r.holds_unit:
                    continue
            if name not in self.since:                 # the first report may predate the unit.run: wait for
                self.since[name] = (unit_id, r.at)     # reports spanning the grace that all say "no unit"
                continue
            first = self.since[name][1]
            if r.at - first < self.grace or (name, unit_id) in self.acted:
                continue
            self.acted.add((name, unit_id))
            waited = now - first
            if r.last_unit == unit_id:
                out.append(SlotAction("finish", name, unit_id, f"{name} finished unit {unit_id[:8]} but its unit.done never "
                                      f"arrived ({waited:.1f} s idle); treating the unit as done"))
            else:
                out.append(SlotAction("replace", name, unit_id, f"{name} never received unit {unit_id[:8]} ({waited:.1f} s "
                                      f"idle, last unit {r.last_unit[:8] or 'none'}); replacing the executor"))
        for name in [n for n in self.since if n not in held]:
            del self.since[name]
        if not idle_with_work:
            self.idle_since, self.stuck_logged = None, False
        elif self.idle_since is None:
            self.idle_since = now
        elif now - self.idle_since >= self.grace and not self.stuck_logged:
            self.stuck_logged = True
            out.append(SlotAction("stuck", "", "", f"work queued while an admissible executor has been idle for "
                                  f"{now - self.idle_since:.1f} s"))
        return out


def watch(sched: Scheduler, env: Envelope[ExecutorStatus]) -> None:
    """Hook for ``executor.status`` (before it is applied): note what the executor says it holds; a stale
    incarnation's last words are not a report."""
    ex = sched.machine.executors.get(env.src)
    if ex is None or env.inc >= ex.inc:
        sched.slots.report(env.src, bool(env.body.unit), str(env.body.last_unit or ""), sched.clock.monotonic())


def heal(sched: Scheduler) -> None:
    """Hook for the loop turn (after the machine's tick): run the check and carry out its actions. A lost
    ``unit.done`` is applied to the machine as the ``unit.done`` it would have been (so it is journaled and
    replayed like one); a replacement is asked of the supervisor."""
    m, now = sched.machine, sched.clock.monotonic()
    held = {n: e.unit.unit_id for n, e in m.executors.items() if e.unit is not None}
    idle = [e for e in m.executors.values() if e.idle and e.unit is None and not m.quarantine.blocked(e.info.name, now)]
    work = bool(idle) and any(m.policy.fits(u, e.info) and allowed(m, u) for u in m.queue for e in idle)
    for a in sched.slots.check(held, work and now >= m.adopt_until and not m.disk_short, now):
        log.warning("slot check: %s", a.reason)
        ex = m.executors.get(a.executor)
        if a.kind == "finish" and ex is not None:
            sched.apply(Received(a.executor, ex.inc, UnitDone(unit_id=a.unit_id)))
        elif a.kind == "replace" and ex is not None:
            sched.mailbox.send("supervisor", StageKill(stage=a.executor, inc=ex.inc, reason=f"slot check: {a.reason}"))
