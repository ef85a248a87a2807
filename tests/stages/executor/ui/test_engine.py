"""UI step engine semantics (§5.3) against a fake catalog: no browser, so every branch is cheap to pin down."""
from __future__ import annotations

import io
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.errors import InfrastructureError
from stages.executor.common.functions import FunctionLibrary
from stages.executor.common.steplog import CaseRecorder
from stages.executor.common.template import Renderer
from stages.executor.common.variables import Variables
from stages.executor.ui import SCREENSHOT_ID, EngineOptions, OpCall, Operation, StepEngine


class Lost(Exception):
    pass


class FakeCatalog:
    step_type = "browser"
    driver_name = "driver"
    keyword = "WEB"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.values: dict[str, Any] = {"标题": "LiuMa Demo", "计数": 3}

        def record(call: OpCall) -> Any:
            self.calls.append((call.name, call.elements, call.data))
            if call.name == "爆炸":
                raise RuntimeError("boom")
            if call.name == "丢失":
                raise Lost("gone")
            return self.values.get(call.name.removeprefix("断言").removeprefix("判断").removeprefix("提取"))

        names = ["动作", "爆炸", "丢失"]
        self.tables = {"page": {n: record for n in names},
                       "assertion": {"断言标题": record, "断言计数": record},
                       "condition": {"判断标题": record, "判断计数": record},
                       "relation": {"提取标题": record}}

    def operations(self, kind: str) -> Mapping[str, Operation]:
        return self.tables.get(kind, {})

    def locator(self, element: dict[str, Any]) -> Any:
        return (element["by"].lower(), element["expression"])

    def driver(self) -> Any:
        return "the-driver"

    def screenshot_png(self) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (40, 20), (200, 10, 10)).save(out, format="PNG")
        return out.getvalue()

    def translate_error(self, exc: BaseException) -> BaseException | None:
        return InfrastructureError("browser lost") if isinstance(exc, Lost) else None

    def prepare(self, deadline: float) -> None:
        pass


def op(kind: str, name: str, trans: str | None = None, code: str | None = None,
       elements: dict[str, tuple[str, str]] | None = None, **data: Any) -> dict[str, Any]:
    return {"operationType": kind, "operationId": f"id-{name}", "operationName": name, "operationDesc": "d",
            "operationTrans": trans or name, "operationCode": code,
            "operationElement": {k: {"by": b, "expression": e, "target": f"页 / {k}"} for k, (b, e) in (elements or {}).items()},
            "operationData": {k: {"type": v[0], "value": v[1]} if isinstance(v, tuple) else {"type": "String", "value": v}
                              for k, v in data.items()}}


def run(ops: list[dict[str, Any]], tmp_path: Path, every: bool = False, context: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None) -> tuple[Any, FakeCatalog, dict[str, Any]]:
    cat = FakeCatalog()
    rec = CaseRecorder("WEB", "case-x")
    variables = Variables(context if context is not None else {}, params or {})
    renderer = Renderer(variables, FunctionLibrary([], variables=variables), strict=True)
    steps: list[str] = []
    engine = StepEngine(cat, rec, variables, renderer, EngineOptions(
        image_dir=tmp_path, deadline=time.monotonic() + 30, screenshot_every_step=every, on_step=steps.append))
    engine.run(ops)
    result = rec.finish({"caseId": "case-x", "caseName": "n"})
    return result, cat, variables.context


def st(result: Any) -> list[tuple[str, int]]:
    return [(t["name"], t["status"]) for t in result.transactionList]


def test_transaction_fields_and_rendering(tmp_path: Path) -> None:
    result, cat, _ = run([op("page", "动作", elements={"element": ("ID", "u-{{n}}")}, text="v={{n}}", k=("Int", "{{n}}"))],
                         tmp_path, params={"n": 7})
    tx = result.transactionList[0]
    assert (tx["id"], tx["name"], tx["content"], tx["description"], tx["stepType"]) == (
        "id-动作", "动作", "\n element: 页 / element", "d", "browser")
    assert cat.calls == [("动作", {"element": ("id", "u-7")}, {"text": "v=7", "k": 7})]
    action = tx["detail"]["actions"][0]
    assert action["method"] == "动作" and action["error"] is None and action["start_time"] > 0
    assert tx["during"] == 0 and result.status == 0


def test_condition_true_runs_m_skips_n(tmp_path: Path) -> None:
    ops = [op("condition", "判断标题", assertion="equals", expect="LiuMa Demo", true=("Int", "1"), false=("Int", "2")),
           op("page", "动作", trans="a"), op("page", "动作", trans="b"), op("page", "动作", trans="c"),
           op("page", "动作", trans="d")]
    result, _, _ = run(ops, tmp_path)
    assert st(result) == [("判断标题", 0), ("a", 0), ("b", 3), ("c", 3), ("d", 0)]
    assert "操作在条件控制之外不被执行" in result.transactionList[2]["log"]


def test_condition_false_skips_m_runs_n(tmp_path: Path) -> None:
    ops = [op("condition", "判断计数", assertion="equalsNumber", expect=("Int", "4"), true=("Int", "2"), false=("Int", "1")),
           op("page", "动作", trans="a"), op("page", "动作", trans="b"), op("page", "动作", trans="c")]
    result, _, _ = run(ops, tmp_path)
    assert st(result) == [("判断计数", 0), ("a", 3), ("b", 3), ("c", 0)]


def test_assertion_continue_and_stop(tmp_path: Path) -> None:
    ops = [op("assertion", "断言标题", assertion="equals", expect="x", **{"continue": ("Boolean", "true")}),
           op("assertion", "断言标题", assertion="equals", expect="y", **{"continue": ("Boolean", "false")}),
           op("page", "动作", trans="never")]
    result, _, _ = run(ops, tmp_path)
    assert st(result) == [("断言标题", 1), ("断言标题", 1)]
    assert result.status == 1
    for tx in result.transactionList:
        assert len(tx["screenShotList"]) == 1 and re.match(SCREENSHOT_ID, tx["screenShotList"][0])
        assert (tmp_path / f"{tx['screenShotList'][0]}.png").is_file()
        assert tx["detail"]["actions"][0]["screen_results"] == [str(tmp_path / f"{tx['screenShotList'][0]}.png")]


def test_comparison_error_is_step_error(tmp_path: Path) -> None:
    result, _, _ = run([op("assertion", "断言标题", assertion="noSuchComparator", expect="x")], tmp_path)
    assert st(result) == [("断言标题", 2)] and result.status == 2


def test_relation_saves_to_context(tmp_path: Path) -> None:
    ctx: dict[str, Any] = {}
    result, _, _ = run([op("relation", "提取标题", save_name="t"), op("page", "动作", x="{{t}}!")], tmp_path, context=ctx)
    assert ctx == {"t": "LiuMa Demo"} and result.status == 0


def test_for_loop_with_index_and_nesting(tmp_path: Path) -> None:
    ops = [op("looper", "循环", trans="For循环", steps=("Int", "3"), indexName="i", times=("Int", "2")),
           op("page", "动作", trans="outer", v="{{i}}"),
           op("looper", "循环", trans="For循环", steps=("Int", "1"), indexName="j", times=("Int", "2")),
           op("page", "动作", trans="inner", v="{{i}}-{{j}}"),
           op("page", "动作", trans="after")]
    result, cat, _ = run(ops, tmp_path)
    assert [c[2].get("v") for c in cat.calls] == ["0", "0-0", "0-1", "1", "1-0", "1-1", None]
    assert result.status == 0


def test_while_loop_stops_on_false_condition(tmp_path: Path) -> None:
    code = "sys_put('n', sys_get('n') + 1)"
    ops = [op("looper", "循环", trans="While循环", steps=("Int", "1"), indexName="k", target="{{n}}",
              assertion="isLessThan", expect=("Int", "3"), timeout=("Int", "0")),
           op("scenario", "自定义", trans="加一", code=code)]
    ctx: dict[str, Any] = {"n": 0}
    result, _, _ = run(ops, tmp_path, context=ctx)
    assert ctx["n"] == 3 and ctx["k"] == 3
    assert [t["name"] for t in result.transactionList] == ["While循环", "加一", "加一", "加一"]


def test_while_loop_timeout(tmp_path: Path) -> None:
    ops = [op("looper", "循环", trans="While循环", steps=("Int", "1"), indexName="k", target="a",
              assertion="equals", expect="a", timeout=("Int", "200")),
           op("scenario", "自定义", trans="睡", code="import time; time.sleep(0.05)")]
    t0 = time.monotonic()
    result, _, ctx = run(ops, tmp_path)
    assert 0.2 <= time.monotonic() - t0 < 2 and result.status == 0 and ctx["k"] >= 2


def test_skip_set_does_not_cross_loop_body(tmp_path: Path) -> None:
    # the condition inside the body skips 2 ops, but only one is left in the body: the op after the loop runs
    ops = [op("looper", "循环", trans="For循环", steps=("Int", "2"), indexName="i", times=("Int", "1")),
           op("condition", "判断标题", assertion="equals", expect="other", true=("Int", "2"), false=("Int", "0")),
           op("page", "动作", trans="in-body"),
           op("page", "动作", trans="after-loop")]
    result, _, _ = run(ops, tmp_path)
    assert st(result)[-2:] == [("in-body", 3), ("after-loop", 0)]


def test_custom_operation_names(tmp_path: Path) -> None:
    code = ("print('driver', driver)\nsys_put('seen', [element['element'], data['save_name']])\n"
            "sys_return(sys_get('base') * 2)")
    ctx: dict[str, Any] = {"base": 21}
    result, _, _ = run([op("relation", "自定义", trans="我的提取", code=code, elements={"element": ("CSS", "p")},
                           save_name="answer")], tmp_path, context=ctx)
    assert ctx["answer"] == 42 and ctx["seen"] == [("css", "p"), "answer"]
    assert "the-driver" in result.transactionList[0]["log"]


def test_custom_assertion_uses_sys_return(tmp_path: Path) -> None:
    result, _, _ = run([op("assertion", "自定义", trans="自检", code="sys_return(5)", assertion="equalsNumber",
                           expect=("Int", "6"))], tmp_path)
    assert st(result) == [("自检", 1)]


def test_unknown_operation_names_known_ones(tmp_path: Path) -> None:
    result, _, _ = run([op("page", "飞行")], tmp_path)
    log = result.transactionList[0]["log"]
    assert result.status == 2 and "未定义操作: [飞行]" in log and "动作" in log and "爆炸" in log


def test_step_error_screenshot_and_stop(tmp_path: Path) -> None:
    result, _, _ = run([op("page", "爆炸"), op("page", "动作")], tmp_path)
    assert st(result) == [("爆炸", 2)]
    tx = result.transactionList[0]
    assert "RuntimeError: boom" in tx["log"] and len(tx["screenShotList"]) == 1
    assert tx["detail"]["actions"][0]["error"] == "RuntimeError: boom"


def test_lost_driver_raises_infrastructure_error(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError):
        run([op("page", "丢失")], tmp_path)


def test_a_screenshot_failing_on_a_lost_driver_propagates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def lost(self: Any) -> bytes:
        raise Lost("gone")
    monkeypatch.setattr(FakeCatalog, "screenshot_png", lost)
    with pytest.raises(InfrastructureError):
        run([op("page", "动作")], tmp_path, every=True)
    def full(self: Any) -> bytes:
        raise OSError("disk full")
    monkeypatch.setattr(FakeCatalog, "screenshot_png", full)
    result, _, _ = run([op("page", "动作")], tmp_path, every=True)   # any other failure: logged, the step still passes
    assert result.status == 0 and "截图失败" in result.transactionList[0]["log"]


def test_screenshot_every_step(tmp_path: Path) -> None:
    result, _, _ = run([op("page", "动作"), op("page", "动作")], tmp_path, every=True)
    assert [len(t["screenShotList"]) for t in result.transactionList] == [1, 1]
    files = sorted(tmp_path.glob("*.png"))
    assert len(files) == 2 and not list(tmp_path.glob(".*.tmp"))
    with Image.open(files[0]) as img:
        assert img.format == "PNG" and img.size == (40, 20)


def test_template_error_is_step_error(tmp_path: Path) -> None:
    result, cat, _ = run([op("page", "动作", text="{{missing}}")], tmp_path)
    assert result.status == 2 and cat.calls == [] and "missing" in result.transactionList[0]["log"]
