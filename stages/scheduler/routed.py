"""Applying routing (``routing.py``) to a planned task: each APP unit gets the devices it may run on, from
its cases' ``deviceUrl``/``deviceSystem`` (read by the stage when the task arrived: ``TaskState.app_cases``)
and its collection's ``deviceId``. Pure: a unit nothing can run is returned with the reason.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .plan import TaskState, Unit
from .routing import Router, Unroutable, unit_requirements

__all__ = ["ROUTING_KEYS", "case_reader", "route_units"]

ROUTING_KEYS = ("deviceUrl", "deviceSystem")     # what routing reads from an APP case file


def case_reader(ts: TaskState, u: Unit) -> Callable[[str], dict[str, Any] | None]:
    def read(case_id: str) -> dict[str, Any] | None:
        return ts.app_cases.get(f"{u.collection_id}/{case_id}")
    return read


def route_units(router: Router, ts: TaskState, units: list[Unit]) -> tuple[list[Unit], list[tuple[Unit, Unroutable]]]:
    """(units that can run, each APP one with its ``devices``; units no device can run, with why)."""
    ok: list[Unit] = []
    bad: list[tuple[Unit, Unroutable]] = []
    for u in units:
        if "APP" in u.kinds:
            try:
                u.devices = router.resolve(unit_requirements(u.device, u.cases, case_reader(ts, u)))
            except Unroutable as e:
                bad.append((u, e))
                continue
        ok.append(u)
    return ok, bad
