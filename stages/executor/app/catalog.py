"""The APP keyword catalog for the UI step engine (``ui.catalog.UiCatalog``): Appium locators for the
device's platform, operations by (operationType, operationName), and a lost session -> ``InfrastructureError``.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from pipeline.errors import InfrastructureError
from stages.executor.app import actions, queries
from stages.executor.app.locators import LocatorError, to_locator
from stages.executor.app.session import AppSession, is_session_lost, set_command_timeout
from stages.executor.ui.catalog import Operation, OperationError

__all__ = ["AppCatalog", "TABLES"]

TABLES: dict[str, dict[str, dict[str, Any]]] = {
    "android": {"system": actions.SYSTEM_ANDROID, "view": actions.VIEW_ANDROID,
                "assertion": queries.ASSERTIONS_ANDROID, "condition": queries.CONDITIONS_ANDROID,
                "relation": queries.RELATIONS_ANDROID, "scenario": {}},
    "apple": {"system": actions.SYSTEM_IOS, "view": actions.VIEW_IOS,
              "assertion": queries.ASSERTIONS_IOS, "condition": queries.CONDITIONS_IOS,
              "relation": queries.RELATIONS_IOS, "scenario": {}},
}


class AppCatalog:
    """Operations bound to one device session. ``default_timeout`` bounds each Appium HTTP call."""

    driver_name = "device"
    keyword = "APP"

    def __init__(self, session: AppSession, default_timeout: float = 60.0) -> None:
        self.session = session
        self.platform = session.device.platform
        self.step_type = session.device.step_type
        self.default_timeout = default_timeout
        self._bound: dict[str, dict[str, Operation]] = {}
        self._budget = -1.0

    def operations(self, kind: str) -> Mapping[str, Operation]:
        tables = TABLES[self.platform]
        kind = kind if kind in tables else "scenario"
        if kind not in self._bound:
            self._bound[kind] = {name: partial(fn, self.session) for name, fn in tables[kind].items()}
        return self._bound[kind]

    def locator(self, element: dict[str, Any]) -> tuple[str, str]:
        try:
            return to_locator(self.platform, element, str(element.get("target") or "element"))
        except LocatorError as e:
            raise OperationError(str(e)) from None

    def driver(self) -> Any:
        return self.session.driver

    def screenshot_png(self) -> bytes:
        return self.session.driver.get_screenshot_as_png()  # type: ignore[no-any-return]

    def translate_error(self, exc: BaseException) -> BaseException | None:
        if is_session_lost(exc):
            return InfrastructureError(f"设备[{self.session.device.name}]会话已丢失 (device session lost): "
                                       f"{type(exc).__name__}: {_first_line(exc)}")
        return None

    def prepare(self, deadline: float) -> None:
        """Bound the HTTP client by the case deadline (never above the default)."""
        budget = max(1.0, min(self.default_timeout, deadline - time.monotonic()))
        if abs(budget - self._budget) < 1.0:
            return
        self._budget = budget
        set_command_timeout(self.session.driver, budget + 5.0)


def _first_line(exc: BaseException) -> str:
    text = (getattr(exc, "msg", None) or str(exc)).strip()
    return text.splitlines()[0] if text else ""
