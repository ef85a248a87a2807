"""Compare what the two engines uploaded for the same task, row by row.

Rows are matched by (collectionId, caseId, index, runTimes). Per row: the final ``status`` and the row's
*shape* — its keys, the JSON type of every value, the transactionList's length, ids, names and statuses, and
each transaction's keys, value types and screenshot count. Times, logs, durations and screenshot ids are not
compared. Status differences are reported separately from shape differences (only the former can be
explained by a documented deviation).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Difference", "diff_rows", "jtype"]

_IGNORED_TYPES = {"startTime", "endTime"}   # epoch ms: the original sends floats, the platform truncates


def jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Difference:
    key: tuple[str, str, int, int]     # collectionId, caseId, index, runTimes
    kind: str                          # "status" | "shape" | "missing" | "extra"
    detail: str

    @property
    def case_id(self) -> str:
        return self.key[1]


def _row_key(row: dict[str, Any]) -> tuple[str, str, int, int]:
    return (row.get("collectionId"), row.get("caseId"), row.get("index"), row.get("runTimes"))  # type: ignore[return-value]


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    trans = row.get("transactionList") or []
    return {
        "keys": sorted(row), "types": {k: jtype(v) for k, v in sorted(row.items()) if k not in _IGNORED_TYPES},
        "steps": [(t.get("id"), t.get("name")) for t in trans],
        "stepStatuses": [t.get("status") for t in trans],
        "stepKeys": [sorted(t) for t in trans],
        "stepTypes": [{k: jtype(v) for k, v in sorted(t.items())} for t in trans],
        "screenshots": [len(t.get("screenShotList") or []) for t in trans],   # see diff_rows
    }


def diff_rows(oracle: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[Difference]:
    theirs = {_row_key(r): r for r in oracle}
    mine = {_row_key(r): r for r in ours}
    out: list[Difference] = []
    for key in sorted(set(theirs) | set(mine), key=str):
        if key not in mine:
            out.append(Difference(key, "missing", f"the original uploaded it (status {theirs[key].get('status')}), we did not"))
            continue
        if key not in theirs:
            out.append(Difference(key, "extra", f"we uploaded it (status {mine[key].get('status')}), the original did not"))
            continue
        a, b = theirs[key], mine[key]
        if a.get("status") != b.get("status"):
            out.append(Difference(key, "status", f"original {a.get('status')}, ours {b.get('status')}"))
        sa, sb = _shape(a), _shape(b)
        if sa["stepStatuses"] != sb["stepStatuses"]:
            out.append(Difference(key, "status", f"step statuses: original {sa['stepStatuses']}, ours {sb['stepStatuses']}"))
        if len(sa["stepStatuses"]) == len(sb["stepStatuses"]):
            # a failed WEB/APP assertion carries its screenshot: on a step whose status differs the count
            # belongs to the status difference, on every other step it is shape
            same = [x == y for x, y in zip(sa["stepStatuses"], sb["stepStatuses"])]
            sa["screenshots"] = [n for n, keep in zip(sa["screenshots"], same) if keep]
            sb["screenshots"] = [n for n, keep in zip(sb["screenshots"], same) if keep]
        for part in sa:
            if part != "stepStatuses" and sa[part] != sb[part]:
                out.append(Difference(key, "shape", f"{part}: original {sa[part]}, ours {sb[part]}"))
    return out
