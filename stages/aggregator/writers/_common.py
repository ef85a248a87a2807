"""Helpers shared by the report writers: atomic files, secret redaction, attempt grouping, screenshot paths.

Every writer is a pure function of ``(meta, results)``; these helpers never mutate their inputs (redaction
builds new containers) and every file is written to a temporary sibling first and moved into place with
``os.replace``, so a reader or a crash mid-write only ever sees the previous complete file.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson as _orjson

from pipeline.models import CaseResult, Outcome, Status

if TYPE_CHECKING:
    from stages.aggregator.writers import TaskReportMeta

MASK = "******"
ATTACH_DIR = "attachments"          # under the task's report directory; every format links there
_CASE_FIELDS = tuple(f.name for f in dataclasses.fields(CaseResult))
# XML 1.0 forbids these code points; a step log may carry them (binary response bodies).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Only the platform's own log markers (§4.9) are markup; anything else (a request body "<x>") is content.
_MARKUP = re.compile(r"</?(?:span|b)\s*>", re.IGNORECASE)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
# The executor's log-line prefix "2026-12-01 23:38:35.668789 - Debug - " (§4.9): noise in a failure message.
_LOG_PREFIX = re.compile(r"^\s*\d{4}-\d{2}-\d{2}[ T][\d:.]+\s+-\s+\w+\s+-\s+")


def submap(parent: Any, key: str) -> dict[str, Any]:
    """``parent[key]`` when both are maps, else an empty map (details come from case files and executors)."""
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def submap_or_none(parent: Any, key: str) -> dict[str, Any] | None:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else None


def atomic_write(path: Path, data: str | bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` via a temp sibling + ``os.replace``; a crash leaves the old file intact."""
    return atomic_write_parts(path, (data.encode("utf-8") if isinstance(data, str) else data,), fsync=fsync)


def atomic_write_parts(path: Path, parts: Iterable[bytes], *, fsync: bool = True) -> Path:
    """``atomic_write`` of the concatenation of ``parts``, written as they come: a 50,000-case report is never
    one joined copy of its parts in memory besides the parts themselves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb", buffering=1 << 16) as fh:
            for part in parts:
                fh.write(part)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def joined(sep: bytes, items: Iterable[bytes]) -> Iterator[bytes]:
    """``sep.join(items)`` as a stream of parts."""
    first = True
    for item in items:
        if not first:
            yield sep
        first = False
        yield item


_TRIM_BELOW = 1 << 16


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, ``str()`` for anything else (as ``json.dumps(default=str)``). orjson where it can
    (5-10x faster on result rows); the standard library for what orjson refuses (integers beyond 64 bits,
    lone surrogates: escaped as ``\\udxxx``, still valid JSON).

    A small result is copied to a bytes of its own size: orjson's bytes keep its whole output buffer (~8 KB
    each, measured with orjson 3.13), and the report builder keeps three per case, which was 1.2 GB of the
    aggregator's memory at 50,000 cases (and the page faults made it slower than the copy)."""
    try:
        raw = _orjson.dumps(value, default=str, option=_orjson.OPT_NON_STR_KEYS)
        return bytes(memoryview(raw)) if len(raw) < _TRIM_BELOW else raw
    except (TypeError, _orjson.JSONEncodeError):
        return json.dumps(value, separators=(",", ":"), default=str).encode("ascii")


def write_if_changed(path: Path, data: str | bytes) -> bool:
    """Atomic write skipped when the file already holds exactly ``data`` (repeated incremental writes of
    thousands of small files, e.g. allure results). Returns whether the file was (re)written."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        if path.stat().st_size == len(raw) and path.read_bytes() == raw:
            return False
    except OSError:
        pass
    _replace_into(path, raw)
    return True


def write_new(path: str | Path, data: str | bytes) -> None:
    """Plain write of a file nobody reads before the run ends (an Allure result of a new attempt): no temp
    file, no rename, no comparison. A crash mid-write is repaired by the rewrite after the journal replay."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)   # no buffer, no fstat/isatty:
    try:                                                                               # two of these per attempt
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _replace_into(path: Path, raw: bytes) -> None:
    """atomic_write without fsync and without creating the directory (the caller made it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, path)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        atomic_write(path, raw, fsync=False)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Redactor:
    """Replaces every configured secret value by ``******`` in strings, dict keys and nested containers.

    Empty secrets are ignored (replacing "" would corrupt every string); longer secrets are matched first
    so a secret containing another one is masked whole.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in values)) if values else None
        # JSON escaping is per character, so a string holding a secret holds its escaped form once encoded:
        # one search over a result's JSON text tells whether anything needs masking at all.
        escaped = sorted({json.dumps(s, ensure_ascii=False)[1:-1] for s in values}, key=len, reverse=True)
        self._json_pattern = re.compile("|".join(re.escape(s) for s in escaped)) if values else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, value: str) -> str:
        return self._pattern.sub(MASK, value) if self._pattern is not None else value

    def value(self, value: Any) -> Any:
        """Redacted copy of a JSON-like value; the input is returned unchanged when there is nothing to mask."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self._pattern.sub(MASK, value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    def result(self, result: CaseResult) -> CaseResult:
        """Masked copy of ``result``; the same object when it holds no secret (the common, fast case)."""
        if self._pattern is None or self._json_pattern is None:
            return result
        fields = {name: getattr(result, name) for name in _CASE_FIELDS}
        try:
            text = json.dumps(fields, ensure_ascii=False)
        except (TypeError, ValueError):          # not plain JSON data: walk it
            return CaseResult(**self.value(fields))
        if not self._json_pattern.search(text):
            return result
        try:
            # A match can only break JSON when it starts inside an escape ("\n" + "ewpass" for "newpass"):
            # the text then no longer parses and the exact walk below is used instead.
            return CaseResult(**json.loads(self._json_pattern.sub(MASK, text)))
        except ValueError:
            return CaseResult(**self.value(fields))


def prepare(meta: TaskReportMeta, results: Iterable[CaseResult]) -> list[CaseResult]:
    """Redacted results ordered by (collection, index, case, attempt): the order every writer reports in."""
    red = Redactor(meta.secrets)
    ordered = sorted(results, key=lambda r: (r.collectionId, r.index, r.caseId, r.runTimes))
    return [red.result(r) for r in ordered]


def case_identity(result: CaseResult) -> tuple[str, str, int]:
    """Which attempts belong to the same case: the result key without the attempt number."""
    return (result.collectionId, result.caseId, int(result.index))


def group_attempts(results: Iterable[CaseResult]) -> list[list[CaseResult]]:
    """Attempts of each case, oldest first; cases in first-seen order. The last attempt is the final one."""
    groups: dict[tuple[str, str, int], list[CaseResult]] = {}
    for r in results:
        groups.setdefault(case_identity(r), []).append(r)
    for attempts in groups.values():
        attempts.sort(key=lambda r: r.runTimes)
    return list(groups.values())


_KNOWN_OUTCOMES = frozenset(o.value for o in Outcome)


def outcome_of(result: CaseResult) -> str:
    """The attempt's outcome, falling back to the platform status when ``outcome`` is not a known value."""
    if result.outcome in _KNOWN_OUTCOMES:
        return result.outcome
    names: dict[int, str] = {Status.PASS: "passed", Status.FAIL: "failed", Status.ERROR: "error", Status.SKIP: "skipped"}
    return names.get(_int(result.status), "error")


def screenshot_path(meta: TaskReportMeta, shot: str) -> Path:
    """Where the executor stored screenshot ``shot`` (an id ``<YYYYMMDD>_<uuid1>`` or already a path)."""
    p = Path(shot)
    if p.is_absolute():
        return p
    name = shot if shot.endswith(".png") else f"{shot}.png"
    return Path(meta.storage_root) / "image" / meta.task_id / name


def step_screenshots(meta: TaskReportMeta, step: dict[str, Any]) -> list[Path]:
    """A step's screenshots: its ``screenShotList`` plus any UI action ``screen_results[].image_path``."""
    listed = step.get("screenShotList")
    detail = submap(step, "detail")
    if not listed and not detail.get("actions"):     # most steps (every API step): five writers ask per step
        return []
    shots = [screenshot_path(meta, str(s)) for s in listed or [] if s]
    for action in detail.get("actions") or []:
        if not isinstance(action, dict):
            continue
        for screen in action.get("screen_results") or []:
            if isinstance(screen, dict) and screen.get("image_path"):
                path = screenshot_path(meta, str(screen["image_path"]))
                if path not in shots:
                    shots.append(path)
    return shots


def step_attachments(meta: TaskReportMeta, step: dict[str, Any]) -> list[str]:
    """The step's screenshots as paths relative to the report directory (``attachments/<file>``), where
    :func:`stages.aggregator.writers.attachments.link_attachments` puts them."""
    return [f"{ATTACH_DIR}/{p.name}" for p in step_screenshots(meta, step)]


def html_log_to_text(log: str) -> str:
    """A LiuMa HTML-ish step log (§4.9) as plain text: ``<br>`` become newlines, ``<span>``/``<b>`` markers
    dropped; other text, including ``<`` in request/response bodies, is kept as written."""
    return _MARKUP.sub("", _BR.sub("\n", log or ""))


def strip_log_prefix(line: str) -> str:
    """A log line without its ``<date> <time> - <Level> - `` prefix (kept as is when it has none)."""
    return _LOG_PREFIX.sub("", line, count=1)


def req_resp_pair(detail: dict[str, Any]) -> dict[str, Any] | None:
    """The step's request/response pair: the executor records ``req_resps`` as a list of
    ``{request, response}`` (the last one decided the step); a single dict is accepted too."""
    value = detail.get("req_resps")
    if isinstance(value, list):
        value = next((v for v in reversed(value) if isinstance(v, dict)), None)
    return value if isinstance(value, dict) else None


def step_ms(step: dict[str, Any]) -> int:
    """A step's duration: ``during`` when the executor measured it (API), else the sum of its UI actions'
    ``elapsed_ms`` (WEB/APP steps record ``during`` 0)."""
    during = _int(step.get("during"))
    if during:
        return during
    detail = submap(step, "detail")
    return sum(_int(a.get("elapsed_ms")) for a in detail.get("actions") or [] if isinstance(a, dict))


def xml_safe(text: str) -> str:
    """Drop code points XML 1.0 cannot carry (ElementTree would write them and readers would reject the file)."""
    return _XML_ILLEGAL.sub("", text)


def step_error(step: dict[str, Any]) -> str:
    """The error text of a failed step: ``detail.error``, else the failed assertions' messages."""
    detail = submap(step, "detail")
    if detail.get("error"):
        return strip_log_prefix(str(detail["error"]))
    failed = [v for v in detail.get("validators") or [] if isinstance(v, dict) and not v.get("result")]
    if failed:
        return "; ".join(strip_log_prefix(str(v.get("message") or f"{v.get('check')} {v.get('type')} {v.get('expected')!r}"))
                         for v in failed)
    if _int(step.get("status")) in (Status.FAIL, Status.ERROR):
        lines = [line.strip() for line in html_log_to_text(str(step.get("log") or "")).splitlines() if line.strip()]
        return strip_log_prefix(lines[-1]) if lines else "step failed"
    return ""


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


to_int = _int
