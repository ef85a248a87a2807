"""The UI step engine shared by WEB and APP cases: runs an ``optList`` with the semantics of reference §5.3.

Per operation: a transaction (id = operationId, name = operationTrans, content = one ``"\\n <param>: <target>"``
per element, description = operationDesc), ``{{…}}`` rendering of locators and data, conversion by type,
dispatch to the catalog by (operationType, operationName), then by type: assertions compare (failure →
screenshot; ``continue`` true → go on, else the case stops), conditions compare and skip the branch not
taken (``true`` = m, ``false`` = n), relations save the value. ``looper`` operations repeat the following
``steps`` operations (``For循环`` / ``While循环``); branch skip sets never cross a loop body.

Any other error → screenshot, step error, the case stops — unless the catalog says the driver is lost, in
which case ``InfrastructureError`` propagates (the host reports the case *broken*).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import InfrastructureError
from pipeline.models import Transaction
from stages.executor.common.assertion import ComparisonError, compare
from stages.executor.common.params import convert_typed
from stages.executor.common.script import run_script, script_names
from stages.executor.common.steplog import CaseRecorder, escape
from stages.executor.common.template import Renderer
from stages.executor.common.variables import Variables
from stages.executor.ui.catalog import OpCall, UiCatalog
from stages.executor.ui.looper import LoopSpec, loop_spec
from stages.executor.ui.screenshot import save_screenshot

__all__ = ["StepEngine", "EngineOptions", "CUSTOM"]

CUSTOM = "自定义"
COMPARED = ("assertion", "condition")


def opt_list(case: Any, rec: CaseRecorder) -> list[dict[str, Any]]:
    """A UI case's ``optList``; anything but a list is a case error recorded on the synthetic step."""
    ops = case.get("optList")
    if not isinstance(ops, list):
        rec.error(escape(f"用例数据错误: optList 必须是数组, 实际为 {type(ops).__name__}"))
        return []
    return ops


class _Stop(Exception):
    """The case ends here (assertion failure without continue, or a step error); already recorded."""


@dataclass(slots=True)
class EngineOptions:
    image_dir: Path
    deadline: float = float("inf")
    screenshot_every_step: bool = False
    on_step: Callable[[str], None] = lambda name: None


@dataclass(slots=True)
class _Op:
    """One parsed optList entry."""

    index: int
    raw: dict[str, Any]
    kind: str = field(init=False)
    name: str = field(init=False)
    title: str = field(init=False)

    def __post_init__(self) -> None:
        self.kind = str(self.raw.get("operationType") or "")
        self.name = str(self.raw.get("operationName") or "")
        self.title = str(self.raw.get("operationTrans") or self.name)


class StepEngine:
    """Runs one case's operations against ``catalog``, recording into ``recorder``."""

    def __init__(self, catalog: UiCatalog, recorder: CaseRecorder, variables: Variables, renderer: Renderer,
                 options: EngineOptions) -> None:
        self.catalog = catalog
        self.rec = recorder
        self.variables = variables
        self.renderer = renderer
        self.options = options
        self._tx: Transaction | None = None

    # -- public ------------------------------------------------------------------------------------------
    def run(self, opt_list: list[dict[str, Any]]) -> None:
        """Run all operations; returns normally when the case stopped on a recorded failure or error."""
        if not isinstance(opt_list, list):
            raise TypeError(f"optList must be a list, got {type(opt_list).__name__}")
        ops = [_Op(i, raw if isinstance(raw, dict) else {}) for i, raw in enumerate(opt_list)]
        try:
            self._run_range(ops, 0, len(ops))
        except _Stop:
            pass

    # -- sequencing --------------------------------------------------------------------------------------
    def _run_range(self, ops: list[_Op], lo: int, hi: int) -> None:
        skip: set[int] = set()
        i = lo
        while i < hi:
            op = ops[i]
            if op.kind == "looper":
                end = min(hi, i + 1 + self._steps(op))
                if i in skip:
                    for j in range(i, end):
                        self._skipped(ops[j])
                else:
                    self._loop(ops, op, i + 1, end)
                i = end
                continue
            if i in skip:
                self._skipped(op)
            else:
                taken = self._run_op(op)
                if taken is not None:
                    skip |= self._branch(op, taken, i, hi)
            i += 1

    def _branch(self, op: _Op, taken: bool, i: int, hi: int) -> set[int]:
        """Indices skipped by a condition: true → skip the n after the next m; false → skip the next m."""
        m, n = self._int_data(op, "true"), self._int_data(op, "false")
        skipped = range(i + 1 + m, i + 1 + m + n) if taken else range(i + 1, i + 1 + m)
        return {j for j in skipped if j < hi}

    def _loop(self, ops: list[_Op], op: _Op, lo: int, hi: int) -> None:
        self._begin(op)
        try:
            spec = loop_spec(op.raw, self._data(op, render=False))
        except (ValueError, TypeError) as e:
            self._error(op, e)
        self._log(f"{spec.describe()} 开始, 循环体为随后{hi - lo}个操作")
        count = 0
        started = time.monotonic()
        while True:
            if spec.is_while and spec.timeout_ms and (time.monotonic() - started) * 1000 >= spec.timeout_ms:
                self._log(f"While循环超时({spec.timeout_ms}ms), 已执行{count}次")
                break
            if not spec.is_while and count >= spec.times:
                break
            if time.monotonic() >= self.options.deadline:
                break       # the host reports the case timeout; do not spin past it
            self.variables.put(spec.index_name, count)
            if spec.is_while and not self._while_holds(op, spec):
                break
            self._run_range(ops, lo, hi)
            count += 1

    def _while_holds(self, op: _Op, spec: LoopSpec) -> bool:
        try:
            data = self._data(op)
            result, message = compare(str(data.get("assertion") or ""), data.get("target"), data.get("expect"))
        except Exception as e:  # noqa: BLE001 - any evaluation problem is this loop's step error
            self._error(op, e)
        return result

    # -- one operation -----------------------------------------------------------------------------------
    def _run_op(self, op: _Op) -> bool | None:
        """Run one non-loop operation; a condition returns the branch taken, everything else None."""
        self._begin(op)
        action: dict[str, Any] = {"method": op.name, "params": {}, "start_time": int(time.time() * 1000),
                                  "elapsed_ms": 0, "error": None, "screen_results": []}
        self._actions().append(action)
        t0 = time.monotonic()
        try:
            self.catalog.prepare(self.options.deadline)
            call = self._call(op)
            action["params"] = {"element": {k: list(v) if isinstance(v, tuple) else v for k, v in call.elements.items()},
                                "data": call.data}
            value = self._invoke(op, call)
        except (_Stop, InfrastructureError):
            raise
        except Exception as e:  # noqa: BLE001 - every operation failure becomes this step's error
            action["error"] = f"{type(e).__name__}: {e}"
            self._error(op, e)
        finally:
            action["elapsed_ms"] = int((time.monotonic() - t0) * 1000)
        taken = self._after(op, call, value)
        if self.options.screenshot_every_step:
            self._screenshot()
        return taken

    def _call(self, op: _Op) -> OpCall:
        elements = {}
        for param, spec in (op.raw.get("operationElement") or {}).items():
            if not isinstance(spec, dict):
                raise ValueError(f"元素参数 {param} 必须是对象, 实际为 {spec!r}")
            rendered = dict(spec)
            if "{{" in str(spec.get("expression") or ""):
                rendered["expression"] = str(self.renderer.render(spec.get("expression"), step=op.title))
            elements[param] = self.catalog.locator(rendered)
        return OpCall(name=op.name, elements=elements, data=self._data(op), log=self._log,
                      screenshot=self._screenshot, deadline=self.options.deadline)

    def _data(self, op: _Op, render: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for param, spec in (op.raw.get("operationData") or {}).items():
            if not isinstance(spec, dict):
                out[param] = spec
                continue
            value = spec.get("value")
            if render and isinstance(value, str) and "{{" in value:
                value = self.renderer.render(value, step=op.title)
            out[param] = convert_typed(str(spec.get("type") or "String"), value)
        return out

    def _invoke(self, op: _Op, call: OpCall) -> Any:
        if op.name == CUSTOM:
            return self._custom(op, call)
        table = self.catalog.operations(op.kind)
        fn = table.get(op.name)
        if fn is None:
            known = "、".join(sorted(table)) or "无"
            raise LookupError(f"未定义操作: [{op.name}] (operationType={op.kind!r}); 可用操作: {known}")
        self._log(f"{self.catalog.keyword}操作[{op.name}]开始")
        return fn(call)

    def _custom(self, op: _Op, call: OpCall) -> Any:
        code = op.raw.get("operationCode")
        if not isinstance(code, str) or not code.strip():
            raise ValueError(f"自定义操作[{op.title}]没有代码 (operationCode)")
        self._log(f"{self.catalog.keyword}自定义操作[{op.title}]开始")
        names = script_names(self.variables)
        names.update({"element": call.elements, "data": call.data, self.catalog.driver_name: self.catalog.driver()})
        result = run_script(code, names, deadline=self.options.deadline)
        self.rec.console(result.output)
        return result.returned

    def _after(self, op: _Op, call: OpCall, value: Any) -> bool | None:
        """Type-specific handling of an operation's value: compare, branch or save."""
        if op.kind == "relation":
            name = call.data.get("save_name")
            if not name:
                self._error(op, ValueError(f"提取操作[{op.title}]缺少数据参数 save_name"))
            self.variables.put(str(name), value)
            self._log(f"提取值 {value!r} 已保存为关联参数 {name}")
            return None
        if op.kind not in COMPARED:
            return None
        try:
            result, message = compare(str(call.data.get("assertion") or ""), value, call.data.get("expect"))
        except ComparisonError as e:
            self._error(op, e)
        if op.kind == "condition":
            self._log(f"[{op.title}]判断结果为{'真' if result else '假'}: {message}")
            return result
        if result:
            self._log(f"[{op.title}]断言成功: {message}")
            return None
        self._screenshot()
        self.rec.fail(escape(f"[{op.title}]断言失败: {message}"))
        if call.data.get("continue") is not True:
            raise _Stop()
        return None

    # -- recording helpers ---------------------------------------------------------------------------------
    def _begin(self, op: _Op) -> None:
        self.options.on_step(op.title)
        content = "".join(f"\n {param}: {spec.get('target', '')}"
                          for param, spec in (op.raw.get("operationElement") or {}).items() if isinstance(spec, dict))
        self._tx = self.rec.begin(str(op.raw.get("operationId") or ""), op.title, content,
                                  op.raw.get("operationDesc"), self.catalog.step_type)
        self._tx.detail["actions"] = []
        self.rec.set_during(0)      # §7.2: ``during`` is API-only; UI timings live in detail.actions

    def _actions(self) -> list[dict[str, Any]]:
        if self._tx is None:
            return []
        return self._tx.detail.setdefault("actions", [])  # type: ignore[no-any-return]

    def _skipped(self, op: _Op) -> None:
        self._begin(op)
        self.rec.skip("操作在条件控制之外不被执行")

    def _log(self, message: str) -> None:
        self.rec.debug(escape(message))     # page text and values are shown as HTML by the platform

    def _error(self, op: _Op, exc: BaseException) -> None:
        """Record a step error (screenshot first) and stop the case; a lost driver propagates instead."""
        lost = self.catalog.translate_error(exc)
        if lost is not None:
            raise lost from exc
        self._screenshot()
        self.rec.error(f"{self.catalog.keyword}操作[{op.title}]执行异常: {escape(_describe(exc))}", exc)
        raise _Stop()

    def _screenshot(self) -> str:
        """Take, save and attach a screenshot. A failure is logged and never masks the step's own result,
        except a lost driver: that is the attempt's real outcome (*broken*), so it propagates."""
        try:
            png = self.catalog.screenshot_png()
            shot_id, path = save_screenshot(png, self.options.image_dir)
        except Exception as e:  # noqa: BLE001
            lost = self.catalog.translate_error(e)
            if lost is not None:
                raise lost from e
            self.rec.debug(f"截图失败: {_describe(e)}")
            return ""
        self.rec.screenshot(shot_id)
        actions = self._actions()
        if actions:
            actions[-1]["screen_results"].append(str(path))
        return shot_id

    def _steps(self, op: _Op) -> int:
        return max(0, self._int_data(op, "steps"))

    def _int_data(self, op: _Op, key: str) -> int:
        spec = (op.raw.get("operationData") or {}).get(key)
        value = spec.get("value") if isinstance(spec, dict) else spec
        try:
            return int(str(value).strip())
        except (TypeError, ValueError):
            return 0


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    text = text.strip().split("\n  (Session info")[0].split("\nStacktrace:")[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
