"""APP element definitions (reference §3.6, §6.2) -> Appium locator pairs ``(strategy, value)``.

``by`` is one of ``XPATH``, ``PROP`` (expression = JSON ``[{"propName", "propValue"}, ...]``), ``PRED``
(iOS predicate string), ``CLASS`` (iOS class chain; on Android the class name); any other ``by`` is taken,
as in the original, as one property named ``by.lower()``, except ``ID`` (Appium ``id``) and
``NAME``/``ACCESSIBILITY_ID`` (``accessibility id``).

Android PROP becomes a UiAutomator selector (``new UiSelector().resourceId("…").text("…")``); a lone
``resourceId`` uses Appium's ``id`` strategy and a lone ``description`` its ``accessibility id`` (UiAutomator2
maps both to the same lookups, faster, and they also work on the fake driver). iOS PROP: a lone ``id``/``name``
is an ``accessibility id``; anything else becomes an ``-ios predicate string`` (``className`` -> ``type``).
A bad definition raises ``LocatorError`` naming the parameter; it becomes a step error.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["LocatorError", "to_locator", "parse_props", "uiselector", "ios_predicate",
           "ANDROID_PROPS", "IOS_PROPS"]

Locator = tuple[str, str]

ANDROID_BOOL_PROPS = ("checkable", "checked", "clickable", "longClickable", "scrollable", "enabled", "focusable",
                      "focused", "selected")
ANDROID_TEXT_PROPS = ("text", "textContains", "textMatches", "textStartsWith", "className", "classNameMatches",
                      "description", "descriptionContains", "descriptionMatches", "descriptionStartsWith",
                      "packageName", "packageNameMatches", "resourceId", "resourceIdMatches")
ANDROID_PROPS = ANDROID_TEXT_PROPS + ANDROID_BOOL_PROPS
IOS_PROPS = ("id", "className", "name", "value", "label")
_DIRECT = {"ID": "id", "ACCESSIBILITY_ID": "accessibility id", "NAME": "accessibility id"}
IOS_PRED_NAMES = {"id": "name", "className": "type", "name": "name", "value": "value", "label": "label"}


class LocatorError(ValueError):
    """An element definition that cannot become a locator; the message names the parameter."""


def parse_props(expression: str, param: str) -> list[tuple[str, Any]]:
    """``[{"propName": "text", "propValue": "登录"}, ...]`` -> [("text", "登录"), ...] (order kept)."""
    try:
        items = json.loads(expression) if isinstance(expression, str) else expression
    except json.JSONDecodeError as e:
        raise LocatorError(f"元素[{param}] PROP 定位不是合法的JSON: {e.msg}") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise LocatorError(f"元素[{param}] PROP 定位必须是非空的属性列表")
    props: list[tuple[str, Any]] = []
    for item in items:
        if not isinstance(item, dict) or not str(item.get("propName") or "").strip():
            raise LocatorError(f"元素[{param}] PROP 定位的每一项需要 propName 与 propValue: {item!r}")
        props.append((str(item["propName"]).strip(), item.get("propValue", "")))
    return props


def _java_string(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _bool(value: Any) -> str:
    return "true" if str(value).strip().lower() in ("true", "1") else "false"


def uiselector(props: list[tuple[str, Any]], param: str) -> str:
    """Android UiAutomator selector source for the property set."""
    parts = ["new UiSelector()"]
    for name, value in props:
        if name in ANDROID_BOOL_PROPS:
            parts.append(f".{name}({_bool(value)})")
        elif name in ANDROID_TEXT_PROPS:
            parts.append(f".{name}({_java_string(value)})")
        else:
            raise LocatorError(f"元素[{param}] 不支持的Android属性 {name!r} (支持: {', '.join(ANDROID_PROPS)})")
    return "".join(parts)


def _pred_string(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def ios_predicate(props: list[tuple[str, Any]], param: str) -> str:
    """iOS NSPredicate for the property set (``className`` is the XCUIElementType)."""
    clauses = []
    for name, value in props:
        if name not in IOS_PRED_NAMES:
            raise LocatorError(f"元素[{param}] 不支持的iOS属性 {name!r} (支持: {', '.join(IOS_PROPS)})")
        clauses.append(f"{IOS_PRED_NAMES[name]} == {_pred_string(value)}")
    return " AND ".join(clauses)


def _android_props(props: list[tuple[str, Any]], param: str) -> Locator:
    if len(props) == 1 and props[0][0] == "resourceId":
        return ("id", str(props[0][1]))
    if len(props) == 1 and props[0][0] == "description":
        return ("accessibility id", str(props[0][1]))
    return ("-android uiautomator", uiselector(props, param))


def _ios_props(props: list[tuple[str, Any]], param: str) -> Locator:
    if len(props) == 1 and props[0][0] in ("id", "name"):
        return ("accessibility id", str(props[0][1]))
    return ("-ios predicate string", ios_predicate(props, param))


def to_locator(platform: str, element: Mapping[str, Any], param: str = "element") -> Locator:
    """``{by, expression, target}`` of parameter ``param`` -> (Appium strategy, value) for ``platform``."""
    if not isinstance(element, Mapping):
        raise LocatorError(f"元素[{param}] 定义必须是 {{by, expression}} 对象")
    by = str(element.get("by") or "").strip().upper()
    expression = element.get("expression")
    if not by or expression in (None, ""):
        raise LocatorError(f"元素[{param}] 缺少 by 或 expression")
    android = platform == "android"
    if by == "XPATH":
        return ("xpath", str(expression))
    if by == "PRED":
        if android:
            raise LocatorError(f"元素[{param}] PRED (iOS predicate) 不能用于Android")
        return ("-ios predicate string", str(expression))
    if by == "CLASS":
        return ("class name", str(expression)) if android else ("-ios class chain", str(expression))
    if by == "PROP":
        props = parse_props(str(expression), param)
    elif by in _DIRECT:
        return (_DIRECT[by], str(expression))
    else:
        props = [(by.lower(), expression)]
    return _android_props(props, param) if android else _ios_props(props, param)
