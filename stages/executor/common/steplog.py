"""Step logs (reference §4.9) and the case result recorder (§7.2-7.3).

Log lines are ``<YYYY-MM-DD HH:MM:SS.ffffff> - Debug|Error - msg`` joined by ``<br><br>`` (API) or ``<br>``
(WEB/APP). The platform renders logs as HTML and escapes only the bodies between its markers, so every other
piece of text that comes from a response or a script must go through ``escape`` (the original injected it).

``CaseRecorder`` opens one transaction per step, tracks status (error > fail > pass, skip when skipped),
appends captured console output as ``控制台输出:<br> …`` when the next step opens and at the end, and builds
the ``CaseResult``; a case that fails before its first step gets the synthetic ``未知`` step.
"""
from __future__ import annotations

import html
import time
import traceback
from datetime import datetime
from typing import Any

from pipeline.models import UNKNOWN, CaseResult, Outcome, Status, Transaction

__all__ = ["API_SEP", "UI_SEP", "escape", "log_line", "request_block", "response_block", "CaseRecorder"]

API_SEP = "<br><br>"
UI_SEP = "<br>"
REQUEST_BODY_OPEN, REQUEST_BODY_CLOSE = "<span>请求体: ", "</span><br>"
RESPONSE_BODY_OPEN, RESPONSE_BODY_CLOSE = "<b>响应体: ", "</b>"


def escape(text: Any) -> str:
    """HTML-escape text shown outside the viewer's body markers."""
    return html.escape(text if isinstance(text, str) else str(text), quote=False)


def log_line(level: str, message: str, moment: datetime | None = None) -> str:
    stamp = (moment or datetime.now()).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"{stamp} - {level} - {message}"


def request_block(method: str, url: str, options: dict[str, Any]) -> str:
    """``【请求信息】`` block; known option keys get their Chinese label, others their raw key."""
    labels = {"headers": "请求头", "proxies": "代理", "params": "查询参数", "files": "上传文件"}
    parts = [f"【请求信息】:<br>{escape(method)} {escape(url)}<br>"]
    known = ("headers", "proxies", "params", "data", "json", "files")
    ordered = [k for k in known if k in options] + [k for k in options if k not in known]
    for key in ordered:
        value = options[key]
        if value is None or (isinstance(value, (dict, list, str, bytes)) and not value):
            continue
        if key in ("data", "json"):
            shown = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            parts.append(f"{REQUEST_BODY_OPEN}{_plain(shown)}{REQUEST_BODY_CLOSE}")
        else:
            parts.append(f"{labels.get(key, escape(key))}: {escape(_plain(value))}<br>")
    return "".join(parts)


def response_block(status: int, headers: dict[str, Any], body: str | None) -> str:
    """``【响应信息】`` block; ``body`` None means a file download (Content-Disposition)."""
    head = f"【响应信息】:<br>响应码: {status}<br>响应头: {escape(_plain(headers))}<br>"
    if body is None:
        return head + f"{RESPONSE_BODY_OPEN}文件内容暂不展示, 长度{headers.get('Content-Length', '?')}{RESPONSE_BODY_CLOSE}"
    return head + f"{RESPONSE_BODY_OPEN}{body}{RESPONSE_BODY_CLOSE}"


def _plain(value: Any) -> str:
    import json
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=lambda o: f"<{type(o).__name__}>")
    except (TypeError, ValueError):
        return str(value)


def _epoch_ms() -> int:
    return int(time.time() * 1000)


class CaseRecorder:
    """Collects the transactions of one case attempt in execution order."""

    def __init__(self, case_type: str, case_id: str, *, enable_stderr: bool = False) -> None:
        self.case_type = case_type
        self.case_id = case_id
        self.sep = API_SEP if case_type == "API" else UI_SEP
        self.enable_stderr = enable_stderr
        self.start_ms = _epoch_ms()
        self.transactions: list[Transaction] = []
        self.current: Transaction | None = None
        self._lines: list[str] = []            # lines of the current step (or before the first step)
        self._started = 0.0
        self._during_set = False
        self._console: list[str] = []
        self.any_error = False
        self.any_fail = False

    # -- steps ---------------------------------------------------------------------------------------------
    def begin(self, id: str, name: str, content: str, description: str | None, step_type: str) -> Transaction:  # noqa: A002
        """Close the running step (status stays as recorded) and open a new one."""
        self.end()
        self.current = Transaction(id=str(id or ""), name=str(name or UNKNOWN), content=str(content or ""),
                                   description=description, startTime=_epoch_ms(), stepType=step_type,
                                   status=int(Status.PASS))
        self._lines = []
        self._started = time.monotonic()
        self._during_set = False
        return self.current

    def end(self) -> None:
        if self.current is None:
            return
        self._flush_console()
        if not self._during_set:
            self.current.during = int((time.monotonic() - self._started) * 1000)
        self.current.log = self.sep.join(self._lines)
        self.transactions.append(self.current)
        self.current = None
        self._lines = []

    def set_during(self, ms: float) -> None:
        if self.current is not None:
            self.current.during = int(ms)
            self._during_set = True

    @property
    def detail(self) -> dict[str, Any]:
        return self.current.detail if self.current is not None else {}

    # -- lines and statuses --------------------------------------------------------------------------------
    def debug(self, msg: str) -> None:
        self._lines.append(log_line("Debug", msg))

    def log_error(self, msg: str, exc: BaseException | None = None) -> None:
        text = msg
        if exc is not None and self.enable_stderr:
            tb = "".join(traceback.format_exception(exc))
            text += "<br>程序错误信息:<br>" + escape(tb).replace("\n", "<br>")
        self._lines.append(log_line("Error", text))

    def fail(self, msg: str) -> None:
        """An assertion failure on the current step (status 1 unless it already has an error)."""
        self.log_error(msg)
        self.any_fail = True
        if self.current is not None and self.current.status != Status.ERROR:
            self.current.status = int(Status.FAIL)

    def error(self, msg: str, exc: BaseException | None = None) -> None:
        """Any other error on the current step (status 2); before the first step it goes to the synthetic one."""
        self.log_error(msg, exc)
        self.any_error = True
        if self.current is not None:
            self.current.status = int(Status.ERROR)
            self.current.detail.setdefault("error", msg)

    def skip(self, msg: str) -> None:
        self.debug(msg)
        if self.current is not None:
            self.current.status = int(Status.SKIP)

    def screenshot(self, shot_id: str) -> None:
        if self.current is not None:
            self.current.screenShotList.append(shot_id)

    def console(self, text: str) -> None:
        """Captured ``print`` output; shown on the step when the next step opens or the case ends."""
        if text:
            self._console.append(text)

    def _flush_console(self) -> None:
        if self._console:
            text = "".join(self._console)
            self._console = []
            self.debug("控制台输出:<br> " + escape(text.rstrip("\n")).replace("\n", "<br>"))

    # -- result --------------------------------------------------------------------------------------------
    def finish(self, case_meta: dict[str, Any]) -> CaseResult:
        """The case result of §7.1/7.3. ``case_meta``: caseId, caseName, caseDesc (or comment)."""
        if self.current is not None:
            self.end()
        if not self.transactions:     # the platform rejects an empty transactionList (§10)
            self._flush_console()
            self.transactions.append(Transaction(
                id=str(case_meta.get("caseId") or self.case_id), name=UNKNOWN, content=UNKNOWN,
                log=self.sep.join(self._lines), startTime=self.start_ms,
                status=int(Status.ERROR if self.any_error else Status.FAIL if self.any_fail else Status.PASS)))
            self._lines = []
        status = Status.ERROR if self.any_error else Status.FAIL if self.any_fail else Status.PASS
        outcome = {Status.ERROR: Outcome.ERROR, Status.FAIL: Outcome.FAILED}.get(status, Outcome.PASSED)
        return CaseResult(
            caseId=str(case_meta.get("caseId") or self.case_id), caseType=self.case_type,
            caseName=str(case_meta.get("caseName") or UNKNOWN),
            caseDesc=case_meta.get("caseDesc", case_meta.get("comment")),
            status=int(status), startTime=self.start_ms, endTime=_epoch_ms(),
            transactionList=[t.to_dict() for t in self.transactions], outcome=outcome.value)
