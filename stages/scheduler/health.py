"""The scheduler's side of device health: holding a device when its executor reports the ladder failed,
sending probes on schedule, re-admitting on a passing probe, the durable state file and the ``status``
rows. The policy is ``quarantine.Quarantine`` (pure); this mixin only wires it to messages and disk.
Mixed into ``Scheduler``; uses its ``quarantine``, ``executors``, ``router``, ``spec``, ``mailbox``, ``log``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipeline.messages import DeviceProbe, Probe

from .quarantine import Quarantine

__all__ = ["HealthMixin", "STATE_FILE"]

STATE_FILE = "quarantine.json"        # under <run_dir>/state/, next to the scheduler's journal


class HealthMixin:
    quarantine: Quarantine
    executors: dict[str, Any]
    known: dict[str, Any]
    spec: Any
    mailbox: Any
    log: Any

    def _health_path(self) -> Path:
        return Path(self.spec.run_dir) / "state" / STATE_FILE

    def _load_health(self) -> None:
        err = self.quarantine.load(self._health_path(), time.monotonic(), time.time())
        if err:
            self.log.error("device quarantine state not restored: %s", err)
        for name, h in self.quarantine.held.items():
            self.log.warning("%s (device %s) still quarantined after the restart: %s", name, h.device, h.reason)

    def _save_health(self) -> None:
        try:
            self.quarantine.save(self._health_path(), time.monotonic(), time.time())
        except OSError as e:                  # a full disk must not stop scheduling; the next change retries
            self.log.error("device quarantine state not saved: %s", e)

    def _device_down(self, ex: Any, reason: str) -> None:
        """The executor says its device failed the last rung of the ladder: hold it now."""
        if ex.info.device and self.quarantine.hold(ex.info.name, ex.info.device, reason, time.monotonic()):
            self.log.warning("%s (device %s) quarantined: %s; probe in %.0f s", ex.info.name, ex.info.device,
                             reason, self.quarantine.probe)
        self._save_health()

    def _send_probes(self) -> None:
        """Probe every held device whose time has come, if its executor is idle (never in a unit)."""
        now = time.monotonic()
        for name, ex in self.executors.items():
            if ex.unit is None and ex.idle and self.quarantine.probe_due(name, now):
                self.mailbox.send(name, DeviceProbe(device=ex.info.device))
                self.quarantine.probe_sent(name, now)

    def _probe_answered(self, ex: Any, probe: Probe) -> None:
        q = self.quarantine
        if q.probe_result(ex.info.name, bool(probe.get("ok")), str(probe.get("error") or ""), time.monotonic()):
            self.log.warning("%s (device %s) passed its probe: re-admitted", ex.info.name, ex.info.device)
        elif ex.info.name in q.held:
            self.log.warning("%s (device %s) failed its probe: %s; next in %.0f s", ex.info.name, ex.info.device,
                             q.held[ex.info.name].reason, q.probe)
        self._save_health()

    def devices_status(self) -> dict[str, dict[str, Any]]:
        """{device: {executor, state, last_error, last_error_at, since, next_probe_at, next_probe_in_s}}
        for every device an executor owns (``status``)."""
        now, wall = time.monotonic(), time.time()
        owners = {e.device: e.name for e in self.spec.executor_specs() if e.device}
        owners.update({i.device: n for n, i in self.known.items() if i.device})
        owners.update({h.device: n for n, h in self.quarantine.held.items()})
        return {dev: self.quarantine.device_state(ex, dev, now, wall) for dev, ex in sorted(owners.items())}
