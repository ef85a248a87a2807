"""APP ``system`` and ``view`` operations (reference §6.3) on an Appium session, by exact operationName.

Each operation is ``fn(session, call)``. Gestures go out as W3C Actions (``gestures.py``), keys as Appium's
``mobile: pressKey`` (Android KeyEvent codes) or ``mobile: pressButton`` (iOS), alerts through the W3C
alert endpoints (``mobile: alert`` for a named button). Operations marked Android or iOS in the reference
exist only in that platform's table, so the engine answers "未定义操作" on the other one.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from selenium.common.exceptions import NoAlertPresentException, WebDriverException

from stages.executor.app import gestures
from stages.executor.app.session import AppSession
from stages.executor.ui.catalog import OpCall, OperationError

__all__ = ["SYSTEM_COMMON", "SYSTEM_ANDROID", "SYSTEM_IOS", "VIEW_COMMON", "VIEW_ANDROID", "VIEW_IOS",
           "ANDROID_KEYCODES", "IOS_BUTTONS", "perform", "centre", "wait_for"]

Op = Callable[[AppSession, OpCall], Any]

# Android KeyEvent codes for the key names the platform offers (§6.3 系统按键)
ANDROID_KEYCODES = {"home": 3, "back": 4, "up": 19, "down": 20, "left": 21, "right": 22, "center": 23,
                    "volume_up": 24, "volume_down": 25, "power": 26, "camera": 27, "enter": 66, "delete": 67,
                    "menu": 82, "search": 84, "volume_mute": 164, "recent": 187, "sleep": 223, "wakeup": 224}
IOS_BUTTONS = {"home": "home", "volume_up": "volumeUp", "volume_down": "volumeDown"}
CLICK_WAIT = 3.0        # 单击: click if the element appears within 3 s (§6.3)
POLL = 0.2
SCROLL_ATTEMPTS = 10    # 滑动到元素出现: swipes before giving up


# -- helpers -------------------------------------------------------------------------------------------------
def perform(s: AppSession, actions: list[dict[str, Any]]) -> None:
    """Send one W3C Actions request (``POST /session/:id/actions``)."""
    s.driver.execute("actions", {"actions": actions})


def _find(s: AppSession, c: OpCall, key: str = "element") -> Any:
    return s.driver.find_element(*c.element(key))


def centre(el: Any) -> tuple[int, int]:
    r = el.rect
    return int(r["x"] + r["width"] / 2), int(r["y"] + r["height"] / 2)


def _point(s: AppSession, c: OpCall, kx: str = "x", ky: str = "y") -> tuple[int, int]:
    width, height = s.window
    try:
        return gestures.absolute(c.number(kx), width, kx), gestures.absolute(c.number(ky), height, ky)
    except ValueError as e:
        raise OperationError(str(e)) from None


def _ms(c: OpCall, key: str, default_ms: int) -> int:
    """A seconds field (Float, e.g. 长按 ``second``) -> ms; empty -> ``default_ms``."""
    if c.data.get(key) in (None, ""):
        return default_ms
    return max(0, int(float(c.number(key)) * 1000))


def _duration_ms(c: OpCall) -> int:
    """坐标滑动 ``duration``: <= 10 is seconds, as the original handed it to uiautomator2 unconverted;
    > 10 is milliseconds, as the platform describes it; empty -> the default swipe length."""
    if c.data.get("duration") in (None, ""):
        return gestures.SWIPE_MS
    value = float(c.number("duration"))
    return max(0, int(value * 1000) if value <= 10 else int(value))


def _sleep(c: OpCall, seconds: float) -> None:
    time.sleep(max(0.0, min(seconds, c.deadline - time.monotonic())))


def wait_for(s: AppSession, c: OpCall, seconds: float, present: bool, key: str = "element") -> bool:
    """Poll until the element is present (or gone); True when that happened within ``seconds``."""
    end = min(time.monotonic() + seconds, c.deadline)
    while True:
        if bool(s.driver.find_elements(*c.element(key))) == present:
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(POLL, left))


def _key(s: AppSession, c: OpCall, name: str) -> None:
    if s.device.platform == "android":
        code = ANDROID_KEYCODES.get(name.lower()) if not name.strip().isdigit() else int(name)
        if code is None:
            raise OperationError(f"不支持的Android按键 {name!r}, 可选: {', '.join(ANDROID_KEYCODES)} 或数字键码")
        s.driver.execute_script("mobile: pressKey", {"keycode": code})
    else:
        button = IOS_BUTTONS.get(name.lower())
        if button is None:
            raise OperationError(f"不支持的iOS按键 {name!r}, 可选: {', '.join(IOS_BUTTONS)}")
        s.driver.execute_script("mobile: pressButton", {"name": button})
    c.log(f"按键 {name}")


def _screen_swipe(direction: str) -> Op:
    def op(s: AppSession, c: OpCall) -> None:
        width, height = s.window
        perform(s, gestures.direction_swipe(direction, 0, 0, width, height))
    return op


def _screen(on: bool) -> Op:
    def op(s: AppSession, c: OpCall) -> None:
        if s.device.platform == "android":
            s.driver.execute_script("mobile: pressKey", {"keycode": ANDROID_KEYCODES["wakeup" if on else "sleep"]})
        else:
            s.driver.execute_script("mobile: unlock" if on else "mobile: lock", {})
    return op


def _app(start: bool) -> Op:
    def op(s: AppSession, c: OpCall) -> None:
        app_id = str(c.arg("appId"))
        c.log(s.open_app(app_id, None) if start else s.close_app(app_id))
    return op


# -- system ------------------------------------------------------------------------------------------------
SYSTEM_COMMON: dict[str, Op] = {
    "启动应用": _app(True),
    "关闭应用": _app(False),
    "左滑": _screen_swipe("left"),
    "右滑": _screen_swipe("right"),
    "上滑": _screen_swipe("up"),
    "下滑": _screen_swipe("down"),
    "系统首页": lambda s, c: _key(s, c, "home"),
    "系统按键": lambda s, c: _key(s, c, str(c.arg("keycode"))),
    "屏幕截图": lambda s, c: c.screenshot(),
    "亮屏": _screen(True),
    "息屏": _screen(False),
    "强制等待": lambda s, c: _sleep(c, float(c.number("second"))),
    "隐式等待": lambda s, c: s.driver.implicitly_wait(float(c.number("second"))),
}
SYSTEM_ANDROID: dict[str, Op] = {**SYSTEM_COMMON, "系统返回": lambda s, c: _key(s, c, "back")}
SYSTEM_IOS: dict[str, Op] = dict(SYSTEM_COMMON)


# -- view --------------------------------------------------------------------------------------------------
def _click(s: AppSession, c: OpCall) -> None:
    if not wait_for(s, c, CLICK_WAIT, present=True):
        c.log(f"元素在{CLICK_WAIT:.0f}秒内未出现, 未执行单击")
        return
    _find(s, c).click()


def _scroll_to(s: AppSession, c: OpCall) -> None:
    direction = str(c.arg("direction", "up"))
    width, height = s.window
    for attempt in range(SCROLL_ATTEMPTS + 1):
        if s.driver.find_elements(*c.element()):
            c.log(f"元素已出现 (滑动{attempt}次)")
            return
        if attempt == SCROLL_ATTEMPTS or time.monotonic() >= c.deadline:
            break
        try:
            perform(s, gestures.direction_swipe(direction, 0, int(height * 0.2), width, int(height * 0.6)))
        except ValueError as e:
            raise OperationError(str(e)) from None
    raise OperationError(f"滑动{SCROLL_ATTEMPTS}次后元素仍未出现")


def _pinch(outward: bool) -> Op:
    def op(s: AppSession, c: OpCall) -> None:
        el = _find(s, c)
        x, y = centre(el)
        perform(s, gestures.pinch(x, y, max(2, int(el.rect["width"]) // 2), outward))
    return op


def _wait(present: bool) -> Op:
    def op(s: AppSession, c: OpCall) -> None:
        if not wait_for(s, c, float(c.number("second")), present):
            raise OperationError("element not exists" if present else "element exists")
    return op


def _swipe_in(s: AppSession, c: OpCall) -> None:
    r = _find(s, c).rect
    try:
        perform(s, gestures.direction_swipe(str(c.arg("direction")), int(r["x"]), int(r["y"]),
                                            int(r["width"]), int(r["height"])))
    except ValueError as e:
        raise OperationError(str(e)) from None


def _drag_to_element(s: AppSession, c: OpCall) -> None:
    fx, fy = centre(_find(s, c, "startElement"))
    tx, ty = centre(_find(s, c, "endElement"))
    perform(s, gestures.drag(fx, fy, tx, ty))


def _drag_to_point(s: AppSession, c: OpCall) -> None:
    fx, fy = centre(_find(s, c))
    perform(s, gestures.drag(fx, fy, *_point(s, c)))


def _wait_alert(s: AppSession, c: OpCall) -> None:
    end = min(time.monotonic() + float(c.number("second")), c.deadline)
    while True:
        try:
            c.log(f"弹框已出现: {s.driver.switch_to.alert.text}")
            return
        except NoAlertPresentException:
            left = end - time.monotonic()
            if left <= 0:
                raise OperationError("alert not exists") from None
            time.sleep(min(POLL, left))


def _alert_click(s: AppSession, c: OpCall) -> None:
    name = str(c.arg("name"))
    try:
        s.driver.execute_script("mobile: alert", {"action": "accept", "buttonLabel": name})
    except WebDriverException as e:
        raise OperationError(f"无法点击弹框按钮 {name!r}: {getattr(e, 'msg', e)}") from e


VIEW_COMMON: dict[str, Op] = {
    "单击": _click,
    "双击": lambda s, c: perform(s, gestures.double_tap(*centre(_find(s, c)))),
    "长按": lambda s, c: perform(s, gestures.long_press(*centre(_find(s, c)), _ms(c, "second", 1000))),
    "坐标单击": lambda s, c: perform(s, gestures.tap(*_point(s, c))),
    "坐标双击": lambda s, c: perform(s, gestures.double_tap(*_point(s, c))),
    "坐标长按": lambda s, c: perform(s, gestures.long_press(*_point(s, c), _ms(c, "second", 1000))),
    "坐标滑动": lambda s, c: perform(s, gestures.swipe(*_point(s, c, "fx", "fy"), *_point(s, c, "tx", "ty"),
                                                     _duration_ms(c))),
    "输入": lambda s, c: _find(s, c).send_keys(str(c.arg("text", ""))),
    "清空": lambda s, c: _find(s, c).clear(),
    "滑动到元素出现": _scroll_to,
    "缩小": _pinch(False),
    "放大": _pinch(True),
    "等待元素出现": _wait(True),
    "等待元素消失": _wait(False),
}
VIEW_ANDROID: dict[str, Op] = {
    **VIEW_COMMON,
    "拖动到元素": _drag_to_element,
    "拖动到坐标": _drag_to_point,
    "坐标拖动": lambda s, c: perform(s, gestures.drag(*_point(s, c, "fx", "fy"), *_point(s, c, "tx", "ty"))),
    "元素内滑动": _swipe_in,
}
VIEW_IOS: dict[str, Op] = {
    **VIEW_COMMON,
    "等待弹框出现": _wait_alert,
    "弹框确认": lambda s, c: s.driver.switch_to.alert.accept(),
    "弹框取消": lambda s, c: s.driver.switch_to.alert.dismiss(),
    "弹框点击": _alert_click,
}
