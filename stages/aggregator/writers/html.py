"""``report.html``: one self-contained file (inline CSS/JS, no network) that opens fast at 50,000 cases.

pytest-html 4 took ~40 s to open 4k tests (anchors.md §5.3) because it builds one DOM node per result. Here
the page holds two JSON blocks: a small *index* (one compact row per case: what the list, the filters, the
grouping and the per-executor timeline need), parsed at load, and the *details* (steps, logs, assertions,
request/response, screenshots of every attempt) of each run of ``CHUNK`` cases, zlib-compressed and base64
encoded (logs compress ~10x: the file the browser must read and parse shrinks as much), inflated with the
browser's own ``DecompressionStream`` only when a case of that chunk is opened. The case list is virtual
(only rows in view exist).

Logs are the platform's HTML-ish text (§4.9): everything is escaped except the known attribute-less markers
``<br> <span> <b>``. Screenshots are linked as ``attachments/<file>``, relative to the report directory,
which holds them: the directory can be zipped or moved whole.
"""
from __future__ import annotations

import base64
import html as _html
import json
import re
import zlib
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pipeline.models import CaseResult, Status
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
from stages.aggregator.writers._html_template import TEMPLATE

if TYPE_CHECKING:
    from stages.aggregator.writers import TaskReportMeta

__all__ = ["write_html", "build_report_data", "safe_log_html", "HTML_FILE"]

HTML_FILE = "report.html"
_MARKER = re.compile(r"&lt;(/?)(br|span|b)\s*/?&gt;", re.IGNORECASE)
OUTCOMES = ("passed", "failed", "error", "broken", "skipped", "flaky")
_MESSAGE_MAX = 240
CHUNK = 200                 # cases per compressed details block: one block is inflated to open one case


def write_html(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> Path:
    """Write ``<report_dir>/report.html`` atomically; returns its path."""
    report_dir = Path(report_dir)
    index, details = build_report_data(meta, results, report_dir)
    # "<" only occurs inside JSON strings, so \u003c keeps the JSON equal and "</script>" impossible.
    blob = json.dumps(index, ensure_ascii=False, separators=(",", ":"), default=str).replace("<", "\\u003c")
    title = _html.escape(f"{index['task']['name']} - liuma-pipeline report")
    head, rest = TEMPLATE.split("__DATA__", 1)
    middle, tail = rest.split("__DETAILS__", 1)
    page = head.replace("__TITLE__", title) + blob + middle + details + tail
    return atomic_write(report_dir / HTML_FILE, page)


def safe_log_html(log: str) -> str:
    """Escape a step log, then restore only the bare markers the platform's log format uses."""
    return _MARKER.sub(lambda m: f"<{m.group(1)}{m.group(2).lower()}>", _html.escape(log or "", quote=True))


def build_report_data(meta: TaskReportMeta, results: list[CaseResult], report_dir: Path) -> tuple[dict[str, Any], str]:
    """(index the page parses at load, details JSON text): the details of case ``n`` are element
    ``index.cases[n].j`` of block ``index.cases[n].k``, a JSON list of its attempts (latest first); the details
    text is a JSON list of blocks, each the base64 of the zlib-compressed JSON list of its cases' details."""
    rows = prepare(meta, results)
    executors: dict[str, int] = {}
    start_ms = int(meta.started_at.timestamp() * 1000)
    cases: list[dict[str, Any]] = []
    blocks: list[str] = []
    pending: list[Any] = []
    for attempts in group_attempts(rows):
        final = attempts[-1]
        pending.append([_attempt(meta, a) for a in reversed(attempts)])
        if len(pending) == CHUNK:
            blocks.append(_block(pending))
            pending = []
        cases.append({
            "n": final.caseName, "id": final.caseId, "c": final.collectionId, "t": final.caseType,
            "i": to_int(final.index), "o": outcome_of(final), "d": _ms(final), "m": _message(final),
            "tags": list(final.tags or []), "k": len(cases) // CHUNK, "j": len(cases) % CHUNK,
            # attempts oldest first: [start (ms after the run's start), duration ms, executor (index into
            # "executors", -1 for an engine-made result no executor ran: skipped, never started), outcome]
            "a": [[to_int(a.startTime) - start_ms, _ms(a),
                   executors.setdefault(a.executor, len(executors)) if a.executor else -1, outcome_of(a)]
                  for a in attempts], **history_cell(meta, final.caseId),
        })
    if pending:
        blocks.append(_block(pending))
    totals = Counter(c["o"] for c in cases)
    last_end = max((to_int(r.endTime) for r in rows), default=start_ms)
    end_ms = int(meta.finished_at.timestamp() * 1000) if meta.finished_at else last_end
    index = {
        "task": {"id": meta.task_id, "name": Redactor(meta.secrets).text(meta.task_name),
                 "started": meta.started_at.isoformat(timespec="seconds"),
                 "finished": meta.finished_at.isoformat(timespec="seconds") if meta.finished_at else None,
                 "engine": meta.engine_version, "wall": max(0, end_ms - start_ms), "t0": start_ms},
        "totals": {"cases": len(cases), "attempts": sum(len(c["a"]) for c in cases),
                   "busy": sum(a[1] for c in cases for a in c["a"]), **{o: totals.get(o, 0) for o in OUTCOMES}},
        "executors": list(executors),
        "cases": cases,
    }
    return index, json.dumps(blocks)


def history_cell(meta: TaskReportMeta, case_id: str) -> dict[str, Any]:
    """``{"h": [last outcomes oldest first, flake rate, runs counted]}`` from the run history, or ``{}``."""
    h = meta.history.get(case_id)
    return {"h": [list(h.outcomes[-10:]), round(h.rate, 3), h.runs]} if h is not None and h.runs else {}


def _block(details: list[Any]) -> str:
    raw = json.dumps(details, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def _ms(r: CaseResult) -> int:
    return max(0, to_int(r.endTime) - to_int(r.startTime))


def _message(r: CaseResult) -> str:
    """The final attempt's failure in one line (what the failure-message grouping groups by)."""
    if outcome_of(r) in ("passed", "flaky"):
        return ""
    for t in r.transactionList:
        if isinstance(t, dict) and to_int(t.get("status")) in (Status.FAIL, Status.ERROR):
            text = step_error(t)
            break
    else:
        text = r.reason or ""
    text = " ".join(str(text).split())
    return text[:_MESSAGE_MAX]


def _attempt(meta: TaskReportMeta, r: CaseResult) -> dict[str, Any]:
    steps = []
    for t in r.transactionList:
        if not isinstance(t, dict):
            continue
        status = to_int(t.get("status"))
        detail = submap(t, "detail")
        step: dict[str, Any] = {
            "n": str(t.get("name") or ""), "s": status, "d": step_ms(t), "c": str(t.get("content") or "").strip(),
            "t0": to_int(t.get("startTime")),
            "log": safe_log_html(str(t.get("log") or "")),
            "err": step_error(t) if status in (Status.FAIL, Status.ERROR) else "",
            "img": [quote(p) for p in step_attachments(meta, t)],
        }
        checks = [_check(v) for v in detail.get("validators") or [] if isinstance(v, dict)]
        if checks:
            step["v"] = checks
        pair = req_resp_pair(detail)
        if pair:
            step["rq"] = submap_or_none(pair, "request")
            step["rs"] = submap_or_none(pair, "response")
        actions = [{"m": str(a.get("method") or ""), "p": a.get("params"), "d": to_int(a.get("elapsed_ms")),
                    "e": str(a.get("error") or "")} for a in detail.get("actions") or [] if isinstance(a, dict)]
        if len(actions) > 1 or actions and actions[0]["m"] != step["n"]:
            step["ac"] = actions
        elif actions and actions[0]["p"]:
            step["pa"] = actions[0]["p"]
        if isinstance(detail.get("export_vars"), dict) and detail["export_vars"]:
            step["ex"] = detail["export_vars"]
        steps.append(step)
    out = {"r": to_int(r.runTimes, 1), "o": outcome_of(r), "s": to_int(r.startTime), "d": _ms(r),
           "why": r.reason, "x": r.executor, "steps": steps}
    ev = r.evidence if isinstance(r.evidence, dict) else {}
    if ev.get("files") or ev.get("notes"):
        base = quote(str(ev.get("dir") or ""))
        out["ev"] = {"files": [{"u": f"{base}/{quote(str(f.get('name')))}", "n": str(f.get("name")), "k": str(f.get("kind")),
                                "b": to_int(f.get("bytes"))} for f in ev.get("files") or [] if isinstance(f, dict)],
                     "notes": [str(n) for n in ev.get("notes") or []],
                     "console": ev.get("console") or [], "network": ev.get("network") or []}
    return out


def _check(v: dict[str, Any]) -> dict[str, Any]:
    """One assertion row: what was checked, comparator, expected, actual, verdict, message."""
    return {"k": str(v.get("check") or ""), "op": str(v.get("type") or ""), "e": v.get("expected"),
            "a": v.get("actual"), "ok": bool(v.get("result")), "msg": str(v.get("message") or "")}
