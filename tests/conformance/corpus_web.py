"""The WEB section of the conformance corpus (reference §5): keyword operations on target.PAGES.

One collection shares one browser (first case starts it, last closes it); every case opens its page first.
"""
from __future__ import annotations

from typing import Any

__all__ = ["web_collections"]


def op(kind: str, keyword: str, oid: str, *, trans: str | None = None, code: str | None = None,
       el: dict[str, tuple[str, str]] | None = None, **data: Any) -> dict[str, Any]:
    return {"operationType": kind, "operationId": oid, "operationName": keyword, "operationDesc": None,
            "operationTrans": trans or keyword, "operationCode": code,
            "operationElement": {k: {"by": b, "expression": e, "target": f"页面 / {k}"} for k, (b, e) in (el or {}).items()},
            "operationData": {k: {"type": v[0], "value": v[1]} if isinstance(v, tuple) else {"type": "String", "value": v}
                              for k, v in data.items()}}


def _open(path: str = "/page") -> dict[str, Any]:
    return op("browser", "打开网页", "o1", domain="{base}", path=path)


def _assert(keyword: str, oid: str, assertion: str, expect: Any, *, el: dict[str, tuple[str, str]] | None = None,
            cont: bool = False, **data: Any) -> dict[str, Any]:
    return op("assertion", keyword, oid, el=el, assertion=assertion, expect=expect,
              **{"continue": ("Boolean", "true" if cont else "false")}, **data)


H, NAME, GO, OUT = ("ID", "h"), ("ID", "name"), ("ID", "go"), ("ID", "out")


def _cases() -> list[tuple[str, list[dict[str, Any]]]]:
    return [
        ("w-open", [_open(), _assert("断言页面标题", "a1", "equals", "流马页面")]),
        ("w-input", [_open(), op("page", "输入", "i1", el={"element": NAME}, text="流马"), op("page", "单击", "c1", el={"element": GO}),
                     _assert("断言元素文本", "a1", "equals", "hi 流马", el={"element": OUT})]),
        ("w-title-fail", [_open(), _assert("断言页面标题", "a1", "equals", "其他"), _assert("断言页面url", "a2", "contains", "/page")]),
        ("w-continue", [_open(), _assert("断言页面标题", "a1", "equals", "其他", cont=True), _assert("断言页面url", "a2", "contains", "/page")]),
        ("w-attr", [_open(), _assert("断言元素属性", "a1", "equals", "name", el={"element": NAME}, name="id"),
                    _assert("断言元素css样式", "a2", "contains", "255", el={"element": OUT}, name="color")]),
        ("w-states", [_open(), _assert("断言元素是否选中", "a1", "isTrue", ("Boolean", "true"), el={"element": ("ID", "cb")}),
                      _assert("断言元素是否启用", "a2", "isFalse", ("Boolean", "false"), el={"element": ("ID", "dis")}),
                      _assert("断言元素是否显示", "a3", "isFalse", ("Boolean", "false"), el={"element": ("ID", "hidden")})]),
        ("w-exists", [_open(), _assert("断言元素是否存在", "a1", "isFalse", ("Boolean", "false"), el={"element": ("ID", "nope")}),
                      _assert("断言元素是否存在", "a2", "isTrue", ("Boolean", "true"), el={"element": H})]),
        ("w-size", [_open(), _assert("断言元素尺寸", "a1", "contains", "height", el={"element": H}),
                    _assert("断言元素高度", "a2", "equalsNumber", ("Int", "40"), el={"element": H}),
                    _assert("断言元素位置", "a3", "contains", "'x'", el={"element": H})]),
        ("w-size-equals", [_open(), _assert("断言元素高度", "a1", "equals", ("Int", "40"), el={"element": H})]),
        ("w-tag", [_open(), _assert("断言元素tag", "a1", "equals", "h1", el={"element": H})]),
        ("w-rel", [_open(), op("relation", "提取元素文本", "r1", el={"element": H}, save_name="ht"),
                   op("page", "输入", "i1", el={"element": NAME}, text="{{ht}}"),
                   _assert("断言元素属性", "a1", "equals", "标题", el={"element": NAME}, name="value")]),
        ("w-cookie", [_open(), op("browser", "添加cookie", "k1", name="k", value="v1"),
                      _assert("断言cookie", "a1", "contains", "v1", name="k"), _assert("断言cookies", "a2", "contains", "'k'")]),
        ("w-cond", [_open(), op("condition", "判断页面标题", "d1", assertion="equals", expect="流马页面",
                                true=("Int", "1"), false=("Int", "1")),
                    op("page", "单击", "c1", el={"element": GO}), _assert("断言页面标题", "a1", "equals", "never"),
                    _assert("断言元素文本", "a2", "equals", "hi ", el={"element": OUT})]),
        ("w-for", [_open(), op("looper", "循环", "l1", trans="For循环", steps=("Int", "1"), indexName="i", times=("Int", "2")),
                   op("page", "输入", "i1", el={"element": NAME}, text="x{{i}}"),
                   _assert("断言元素属性", "a1", "equals", "x0x1", el={"element": NAME}, name="value")]),
        ("w-script", [_open(), op("browser", "执行脚本", "s1", script="document.title = arguments[0]", arg=("JSONArray", '["改了"]')),
                      _assert("断言页面标题", "a1", "equals", "改了")]),
        ("w-nav", [_open(), op("page", "单击", "c1", el={"element": ("ID", "lnk")}), _assert("断言页面标题", "a1", "equals", "第二页"),
                   op("browser", "后退", "b1"), _assert("断言页面标题", "a2", "equals", "流马页面")]),
        ("w-shot", [_open(), op("browser", "屏幕截图", "p1", name="shot")]),
        ("w-missing", [_open(), op("page", "单击", "c1", el={"element": ("ID", "nope")}), op("browser", "刷新", "f1")]),
        ("w-unknown", [_open(), op("page", "没有这个操作", "u1")]),
        ("w-window", [_open(), _assert("断言窗口宽度", "a1", "isGreaterThan", ("Int", "0")),
                      _assert("断言窗口尺寸", "a2", "contains", "width")]),
        ("w-custom", [_open(), op("scenario", "自定义", "x1", trans="取标题", code="sys_put('c', driver.title)"),
                      _assert("断言页面标题", "a1", "equals", "{{c}}")]),
        ("w-wait", [_open(), op("page", "等待元素出现", "w1", el={"element": H}, second=("Int", "2")),
                    op("relation", "提取页面url", "r1", save_name="u"), _assert("断言页面url", "a1", "equals", "{{u}}")]),
        ("w-isin", [_open(), _assert("断言元素文本", "a1", "isIn", "[标题, 其他]", el={"element": H})]),
    ]


def web_collections() -> list[tuple[str, list[dict[str, Any]]]]:
    cases = _cases()
    out = []
    for i, (cid, ops) in enumerate(cases):
        out.append({"comment": None, "caseId": cid, "caseName": cid, "functions": [], "params": {},
                    "startDriver": i == 0, "closeDriver": i == len(cases) - 1, "driverSetting": {}, "optList": ops})
    return [("web", out)]
