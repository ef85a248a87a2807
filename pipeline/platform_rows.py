"""Platform result rows: the repairs and the validation that keep ``/openapi/engine/result/upload`` from
rejecting a batch (liuma-engine.md §7.1, §7.2, §10).

The platform rejects a whole batch with HTTP 500 for one bad row (null startTime/endTime/status/caseType,
empty transactionList, a WEB/APP step without ``screenShotList``, an API ``content`` null or > 200 chars).
``platform_row`` applies the conventional, lossless repairs to ``CaseResult.to_platform()``;
``validate_platform_row`` names what would still be rejected. Shared by the aggregator's ``results.json``
writer and the uploader, so both send exactly the same rows.
"""
from __future__ import annotations

from typing import Any

from pipeline.models import UNKNOWN, CaseResult, CaseType, Status
from pipeline.secrets import redact_urls

__all__ = ["platform_row", "validate_platform_row", "MAX_API_CONTENT"]

MAX_API_CONTENT = 200
_CASE_TYPES = {t.value for t in CaseType}


def _to_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def platform_row(result: CaseResult) -> dict[str, Any]:
    """``CaseResult.to_platform()`` with the conventional repairs of §7.3/§10 applied."""
    row = result.to_platform()
    if row.get("status") is None:
        row["status"] = Status.ERROR
    start = row.get("startTime")
    row["startTime"] = start if isinstance(start, int) else _to_int(start)
    end = row.get("endTime")
    row["endTime"] = max(end if isinstance(end, int) else _to_int(end), row["startTime"])
    if not row.get("transactionList"):
        # §7.3: a case that ends without any step reports one synthetic step carrying the reason.
        row["transactionList"] = [{
            "id": result.caseId, "name": UNKNOWN, "content": UNKNOWN, "description": None,
            "log": result.reason or "no step was recorded", "during": 0,
            "status": row["status"] if row["status"] in (Status.FAIL, Status.ERROR, Status.SKIP) else Status.ERROR,
            "screenShotList": []}]
    row["transactionList"] = [_repair_step(t, result.caseType) for t in row["transactionList"]]
    return row


def _repair_step(step: dict[str, Any], case_type: str) -> dict[str, Any]:
    step = dict(step)
    for key in ("log", "content"):            # a step log may quote a device farm's https://user:key@ URL
        if isinstance(step.get(key), str):
            step[key] = redact_urls(step[key])
    if step.get("screenShotList") is None:
        step["screenShotList"] = []
    if step.get("content") is None:
        step["content"] = ""
    if case_type == CaseType.API.value and isinstance(step["content"], str) and len(step["content"]) > MAX_API_CONTENT:
        step["content"] = step["content"][:MAX_API_CONTENT]
    return step


def validate_platform_row(row: dict[str, Any]) -> list[str]:
    """Problems that would make the platform reject the batch holding ``row`` (§7.1, §7.2, §10); [] = valid."""
    problems: list[str] = []
    for key in ("status", "startTime", "endTime"):
        if not _is_int(row.get(key)):
            problems.append(f"{key} must be an integer, got {row.get(key)!r}")
    if _is_int(row.get("status")) and row["status"] not in (0, 1, 2, 3):
        problems.append(f"status must be 0..3, got {row['status']!r}")
    if row.get("caseType") not in _CASE_TYPES:
        problems.append(f"caseType must be one of {sorted(_CASE_TYPES)}, got {row.get('caseType')!r}")
    for key in ("collectionId", "caseId"):
        if not isinstance(row.get(key), str) or not row.get(key):
            problems.append(f"{key} must be a non-empty string")
    for key in ("index", "runTimes"):
        if not _is_int(row.get(key)):
            problems.append(f"{key} must be an integer, got {row.get(key)!r}")
    steps = row.get("transactionList")
    if not isinstance(steps, list) or not steps:
        problems.append("transactionList must be a non-empty list")
    else:
        for i, step in enumerate(steps):
            problems.extend(f"step {i} {p}" for p in _step_problems(step, row.get("caseType")))
    if not problems:                # the common case: the label below is built only for a row with problems
        return problems
    where = f"case {row.get('caseId')!r} (collection {row.get('collectionId')!r}, runTimes {row.get('runTimes')!r})"
    return [f"{where}: {p}" for p in problems]


def _step_problems(step: Any, case_type: Any) -> list[str]:
    if not isinstance(step, dict):
        return [f"must be an object, got {type(step).__name__}"]
    problems: list[str] = []
    if not isinstance(step.get("screenShotList"), list):
        problems.append("screenShotList must be a list (may be empty)")
    elif not all(isinstance(s, str) for s in step["screenShotList"]):
        problems.append("screenShotList must hold screenshot id strings")
    if not _is_int(step.get("status")) or step.get("status") not in (0, 1, 2, 3):
        problems.append(f"status must be 0..3, got {step.get('status')!r}")
    if not _is_int(step.get("during")):
        problems.append(f"during must be an integer (ms), got {step.get('during')!r}")
    if case_type == CaseType.API.value:
        content = step.get("content")
        if not isinstance(content, str):
            problems.append("content (the API path) must be a string")
        elif len(content) > MAX_API_CONTENT:
            problems.append(f"content is {len(content)} chars, the platform allows {MAX_API_CONTENT}")
    for key in ("id", "name", "log"):
        if not isinstance(step.get(key), str):
            problems.append(f"{key} must be a string")
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
