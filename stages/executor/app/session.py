"""One Appium session on one registered device: start, health check (recreate once), app start/stop, quit.

The executor process that owns a device keeps its ``AppSession`` in ``ctx.shared`` across the cases of a
unit. Before each case ``ensure_healthy`` runs a cheap command (window size, which the view operations need
anyway); if it fails the session is recreated once, and if that fails too the case is *broken*
(``DeviceDown``, an ``InfrastructureError``: the scheduler quarantines the device), never a product failure.
``check`` is the whole ladder run before each unit and as the quarantine probe: the server's ``/status``
first (answers in milliseconds, or is refused at once when the server is gone), then the session. ``is_session_lost`` recognises the same conditions when
they surface in the middle of a case (session gone, server unreachable, instrumentation crashed).
"""
from __future__ import annotations

import base64
import json
import time
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from appium import webdriver
from appium.options.common.base import AppiumOptions
from appium.webdriver.client_config import AppiumClientConfig
from selenium.common.exceptions import UnknownMethodException, WebDriverException

from pipeline.errors import DeviceDown
from stages.executor.app.devices import Device
from stages.executor.ui.driver import driver_lost, set_command_timeout

__all__ = ["AppSession", "is_session_lost", "is_not_implemented", "set_command_timeout", "SESSION_KEY"]

SESSION_KEY = "app.session"      # ctx.shared key of the executor's AppSession

_LOST_MARKERS = (
    "invalid session id", "session is either terminated or not started", "no such session",
    "instrumentation process is not running", "uiautomator2 server because the instrumentation",
    "could not proxy command to the remote server", "socket hang up", "econnrefused", "econnreset",
    "xcodebuild failed", "device offline",
)
_NOT_IMPLEMENTED_MARKERS = ("not implemented", "not yet implemented", "unsupported execute method",
                            "unknown command", "requested resource could not be found")


def is_session_lost(exc: BaseException) -> bool:
    """True when ``exc`` means the device session or its Appium server is gone (infrastructure)."""
    return driver_lost(exc, _LOST_MARKERS)


def is_not_implemented(exc: BaseException) -> bool:
    """True when the driver does not offer a command (the fake driver has no app management or keys)."""
    if isinstance(exc, UnknownMethodException):
        return True
    text = (getattr(exc, "msg", None) or str(exc)).lower()
    return isinstance(exc, WebDriverException) and any(m in text for m in _NOT_IMPLEMENTED_MARKERS)


def _first_line(exc: BaseException) -> str:
    text = (getattr(exc, "msg", None) or str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


class AppSession:
    """The Appium session of one device. ``start`` and ``ensure_healthy`` may raise ``InfrastructureError``."""

    def __init__(self, device: Device, command_timeout: float = 60.0) -> None:
        self.device = device
        self.command_timeout = command_timeout
        self.driver: Any = None
        self.window: tuple[int, int] = (0, 0)
        self.start_seconds = 0.0        # duration of the last session start (reported per device)
        self.starts = 0                 # sessions created so far (1 + recreations)
        self.warmed = False             # started by the warm-up: the first case notes it once

    def start(self) -> None:
        """Open a new session with the registry's capabilities; an unreachable server is infrastructure."""
        options = AppiumOptions()
        options.load_capabilities(self.device.session_capabilities())
        config = AppiumClientConfig(remote_server_addr=self.device.appium_url, timeout=self.command_timeout)
        t0 = time.monotonic()
        try:
            self.driver = webdriver.Remote(self.device.appium_url, options=options, client_config=config)
        except Exception as e:  # noqa: BLE001 - any start failure means the device is unusable now
            self.driver = None
            raise DeviceDown(
                f"设备[{self.device.name}]无法创建Appium会话 ({self.device.server}): {_first_line(e)}") from e
        self.start_seconds = time.monotonic() - t0
        self.starts += 1
        try:
            self._read_window()
        except Exception as e:  # noqa: BLE001 - the server died right after creating the session
            self.driver = None
            raise DeviceDown(
                f"设备[{self.device.name}]会话刚创建即丢失 ({self.device.server}): {_first_line(e)}") from e

    def _read_window(self) -> None:
        size = self.driver.get_window_size()
        self.window = (int(size["width"]), int(size["height"]))

    def ensure_healthy(self) -> str:
        """Make sure the session answers; recreate it once if not. Returns a note for the case log ("" if fine)."""
        if self.driver is None:
            self.start()
            return f"设备[{self.device.name}]会话已创建 ({self.start_seconds * 1000:.0f}ms)"
        try:
            self._read_window()
            if self.warmed:
                self.warmed = False
                return f"设备[{self.device.name}]会话已预热 ({self.start_seconds * 1000:.0f}ms, 不计入用例时间)"
            return ""
        except Exception as e:  # noqa: BLE001 - any failure of the cheap command means: try a new session
            reason = _first_line(e)
        self.quit()
        self.start()          # raises InfrastructureError when the device or server is really gone
        return f"设备[{self.device.name}]健康检查失败 ({reason}), 已重建会话"

    def server_ready(self, timeout: float = 3.0) -> None:
        """Rung 1: the Appium server's ``/status`` answers ``ready``; raises ``DeviceDown`` otherwise."""
        parts = urlsplit(self.device.appium_url)
        url = urlunsplit((parts.scheme, self.device.server, f"{parts.path.rstrip('/')}/status", "", ""))
        headers = {"Accept": "application/json"}
        if parts.username is not None:        # a farm's https://user:key@host/wd/hub: the same credentials
            auth = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(auth).decode("ascii")
        try:
            req = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(req, timeout=timeout) as r:       # noqa: S310 - the configured server
                body = json.loads(r.read() or b"{}")
        except Exception as e:  # noqa: BLE001 - refused, timed out, not JSON: the server is not usable
            raise DeviceDown(f"设备[{self.device.name}]的Appium服务不可用 ({self.device.server}/status): "
                             f"{_first_line(e)}") from e
        value = body.get("value") if isinstance(body, dict) else None
        if isinstance(value, dict) and value.get("ready") is False:
            raise DeviceDown(f"设备[{self.device.name}]的Appium服务未就绪 ({self.device.server}/status): "
                             f"{value.get('message') or 'ready=false'}")

    def check(self) -> str:
        """The health ladder: server ``/status``, then session alive, else a new session. Returns a note
        ("" when all was fine); raises ``DeviceDown`` when the device is not usable."""
        self.server_ready()
        if self.driver is not None:
            try:
                self._read_window()
                return ""
            except Exception:  # noqa: BLE001 - rung 2 failed: try a new session
                self.quit()
        self.start()
        self.warmed = True                # made before the case's deadline started, like the warm-up's
        return f"设备[{self.device.name}]会话已创建 ({self.start_seconds * 1000:.0f}ms)"

    def warm_up(self) -> float:
        """Open the session before the executor announces credit (off every case deadline); seconds taken."""
        if self.driver is None:
            self.start()
            self.warmed = True
        return self.start_seconds

    def quit(self) -> None:
        """End the session; a dead server or session is fine here."""
        driver, self.driver = self.driver, None
        if driver is None:
            return
        set_command_timeout(driver, 10.0)
        try:
            driver.quit()
        except Exception:  # noqa: BLE001 - the session may already be gone; nothing left to release
            pass

    def open_app(self, app_id: str, activity: str | None) -> str:
        """Start the case's app (Android with an activity: ``mobile: startActivity``); returns a log note."""
        if not app_id:
            return ""
        if self.device.platform == "android" and activity:
            intent = f"{app_id}/{activity}"
            return self._app_command(f"启动应用 {intent}",
                                     lambda: self.driver.execute_script("mobile: startActivity", {"intent": intent}))
        return self._app_command(f"启动应用 {app_id}", lambda: self.driver.activate_app(app_id))

    def close_app(self, app_id: str) -> str:
        if not app_id:
            return ""
        return self._app_command(f"关闭应用 {app_id}", lambda: self.driver.terminate_app(app_id))

    def _app_command(self, what: str, command: Any) -> str:
        try:
            command()
        except Exception as e:
            if is_not_implemented(e):
                return f"{what}: 当前驱动不支持该命令, 已跳过 ({_first_line(e)})"
            raise
        return f"{what} 成功"
