"""The WEB attempt's evidence recorder: console, network (HAR 1.2), DOM of every frame at failure, the
chromedriver log lines of the attempt and a screen recording that works headless.

Console, network and video come from a DevTools connection of our own (``cdp.CdpClient``) attached to the
case's window: ``Runtime``/``Log`` events for the console, ``Network`` events for the HAR, and the
``Page.startScreencast`` frames, paced to a few a second and stopped between attempts (``grabber``), for
the video, kept in a bounded ring and encoded only when the bundle is kept. A remote end without a DevTools endpoint (a Grid without
``se:cdp``) gets the DOM through WebDriver and a note saying what it did not allow. Nothing here may fail
a case: every problem becomes a note on the attempt and a log line. An attempt killed from outside (the
executor gets SIGTERM at the case's deadline) keeps what was collected until then (``killed``).
"""
from __future__ import annotations

import base64
import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.evidence import keep_bundle, may_record
from pipeline.secrets import redact_value
from stages.executor.common.evidence import Bundle, EvidenceSpec, Json, Text
from stages.executor.context import RunContext
from stages.executor.web.browser import Browser
from stages.executor.web.cdp import CdpClient, CdpError, browser_ws_url
from stages.executor.web.grabber import FramePacer
from stages.executor.web.har import NETWORK_EVENTS, NetworkLog, har_document
from stages.executor.web.video import FrameBuffer, VideoError, encode_webm

__all__ = ["ENGINE_VERSION", "DevtoolsTap", "WebRecorder"]

log = logging.getLogger("stages.executor.web.evidence")
ENGINE_VERSION = "0.1.0"
CONSOLE_LIMIT = 5000
CONSOLE_EVENTS = ("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded")
SUMMARY_ROWS = 100          # console/network rows carried on the result for report.html (the files hold all)
DOM_TIMEOUT_S = 2.0


TAP_KEY = "web.evidence.tap"     # ctx.shared: the DevTools connection of the collection's browser


class DevtoolsTap:
    """The DevTools connection of one browser, kept while the browser lives (a reused browser pays the connect
    and attach once, not per case). Events go to the attempt's recorder (``sink``); between attempts nothing
    is captured. Execution contexts (for the DOM of every frame) are tracked across attempts, since the
    browser announces them only when a frame loads."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.sink: WebRecorder | None = None
        self.contexts: dict[int, dict[str, Any]] = {}
        self.session = ""
        self.pacer: FramePacer | None = None
        driver = browser.driver
        remote = browser.config.driver_path if browser.config.mode == "remote" else ""
        self.client = CdpClient(browser_ws_url(dict(driver.capabilities), remote), self._event)
        try:
            target = driver.current_window_handle       # chromedriver's window handle is the DevTools target id
            self.session = str(self.client.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])
            for method in ("Runtime.enable", "Log.enable", "Network.enable"):
                self.client.send(method, {}, self.session)
            self.pacer = FramePacer(self.client, self.session)
        except Exception:
            self.client.close()
            raise

    @classmethod
    def of(cls, browser: Browser, ctx: RunContext) -> DevtoolsTap:
        tap = ctx.shared.get(TAP_KEY)
        if isinstance(tap, DevtoolsTap) and tap.browser is browser and not tap.client.closed:
            return tap
        if isinstance(tap, DevtoolsTap):
            tap.close()
        ctx.shared.pop(TAP_KEY, None)
        tap = cls(browser)
        ctx.shared[TAP_KEY] = tap
        return tap

    def close(self) -> None:
        if self.pacer is not None:
            self.pacer.close()
        self.client.close()

    @staticmethod
    def drop(ctx: RunContext) -> None:
        """Close the collection's tap (the browser is being quit)."""
        tap = ctx.shared.pop(TAP_KEY, None)
        if isinstance(tap, DevtoolsTap):
            tap.close()

    def _event(self, method: str, p: dict[str, Any], session: str) -> None:
        if session != self.session:
            return
        if method == "Page.screencastFrame":
            if self.pacer is not None:
                self.pacer.frame(p)
            return
        if method == "Runtime.executionContextCreated":
            ctx = p.get("context") or {}
            aux = ctx.get("auxData") or {}
            if aux.get("isDefault"):
                self.contexts[int(ctx.get("id", 0))] = {"frame": aux.get("frameId"), "origin": ctx.get("origin")}
        elif method == "Runtime.executionContextDestroyed":
            self.contexts.pop(int(p.get("executionContextId", 0)), None)
        elif method == "Runtime.executionContextsCleared":
            self.contexts.clear()
        sink = self.sink
        if sink is not None:
            sink.event(method, p)


class WebRecorder:
    """One per recorded attempt: ``begin`` when the case has its browser, ``end`` before it is released."""

    def __init__(self, browser: Browser, spec: EvidenceSpec) -> None:
        self.browser, self.spec = browser, spec
        self.bundle = Bundle()
        self.started = time.time()
        self.console: list[dict[str, Any]] = []
        self.network = NetworkLog()
        self.frames = FrameBuffer(max(1, int(spec.max_mb * 2**20)))
        self.tap: DevtoolsTap | None = None
        self._lock = threading.Lock()
        self.log_path = Path(browser.driver_log) if browser.driver_log else None
        self.log_offset = _size(self.log_path)
        self.ended = False
        self._end_lock = threading.Lock()         # end (case thread) and killed (main thread) run once

    @classmethod
    def begin(cls, browser: Browser, ctx: RunContext) -> WebRecorder | None:
        """The attempt's recorder, or None when the policy can never keep its bundle (nothing is paid)."""
        spec = ctx.evidence
        if spec.task_report_dir is None or not may_record(spec.keep, spec.attempt):
            return None
        rec = cls(browser, spec)
        try:
            rec.tap = DevtoolsTap.of(browser, ctx)
            rec.tap.sink = rec
            if spec.video and rec.tap.pacer is not None:
                rec.tap.pacer.start(rec.frame)
                if rec.tap.pacer.error:
                    rec.bundle.note(f"video not recorded: {rec.tap.pacer.error}")
        except Exception as e:  # noqa: BLE001 - no DevTools: the bundle says so, the case goes on
            ctx.shared.pop(TAP_KEY, None)
            rec.tap = None
            rec.bundle.note(f"console, network and video not recorded: {_text(e)}")
        ctx.evidence_flush = functools.partial(rec.killed, ctx)
        return rec

    @staticmethod
    def end(recorder: WebRecorder | None, ctx: RunContext, outcome: str) -> None:
        """Stop ``recorder`` (idempotent) and put what the policy keeps on ``ctx.evidence_result``."""
        if recorder is None:
            return
        with recorder._end_lock:
            if recorder.ended:
                return
            recorder.ended = True
            ctx.evidence_flush = None
            spec = ctx.evidence
            try:
                ctx.evidence_result = recorder.finish(keep_bundle(spec.keep, outcome, spec.attempt), outcome != "passed")
            except Exception as e:  # noqa: BLE001 - recording never fails a case
                log.warning("evidence not kept: %s", _text(e))
                ctx.evidence_result = {"dir": "", "files": [], "notes": [f"evidence not kept: {_text(e)}"]}

    def killed(self, ctx: RunContext, reason: str) -> None:
        """The attempt is being killed (main thread, on SIGTERM; the browser is stopped with it): write what
        was collected until now as a broken attempt's bundle, with a manifest, since its result will be the
        engine's (pipeline.evidence.left_bundle). A case that still ends keeps this bundle (run once)."""
        with self._end_lock:
            if self.ended:
                return
            self.ended = True
            spec = ctx.evidence
            try:
                ctx.evidence_result = self.finish(keep_bundle(spec.keep, "broken", spec.attempt), False, killed=reason)
            except Exception as e:  # noqa: BLE001
                log.warning("evidence of the killed attempt not kept: %s", _text(e))

    # -- events (reader thread) ------------------------------------------------------------------------------
    def frame(self, when: float, data: str) -> None:
        """A screencast frame (reader thread), kept base64: decoded only for a bundle that is kept."""
        with self._lock:
            self.frames.add(when, data, len(data) * 3 // 4)

    def event(self, method: str, p: dict[str, Any]) -> None:
        if method in NETWORK_EVENTS:
            with self._lock:
                self.network.event(method, p)
        elif method in CONSOLE_EVENTS and len(self.console) < CONSOLE_LIMIT:
            self.console.append(_console_row(method, p))

    # -- end of the attempt ----------------------------------------------------------------------------------
    def finish(self, keep: bool, failed: bool, killed: str = "") -> dict[str, Any]:
        """Stop recording; when ``keep``, write the bundle and return ``CaseResult.evidence`` (else {}).
        ``killed``: why the attempt is being killed (no DOM then: the browser is going down with it)."""
        pacer = self.tap.pacer if self.tap is not None else None
        if pacer is not None:
            if keep and failed and self.spec.video and not killed:
                pacer.final()                     # the video ends on the page that failed
            pacer.stop()
        ended = time.time()
        try:
            if keep and failed:
                self._dom()
        finally:
            self._close()
        if not keep:
            return {}
        b = self.bundle
        if killed:
            b.note(f"attempt killed ({killed}); the bundle holds what was collected until then, no DOM at failure")
        har: dict[str, Any] = {"log": {"entries": []}}
        if self.tap is not None:                   # DevTools was attached: console and network were recorded
            b.add("console.json", "console", Json(self.console))
            comment = f"{self.network.dropped} requests not recorded (limit {self.network.limit})" if self.network.dropped else ""
            with self._lock:
                har = har_document(self.network.entries(), ENGINE_VERSION, comment)
            b.add("network.har", "har", Json(har))
        self._driver_log(b)
        with self._lock:
            frames, dropped, total = list(self.frames.frames), self.frames.dropped, self.frames.total
        if frames:
            if dropped:
                b.note(f"video starts late: the first {dropped} of {total} frames were dropped to stay within max-mb")
            b.add("video.webm", "video", lambda path: _encode([(t, base64.b64decode(d)) for t, d in frames], ended, path))
        elif self.tap is not None and self.spec.video and pacer is not None and not pacer.error:
            b.note("video not recorded: the browser sent no screencast frame (nothing was painted)")
        rows = {"console": redact_value([dict(r, text=r["text"][:500]) for r in self.console[:SUMMARY_ROWS]], self.spec.secrets),
                "network": redact_value([{"m": e["request"]["method"], "u": e["request"]["url"][:500],
                                          "s": e["response"]["status"], "t": e["time"], "b": e["response"]["bodySize"],
                                          "err": e["response"].get("_error", "")}
                                         for e in har["log"]["entries"][:SUMMARY_ROWS]], self.spec.secrets)}
        saved = b.save(self.spec, dict(rows, started_ms=int(self.started * 1000), killed=killed) if killed else None)
        if saved.get("files"):
            saved.update(rows)
        return saved

    def _dom(self) -> None:
        """The DOM of every frame (one file each), read through DevTools so the WebDriver state (current frame
        or window) is left as the case left it; WebDriver's page_source when there is no DevTools."""
        pages: list[tuple[str, str]] = []
        tap = self.tap
        if tap is not None and not tap.client.closed and tap.contexts:
            tap.client.timeout = DOM_TIMEOUT_S
            for cid, info in sorted(tap.contexts.items()):
                try:
                    res = tap.client.send("Runtime.evaluate", {
                        "expression": "[location.href, document.documentElement ? document.documentElement.outerHTML : '']",
                        "contextId": cid, "returnByValue": True}, tap.session)
                    href, html = (res.get("result") or {}).get("value") or ["", ""]
                    pages.append((str(href), str(html)))
                except CdpError as e:
                    self.bundle.note(f"DOM of frame {info.get('frame')} not read: {_text(e)}")
        if not pages:
            try:
                driver = self.browser.driver
                pages.append((str(driver.current_url), str(driver.page_source)))
                if tap is None:
                    self.bundle.note("DOM: only the current frame (no DevTools endpoint for the other frames)")
            except Exception as e:  # noqa: BLE001 - an open alert, a lost session
                self.bundle.note(f"DOM not read: {_text(e)}")
        index = []
        for i, (href, html) in enumerate(pages):
            name = f"dom-{i}.html"
            self.bundle.add(name, "dom", Text(html))
            index.append({"file": name, "url": href})
        if index:
            self.bundle.add("dom.json", "dom-index", Json(index))

    def _driver_log(self, b: Bundle) -> None:
        if self.log_path is None:
            b.note("chromedriver log not available " + ("through a remote WebDriver end" if self.browser.config.mode == "remote"
                                                        else "(browser started without a log file)"))
            return
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset)
                data = fh.read()
        except OSError as e:
            b.note(f"chromedriver log not read: {e}")
            return
        b.add("chromedriver.log", "driver-log", Text(data.decode("utf-8", "surrogateescape")))

    def _close(self) -> None:
        if self.tap is not None and self.tap.sink is self:
            self.tap.sink = None          # the connection stays for the browser's next attempt


def _encode(frames: list[tuple[float, bytes]], ended: float, path: Path) -> None:
    try:
        encode_webm(frames, ended, path)
    except VideoError as e:
        raise RuntimeError(f"video not encoded: {e}") from e


def _console_row(method: str, p: dict[str, Any]) -> dict[str, Any]:
    """One console table row: time (epoch ms), level, text, source (url:line)."""
    if method == "Log.entryAdded":
        e = p.get("entry") or {}
        src = e.get("url") or ""
        if src and e.get("lineNumber") is not None:
            src = f"{src}:{int(e['lineNumber']) + 1}"
        return {"time": float(e.get("timestamp") or 0), "level": str(e.get("level") or "info"),
                "text": str(e.get("text") or ""), "source": src, "origin": str(e.get("source") or "browser")}
    if method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails") or {}
        text = ((d.get("exception") or {}).get("description") or d.get("text") or "exception")
        src = d.get("url") or ""
        if src:
            src = f"{src}:{int(d.get('lineNumber') or 0) + 1}"
        return {"time": float(p.get("timestamp") or 0), "level": "error", "text": str(text), "source": src,
                "origin": "exception"}
    args = p.get("args") or []
    text = " ".join(str(a.get("value")) if "value" in a else str(a.get("description") or a.get("type")) for a in args)
    frames = (p.get("stackTrace") or {}).get("callFrames") or []
    src = f"{frames[0].get('url')}:{int(frames[0].get('lineNumber') or 0) + 1}" if frames else ""
    level = {"warning": "warning", "error": "error", "assert": "error", "debug": "debug"}.get(str(p.get("type")), "info")
    return {"time": float(p.get("timestamp") or 0), "level": level, "text": text, "source": src, "origin": "console"}


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _text(e: BaseException) -> str:
    return f"{type(e).__name__}: {getattr(e, 'msg', None) or e}".strip()
