"""The WEB keyword catalog for the UI step engine: Selenium locators, operations by (type, name), and the
mapping of a lost browser to ``InfrastructureError`` -- and of a WebDriver timeout (element wait, page load,
script) during which the host was saturated (``capacity.saturation`` over the ``host_monitor`` samples of the
step): the same timeout on a calm host stays the product's failure."""
from __future__ import annotations

import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By

from pipeline.capacity import Limits, saturation
from pipeline.errors import InfrastructureError
from pipeline.host_monitor import monitor
from stages.executor.ui.catalog import Operation, OperationError
from stages.executor.ui.driver import set_command_timeout
from stages.executor.web.actions import BROWSER_ACTIONS, PAGE_ACTIONS
from stages.executor.web.browser import Browser, is_browser_lost
from stages.executor.web.queries import ASSERTIONS, CONDITIONS, RELATIONS

__all__ = ["WebCatalog", "BY"]

BY = {"ID": By.ID, "NAME": By.NAME, "TAG": By.TAG_NAME, "CLASS": By.CLASS_NAME, "CSS": By.CSS_SELECTOR,
      "LINK": By.LINK_TEXT, "PARTIAL": By.PARTIAL_LINK_TEXT, "XPATH": By.XPATH}
_TABLES = {"browser": BROWSER_ACTIONS, "page": PAGE_ACTIONS, "assertion": ASSERTIONS, "condition": CONDITIONS,
           "relation": RELATIONS, "scenario": {}}


class WebCatalog:
    """Operations bound to one open browser. ``default_timeout`` bounds page loads, scripts and HTTP calls."""

    step_type = "browser"
    driver_name = "driver"
    keyword = "WEB"

    def __init__(self, browser: Browser, default_timeout: float = 60.0, limits: Limits | None = None) -> None:
        self.browser = browser
        self.default_timeout = default_timeout
        self.limits = limits            # judge timeouts against the host's load during the step (None: never)
        self._bound: dict[str, dict[str, Operation]] = {}
        self._step_t0 = time.monotonic()

    def operations(self, kind: str) -> Mapping[str, Operation]:
        kind = kind if kind in _TABLES else "scenario"
        if kind not in self._bound:
            self._bound[kind] = {name: partial(fn, self.browser.driver) for name, fn in _TABLES[kind].items()}
        return self._bound[kind]

    def locator(self, element: dict[str, Any]) -> tuple[str, str]:
        by = str(element.get("by") or "").upper()
        if by not in BY:
            raise OperationError(f"不支持的定位方式 {element.get('by')!r}, 可选: {', '.join(BY)}")
        return BY[by], str(element.get("expression") or "")

    def driver(self) -> Any:
        return self.browser.driver

    def screenshot_png(self) -> bytes:
        return self.browser.driver.get_screenshot_as_png()

    def translate_error(self, exc: BaseException) -> BaseException | None:
        if is_browser_lost(exc):
            return InfrastructureError(f"浏览器已丢失 (browser lost): {type(exc).__name__}: {_first_line(exc)}")
        if self.limits is not None and _is_timeout(exc):    # element wait, page load, script: a busy host's?
            why = saturation(monitor().samples(), self.limits, self._step_t0, time.monotonic())
            if why:
                return InfrastructureError(f"WebDriver 超时发生在主机过载期间 (timeout while the host was saturated: {why}): "
                                           f"{type(exc).__name__}: {_first_line(exc)}")
        return None

    def prepare(self, deadline: float) -> None:
        """Bound page-load/script timeouts and the HTTP client by the case deadline (never above the default).
        Called before every step: the step's start is the window its timeout is judged on."""
        self._step_t0 = time.monotonic()
        budget = max(1.0, min(self.default_timeout, deadline - time.monotonic()))
        if abs(budget - self.browser.budget) < 1.0:
            return      # two WebDriver calls saved per step (and per case: kept on the browser) while stable
        self.browser.budget = budget
        driver = self.browser.driver
        set_command_timeout(driver, budget + 5.0)
        driver.set_page_load_timeout(budget)
        driver.set_script_timeout(budget)


def _is_timeout(exc: BaseException) -> bool:
    """A WebDriver wait that ran out: ``WebDriverWait`` and page loads raise TimeoutException, a script
    timeout answers "script timeout" (selenium's ScriptTimeoutException is no TimeoutException)."""
    if isinstance(exc, TimeoutException):
        return True
    return isinstance(exc, WebDriverException) and "timeout" in type(exc).__name__.lower()


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else ""
