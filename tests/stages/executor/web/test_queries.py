"""WEB assertion (断言…), condition (判断…) and relation (提取…) operations (§5.4) in headless Chromium."""
from __future__ import annotations

from typing import Any

import pytest

from stages.executor.web.queries import ASSERTIONS, CONDITIONS, RELATIONS
from tests.stages.executor.web.conftest import Web, logs, op, statuses

pytestmark = pytest.mark.browser

EL = {"element": ("ID", "username")}
# target -> (elements, extra data, comparator, expect (type, text)) ; expect must hold on the demo page
CASES: dict[str, tuple[dict[str, tuple[str, str]], dict[str, Any], str, tuple[str, str]]] = {
    "页面标题": ({}, {}, "equals", ("String", "LiuMa Demo")),
    "页面url": ({}, {}, "endWith", ("String", "/index.html")),
    "页面源码": ({}, {}, "contains", ("String", "drop-target")),
    "元素文本": ({"element": ("ID", "title")}, {}, "equals", ("String", "LiuMa Demo")),
    "元素tag": (EL, {}, "equals", ("String", "input")),
    "元素尺寸": ({"element": ("ID", "box")}, {}, "equals", ("String", "{'height': 40, 'width': 120}")),
    "元素高度": ({"element": ("ID", "box")}, {}, "equalsNumber", ("Int", "40")),
    "元素宽度": ({"element": ("ID", "box")}, {}, "equalsNumber", ("Int", "120")),
    "元素位置": ({"element": ("ID", "box")}, {}, "contains", ("String", "x")),
    "元素X坐标": ({"element": ("ID", "box")}, {}, "isGreaterThan", ("Int", "0")),
    "元素Y坐标": ({"element": ("ID", "box")}, {}, "isGreaterThan", ("Int", "0")),
    "元素属性": (EL, {"name": "placeholder"}, "equals", ("String", "user")),
    "元素css样式": ({"element": ("ID", "box")}, {"name": "background-color"}, "equals", ("String", "rgba(0, 128, 0, 1)")),
    "元素是否选中": ({"element": ("ID", "remember")}, {}, "isFalse", ("Boolean", "false")),
    "元素是否启用": ({"element": ("ID", "disabled-input")}, {}, "isFalse", ("Boolean", "false")),
    "元素是否显示": ({"element": ("ID", "hover-tip")}, {}, "isFalse", ("Boolean", "false")),
    "元素是否存在": ({"element": ("CLASS", "name")}, {}, "isTrue", ("Boolean", "true")),
    "窗口位置": ({}, {}, "contains", ("String", "y")),
    "窗口X坐标": ({}, {}, "isGreaterThanOrEqualTo", ("Int", "0")),
    "窗口Y坐标": ({}, {}, "isGreaterThanOrEqualTo", ("Int", "0")),
    "窗口尺寸": ({}, {}, "equals", ("String", "{'width': 1280, 'height': 800}")),
    "窗口宽度": ({}, {}, "equalsNumber", ("Int", "1280")),
    "窗口高度": ({}, {}, "equalsNumber", ("Int", "800")),
    "cookies": ({}, {}, "listLenEqual", ("Int", "1")),
    "cookie": ({}, {"name": "flavour"}, "contains", ("String", "value")),
}


def _setup(web: Web) -> list[dict[str, Any]]:
    return [web.open(), op("browser", "添加cookie", name="flavour", value="oat")]


def test_catalog_names_match_reference() -> None:
    assert set(ASSERTIONS) == {"断言" + k for k in CASES}
    assert set(CONDITIONS) == {"判断" + k for k in CASES}
    assert len(RELATIONS) == 22 and {"提取当前窗口句柄", "提取所有窗口句柄", "提取cookie"} <= set(RELATIONS)


def test_every_assertion_passes_and_fails(web: Web) -> None:
    passing = [op("assertion", "断言" + t, els, assertion=cmp, expect=exp, **extra) for t, (els, extra, cmp, exp) in CASES.items()]
    r = web.run(*_setup(web), *passing)
    assert statuses(r) == [0] * (len(passing) + 2), logs(r)
    failing = op("assertion", "断言元素文本", {"element": ("ID", "title")}, assertion="equals", expect="nope")
    r = web.run(failing, start=False)
    assert r.status == 1 and "断言失败" in logs(r) and len(r.transactionList[0]["screenShotList"]) == 1


def test_every_condition_drives_the_branch(web: Web) -> None:
    ops: list[dict[str, Any]] = []
    for t, (els, extra, cmp, exp) in CASES.items():
        ops.append(op("condition", "判断" + t, els, assertion=cmp, expect=exp, true=("Int", "1"), false=("Int", "1"), **extra))
        ops.append(op("browser", "刷新", trans=f"yes-{t}"))
        ops.append(op("browser", "刷新", trans=f"no-{t}"))
    r = web.run(*_setup(web), *ops)
    got = {t["name"]: t["status"] for t in r.transactionList}
    assert r.status == 0
    for t in CASES:
        assert (got[f"yes-{t}"], got[f"no-{t}"]) == (0, 3), t


def test_every_relation_saves(web: Web) -> None:
    ops = [op("relation", name, CASES.get(name[2:], ({"element": ("ID", "box")}, {}))[0] if name[2:] in CASES else {},
              save_name=f"v-{name[2:]}", **(CASES[name[2:]][1] if name[2:] in CASES else {})) for name in RELATIONS]
    r = web.run(*_setup(web), *ops)
    assert r.status == 0, logs(r)
    v = web.ctx.variables
    assert v["v-页面标题"] == "LiuMa Demo" and v["v-元素tag"] == "input"
    assert v["v-元素尺寸"] == {"height": 40, "width": 120} and v["v-元素高度"] == 40
    assert v["v-元素属性"] == "user" and v["v-cookie"]["value"] == "oat"
    assert v["v-窗口尺寸"] == {"width": 1280, "height": 800}
    assert v["v-所有窗口句柄"] == [v["v-当前窗口句柄"]]
    assert any(c["name"] == "flavour" for c in v["v-cookies"])


def test_condition_with_bad_comparator_is_error(web: Web) -> None:
    r = web.run(web.open(), op("condition", "判断页面标题", assertion="nope", expect="x", true=("Int", "0"), false=("Int", "0")))
    assert statuses(r) == [0, 2] and "不支持的断言方式" in logs(r)
