"""Helpers every W3C-WebDriver-based catalog shares (Selenium for WEB, Appium for APP)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import urllib3.exceptions
from selenium.common.exceptions import InvalidSessionIdException, WebDriverException

from pipeline.errors import InfrastructureError

__all__ = ["set_command_timeout", "driver_lost"]


def set_command_timeout(driver: Any, seconds: float) -> None:
    """Bound every WebDriver HTTP call (selenium reads ``client_config.timeout`` per request)."""
    conf = getattr(driver.command_executor, "_client_config", None)
    if conf is not None:
        conf.timeout = max(1.0, seconds)


def driver_lost(exc: BaseException, markers: Iterable[str]) -> bool:
    """True when ``exc`` means the session or the server behind it is gone (infrastructure, not the product):
    a session error, a transport error, or a WebDriver error whose text carries one of ``markers`` -- also
    when it is the cause of another error (a custom operation's ``ScriptError`` wrapping "tab crashed")."""
    markers = tuple(markers)
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 8:
        if isinstance(cur, (InfrastructureError, InvalidSessionIdException)):
            return True
        if isinstance(cur, (urllib3.exceptions.HTTPError, ConnectionError)):
            return True
        if isinstance(cur, WebDriverException):
            text = (cur.msg or str(cur)).lower()
            if any(m in text for m in markers):
                return True
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return False
