"""The failure-evidence policy (``[Evidence] keep``, a task's ``evidence``) and the bundle's place on disk.

Pure functions, shared by the executors (what to record, what to keep), the suite validation (a task's
override) and the report writers (where a bundle lives). Modes follow Playwright's trace options:

- ``failure``     (default) record every WEB/APP attempt, keep the bundle of an attempt that did not pass
                  (``retain-on-failure``);
- ``first-retry`` record and keep only the first retry (attempt 2), whatever its outcome (``on-first-retry``);
- ``always``      keep every attempt's bundle;
- ``never``       record nothing (no CDP connection, no driver log, no recorder).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["ATTACHMENTS", "DEFAULT_KEEP", "KEEP_MODES", "MANIFEST", "bundle_dir", "check_keep", "keep_bundle", "left_bundle",
           "may_record"]

KEEP_MODES = ("failure", "first-retry", "always", "never")
DEFAULT_KEEP = "failure"
ATTACHMENTS = "attachments"          # <report-dir>/<taskId>/attachments/ (shared with the screenshots)
MANIFEST = "evidence.json"           # in a bundle left by a killed attempt: what its result would have carried
_PASSING = ("passed", "flaky", "skipped")
_UNSAFE = re.compile(r"[^\w.@-]+")


def check_keep(value: object) -> str:
    """A keep mode, normalised; ``ValueError`` naming the accepted ones otherwise."""
    mode = str(value).strip().lower() if isinstance(value, str) else ""
    if mode not in KEEP_MODES:
        raise ValueError(f"evidence must be one of {', '.join(KEEP_MODES)}, got {value!r}")
    return mode


def may_record(mode: str, attempt: int) -> bool:
    """Before the attempt runs: could its bundle be kept? (False = do not pay for recording at all)."""
    if mode == "never":
        return False
    if mode == "first-retry":
        return attempt == 2
    return True


def keep_bundle(mode: str, outcome: str, attempt: int) -> bool:
    """After the attempt: keep its bundle? ``outcome`` is the attempt's (passed/failed/error/broken/...)."""
    if not may_record(mode, attempt):
        return False
    if mode == "failure":
        return outcome not in _PASSING
    return True


def bundle_dir(collection_id: str, case_id: str, index: int, attempt: int) -> str:
    """The bundle's directory relative to the task's report directory: ``attachments/<case>/<attempt>``.

    ``<case>`` is the caseId, suffixed with ``@<collectionId>.<index>`` because a task may hold the same case
    in two collections or twice in one; ids are plain file names (pipeline.suite) but are sanitised again."""
    case = _UNSAFE.sub("_", f"{case_id}@{collection_id}.{int(index)}")
    return f"{ATTACHMENTS}/{case}/{int(attempt)}"


def left_bundle(task_report_dir: Path, collection_id: str, case_id: str, index: int, attempt: int,
                start_ms: int, end_ms: int) -> dict[str, Any] | None:
    """The evidence of an attempt whose executor was killed (its result is the engine's, without evidence):
    the bundle's manifest, if one was written during this attempt (``start_ms``..``end_ms``, epoch ms; a
    bundle of an earlier run of the same taskId is not this attempt's). None when there is none."""
    rel = bundle_dir(collection_id, case_id, index, attempt)
    try:
        doc = json.loads((Path(task_report_dir) / rel / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list) or doc.get("dir") != rel:
        return None
    started = doc.get("started_ms")
    if not isinstance(started, int) or not (start_ms - 5000 <= started <= max(end_ms, start_ms)):
        return None
    return {"dir": rel, "files": doc["files"], "notes": [str(n) for n in doc.get("notes") or []],
            **{k: doc[k] for k in ("console", "network") if isinstance(doc.get(k), list)}}
