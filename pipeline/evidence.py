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

import re

__all__ = ["KEEP_MODES", "DEFAULT_KEEP", "check_keep", "may_record", "keep_bundle", "bundle_dir", "ATTACHMENTS"]

KEEP_MODES = ("failure", "first-retry", "always", "never")
DEFAULT_KEEP = "failure"
ATTACHMENTS = "attachments"          # <report-dir>/<taskId>/attachments/ (shared with the screenshots)
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
