"""APP element definitions -> Appium locator pairs, per platform (reference §3.6, §6.2)."""
from __future__ import annotations

import json

import pytest

from stages.executor.app.locators import LocatorError, to_locator


def prop(*pairs: tuple[str, object]) -> dict[str, str]:
    return {"by": "PROP", "expression": json.dumps([{"propName": n, "propValue": v} for n, v in pairs],
                                                   ensure_ascii=False)}


@pytest.mark.parametrize("platform, element, expected", [
    ("android", {"by": "XPATH", "expression": "//*[@text='登录']"}, ("xpath", "//*[@text='登录']")),
    ("apple", {"by": "xpath", "expression": "//XCUIElementTypeButton"}, ("xpath", "//XCUIElementTypeButton")),
    ("android", prop(("resourceId", "com.example.shop:id/username")), ("id", "com.example.shop:id/username")),
    ("android", prop(("description", "返回")), ("accessibility id", "返回")),
    ("android", prop(("text", "首页")), ("-android uiautomator", 'new UiSelector().text("首页")')),
    ("android", prop(("resourceId", "a:id/b"), ("text", 'say "hi" \\ now')),
     ("-android uiautomator", 'new UiSelector().resourceId("a:id/b").text("say \\"hi\\" \\\\ now")')),
    ("android", prop(("className", "android.widget.Button"), ("clickable", "true"), ("checked", False)),
     ("-android uiautomator", 'new UiSelector().className("android.widget.Button").clickable(true).checked(false)')),
    ("android", prop(("textMatches", "^登.*$"), ("descriptionStartsWith", "nav")),
     ("-android uiautomator", 'new UiSelector().textMatches("^登.*$").descriptionStartsWith("nav")')),
    ("android", {"by": "CLASS", "expression": "android.widget.EditText"}, ("class name", "android.widget.EditText")),
    ("android", {"by": "TEXT", "expression": "确定"}, ("-android uiautomator", 'new UiSelector().text("确定")')),
    ("android", {"by": "ID", "expression": "username"}, ("id", "username")),
    ("apple", prop(("id", "loginBtn")), ("accessibility id", "loginBtn")),
    ("apple", prop(("name", "登录")), ("accessibility id", "登录")),
    ("apple", prop(("className", "XCUIElementTypeButton"), ("label", "it's")),
     ("-ios predicate string", "type == 'XCUIElementTypeButton' AND label == 'it\\'s'")),
    ("apple", prop(("value", "1")), ("-ios predicate string", "value == '1'")),
    ("apple", {"by": "PRED", "expression": "label BEGINSWITH '登'"}, ("-ios predicate string", "label BEGINSWITH '登'")),
    ("apple", {"by": "CLASS", "expression": "**/XCUIElementTypeCell[`name == 'a'`]"},
     ("-ios class chain", "**/XCUIElementTypeCell[`name == 'a'`]")),
    ("apple", {"by": "NAME", "expression": "登录"}, ("accessibility id", "登录")),
])
def test_to_locator(platform: str, element: dict[str, str], expected: tuple[str, str]) -> None:
    assert to_locator(platform, element) == expected


@pytest.mark.parametrize("platform, element, text", [
    ("android", {"by": "PROP", "expression": "[{bad"}, "不是合法的JSON"),
    ("android", {"by": "PROP", "expression": "[]"}, "非空"),
    ("android", {"by": "PROP", "expression": '[{"propValue": "x"}]'}, "propName"),
    ("android", prop(("colour", "red")), "不支持的Android属性 'colour'"),
    ("apple", prop(("resourceId", "x"), ("label", "y")), "不支持的iOS属性 'resourceId'"),
    ("android", {"by": "PRED", "expression": "label == 'x'"}, "不能用于Android"),
    ("android", {"by": "XPATH", "expression": ""}, "缺少"),
    ("android", "not a dict", "定义必须是"),
])
def test_bad_definitions_name_the_element(platform: str, element: object, text: str) -> None:
    with pytest.raises(LocatorError, match="元素\\[用户名\\]") as err:
        to_locator(platform, element, "用户名")  # type: ignore[arg-type]
    assert text in str(err.value)
