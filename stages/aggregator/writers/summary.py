"""``summary.json`` in HttpRunner's go-v5 dialect (reference httprunner.md §1.2-1.4), so ``hrp report`` and
tools written for HttpRunner read our runs.

Types follow the Go structs: counts, ``start_time``, ``elapsed_ms`` are JSON integers (ms), ``time.start_at``
is RFC 3339 with offset, ``time.duration`` float seconds (omitted when 0, as Go's ``omitempty``). One
``records`` entry per step; ``data.req_resps`` is Go's single ``{request, response}`` object (the executor
records a list of pairs: the last pair is the one that decided the step), ``response.body`` a string as Go.

Go has no retries, and its readers rely on ``stat.testcases.total == len(details)`` and ``success`` being the
AND of the details: so ``details`` holds one entry per *case*, its final attempt, and the earlier attempts of
a retried case are nested in that entry's ``retries`` (oldest first; ``stat.testcases.attempts`` counts all).
Extra keys (``outcome``, ``attempt``, ``retries``, ``skipped``, ``flaky``, ...) are ignored by Go readers.
``platform.httprunner_version`` names the summary dialect written, ``go_version`` the runtime that wrote it
(there is no Go: ``python3.11.7``), so tools that read both keys find them.
"""
from __future__ import annotations

import json
import platform
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pipeline.models import CaseResult, Status, skipped_by_accident
from stages.aggregator.writers._common import (
    Redactor,
    atomic_write,
    group_attempts,
    outcome_of,
    prepare,
    req_resp_pair,
    step_attachments,
    step_error,
    step_ms,
    submap,
    submap_or_none,
    to_int,
)

if TYPE_CHECKING:
    from stages.aggregator.writers import TaskReportMeta

__all__ = ["write_summary", "build_summary", "SUMMARY_FILE", "SCHEMA_PATH"]

SUMMARY_FILE = "summary.json"
SCHEMA_PATH = Path(__file__).with_name("schema") / "summary.schema.json"
_SUCCESS_OUTCOMES = ("passed", "flaky", "skipped")
HTTPRUNNER_DIALECT = "v5.0.0-250803"          # the hrp version whose summary.go this file follows


def write_summary(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> Path:
    """Write ``<report_dir>/summary.json`` atomically; returns its path."""
    # compact: indent would force json's pure-Python encoder (5x slower at 5,000 cases)
    text = json.dumps(build_summary(meta, results), ensure_ascii=False, default=str)
    return atomic_write(Path(report_dir) / SUMMARY_FILE, text + "\n")


def build_summary(meta: TaskReportMeta, results: list[CaseResult]) -> dict[str, Any]:
    """The summary as a dict (secrets already masked)."""
    rows = prepare(meta, results)
    groups = group_attempts(rows)
    finals: list[dict[str, Any]] = []
    for attempts in groups:
        detail = _detail(meta, attempts[-1], final=True)
        detail["retries"] = [_detail(meta, a, final=False) for a in attempts[:-1]]
        finals.append(detail)
    outcomes = Counter(d["outcome"] for d in finals)
    step_stat = _sum_step_stats(d["stat"] for d in finals)
    return {
        # a stopped task is no success (its unrun cases are skipped rows), whatever the cases that ran did
        "success": all(d["success"] for d in finals) and meta.stop_reason is None
        and not skipped_by_accident((d["outcome"] == "skipped", d["reason"]) for d in finals),
        "stat": {
            "testcases": {
                "total": len(finals), "success": sum(1 for d in finals if d["success"]),
                "fail": sum(1 for d in finals if not d["success"]), "attempts": len(rows),
                **{o: outcomes.get(o, 0) for o in ("passed", "failed", "error", "broken", "skipped", "flaky")},
            },
            "teststeps": step_stat,
        },
        "time": _time(meta.started_at, _run_seconds(meta, rows)),
        "platform": {
            "liuma_pipeline_version": meta.engine_version,
            "python_version": f"{platform.python_implementation()} {platform.python_version()}",
            "platform": f"{sys.platform}-{platform.machine()}",
            "httprunner_version": HTTPRUNNER_DIALECT,
            "go_version": f"{platform.python_implementation().lower()}{platform.python_version()}",
        },
        "task_id": meta.task_id,
        "task_name": Redactor(meta.secrets).text(meta.task_name),
        "finished": meta.finished_at is not None,
        "stop_reason": meta.stop_reason,
        "details": finals,
    }


def _run_seconds(meta: TaskReportMeta, rows: list[CaseResult]) -> float:
    """Run duration: until ``finished_at``, or while running until the latest case end seen so far."""
    if meta.finished_at is not None:
        return max(0.0, (meta.finished_at - meta.started_at).total_seconds())
    start_ms = meta.started_at.timestamp() * 1000
    last = max((to_int(r.endTime) for r in rows), default=0)
    return max(0.0, (last - start_ms) / 1000)


def _time(start: datetime, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"start_at": start.isoformat()}
    if seconds:
        out["duration"] = float(seconds)
    return out


def _detail(meta: TaskReportMeta, result: CaseResult, *, final: bool) -> dict[str, Any]:
    outcome = outcome_of(result)
    records = [_record(meta, result, step) for step in result.transactionList if isinstance(step, dict)]
    start = datetime.fromtimestamp(to_int(result.startTime) / 1000, tz=meta.started_at.tzinfo)
    in_out = result.inOut if isinstance(result.inOut, dict) else {}
    return {
        "name": result.caseName,
        "success": outcome in _SUCCESS_OUTCOMES and all(r["success"] for r in records),
        "case_id": result.caseId,
        "stat": _step_stat(records),
        "time": _time(start, max(0, to_int(result.endTime) - to_int(result.startTime)) / 1000),
        "in_out": {"config_vars": dict(in_out.get("config_vars") or {}),
                   "export_vars": dict(in_out.get("export_vars") or {})},
        "records": records,
        "outcome": outcome,
        "attempt": to_int(result.runTimes, 1),
        "final": final,
        "skipped": outcome == "skipped",
        "flaky": outcome == "flaky",
        "reason": result.reason,
        "collection_id": result.collectionId,
        "case_type": result.caseType,
        "index": to_int(result.index),
        "executor": result.executor,
        "tags": list(result.tags or []),
    }


def _record(meta: TaskReportMeta, result: CaseResult, step: dict[str, Any]) -> dict[str, Any]:
    detail = submap(step, "detail")
    status = to_int(step.get("status"))
    actions = [_action(a) for a in detail.get("actions") or [] if isinstance(a, dict)]
    elapsed = step_ms(step)
    rec: dict[str, Any] = {
        "name": str(step.get("name") or ""),
        "identifier": str(step.get("id") or ""),
        "start_time": to_int(step.get("startTime")),
        "step_type": _step_type(result.caseType, step, detail),
        "success": status not in (Status.FAIL, Status.ERROR),
        "elapsed_ms": elapsed,
    }
    data = _data(detail)
    if data:
        rec["data"] = data
    if isinstance(detail.get("export_vars"), dict) and detail["export_vars"]:
        rec["export_vars"] = detail["export_vars"]
    if actions:
        rec["actions"] = actions
    attachments = _attachments(meta, result.caseType, step, rec["success"])
    if attachments:
        rec["attachments"] = attachments
    rec["status"] = status
    if status == Status.SKIP:
        rec["skipped"] = True
    return rec


def _step_type(case_type: str, step: dict[str, Any], detail: dict[str, Any]) -> str:
    if step.get("stepType"):
        return str(step["stepType"])
    if case_type == "API":
        pair = req_resp_pair(detail)
        req = pair.get("request") if pair else None
        method = str(req.get("method") or "").upper() if isinstance(req, dict) else ""
        return f"request-{method}" if method else "request"
    return "browser" if case_type == "WEB" else "android" if case_type == "APP" else case_type.lower()


def _data(detail: dict[str, Any]) -> dict[str, Any] | None:
    req_resps = _go_req_resps(req_resp_pair(detail))
    validators = [_validator(v) for v in detail.get("validators") or [] if isinstance(v, dict)]
    if req_resps is None and not validators:
        return None
    data: dict[str, Any] = {"req_resps": req_resps}
    if validators:
        data["validators"] = validators
    return data


def _go_req_resps(pair: dict[str, Any] | None) -> dict[str, Any] | None:
    """Go's ReqResps: request ``{method, url, headers, body}`` (query merged into url), response ``{status_code,
    headers, body}`` with the body as a string (JSON re-serialised with 4-space indent, as Go), or ``null``
    when no response arrived (transport error)."""
    if pair is None:
        return None
    req = submap(pair, "request")
    request: dict[str, Any] = {"method": str(req.get("method") or ""), "url": _url(req),
                               "headers": dict(req.get("headers") or {})}
    if req.get("body") not in (None, "", {}, []):
        request["body"] = req["body"]
    res = submap_or_none(pair, "response")
    response = None
    if res is not None:
        body = res.get("body")
        response = {"status_code": to_int(res.get("status_code")), "headers": dict(res.get("headers") or {}),
                    "body": body if isinstance(body, str) else
                    "" if body is None else json.dumps(body, ensure_ascii=False, indent=4, default=str)}
    return {"request": request, "response": response}


def _url(req: dict[str, Any]) -> str:
    url = str(req.get("url") or "")
    query = req.get("query")
    if isinstance(query, dict) and query and "?" not in url:
        url += "?" + urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()})
    return url


def _validator(v: dict[str, Any]) -> dict[str, Any]:
    """AssertData dict -> Go ValidationResult keys."""
    out: dict[str, Any] = {"check": str(v.get("check") or ""), "assert": str(v.get("type") or ""),
                           "expect": v.get("expected")}
    if v.get("message"):
        out["msg"] = str(v["message"])
    out["check_value"] = v.get("actual")
    out["check_result"] = "pass" if v.get("result") else "fail"
    return out


def _action(a: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in a.items() if k not in ("start_time", "elapsed_ms", "error", "screen_results")}
    out["method"] = str(a.get("method") or "")
    out["start_time"] = to_int(a.get("start_time"))
    out["elapsed_ms"] = to_int(a.get("elapsed_ms"))
    if a.get("error"):
        out["error"] = str(a["error"])
    screens = [s for s in a.get("screen_results") or [] if isinstance(s, dict)]
    if screens:
        out["screen_results"] = screens
    return out


def _attachments(meta: TaskReportMeta, case_type: str, step: dict[str, Any], success: bool) -> Any:
    """Go puts a failed step's error text here; UI steps get an object with their screenshots."""
    error = "" if success else step_error(step)
    shots = step_attachments(meta, step)
    if case_type in ("WEB", "APP") and shots:
        out: dict[str, Any] = {"screenshots": shots}
        if error:
            out["error"] = error
        return out
    return error or None


def _step_stat(records: list[dict[str, Any]]) -> dict[str, Any]:
    actions: Counter[str] = Counter(a["method"] for r in records for a in r.get("actions", ()))
    return {"total": len(records), "successes": sum(1 for r in records if r["success"]),
            "failures": sum(1 for r in records if not r["success"]), "actions": dict(actions),
            "skipped": sum(1 for r in records if r.get("skipped"))}


def _sum_step_stats(stats: Any) -> dict[str, Any]:
    total: dict[str, Any] = {"total": 0, "successes": 0, "failures": 0, "actions": {}, "skipped": 0}
    actions: Counter[str] = Counter()
    for s in stats:
        for key in ("total", "successes", "failures", "skipped"):
            total[key] += s[key]
        actions.update(s["actions"])
    total["actions"] = dict(actions)
    return total
