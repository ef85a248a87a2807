"""``[Flaky] mute``: known-flaky cases that keep running and being reported but stay out of the exit code.

A mute always has an expiry date, so a muted case cannot be forgotten: ``mute = login-case until 2026-12-31,
search-case until 2027-01-15``. Pure functions, handed the date: the recap lists what a mute hid (loudly) and
which mutes expired (the case counts again).
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Mute", "active_mutes", "expired_mutes", "muted_failures", "parse_mutes"]

_ENTRY = re.compile(r"^(?P<case>[^\s,]+)\s+until\s+(?P<date>\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class Mute:
    case_id: str
    until: dt.date            # the last day the mute holds

    def active(self, today: dt.date) -> bool:
        return today <= self.until


def parse_mutes(text: str) -> tuple[Mute, ...]:
    """``CASE until YYYY-MM-DD`` entries separated by commas or new lines; ValueError names the bad entry."""
    out: list[Mute] = []
    for raw in re.split(r"[,\n]", text):
        entry = " ".join(raw.split())
        if not entry:
            continue
        m = _ENTRY.match(entry)
        if not m:
            raise ValueError(f"bad mute entry {entry!r}: expected 'CASE_ID until YYYY-MM-DD'")
        try:
            until = dt.date.fromisoformat(m["date"])
        except ValueError as e:
            raise ValueError(f"bad date in mute entry {entry!r}: {e}") from None
        out.append(Mute(m["case"], until))
    return tuple(out)


def active_mutes(mutes: Iterable[Mute], today: dt.date) -> dict[str, Mute]:
    return {m.case_id: m for m in mutes if m.active(today)}


def expired_mutes(mutes: Iterable[Mute], today: dt.date) -> list[Mute]:
    active = active_mutes(mutes, today)
    return [m for m in mutes if not m.active(today) and m.case_id not in active]


def muted_failures(finals: Iterable[Any], mutes: Iterable[Mute], today: dt.date) -> list[dict[str, Any]]:
    """The final results (objects with caseId, collectionId, index, caseName, status, reason) that failed or
    errored but are muted today: reported as they are, left out of the exit code."""
    active = active_mutes(mutes, today)
    return [{"case_id": r.caseId, "collection_id": r.collectionId, "index": r.index, "name": r.caseName,
             "status": int(r.status), "reason": r.reason, "until": active[r.caseId].until.isoformat()}
            for r in finals if int(r.status) in (1, 2) and r.caseId in active]
