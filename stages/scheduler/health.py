"""The machine's side of device health: holding a device when its executor reports the ladder failed or
it breaks too often, probing on schedule, re-admitting on a passing probe, ending units only quarantined
devices could run. The policy is ``quarantine.Quarantine`` (pure); these functions wire it to the
machine's state and commands (every change of the holds asks the stage to save the state file).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipeline.messages import DeviceProbe, Probe
from pipeline.models import Outcome

from .events import SaveHealth
from .policy import ExecutorInfo

if TYPE_CHECKING:
    from .machine import ExecState, Machine

__all__ = ["device_down", "fail_stranded", "infra_failure", "probe_answered", "save", "send_probes"]


def save(m: Machine) -> None:
    m.emit(SaveHealth(m.quarantine.to_state(m.now, m.wall)))


def device_down(m: Machine, ex: ExecState, reason: str) -> None:
    """The executor says its device failed the last rung of the ladder: hold it now."""
    if ex.info.device and m.quarantine.hold(ex.info.name, ex.info.device, reason, m.now):
        m.log(logging.WARNING, f"{ex.info.name} (device {ex.info.device}) quarantined: {reason}; "
                               f"probe in {m.quarantine.probe:.0f} s")
    save(m)


def infra_failure(m: Machine, ex: ExecState, reason: str) -> None:
    """A case broke on ``ex``: a device executor failing too often is quarantined (see quarantine.py)."""
    if not ex.info.device:
        return
    if m.quarantine.broken(ex.info.name, ex.info.device, reason, m.now):
        m.log(logging.WARNING, f"{ex.info.name} (device {ex.info.device}) quarantined: {reason}; "
                               f"probe in {m.quarantine.probe:.0f} s")
    save(m)


def send_probes(m: Machine) -> None:
    """Probe every held device whose time has come, if its executor is idle (never in a unit)."""
    for name, ex in m.executors.items():
        if ex.unit is None and ex.idle and ex.info.device and m.quarantine.probe_due(name, m.now):
            m.send(name, DeviceProbe(device=ex.info.device))
            m.quarantine.probe_sent(name, m.now)


def probe_answered(m: Machine, ex: ExecState, probe: Probe) -> None:
    q = m.quarantine
    if q.probe_result(ex.info.name, bool(probe.get("ok")), str(probe.get("error") or ""), m.now):
        m.log(logging.WARNING, f"{ex.info.name} (device {ex.info.device}) passed its probe: re-admitted")
    elif ex.info.name in q.held:
        m.log(logging.WARNING, f"{ex.info.name} (device {ex.info.device}) failed its probe: "
                               f"{q.held[ex.info.name].reason}; next in {q.probe:.0f} s")
    save(m)


def fail_stranded(m: Machine) -> None:
    """Queued units that only quarantined executors could run end as broken with the reason, so the task
    finishes instead of waiting for a device that keeps failing."""
    if m.now < m.adopt_until or not m.quarantine.held:     # just restarted (executors have not all announced
        return                                              # yet), or nothing held: no unit can be stranded
    retired = m.settings.retired
    engine = {e.name: ExecutorInfo(e.name, frozenset(e.kinds), e.device) for e in m.settings.executors
              if e.name not in retired}     # configured but not announced yet: still capable
    pool = list({**engine, **m.known}.values())
    for u in list(m.queue):
        capable = [i for i in pool if m.policy.fits(u, i) and i.name not in retired]
        if not capable or not all(m.quarantine.blocked(i.name, m.now) for i in capable):
            continue
        held = [m.quarantine.held[i.name] for i in capable]
        reason = "no healthy device: " + "; ".join(f"{h.device} quarantined: {h.reason}" for h in held)
        m.queue.remove(u)
        ts = m.tasks[u.task_id]
        m.end_cases(ts, u, reason, Outcome.BROKEN)
        m.log(logging.WARNING, f"unit {u.unit_id} ({len(u.cases)} cases) not run: {reason}")
        m.maybe_finish(ts)
