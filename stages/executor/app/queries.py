"""What APP assertions (断言…), conditions (判断…) and relations (提取…) read from the device (§6.3).

One getter per target; the three families are built from one table so their names cannot drift apart.
Positions are element centres: the assertion/condition value is the text ``"(x, y)"``, the relation value
the tuple, as in the original (which compared ``str(center)``). Alert targets exist on iOS only.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selenium.common.exceptions import NoAlertPresentException

from stages.executor.app.actions import centre
from stages.executor.app.session import AppSession
from stages.executor.ui.catalog import OpCall

__all__ = ["ASSERTIONS_ANDROID", "ASSERTIONS_IOS", "CONDITIONS_ANDROID", "CONDITIONS_IOS",
           "RELATIONS_ANDROID", "RELATIONS_IOS", "ANDROID_ATTRIBUTES", "IOS_ATTRIBUTES"]

Getter = Callable[[AppSession, OpCall], Any]

ANDROID_ATTRIBUTES = ("checked", "scrollable", "selected", "enabled", "focused", "focusable", "clickable",
                      "longClickable", "checkable")
IOS_ATTRIBUTES = ("visible", "enabled", "displayed", "accessible")


def _el(s: AppSession, c: OpCall) -> Any:
    return s.driver.find_element(*c.element())


def _attribute(s: AppSession, c: OpCall) -> Any:
    """Element attribute; Appium answers booleans as "true"/"false" text, the original compared booleans."""
    name = str(c.arg("attribute"))
    value = _el(s, c).get_attribute(name)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _alert_exists(s: AppSession, c: OpCall) -> bool:
    try:
        s.driver.switch_to.alert.text
    except NoAlertPresentException:
        return False
    return True


def _window(s: AppSession) -> tuple[int, int]:
    size = s.driver.get_window_size()
    return int(size["width"]), int(size["height"])


COMPARED: dict[str, Getter] = {
    "元素存在": lambda s, c: len(s.driver.find_elements(*c.element())) > 0,
    "元素文本": lambda s, c: _el(s, c).text,
    "元素属性": _attribute,
    "元素位置": lambda s, c: str(centre(_el(s, c))),
    "元素X坐标": lambda s, c: centre(_el(s, c))[0],
    "元素Y坐标": lambda s, c: centre(_el(s, c))[1],
}
COMPARED_IOS: dict[str, Getter] = {
    **COMPARED,
    "弹框存在": _alert_exists,
    "弹框文本": lambda s, c: s.driver.switch_to.alert.text,
}
EXTRACTED: dict[str, Getter] = {
    "屏幕尺寸": lambda s, c: _window(s),
    "屏幕宽度": lambda s, c: _window(s)[0],
    "屏幕高度": lambda s, c: _window(s)[1],
    "元素文本": lambda s, c: _el(s, c).text,
    "元素位置": lambda s, c: centre(_el(s, c)),
    "元素X坐标": lambda s, c: centre(_el(s, c))[0],
    "元素Y坐标": lambda s, c: centre(_el(s, c))[1],
}
EXTRACTED_IOS: dict[str, Getter] = {**EXTRACTED, "弹框文本": lambda s, c: s.driver.switch_to.alert.text}

ASSERTIONS_ANDROID = {"断言" + k: g for k, g in COMPARED.items()}
ASSERTIONS_IOS = {"断言" + k: g for k, g in COMPARED_IOS.items()}
CONDITIONS_ANDROID = {"判断" + k: g for k, g in COMPARED.items()}
CONDITIONS_IOS = {"判断" + k: g for k, g in COMPARED_IOS.items()}
RELATIONS_ANDROID = {"提取" + k: g for k, g in EXTRACTED.items()}
RELATIONS_IOS = {"提取" + k: g for k, g in EXTRACTED_IOS.items()}
