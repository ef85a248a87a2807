"""``report.html``: one self-contained file (inline CSS/JS, no network) that opens fast at thousands of cases.

pytest-html 4 took ~40 s to open 4k tests (anchors.md §5.3) because it builds one DOM node per result; here
the data is one JSON blob and the case list is virtual (only the rows in view exist), details are built when
a row is opened. Logs are the platform's HTML-ish text (§4.9): everything is escaped except the known
attribute-less markers ``<br> <span> <b>``. Screenshots are linked by a path relative to the report
directory, so the report and ``storage/`` can be moved together.
"""
from __future__ import annotations

import html as _html
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pipeline.models import CaseResult
from stages.aggregator.writers._common import (
    Redactor, atomic_write, group_attempts, outcome_of, prepare, step_error, step_screenshots, to_int,
)
from stages.aggregator.writers._html_template import TEMPLATE

if TYPE_CHECKING:
    from stages.aggregator.writers import TaskReportMeta

__all__ = ["write_html", "build_report_data", "safe_log_html", "HTML_FILE"]

HTML_FILE = "report.html"
_MARKER = re.compile(r"&lt;(/?)(br|span|b)\s*/?&gt;", re.IGNORECASE)
OUTCOMES = ("passed", "failed", "error", "broken", "skipped", "flaky")


def write_html(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> Path:
    """Write ``<report_dir>/report.html`` atomically; returns its path."""
    report_dir = Path(report_dir)
    data = build_report_data(meta, results, report_dir)
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    # "<" only occurs inside JSON strings, so \u003c keeps the JSON equal and "</script>" impossible.
    blob = blob.replace("<", "\\u003c")
    title = _html.escape(f"{data['task']['name']} - liuma-pipeline report")
    head, tail = TEMPLATE.split("__DATA__", 1)
    page = head.replace("__TITLE__", title) + blob + tail
    return atomic_write(report_dir / HTML_FILE, page)


def safe_log_html(log: str) -> str:
    """Escape a step log, then restore only the bare markers the platform's log format uses."""
    return _MARKER.sub(lambda m: f"<{m.group(1)}{m.group(2).lower()}>", _html.escape(log or "", quote=True))


def build_report_data(meta: TaskReportMeta, results: list[CaseResult], report_dir: Path) -> dict[str, Any]:
    """The JSON the page renders: task, totals by final outcome, one entry per case with all its attempts."""
    cases = []
    for attempts in group_attempts(prepare(meta, results)):
        final = attempts[-1]
        cases.append({
            "n": final.caseName, "id": final.caseId, "c": final.collectionId, "t": final.caseType,
            "i": to_int(final.index), "o": outcome_of(final), "d": _ms(final),
            "tags": list(final.tags or []),
            "a": [_attempt(meta, a, report_dir) for a in reversed(attempts)],   # latest first
        })
    totals = Counter(c["o"] for c in cases)
    return {
        "task": {"id": meta.task_id, "name": Redactor(meta.secrets).text(meta.task_name),
                 "started": meta.started_at.isoformat(),
                 "finished": meta.finished_at.isoformat() if meta.finished_at else None,
                 "engine": meta.engine_version},
        "totals": {"cases": len(cases), "attempts": sum(len(c["a"]) for c in cases),
                   **{o: totals.get(o, 0) for o in OUTCOMES}},
        "cases": cases,
    }


def _ms(r: CaseResult) -> int:
    return max(0, to_int(r.endTime) - to_int(r.startTime))


def _attempt(meta: TaskReportMeta, r: CaseResult, report_dir: Path) -> dict[str, Any]:
    steps = []
    for t in r.transactionList:
        if not isinstance(t, dict):
            continue
        status = to_int(t.get("status"))
        steps.append({
            "n": str(t.get("name") or ""), "s": status, "d": to_int(t.get("during")),
            "c": str(t.get("content") or ""),
            "log": safe_log_html(str(t.get("log") or "")),
            "err": step_error(t) if status in (1, 2) else "",
            "img": [_rel(p, report_dir) for p in step_screenshots(meta, t)],
        })
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


def _rel(path: Path, report_dir: Path) -> str:
    """URL of a screenshot relative to the report directory (percent-encoded, '/' kept)."""
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(report_dir))
    except ValueError:      # another drive (Windows): fall back to an absolute file URL
        return Path(os.path.abspath(path)).as_uri()
    return quote(rel.replace(os.sep, "/"))
