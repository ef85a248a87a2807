"""WEB ``browser`` and ``page`` operations (reference §5.4), one small function each, keyed by the exact
Chinese operationName. Every function takes ``(driver, call)``; element params are Selenium locator pairs."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from stages.executor.ui.catalog import OpCall, OperationError

__all__ = ["BROWSER_ACTIONS", "PAGE_ACTIONS", "WebAction"]

WebAction = Callable[[WebDriver, OpCall], Any]
NEW_WINDOW_WAIT = 60.0      # §5.4 单击跳转新窗口: poll up to 60 s (bounded by the case deadline)
ALERT_WAIT = 30.0


def _bounded(call: OpCall, seconds: float) -> float:
    return max(0.0, min(float(seconds), call.deadline - time.monotonic()))


def _find(driver: WebDriver, call: OpCall, key: str = "element") -> Any:
    return driver.find_element(*call.element(key))


# -- browser -----------------------------------------------------------------------------------------------

def open_url(driver: WebDriver, call: OpCall) -> None:
    domain, path = str(call.arg("domain", "") or ""), str(call.arg("path", "") or "")
    if domain and path:
        url = domain.rstrip("/") + "/" + path.lstrip("/")
    else:
        url = domain or path
    if not url.startswith(("http://", "https://", "file://", "about:", "data:")):
        raise OperationError(f"打开网页: 地址必须是绝对地址, 实际为 {url!r} (domain={domain!r}, path={path!r})")
    driver.get(url)
    driver.implicitly_wait(2)
    call.log(f"成功打开 '{url}'")


def click_new_window(driver: WebDriver, call: OpCall) -> None:
    before = set(driver.window_handles)
    _find(driver, call).click()
    end = time.monotonic() + _bounded(call, NEW_WINDOW_WAIT)
    while time.monotonic() < end:
        new = [h for h in driver.window_handles if h not in before]
        if new:
            driver.switch_to.window(new[0])
            call.log(f"已切换到新窗口 {new[0]}")
            return
        time.sleep(0.2)
    call.log("未发现新窗口, 继续执行")


def back_and_close(driver: WebDriver, call: OpCall) -> None:
    driver.close()
    driver.switch_to.window(call.arg("window"))


def force_wait(driver: WebDriver, call: OpCall) -> None:
    time.sleep(_bounded(call, call.number("second")))


def screenshot(driver: WebDriver, call: OpCall) -> None:
    shot = call.screenshot()
    call.log(f"截图 {call.arg('name', '')} 已保存: {shot}")


def _script_args(call: OpCall) -> list[Any]:
    args = call.arg("arg", [])
    if not isinstance(args, list):
        raise OperationError(f"操作[{call.name}]数据参数 arg 必须是JSON数组, 实际为 {args!r}")
    return args


BROWSER_ACTIONS: dict[str, WebAction] = {
    "最大化窗口": lambda d, c: d.maximize_window(),
    "最小化窗口": lambda d, c: d.minimize_window(),
    "全屏窗口": lambda d, c: d.fullscreen_window(),
    "设置窗口位置": lambda d, c: d.set_window_position(c.number("x"), c.number("y")),
    "设置窗口大小": lambda d, c: d.set_window_size(c.number("width"), c.number("height")),
    "切换窗口": lambda d, c: d.switch_to.window(c.arg("window")),
    "关闭窗口": lambda d, c: d.close(),
    "屏幕截图": screenshot,
    "单击跳转新窗口": click_new_window,
    "返回并关闭当前窗口": back_and_close,
    "打开网页": open_url,
    "刷新": lambda d, c: d.refresh(),
    "后退": lambda d, c: d.back(),
    "前进": lambda d, c: d.forward(),
    "强制等待": force_wait,
    "隐式等待": lambda d, c: d.implicitly_wait(c.number("second")),
    "添加cookie": lambda d, c: d.add_cookie({"name": str(c.arg("name")), "value": str(c.arg("value", ""))}),
    "删除cookie": lambda d, c: d.delete_cookie(str(c.arg("name"))),
    "删除cookies": lambda d, c: d.delete_all_cookies(),
    "执行脚本": lambda d, c: d.execute_script(str(c.arg("script")), *_script_args(c)),
    "执行异步脚本": lambda d, c: d.execute_async_script(str(c.arg("script")), *_script_args(c)),
}


# -- page ----------------------------------------------------------------------------------------------------

def _alert(driver: WebDriver, call: OpCall) -> Any:
    return WebDriverWait(driver, _bounded(call, ALERT_WAIT) or 0.1).until(
        EC.alert_is_present(), message=f"{call.name}: {ALERT_WAIT:.0f}秒内没有弹出框")


def _key(call: OpCall) -> str:
    name = str(call.arg("value")).strip()
    key = getattr(Keys, name.upper(), None) if name.upper() == name else None
    if not isinstance(key, str):
        raise OperationError(f"操作[{call.name}]: 未知键位 {name!r} (须为大写的Selenium Keys名称, 如 ENTER, CONTROL)")
    return key


def _px(call: OpCall, key: str) -> int:
    """An offset in pixels: the catalog says Int, and WebDriver's pointer actions take integers only."""
    value = call.number(key)
    if value != int(value):
        raise OperationError(f"操作[{call.name}]数据参数 {key} 必须是整数, 实际为 {value!r}")
    return int(value)


def _chain(driver: WebDriver) -> ActionChains:
    return ActionChains(driver)


def wait_present(driver: WebDriver, call: OpCall) -> None:
    locator = call.element()
    WebDriverWait(driver, _bounded(call, call.number("second")), poll_frequency=0.2).until(
        lambda d: d.find_elements(*locator), message=f"等待元素出现超时: {locator[0]}={locator[1]}")


def wait_absent(driver: WebDriver, call: OpCall) -> None:
    locator = call.element()
    saved = driver.timeouts.implicit_wait
    driver.implicitly_wait(0)      # an implicit wait would make every absence probe slow
    try:
        WebDriverWait(driver, _bounded(call, call.number("second")), poll_frequency=0.2).until_not(
            lambda d: d.find_elements(*locator), message=f"等待元素消失超时: {locator[0]}={locator[1]}")
    finally:
        driver.implicitly_wait(saved)


PAGE_ACTIONS: dict[str, WebAction] = {
    "切换frame": lambda d, c: d.switch_to.frame(_find(d, c, "frame")),
    "返回默认frame": lambda d, c: d.switch_to.default_content(),
    "返回父级frame": lambda d, c: d.switch_to.parent_frame(),
    "弹出框确认": lambda d, c: _alert(d, c).accept(),
    "弹出框取消": lambda d, c: _alert(d, c).dismiss(),
    "弹出框输入": lambda d, c: _alert(d, c).send_keys(str(c.arg("text", ""))),
    "鼠标单击": lambda d, c: _chain(d).click().perform(),
    "清空": lambda d, c: _find(d, c).clear(),
    "输入": lambda d, c: _find(d, c).send_keys(str(c.arg("text", ""))),
    "单击": lambda d, c: _find(d, c).click(),
    "提交": lambda d, c: _find(d, c).submit(),
    "单击保持": lambda d, c: _chain(d).click_and_hold(_find(d, c)).perform(),
    "右键点击": lambda d, c: _chain(d).context_click(_find(d, c)).perform(),
    "双击": lambda d, c: _chain(d).double_click(_find(d, c)).perform(),
    "拖拽": lambda d, c: _chain(d).drag_and_drop(_find(d, c, "startElement"), _find(d, c, "endElement")).perform(),
    "偏移拖拽": lambda d, c: _chain(d).drag_and_drop_by_offset(_find(d, c), _px(c, "x"), _px(c, "y")).perform(),
    "按下键位": lambda d, c: _chain(d).key_down(_key(c), _find(d, c)).perform(),
    "释放键位": lambda d, c: _chain(d).key_up(_key(c), _find(d, c)).perform(),
    "鼠标移动到坐标": lambda d, c: _chain(d).move_by_offset(_px(c, "x"), _px(c, "y")).perform(),
    "鼠标移动到元素": lambda d, c: _chain(d).move_to_element(_find(d, c)).perform(),
    "鼠标元素内偏移": lambda d, c: _chain(d).move_to_element_with_offset(_find(d, c), _px(c, "x"), _px(c, "y")).perform(),
    "释放点击保持状态": lambda d, c: _chain(d).release(_find(d, c)).perform(),
    "等待元素出现": wait_present,
    "等待元素消失": wait_absent,
}
