"""``ApiRunner``: runs one API case (reference §3.4, §4) and returns its LiuMa-shaped result.

Steps run in order with condition (``whetherExec``) and loop (``loopExec``) controllers, waits,
``errorContinue`` and a per-step HTTP timeout that is never infinite and never outlives the case deadline.
Case-level problems never raise: they become step errors (or the synthetic step, §7.3).
"""
from __future__ import annotations

import json
import time
from typing import Any

from pipeline.errors import PipelineError
from stages.executor.api.request import StepDataError, collect, truthy
from stages.executor.api.step import POOL_KEY, SESSION_KEY, AssertionFailed, StepEnv, run_block
from stages.executor.common.assertion import compare
from stages.executor.common.functions import FunctionLibrary
from stages.executor.common.params import convert_params
from stages.executor.common.steplog import CaseRecorder, escape
from stages.executor.common.template import Renderer
from stages.executor.common.variables import Variables
from stages.executor.context import CaseOutcome, RunContext

__all__ = ["ApiRunner", "FILES_KEY"]

FILES_KEY = "api.files"


class _StopCase(Exception):
    """The case ends here; the reason is already recorded."""


def _plain(value: Any) -> Any:
    """Values for inOut: msgpack/JSON-friendly (tuples → lists, unknown objects → text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return value
    return str(value)


class ApiRunner:
    """The API ``CaseRunner``; stateless between cases except ``ctx.shared`` (session, file cache)."""

    case_type = "API"

    def run(self, case: dict[str, Any], ctx: RunContext) -> CaseOutcome:
        case_id = str(case.get("caseId") or "")
        recorder = CaseRecorder("API", case_id, enable_stderr=ctx.settings.enable_stderr)
        params: dict[str, Any] = {}
        variables = Variables(ctx.variables, params)
        try:
            params.update(convert_params(case.get("params") if isinstance(case.get("params"), dict) else {}))
            functions = FunctionLibrary(case.get("functions") if isinstance(case.get("functions"), list) else [],
                                        locale=ctx.settings.faker_locale, fetch_file=_cached_fetch(ctx),
                                        variables=variables, printer=recorder.console, file_dir=ctx.data_dir / "file")
            functions.deadline = ctx.deadline if ctx.deadline != float("inf") else None
            renderer = Renderer(variables, functions, strict=ctx.settings.strict_templates)
            env = StepEnv(recorder=recorder, variables=variables, renderer=renderer, fetch=_cached_fetch(ctx),
                          shared=ctx.shared, default_timeout=ctx.settings.default_step_timeout, remaining=ctx.remaining)
            steps = case.get("apiList")
            if not isinstance(steps, list):
                raise StepDataError("用例数据缺少 apiList 步骤列表")
            _CaseRun(env, ctx).run_list(steps)
        except _StopCase:
            pass
        except Exception as e:   # a bad case must never crash the executor: it is a step error (§7.3)
            recorder.error(f"用例执行错误: {escape(type(e).__name__)}: {escape(str(e))}", e)
        result = recorder.finish({"caseId": case_id, "caseName": case.get("caseName"), "caseDesc": case.get("comment")})
        result.inOut = {"config_vars": _plain(params), "export_vars": _plain(variables.exported)}
        return CaseOutcome(result=result, params=_plain(params))

    def reset_shared(self, ctx: RunContext) -> None:
        """Between collections: the saved session (its cookies are the collection's) and the file cache go,
        the connection pool stays. Keep-alive connections carry no cookie or header of a case, so the
        executor's next collection on the same host reuses them instead of a TCP connect per collection."""
        ctx.shared.pop(SESSION_KEY, None)          # dropped, not closed: closing it closes the pool it is mounted on
        ctx.shared.pop(FILES_KEY, None)

    def close_shared(self, ctx: RunContext) -> None:
        session = ctx.shared.pop(SESSION_KEY, None)
        if session is not None:
            session.close()
        pool = ctx.shared.pop(POOL_KEY, None)
        if pool is not None:
            pool.close()
        ctx.shared.pop(FILES_KEY, None)


def _cached_fetch(ctx: RunContext) -> Any:
    cache: dict[str, tuple[str, bytes]] = ctx.shared.setdefault(FILES_KEY, {})

    def fetch(file_id: str) -> tuple[str, bytes]:
        if file_id not in cache:
            if ctx.fetch_file is None:
                raise PipelineError(f"没有可用的测试文件来源，无法获取文件 {file_id}")
            cache[file_id] = ctx.fetch_file(file_id)
        return cache[file_id]
    return fetch


def _parse_json(value: Any, what: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as e:
            raise PipelineError(f"{what}不是合法的JSON: {e}") from e
    return value


class _CaseRun:
    """Walks the step list of one case: loops, conditions, waits and failure continuation."""

    def __init__(self, env: StepEnv, ctx: RunContext) -> None:
        self.env, self.ctx, self.rec = env, ctx, env.recorder

    def run_list(self, steps: list[Any], looping: bool = False) -> None:
        i = 0
        while i < len(steps):
            step = steps[i] if isinstance(steps[i], dict) else {}
            loop = (step.get("controller") or {}).get("loopExec") if isinstance(step.get("controller"), dict) else None
            if loop and not (looping and i == 0):
                num = self._loop(step, loop, steps, i)
                i += num
            else:
                self.run_step(step)
                i += 1

    # -- loops ------------------------------------------------------------------------------------------------
    def _loop(self, step: dict[str, Any], raw: Any, steps: list[Any], i: int) -> int:
        try:
            spec = _parse_json(raw, "循环控制器")
            if not isinstance(spec, dict):
                raise PipelineError("循环控制器必须是JSON对象")
            num = max(1, int(spec.get("num") or 1))
        except (PipelineError, ValueError, TypeError) as e:
            self._open(step)
            self.rec.error(f"循环控制器配置错误: {escape(str(e))}")
            raise _StopCase() from e
        block = steps[i:i + num]
        kind = str(spec.get("type") or "FOR").upper()
        if kind == "WHILE":
            self._while(step, spec, block)
        else:
            self._for(step, spec, block)
        return num

    def _for(self, step: dict[str, Any], spec: dict[str, Any], block: list[Any]) -> None:
        rendered = self.env.renderer.render(spec, step=str(step.get("apiName") or ""))
        try:
            times = int(rendered.get("times"))
        except (TypeError, ValueError):
            times = 1
        index = str(rendered.get("indexName") or "").strip()
        for n in range(times):
            if index:
                self.env.variables.put(index, n)
            self.run_list(block, looping=True)

    def _while(self, step: dict[str, Any], spec: dict[str, Any], block: list[Any]) -> None:
        """Repeat while the condition holds, until ``timeout`` ms (0 → until the case deadline)."""
        try:
            limit = float(spec.get("timeout") or 0) / 1000.0
        except (TypeError, ValueError):
            limit = 0.0
        started = time.monotonic()
        name = str(step.get("apiName") or "")
        while limit <= 0 or time.monotonic() - started < limit:
            if self.ctx.remaining() <= 0:
                self._open(step)
                self.rec.error("WHILE循环执行到用例超时仍未结束")
                raise _StopCase()
            try:
                cond = self.env.renderer.render({k: spec.get(k) for k in ("target", "assertion", "expect")}, step=name)
                ok, _ = compare(str(cond["assertion"]), cond["target"], cond["expect"])
            except PipelineError as e:
                self._open(step)
                self.rec.error(f"WHILE循环条件错误: {escape(str(e))}")
                raise _StopCase() from e
            if not ok:
                return
            self.run_list(block, looping=True)

    # -- one step ---------------------------------------------------------------------------------------------
    def _open(self, step: dict[str, Any]) -> None:
        method = str(step.get("method") or "").upper()
        self.ctx.on_step(str(step.get("apiName") or ""))
        self.rec.begin(str(step.get("apiId") or ""), str(step.get("apiName") or ""), str(step.get("path") or ""),
                       step.get("apiDesc"), f"request-{method}")
        self.env.step_name = str(step.get("apiName") or "")

    def run_step(self, step: dict[str, Any]) -> None:
        self._open(step)
        if self.ctx.remaining() <= 0:
            self.rec.error("用例执行超时，步骤未执行")
            raise _StopCase()
        try:
            collected = collect(step)
        except StepDataError as e:
            self.rec.error(escape(str(e)))
            raise _StopCase() from e
        controller = collected.controller
        if not self._condition(controller):
            return
        keep_going = truthy(controller.get("errorContinue"))
        self._sleep(controller.get("sleepBeforeRun"), "执行前等待")
        try:
            run_block(self.env, step, collected)
        except AssertionFailed as e:
            if not keep_going:
                raise _StopCase() from e
        except Exception as e:   # user data/code/network: a step error with a clear message
            self.rec.error(f"步骤执行错误: {escape(str(e)) or escape(type(e).__name__)}", e)
            if not keep_going:
                raise _StopCase() from e
        finally:
            self._sleep(controller.get("sleepAfterRun"), "执行后等待")

    def _condition(self, controller: dict[str, Any]) -> bool:
        raw = controller.get("whetherExec")
        if not raw:
            return True
        try:                  # a condition that is not JSON is a broken case, not a reason to skip quietly
            conditions = _parse_json(raw, "条件控制器")
            if isinstance(conditions, dict):
                conditions = [conditions]
            if not isinstance(conditions, list) or not all(isinstance(c, dict) for c in conditions):
                raise PipelineError(f"条件控制器必须是对象或对象列表, 实际为: {escape(str(raw))[:80]}")
        except PipelineError as e:
            self.rec.error(f"步骤执行错误: {escape(str(e))}", e)
            if truthy(controller.get("errorContinue")):
                return False
            raise _StopCase() from e
        try:
            for cond in self.env.renderer.render(conditions, step=self.env.step_name):
                ok, message = compare(str(cond.get("assertion")), cond.get("target"), cond.get("expect"))
                if not ok:
                    self.rec.skip(f"条件不满足，跳过执行: {escape(message)}")
                    return False
        except Exception as e:
            self.rec.skip(f"条件判断出错，跳过执行: {escape(str(e))}")
            return False
        return True

    def _sleep(self, raw: Any, label: str) -> None:
        try:
            seconds = float(raw) if raw not in (None, "") else 0.0
        except (TypeError, ValueError):
            self.rec.debug(f"{label}时间不是数字, 忽略: {escape(str(raw))}")
            return
        seconds = min(seconds, max(0.0, self.ctx.remaining()))
        if seconds > 0:
            self.rec.debug(f"{label} {seconds:g} 秒")
            time.sleep(seconds)
