"""Device quarantine (pure, time injected): the scheduler's half of a device's health ladder.

Only executors that own a device are subject to it: an API worker or a browser executor that crashes is
restarted by the supervisor and its work retried, but a device whose Appium server, instrumentation or USB
link is gone breaks every case it is given. The executor climbs the ladder itself (Appium ``/status``,
session alive, new session: ``stages/executor/app/session.py``) before each unit and after a broken case;
when the last rung fails it says so (``device_down``) and the device is held at once (``hold``). Without
that signal, ``after`` infrastructure failures (cases reported *broken*, or the executor dying while
running a case) within ``window`` seconds hold it too. A held executor gets no work. Every ``probe``
seconds the scheduler asks it to run the ladder again (``device.probe``, only while it is idle); a passing
probe re-admits it by itself, a failing one keeps it held with the new error. ``after = 0`` turns the
counting off (``device_down`` still holds). ``to_state``/``from_state`` carry the holds across a
scheduler restart (wall-clock times on disk, monotonic in memory).
"""
from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.secrets import redact_urls

__all__ = ["Quarantine", "Hold"]


@dataclass
class Hold:
    """Why and since when an executor is held; ``probing`` while a probe it was sent is unanswered."""

    device: str
    reason: str
    since: float
    probe_at: float
    probing: bool = False
    probes: int = 0                   # probes that failed since it was held


@dataclass
class Quarantine:
    after: int = 2
    window: float = 300.0
    probe: float = 60.0
    failures: dict[str, deque[float]] = field(default_factory=dict)
    held: dict[str, Hold] = field(default_factory=dict)
    last_error: dict[str, tuple[str, float]] = field(default_factory=dict)    # executor -> (reason, monotonic)

    def broken(self, executor: str, device: str, reason: str, now: float) -> bool:
        """Count one infrastructure failure of ``executor``; True when it is quarantined by it."""
        reason = redact_urls(reason)
        self.last_error[executor] = (reason, now)
        if executor in self.held or self.after <= 0:
            return False                      # the rest of the unit it was running when it was held
        times = self.failures.setdefault(executor, deque())
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.after:
            return False
        return self.hold(executor, device, reason, now)

    def hold(self, executor: str, device: str, reason: str, now: float) -> bool:
        """The device failed its ladder (or broke too often): held now, probed in ``probe`` s. True when
        newly held (a device already held keeps its hold and schedule)."""
        reason = redact_urls(reason)
        self.last_error[executor] = (reason, now)
        if executor in self.held:
            return False
        self.held[executor] = Hold(device, reason, now, now + self.probe)
        self.failures.pop(executor, None)
        return True

    def blocked(self, executor: str, now: float) -> bool:
        """True while ``executor`` must not be given work."""
        return executor in self.held

    def probe_due(self, executor: str, now: float) -> bool:
        hold = self.held.get(executor)
        return hold is not None and now >= hold.probe_at

    def probe_sent(self, executor: str, now: float) -> None:
        """A probe went out; with no answer (executor gone, message lost) it is due again after ``probe`` s."""
        hold = self.held.get(executor)
        if hold is not None:
            hold.probing, hold.probe_at = True, now + self.probe

    def probe_result(self, executor: str, ok: bool, error: str, now: float) -> bool:
        """The executor's answer to a probe; True when that re-admitted it."""
        hold = self.held.get(executor)
        if hold is None:
            return False
        if ok:
            del self.held[executor]
            self.failures.pop(executor, None)
            return True
        hold.reason, hold.probing, hold.probe_at = redact_urls(error) or hold.reason, False, now + self.probe
        hold.probes += 1
        self.last_error[executor] = (hold.reason, now)
        return False

    def snapshot(self, now: float, wall_now: float) -> dict[str, dict[str, Any]]:
        """For ``status``: {executor: {device, reason, since (epoch s), probe_in_s (None while probing)}}."""
        return {name: {"device": h.device, "reason": h.reason, "since": round(wall_now - (now - h.since), 3),
                       "probe_in_s": None if h.probing else round(max(0.0, h.probe_at - now), 1)}
                for name, h in self.held.items()}

    def device_state(self, executor: str, device: str, now: float, wall_now: float) -> dict[str, Any]:
        """One device's row for ``status``: state (healthy | quarantined | probing), last error and when,
        next probe (epoch s and seconds from now; None when not held)."""
        h = self.held.get(executor)
        err, at = self.last_error.get(executor, ("", 0.0))
        row: dict[str, Any] = {"executor": executor, "device": device, "last_error": err or None,
                               "last_error_at": round(wall_now - (now - at), 3) if err else None,
                               "state": "healthy", "since": None, "next_probe_at": None, "next_probe_in_s": None}
        if h is not None:
            row.update(state="probing" if h.probing else "quarantined", since=round(wall_now - (now - h.since), 3),
                       next_probe_in_s=None if h.probing else round(max(0.0, h.probe_at - now), 1),
                       next_probe_at=None if h.probing else round(wall_now + max(0.0, h.probe_at - now), 3),
                       failed_probes=h.probes)
        return row

    # -- durable state -------------------------------------------------------------------------------------
    def to_state(self, now: float, wall_now: float) -> dict[str, Any]:
        return {"held": {n: {"device": h.device, "reason": h.reason, "since": wall_now - (now - h.since),
                             "probe_at": wall_now + (h.probe_at - now), "probes": h.probes}
                         for n, h in self.held.items()},
                "last_error": {n: [r, wall_now - (now - at)] for n, (r, at) in self.last_error.items()}}

    def from_state(self, state: dict[str, Any], now: float, wall_now: float) -> None:
        """Holds saved by a previous scheduler; a probe that was running is due again at once."""
        for n, h in (state.get("held") or {}).items():
            self.held[n] = Hold(str(h["device"]), str(h["reason"]), now - (wall_now - float(h["since"])),
                                now + min(self.probe, max(0.0, float(h["probe_at"]) - wall_now)), probes=int(h.get("probes", 0)))
        for n, (r, at) in (state.get("last_error") or {}).items():
            self.last_error[n] = (str(r), now - (wall_now - float(at)))

    def save(self, path: Path, now: float, wall_now: float) -> None:
        """Atomically (temp file, fsync, rename): a crash leaves the old state or the new one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_state(now, wall_now), f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def load(self, path: Path, now: float, wall_now: float) -> str:
        """Read ``path`` if it exists; returns an error text when it is unreadable (the scheduler logs it)."""
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            self.from_state(state, now, wall_now)
        except FileNotFoundError:
            return ""
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            return f"{path}: {type(e).__name__}: {e}"
        return ""
