"""``AppRunner``: the CaseRunner for APP cases (reference §3.6, §6) on the executor's one device.

Per case: check the device (``ctx.device``; none → "执行设备不在线 本用例执行失败", a case error as in the
original), health-check or create the device's Appium session (kept in ``ctx.shared`` for the unit; a
session that cannot be made healthy raises ``InfrastructureError`` → the case is *broken*), start the case's
app (``appId``/``activity``), run ``optList`` through the shared UI step engine with the APP catalog, and
always stop the app. Commands a driver does not implement (the fake driver has no app management) are noted
in the first/last step log instead of failing the case.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.errors import InfrastructureError
from stages.executor.app.catalog import AppCatalog
from stages.executor.app.devices import SECTION_PREFIX, Device, parse_device
from stages.executor.app.evidence import AppRecorder
from stages.executor.app.session import SESSION_KEY, AppSession, is_session_lost
from stages.executor.common.functions import FunctionLibrary
from stages.executor.common.params import convert_params
from stages.executor.common.steplog import CaseRecorder, escape, log_line
from stages.executor.common.template import Renderer
from stages.executor.common.variables import Variables
from stages.executor.context import CaseOutcome, RunContext
from stages.executor.ui.engine import EngineOptions, StepEngine, opt_list

__all__ = ["AppRunner", "device_from_context", "NO_DEVICE"]

NO_DEVICE = "执行设备不在线 本用例执行失败"


def device_from_context(data: Mapping[str, Any]) -> Device:
    """``ctx.device`` -> ``Device``. Accepts both ``Device.to_dict()`` and the raw config section plus
    ``name`` (what the executor stage passes); both go through the same validation."""
    raw: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        raw[key] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return parse_device(f"{SECTION_PREFIX}{raw.get('name', '')}", raw)


class AppRunner:
    """Runs APP cases on ``ctx.device``. One instance per executor process (the host creates it)."""

    case_type = "APP"

    def run(self, case: dict[str, Any], ctx: RunContext) -> CaseOutcome:
        rec = CaseRecorder("APP", str(case.get("caseId") or ""), enable_stderr=ctx.settings.enable_stderr)
        params: dict[str, Any] = {}
        try:
            params = convert_params(case.get("params") if isinstance(case.get("params"), dict) else {})
            device = self._device(case, ctx)
        except Exception as e:  # noqa: BLE001 - bad case or device data is a case error, not a crash
            rec.error(escape(str(e)), e)
            return CaseOutcome(rec.finish(_meta(case)), params)
        session = self._session(device, ctx)
        before = [session.ensure_healthy()]          # InfrastructureError propagates: the case is broken
        app_id, activity = str(case.get("appId") or ""), str(case.get("activity") or "") or None
        after: list[str] = []
        lost = False
        recorder = AppRecorder.begin(session, ctx)
        try:
            before.append(session.open_app(app_id, activity))
            self._engine(case, ctx, rec, params, AppCatalog(session, ctx.settings.default_step_timeout)).run(
                opt_list(case, rec))
        except InfrastructureError:
            lost = True
            raise
        except Exception as e:  # noqa: BLE001 - a failed app start is this case's error
            if is_session_lost(e):
                lost = True
                raise InfrastructureError(f"设备[{device.name}]会话已丢失: {type(e).__name__}: {e}") from e
            rec.error(escape(f"启动应用失败: {type(e).__name__}: {getattr(e, 'msg', None) or e}"), e)
        finally:
            AppRecorder.end(recorder, ctx, "broken" if lost else "error" if rec.any_error else
                            "failed" if rec.any_fail else "passed", lost=lost)
            if not lost:          # nothing to stop on a lost session, and no time to waste on a dead server
                after.append(self._close_app(session, app_id))
        result = rec.finish(_meta(case))
        _attach_notes(result.transactionList, rec.sep, before, after)
        return CaseOutcome(result, params)

    def warm_up(self, ctx: RunContext) -> float:
        """Like the browser executor's: create the device's session on the worker thread before the executor
        announces credit, so the first case does not pay it (10-30 s on a real phone) inside its deadline.
        Raises ``InfrastructureError`` when the device cannot be reached (the host logs it; the first case
        tries again and is broken if it still cannot)."""
        if not ctx.device:
            return 0.0
        return self._session(device_from_context(ctx.device), ctx).warm_up()

    def check(self, ctx: RunContext) -> str:
        """The device's health ladder (``AppSession.check``), before each unit and as the quarantine probe;
        raises ``DeviceDown`` when the device cannot be used."""
        if not ctx.device:
            return ""
        return self._session(device_from_context(ctx.device), ctx).check()

    def close_shared(self, ctx: RunContext) -> None:
        session = ctx.shared.pop(SESSION_KEY, None)
        if isinstance(session, AppSession):
            session.quit()

    # -- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def _device(case: Mapping[str, Any], ctx: RunContext) -> Device:
        if not ctx.device:
            raise LookupError(NO_DEVICE)
        device = device_from_context(ctx.device)
        system = str(case.get("deviceSystem") or "").strip().lower()
        if system and system != device.platform:
            raise LookupError(f"{NO_DEVICE}: 用例要求 {system} 设备, 本执行器的设备[{device.name}]是 {device.platform}")
        return device

    @staticmethod
    def _session(device: Device, ctx: RunContext) -> AppSession:
        session = ctx.shared.get(SESSION_KEY)
        if isinstance(session, AppSession) and session.device == device:
            return session
        if isinstance(session, AppSession):
            session.quit()
        session = ctx.shared[SESSION_KEY] = AppSession(device, ctx.settings.default_step_timeout)
        return session

    @staticmethod
    def _engine(case: Mapping[str, Any], ctx: RunContext, rec: CaseRecorder, params: dict[str, Any],
                catalog: AppCatalog) -> StepEngine:
        variables = Variables(ctx.variables, params)
        custom = case.get("functions") if isinstance(case.get("functions"), list) else []
        functions = FunctionLibrary(custom, locale=ctx.settings.faker_locale, fetch_file=ctx.fetch_file,
                                    variables=variables, printer=rec.console, file_dir=ctx.data_dir / "file")
        functions.deadline = ctx.deadline
        renderer = Renderer(variables, functions, strict=ctx.settings.strict_templates)
        options = EngineOptions(image_dir=ctx.image_dir, deadline=ctx.deadline,
                                screenshot_every_step=ctx.settings.screenshot_every_step, on_step=ctx.on_step)
        return StepEngine(catalog, rec, variables, renderer, options)

    @staticmethod
    def _close_app(session: AppSession, app_id: str) -> str:
        """Stop the case's app; on a lost session there is nothing to stop (the case already propagates)."""
        if session.driver is None:
            return ""
        try:
            return session.close_app(app_id)
        except Exception as e:  # noqa: BLE001 - a failed stop must not hide the case's own result
            return f"关闭应用 {app_id} 失败: {type(e).__name__}: {getattr(e, 'msg', None) or e}"


def _meta(case: Mapping[str, Any]) -> dict[str, Any]:
    return {"caseId": case.get("caseId"), "caseName": case.get("caseName"), "caseDesc": case.get("comment")}


def _attach_notes(transactions: list[dict[str, Any]], sep: str, before: list[str], after: list[str]) -> None:
    """Session/app notes go to the first step's log (before) and the last step's log (after)."""
    if not transactions:
        return
    head = [log_line("Debug", escape(n)) for n in before if n]
    tail = [log_line("Debug", escape(n)) for n in after if n]
    first, last = transactions[0], transactions[-1]
    if head:
        first["log"] = sep.join(head + ([first["log"]] if first.get("log") else []))
    if tail:
        last["log"] = sep.join(([last["log"]] if last.get("log") else []) + tail)
