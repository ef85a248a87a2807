"""What WEB assertions (断言…), conditions (判断…) and relations (提取…) read from the browser (§5.4).

One getter per target; the three operation families are built from the same table so their names cannot
drift apart. A getter returns the *actual* value; comparing or saving it is the engine's business.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selenium.webdriver.remote.webdriver import WebDriver

from stages.executor.ui.catalog import OpCall

__all__ = ["TARGETS", "ASSERTIONS", "CONDITIONS", "RELATIONS"]

Getter = Callable[[WebDriver, OpCall], Any]


def _el(d: WebDriver, c: OpCall) -> Any:
    return d.find_element(*c.element())


def _exists(d: WebDriver, c: OpCall) -> bool:
    return len(d.find_elements(*c.element())) > 0


TARGETS: dict[str, Getter] = {
    "页面标题": lambda d, c: d.title,
    "页面url": lambda d, c: d.current_url,
    "页面源码": lambda d, c: d.page_source,
    "元素文本": lambda d, c: _el(d, c).text,
    "元素tag": lambda d, c: _el(d, c).tag_name,
    "元素尺寸": lambda d, c: _el(d, c).size,
    "元素高度": lambda d, c: _el(d, c).size["height"],
    "元素宽度": lambda d, c: _el(d, c).size["width"],
    "元素位置": lambda d, c: _el(d, c).location,
    "元素X坐标": lambda d, c: _el(d, c).location["x"],
    "元素Y坐标": lambda d, c: _el(d, c).location["y"],
    "元素属性": lambda d, c: _el(d, c).get_attribute(str(c.arg("name"))),
    "元素css样式": lambda d, c: _el(d, c).value_of_css_property(str(c.arg("name"))),
    "元素是否选中": lambda d, c: _el(d, c).is_selected(),
    "元素是否启用": lambda d, c: _el(d, c).is_enabled(),
    "元素是否显示": lambda d, c: _el(d, c).is_displayed(),
    "元素是否存在": _exists,
    "窗口位置": lambda d, c: d.get_window_position(),
    "窗口X坐标": lambda d, c: d.get_window_position()["x"],
    "窗口Y坐标": lambda d, c: d.get_window_position()["y"],
    "窗口尺寸": lambda d, c: d.get_window_size(),
    "窗口宽度": lambda d, c: d.get_window_size()["width"],
    "窗口高度": lambda d, c: d.get_window_size()["height"],
    "cookies": lambda d, c: d.get_cookies(),
    "cookie": lambda d, c: d.get_cookie(str(c.arg("name"))),
    "当前窗口句柄": lambda d, c: d.current_window_handle,
    "所有窗口句柄": lambda d, c: d.window_handles,
}

_NOT_COMPARED = {"当前窗口句柄", "所有窗口句柄"}
_NOT_EXTRACTED = {"页面源码", "元素是否选中", "元素是否启用", "元素是否显示", "元素是否存在"}

ASSERTIONS: dict[str, Getter] = {"断言" + k: g for k, g in TARGETS.items() if k not in _NOT_COMPARED}
CONDITIONS: dict[str, Getter] = {"判断" + k: g for k, g in TARGETS.items() if k not in _NOT_COMPARED}
RELATIONS: dict[str, Getter] = {"提取" + k: g for k, g in TARGETS.items() if k not in _NOT_EXTRACTED}
