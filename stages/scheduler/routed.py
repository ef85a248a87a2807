"""Applying routing (``routing.py``) to a planned task: each APP unit gets the devices it may run on, read
from its cases' ``deviceUrl``/``deviceSystem`` and its collection's ``deviceId``; a unit nothing can run
ends at once. Mixed into ``Scheduler``; uses its ``router``, ``log`` and ``_end_cases``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.suite import case_path, read_case

from .plan import TaskState, Unit
from .routing import Router, Unroutable, unit_requirements

__all__ = ["RoutingMixin"]


class RoutingMixin:
    router: Router
    log: Any

    def _routed(self, ts: TaskState, units: list[Unit]) -> list[Unit]:
        """Give each APP unit its devices (routing.py); a unit no device can run ends at once: its cases are
        reported as errors naming the requirement and the devices there are."""
        out = []
        for u in units:
            if "APP" in u.kinds:
                try:
                    u.devices = self.router.resolve(unit_requirements(u.device, u.cases, self._case_reader(ts, u)))
                except Unroutable as e:
                    self.log.warning("task %s collection %s not run: %s", ts.task_id, u.collection_id, e)
                    self._end_cases(ts, u, f"not run: {e}")
                    continue
            out.append(u)
        return out

    @staticmethod
    def _case_reader(ts: TaskState, u: Unit) -> Any:
        def read(case_id: str) -> dict[str, Any] | None:
            try:
                return read_case(case_path(Path(ts.data_dir), u.collection_id, case_id))
            except Exception:            # noqa: BLE001 - the executor reports an unreadable case itself
                return None
        return read
