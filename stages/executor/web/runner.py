"""``WebRunner``: the CaseRunner for WEB cases (§3.5, §5). Builds the case's variables, templates and
functions, gets the collection's browser (``session.BrowserSlot``), and runs ``optList`` through the shared
UI step engine with the Selenium catalog.

Case-level problems (bad driverSetting, no open browser, a failing step) are recorded as step errors and
returned; only a lost browser (session gone, chromedriver dead, a WebDriver call that timed out) raises
``InfrastructureError`` — the browser is dropped first, so the next case starts a new one.
"""
from __future__ import annotations

import logging
import time
import urllib.parse
from typing import Any

from pipeline.capacity import Limits, saturation
from pipeline.capacity_probe import limits_from, tree_rss_mb
from pipeline.errors import InfrastructureError
from pipeline.host_monitor import monitor
from stages.executor.common.functions import FunctionLibrary
from stages.executor.common.params import convert_params
from stages.executor.common.steplog import CaseRecorder, escape
from stages.executor.common.template import Renderer
from stages.executor.common.variables import Variables
from stages.executor.context import CaseOutcome, RunContext
from stages.executor.ui.driver import set_command_timeout
from stages.executor.ui.engine import EngineOptions, StepEngine, opt_list
from stages.executor.web.browser import BrowserConfig, BrowserStartError, start_browser
from stages.executor.web.catalog import WebCatalog
from stages.executor.web.evidence import DevtoolsTap, WebRecorder
from stages.executor.web.remote import GRID_HOLD_S, GRID_IDLE_S, grid_queue_length, release_due
from stages.executor.web.session import SHARED_KEY, BrowserSlot, NoBrowserError

__all__ = ["WebRunner"]

log = logging.getLogger("stages.executor")


class WebRunner:
    """One per executor process. ``reuse`` (``[WebDriver] reset = clear``, the default; ``session`` = false)
    resets a held browser for a ``startDriver`` case instead of starting a new Chromium; see ``session``."""

    case_type = "WEB"

    def __init__(self, reuse: bool | None = None) -> None:
        self.reuse = reuse
        self._unit_ctx: RunContext | None = None     # the context of the last prepared case (one per unit)
        self._idle_checked = 0.0
        monitor()           # samples the host from now on: a timeout is judged on the load during its wait

    def run(self, case: dict[str, Any], ctx: RunContext) -> CaseOutcome:
        case_id = str(case.get("caseId") or "")
        rec = CaseRecorder("WEB", case_id, enable_stderr=ctx.settings.enable_stderr)
        params = convert_params(case.get("params") if isinstance(case.get("params"), dict) else {})
        variables = Variables(ctx.variables, params)
        functions = FunctionLibrary(case.get("functions") if isinstance(case.get("functions"), list) else [],
                                    locale=ctx.settings.faker_locale, fetch_file=ctx.fetch_file,
                                    variables=variables, printer=rec.console, file_dir=ctx.data_dir / "file")
        functions.deadline = ctx.deadline
        renderer = Renderer(variables, functions, strict=ctx.settings.strict_templates)
        slot = self.slot(ctx)
        reuse = self._reuse(ctx)        # a Grid session too: given back by ``idle``/``prepare`` (``remote``)
        healthy = False
        recorder: WebRecorder | None = None
        try:
            browser = self._acquire(case, ctx, renderer, rec, slot, reuse)
            if browser is not None:
                recorder = WebRecorder.begin(browser, ctx)
                catalog = WebCatalog(browser, ctx.settings.default_step_timeout, _limits(ctx))
                options = EngineOptions(image_dir=ctx.image_dir, deadline=ctx.deadline,
                                        screenshot_every_step=ctx.settings.screenshot_every_step, on_step=ctx.on_step)
                StepEngine(catalog, rec, variables, renderer, options).run(opt_list(case, rec))
                healthy = not rec.any_error
        except InfrastructureError:
            WebRecorder.end(recorder, ctx, "broken")
            lost = slot.browser.config if slot.browser is not None else None
            slot.close()
            if lost is not None:          # its replacement starts now, while the result travels
                self._spare(slot, lost, ctx)
            raise
        finally:
            WebRecorder.end(recorder, ctx, "error" if rec.any_error else "failed" if rec.any_fail else "passed")
            slot.release(close=_flag(case.get("closeDriver"), True), healthy=healthy, reuse=reuse)
        result = rec.finish({"caseId": case_id, "caseName": case.get("caseName"), "caseDesc": case.get("comment")})
        result.caseType = self.case_type
        return CaseOutcome(result=result, params=params)

    def prepare(self, case: dict[str, Any], ctx: RunContext) -> None:
        """Before the case's clock starts (the host calls it): recycle a worn browser, then reset the parked
        one or start a new one (remote: wait in the Grid's session queue), so neither costs case time. Only
        for a ``startDriver`` case whose ``driverSetting`` needs no rendering; others get theirs in the case."""
        if ctx.attempt > 1:
            self._wait_calm(ctx)
        setting = case.get("driverSetting") or {}
        if not _flag(case.get("startDriver"), True) or not isinstance(setting, dict) or "{{" in repr(setting):
            return
        try:
            config = BrowserConfig.from_settings(ctx.settings.webdriver, setting)
        except BrowserStartError:
            return                                   # the case reports the bad setting
        slot = self.slot(ctx)
        if slot.browser is not None and not slot.open and _worn(slot, ctx):
            slot.retire()                            # quits in the background
        between_units, self._unit_ctx = ctx is not self._unit_ctx, ctx      # the host makes one ctx per unit
        if config.mode == "remote":
            self._give_back(slot, ctx, between_units)
        slot.prepare(config, reuse=self._reuse(ctx), command_timeout=ctx.settings.default_step_timeout + 5.0,
                     driver_log=_driver_log(ctx))
        if slot.browser is not None and _due(slot, ctx):    # worn after this case: its replacement starts now
            self._spare(slot, config, ctx)

    def _spare(self, slot: BrowserSlot, config: BrowserConfig, ctx: RunContext) -> None:
        if ctx.settings.spare_browser and config.mode != "remote":
            slot.start_spare(config, ctx.settings.default_step_timeout + 5.0, _driver_log(ctx),
                             limits_from({"Capacity": ctx.settings.capacity}))

    def _wait_calm(self, ctx: RunContext) -> str:
        """A retry runs on a calm host: wait (outside the case's clock) until the run queue of the last 2 s is
        below ``max-load`` and memory above ``min-free-mb``, at most ``[Capacity] retry-wait`` s. Returns
        why the host is still saturated when the wait gave up ("" when calm)."""
        limits = _limits(ctx)
        if limits is None:
            return ""
        end = time.monotonic() + float(ctx.settings.capacity.get("retry-wait", 20.0))
        while True:
            t = time.monotonic()
            why = saturation(monitor().samples(), limits, t - 2.0, t)
            if not why or t >= end:
                if why:
                    log.info("attempt %d runs on a saturated host after waiting: %s", ctx.attempt, why)
                return why
            time.sleep(0.5)

    def idle(self, ctx: RunContext) -> None:
        """The executor is idle (the host calls it from its loop, about every tick): a parked Grid session goes
        back to the Grid when someone waits in its queue or it idled ``grid-idle`` seconds (checked once a
        second). Runs on the loop thread; the release is one DELETE bounded by a 5 s command timeout."""
        slot = ctx.shared.get(SHARED_KEY)
        if not isinstance(slot, BrowserSlot) or slot.browser is None or slot.open or not _remote(ctx):
            return
        t = time.monotonic()
        if t - self._idle_checked < 1.0:
            return
        self._idle_checked = t
        self._give_back(slot, ctx, between_units=True)

    def _give_back(self, slot: BrowserSlot, ctx: RunContext, between_units: bool) -> None:
        if slot.browser is None or slot.open or slot.browser.config.mode != "remote":
            return
        ws, t = ctx.settings.webdriver, time.monotonic()
        queued = grid_queue_length(slot.browser.config.driver_path)
        why = release_due(t - slot.browser.started_at, t - slot.parked_at, queued, between_units,
                          hold=float(ws.get("grid-hold", GRID_HOLD_S)), idle=float(ws.get("grid-idle", GRID_IDLE_S)))
        if why:
            log.info("Grid session %s given back: %s", slot.browser.driver.session_id, why)
            set_command_timeout(slot.browser.driver, 5.0)     # a DELETE: never a long wait on the loop thread
            slot.close()

    def warm_up(self, ctx: RunContext) -> float:
        """Start the browser a ``driverSetting``-free case would get, before the first case (parked, so the
        case resets it instead of paying the start inside its deadline). Returns the start time in seconds;
        a failure is left for the first case to report (0.0). Call from the executor's worker thread."""
        slot = self.slot(ctx)
        if slot.browser is not None or not self._reuse(ctx) or _remote(ctx):   # never hold a Grid slot idle
            return 0.0
        try:
            slot.browser = start_browser(BrowserConfig.from_settings(ctx.settings.webdriver, {}),
                                         ctx.settings.default_step_timeout + 5.0, driver_log=_driver_log(ctx))
        except BrowserStartError:
            return 0.0
        slot.starts += 1
        slot.fresh = True
        return slot.browser.started_in

    def reset_shared(self, ctx: RunContext) -> None:
        """Between collections: park the browser instead of quitting it (~0.1 s reset instead of a ~0.5-1.5 s
        start, bench/web.py). The next ``startDriver`` case resets it (pages, windows, cookies, storage, cache,
        history) exactly as within a collection; a ``startDriver`` false case gets "no browser", as after a quit.
        ``reuse = false`` keeps the old policy: quit."""
        slot = ctx.shared.get(SHARED_KEY)
        if not isinstance(slot, BrowserSlot):
            return
        if self._reuse(ctx) and slot.browser is not None:
            slot.open = False
        else:
            self.close_shared(ctx)

    def close_shared(self, ctx: RunContext) -> None:
        """Quit the collection's browser and delete its profile (between collections and at shutdown)."""
        DevtoolsTap.drop(ctx)
        slot = ctx.shared.pop(SHARED_KEY, None)
        if isinstance(slot, BrowserSlot):
            slot.close_all()

    # -- helpers ---------------------------------------------------------------------------------------------
    @staticmethod
    def slot(ctx: RunContext) -> BrowserSlot:
        slot = ctx.shared.get(SHARED_KEY)
        if not isinstance(slot, BrowserSlot):
            slot = ctx.shared[SHARED_KEY] = BrowserSlot()
        return slot

    def _reuse(self, ctx: RunContext) -> bool:
        if self.reuse is not None:
            return self.reuse
        ws = ctx.settings.webdriver
        if "reset" in ws:                   # [WebDriver] reset = clear (reuse, reset state) | session (new browser)
            return str(ws["reset"]).strip().lower() != "session"
        return _flag(ws.get("reuse"), True)

    def _acquire(self, case: dict[str, Any], ctx: RunContext, renderer: Renderer, rec: CaseRecorder,
                 slot: BrowserSlot, reuse: bool) -> Any:
        """The case's browser, or None after recording why there is none (synthetic step, §7.3)."""
        start = _flag(case.get("startDriver"), True)
        try:
            setting = case.get("driverSetting") or {}
            if not isinstance(setting, dict):
                raise BrowserStartError(f"driverSetting 必须是对象, 实际为 {type(setting).__name__}")
            config = BrowserConfig.from_settings(ctx.settings.webdriver, renderer.render(setting, step="driverSetting"))
            command_timeout = max(1.0, min(ctx.settings.default_step_timeout, ctx.remaining())) + 5.0
            browser = slot.acquire(config, start, reuse, command_timeout, driver_log=_driver_log(ctx))
        except NoBrowserError as e:
            rec.error(escape(str(e)))
            return None
        except BrowserStartError as e:
            if e.infrastructure:              # the host or the Grid failed it: broken, retried with a fresh browser
                raise InfrastructureError(str(e)) from e
            rec.error(escape(f"浏览器启动失败: {e}"), e)
            return None
        except Exception as e:  # noqa: BLE001 - bad setting, template error, browser start failure
            rec.error(escape(f"浏览器启动失败: {e}"), e)
            return None
        return browser


def _remote(ctx: RunContext) -> bool:
    return str(ctx.settings.webdriver.get("options") or "").strip().lower() == "remote"


def _worn(slot: BrowserSlot, ctx: RunContext) -> bool:
    """Recycling: the browser served ``recycle-cases`` cases or grew above ``recycle-rss-mb``."""
    s = ctx.settings
    if s.recycle_cases and slot.cases >= s.recycle_cases:
        return True
    return bool(s.recycle_rss_mb and slot.browser is not None and tree_rss_mb(slot.browser.pids()) > s.recycle_rss_mb)


def _limits(ctx: RunContext) -> Limits | None:
    """The engine's ``[Capacity]`` limits a timeout is judged against; None (never judged) without them, or
    when the browser runs on another machine (a remote WebDriver end not on this host's loopback)."""
    if not ctx.settings.capacity:
        return None
    if _remote(ctx):
        host = urllib.parse.urlsplit(str(ctx.settings.webdriver.get("remote-url") or "")).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            return None
    return limits_from({"Capacity": ctx.settings.capacity})


def _due(slot: BrowserSlot, ctx: RunContext) -> bool:
    """The browser will be worn once the coming case is over (its last case) or is close to the RSS limit
    (80 %): the moment to start its replacement in the background."""
    s = ctx.settings
    if s.recycle_cases and slot.cases + 1 >= s.recycle_cases:
        return True
    return bool(s.recycle_rss_mb and slot.browser is not None
                and tree_rss_mb(slot.browser.pids()) > 0.8 * s.recycle_rss_mb)


def _driver_log(ctx: RunContext) -> bool:
    """Start chromedriver with a log file unless evidence is off for this task and the engine (the browser may
    serve a later attempt, e.g. the first retry, that keeps its bundle)."""
    return ctx.evidence.keep != "never" or ctx.settings.evidence_keep != "never"


def _flag(value: Any, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)
