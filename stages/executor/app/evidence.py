"""The APP attempt's evidence: the page source at failure, the Appium server's log lines of the attempt and a
screen recording where the driver has one (``startRecordingScreen``: UiAutomator2, XCUITest).
The server log is a log type of the driver (UiAutomator2 and XCUITest have it; the fake driver does not).

What a driver or server does not offer is skipped with a note on the attempt, never an error: the fake driver
records no screen, and Appium hands out its server log (``getLogs('server')``) only when started with
``--allow-insecure=*:get_server_logs`` (or ``--relaxed-security``). Reading a log type also empties Appium's
buffer for it, so the lines read at the end are this attempt's (the buffer is drained at the start).
"""
from __future__ import annotations

import base64
import functools
import logging
import threading
import time
from typing import Any

from pipeline.evidence import keep_bundle, may_record
from stages.executor.app.session import AppSession, is_not_implemented
from stages.executor.common.evidence import Bundle, Text
from stages.executor.context import RunContext

__all__ = ["SERVER_LOG_HINT", "AppRecorder"]

log = logging.getLogger("stages.executor.app.evidence")
SERVER_LOG_HINT = "start Appium with --allow-insecure=*:get_server_logs (or --relaxed-security)"


class AppRecorder:
    def __init__(self, session: AppSession) -> None:
        self.session = session
        self.bundle = Bundle()
        self.recording = False
        self.server_log = True
        self.ended = False
        self.started_ms = int(time.time() * 1000)
        self._end_lock = threading.Lock()         # end (case thread) and killed (main thread) run once

    @classmethod
    def begin(cls, session: AppSession, ctx: RunContext) -> AppRecorder | None:
        spec = ctx.evidence
        if spec.task_report_dir is None or not may_record(spec.keep, spec.attempt) or session.driver is None:
            return None
        rec = cls(session)
        driver = session.driver
        try:
            driver.get_log("server")                  # drain: what is left belongs to earlier cases
        except Exception as e:  # noqa: BLE001
            rec.server_log = False
            rec.bundle.note(_server_log_note(e))
        try:
            driver.start_recording_screen()
            rec.recording = True
        except Exception as e:  # noqa: BLE001 - the fake driver, an emulator without screenrecord
            why = "not supported by this driver" if is_not_implemented(e) else _first(e)
            rec.bundle.note(f"screen recording skipped: {why}")
        ctx.evidence_flush = functools.partial(rec.killed, ctx)
        return rec

    @staticmethod
    def end(rec: AppRecorder | None, ctx: RunContext, outcome: str, lost: bool = False) -> None:
        """Stop recording and keep what the policy says; a lost session is not asked for anything."""
        if rec is None:
            return
        with rec._end_lock:
            if rec.ended:
                return
            rec.ended = True
            ctx.evidence_flush = None
        spec = ctx.evidence
        keep = keep_bundle(spec.keep, outcome, spec.attempt)
        try:
            if lost:
                rec.bundle.note("the device session was lost: page source, server log and recording not collected")
            else:
                rec._collect(keep, outcome != "passed")
            if keep:
                ctx.evidence_result = rec.bundle.save(spec)
        except Exception as e:  # noqa: BLE001 - recording never fails a case
            log.warning("APP evidence not kept: %s", _first(e))
            if keep:
                ctx.evidence_result = {"dir": "", "files": [], "notes": [f"evidence not kept: {_first(e)}"]}

    def killed(self, ctx: RunContext, reason: str) -> None:
        """The attempt is being killed (main thread, on SIGTERM): the Appium server lives outside the
        executor's process group, so the session is asked for what it has. The bundle and its manifest
        (pipeline.evidence.left_bundle) are written first with the note alone, then again with the parts,
        so a SIGKILL while the device answers still leaves a bundle that says what happened."""
        with self._end_lock:
            if self.ended:
                return
            self.ended = True
        spec = ctx.evidence
        if not keep_bundle(spec.keep, "broken", spec.attempt):
            return
        self.bundle.note(f"attempt killed ({reason}); the bundle holds what was collected until then")
        manifest = {"started_ms": self.started_ms, "killed": reason}
        try:
            ctx.evidence_result = self.bundle.save(spec, manifest)
            self._collect(True, True)
            ctx.evidence_result = self.bundle.save(spec, manifest)
        except Exception as e:  # noqa: BLE001 - evidence never stands in the way of the stop
            log.warning("APP evidence of the killed attempt not kept: %s", _first(e))

    def _collect(self, keep: bool, failed: bool) -> None:
        driver: Any = self.session.driver
        b = self.bundle
        if keep and failed:
            try:
                b.add("page-source.xml", "dom", Text(str(driver.page_source)))
            except Exception as e:  # noqa: BLE001
                b.note(f"page source not read: {_first(e)}")
        if self.recording:                            # always stopped, kept or not
            try:
                video = driver.stop_recording_screen()
                if keep and video:
                    b.add("video.mp4", "video", base64.b64decode(video))
            except Exception as e:  # noqa: BLE001
                b.note(f"screen recording not stopped: {_first(e)}")
        if keep and self.server_log:
            try:
                lines = driver.get_log("server")
                text = "\n".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in lines or [])
                b.add("appium-server.log", "driver-log", Text(text))
            except Exception as e:  # noqa: BLE001
                b.note(_server_log_note(e))


def _server_log_note(e: BaseException) -> str:
    if "log type" in str(e).lower():       # "Don't understand log type 'server'": the fake driver, Espresso...
        return "Appium server log not available: this driver offers no 'server' log type"
    return f"Appium server log not available ({_first(e)}): {SERVER_LOG_HINT}"


def _first(e: BaseException) -> str:
    text = (getattr(e, "msg", None) or str(e)).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
