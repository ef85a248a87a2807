"""APP cases on Appium (reference §3.6, §6): device registry, one Appium session per device, the APP
keyword catalog for the shared UI step engine, and the ``AppRunner`` CaseRunner.

Only the registry is imported eagerly: the scheduler may use ``select_device`` without loading Appium.
"""
from __future__ import annotations

from typing import Any

from stages.executor.app.devices import Device, parse_devices, select_device

__all__ = ["AppRunner", "AppSession", "Device", "parse_devices", "select_device", "device_from_context",
           "is_session_lost"]

_LAZY = {"AppRunner": "runner", "device_from_context": "runner", "AppSession": "session",
         "is_session_lost": "session"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
