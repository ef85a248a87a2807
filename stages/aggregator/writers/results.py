"""``results.json``: the body of ``POST /openapi/engine/result/upload`` (liuma-engine.md §7.5).

The platform rejects a whole batch for one bad row (§10: null startTime/endTime/status/caseType, empty
transactionList, a WEB/APP step without ``screenShotList``, an API ``content`` null or > 200 chars). So each
row is first repaired where the repair is lossless or conventional (synthetic ``未知`` step carrying the
reason, missing lists, an over-long path cut to 200 chars), then checked with :func:`validate_platform_row`;
rows that still fail are left out of the body and listed with their problems in ``results.rejected.json``.
Both live in ``pipeline.platform_rows`` so the uploader sends exactly the same rows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.models import CaseResult
from pipeline.platform_rows import MAX_API_CONTENT, platform_row, validate_platform_row
from stages.aggregator.writers._common import atomic_write, prepare, to_int

if TYPE_CHECKING:
    from stages.aggregator.writers import TaskReportMeta

__all__ = ["write_results", "build_results", "platform_row", "validate_platform_row",
           "RESULTS_FILE", "REJECTED_FILE", "MAX_API_CONTENT"]

RESULTS_FILE = "results.json"
REJECTED_FILE = "results.rejected.json"


def write_results(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> Path:
    """Write ``<report_dir>/results.json`` atomically (and ``results.rejected.json`` when rows were left out)."""
    body, rejected = build_results(meta, results)
    report_dir = Path(report_dir)
    rejected_path = report_dir / REJECTED_FILE
    if rejected:
        atomic_write(rejected_path, json.dumps(rejected, ensure_ascii=False, indent=2, default=str))
    elif rejected_path.exists():
        rejected_path.unlink()
    return atomic_write(report_dir / RESULTS_FILE, json.dumps(body, ensure_ascii=False, default=str))


def build_results(meta: TaskReportMeta, results: list[CaseResult]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(upload body, rejected rows with their problems)."""
    rows: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for result in prepare(meta, results):
        row = platform_row(result)
        problems = validate_platform_row(row)
        if problems:
            rejected.append({"row": row, "problems": problems})
        else:
            rows.append(row)
    body = {"engineCode": meta.engine_code, "timestamp": _timestamp(meta, results),
            "taskId": meta.task_id, "caseResultList": rows}
    return body, rejected


def _timestamp(meta: TaskReportMeta, results: list[CaseResult]) -> int:
    """Epoch seconds of the body: the task end, else the latest case end, else the task start (deterministic)."""
    if meta.finished_at is not None:
        return int(meta.finished_at.timestamp())
    last = max((to_int(r.endTime) for r in results), default=0)
    return last // 1000 if last else int(meta.started_at.timestamp())
