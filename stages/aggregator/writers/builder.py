"""Incremental report building: every format's per-case part is rendered once, when the case's attempt
arrives, and each file is assembled at write time by streaming those parts to it (never one joined copy).

The batch writers (``summary.write_summary`` ...) re-render every case on every write, so a run that rewrites
its reports while it progresses pays O(cases) per write and O(cases²) overall, and the final write of a
50,000-case run took longer than the run. Here :meth:`ReportBuilder.add` renders the case's summary detail,
JUnit ``<testcase>``, platform rows, ``report.html`` row and details (pre-serialised bytes) and writes its
Allure result file; :meth:`ReportBuilder.write` sorts the case keys, sums a few counters and concatenates,
and reuses every compressed ``report.html`` details block whose cases did not change. Each attempt's platform
row also goes to ``results.jsonl`` as it arrives (``jsonl.py``; ``flush_lines`` at the end of a batch). The output is the
batch writers' (same documents, same order; tests compare them), so readers see no difference.

Not thread-safe: one owner (the aggregator's report thread, or :func:`~stages.aggregator.writers.write_all`).
"""
from __future__ import annotations

import base64
import html as _html
import socket
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.evidence import left_bundle
from pipeline.models import CaseResult, skipped_by_accident
from stages.aggregator.writers import allure, html, junit, summary
from stages.aggregator.writers._common import (
    Redactor,
    atomic_write,
    atomic_write_parts,
    case_identity,
    dumps,
    joined,
    outcome_of,
    to_int,
    xml_safe,
)
from stages.aggregator.writers._html_template import TEMPLATE
from stages.aggregator.writers.attachments import link_attachments
from stages.aggregator.writers.filequeue import FileQueue
from stages.aggregator.writers.jsonl import ResultLines
from stages.aggregator.writers.results import REJECTED_FILE, RESULTS_FILE, platform_row, validate_platform_row

if TYPE_CHECKING:
    from stages.aggregator.writers import TaskReportMeta

__all__ = ["ReportBuilder"]

_LT = b"\\u003c"


@dataclass(slots=True)
class _Case:
    """One case (collection, case id, index): its attempts oldest first and their rendered parts."""

    attempts: list[CaseResult] = field(default_factory=list)
    version: int = 0
    outcome: str = ""
    success: bool = True
    stat: dict[str, Any] = field(default_factory=dict)
    summary: bytes = b""
    junit: str = ""
    junit_flags: tuple[bool, bool, bool] = (False, False, False)     # has failure / error / skipped
    junit_time: str = "0.000"
    html_row: bytes = b""
    html_details: bytes = b""
    busy: int = 0
    rows: list[tuple[bytes | None, dict[str, Any] | None]] = field(default_factory=list)   # per attempt


class ReportBuilder:
    """Holds one task's rendered cases; ``add`` per attempt, ``write`` whenever a complete report is wanted."""

    def __init__(self, report_dir: Path, meta: TaskReportMeta, *, resume: bool = False) -> None:
        """``resume``: the aggregator restarted; ``results.jsonl`` keeps its lines (else it starts empty)."""
        self.report_dir = Path(report_dir)
        self.lines = ResultLines(self.report_dir, resume=resume)
        self.red = Redactor(meta.secrets)
        self.meta = replace(meta, task_name=self.red.text(meta.task_name), secrets=()) if self.red else meta
        self.cases: dict[tuple[str, str, int], _Case] = {}
        self.keys: set[tuple[Any, ...]] = set()
        self.executors: dict[str, int] = {}
        self.last_end = 0
        self.allure_dir = self.report_dir / allure.ALLURE_DIR     # made with the first attempt or write: a task
                                                                  # that is only queued leaves no report folder
        self.containers: dict[str, dict[tuple[str, str, int], list[tuple[int, str, int, int]]]] = {}
        self._blocks: dict[int, tuple[tuple[Any, ...], str]] = {}
        self._allure_str = str(self.allure_dir)     # a path per attempt: string formatting, not pathlib
        self._made = False          # allure_dir exists (one mkdir, not one per attempt)
        self._files = FileQueue()   # each attempt's new Allure files, written beside the rendering
        self.drain_s = 0.0          # the last write's wait for those files

    def __len__(self) -> int:
        return len(self.keys)

    # -- per attempt ------------------------------------------------------------------------------
    def add(self, result: CaseResult) -> bool:
        """Take one attempt (ignored when its result key is already in); renders its case's parts."""
        if result.key in self.keys:
            return False
        self.keys.add(result.key)
        if not result.evidence and result.outcome == "broken":     # killed from outside: the bundle it left
            left = left_bundle(self.report_dir, result.collectionId, result.caseId, to_int(result.index),
                               to_int(result.runTimes), to_int(result.startTime), to_int(result.endTime))
            result = replace(result, evidence=left) if left is not None else result
        r = self.red.result(result)
        meta = self.meta
        if not self._made:
            self.allure_dir.mkdir(parents=True, exist_ok=True)
            self._made = True
        link_attachments(self.report_dir, meta, [r])
        doc = allure._result(meta, self.allure_dir, r, meta.task_name, self.report_dir, write=self._files.put)
        self._files.put(f"{self._allure_str}/{doc['uuid']}-result.json", dumps(doc))
        ident = case_identity(r)
        self.containers.setdefault(r.collectionId, {}).setdefault(ident, []).append(
            (to_int(r.runTimes), doc["uuid"], doc["start"], doc["stop"]))
        self.last_end = max(self.last_end, to_int(r.endTime))
        if r.executor:
            self.executors.setdefault(r.executor, len(self.executors))
        case = self.cases.get(ident)
        if case is None:
            case = self.cases[ident] = _Case()
        case.attempts.append(r)
        case.attempts.sort(key=lambda a: a.runTimes)
        row = platform_row(r)
        raw = dumps(row)
        self.lines.add(row, raw)
        case.rows = [self._row(a) for a in case.attempts] if len(case.attempts) > 1 else [self._row(r, row, raw)]
        self._render(case)
        return True

    def _row(self, r: CaseResult, row: dict[str, Any] | None = None,
             raw: bytes | None = None) -> tuple[bytes | None, dict[str, Any] | None]:
        row = platform_row(r) if row is None else row
        problems = validate_platform_row(row)
        return (None, {"row": row, "problems": problems}) if problems else (dumps(row) if raw is None else raw, None)

    def shed(self, budget: int) -> bool:
        """Free up to ``budget`` cases (after the final write): a 50,000-case builder deallocated at once holds
        the GIL for a tenth of a second. True once nothing is left."""
        for _ in range(min(budget, len(self.cases))):
            self.cases.popitem()
        for _ in range(min(budget, len(self.keys))):
            self.keys.pop()
        if not self.cases and not self.keys:
            self.containers.clear()
            self._blocks.clear()
            return True
        return False

    def files_behind_s(self) -> float:
        """Seconds of Allure file writing still queued (flow control)."""
        return self._files.behind_s()

    def flush_lines(self) -> None:
        """Append the attempts added since the last flush to ``results.jsonl``."""
        self.lines.flush()

    def close(self) -> None:
        """The task's last write is done: ``results.jsonl`` is flushed and closed."""
        self.lines.close()

    def _render(self, case: _Case) -> None:
        meta, attempts = self.meta, case.attempts
        final = attempts[-1]
        case.version += 1
        detail = summary._detail(meta, final, final=True)
        detail["retries"] = [summary._detail(meta, a, final=False) for a in attempts[:-1]]
        case.outcome, case.success, case.stat = detail["outcome"], detail["success"], detail["stat"]
        case.summary = dumps(detail)
        case.junit, case.junit_flags, case.junit_time = junit.testcase_text(meta, final.collectionId, attempts, {})
        start_ms = int(meta.started_at.timestamp() * 1000)
        row = {"n": final.caseName, "id": final.caseId, "c": final.collectionId, "t": final.caseType,
               "i": to_int(final.index), "o": outcome_of(final), "d": html._ms(final), "m": html._message(final),
               "tags": list(final.tags or []),
               "a": [[to_int(a.startTime) - start_ms, html._ms(a), self.executors[a.executor] if a.executor else -1,
                      outcome_of(a)] for a in attempts], **html.history_cell(meta, final.caseId)}
        case.html_row = dumps(row)[1:].replace(b"<", _LT)          # without "{": k/j are prefixed at assembly
        case.html_details = dumps([html._attempt(meta, a) for a in reversed(attempts)])
        case.busy = sum(html._ms(a) for a in attempts)

    # -- whole files ------------------------------------------------------------------------------
    def write(self, finished_at: datetime | None = None, stop_reason: str | None = None, *,
              partial: bool = False) -> dict[str, Path]:
        """Assemble and write every format (``finished_at`` set for the final report, ``stop_reason`` when the
        task was stopped). ``partial``: a live rewrite while the task runs, which neither waits for the Allure
        files still queued nor writes the Allure containers that would name them (a partial rewrite that
        waited for thousands of queued files stopped the rendering behind it for seconds)."""
        t0 = time.perf_counter()
        failed = [] if partial else self._files.drain()     # each attempt's Allure files are on disk before
        self.drain_s = time.perf_counter() - t0              # any container names them (stats)
        self.lines.flush()
        meta = replace(self.meta, finished_at=finished_at, stop_reason=stop_reason)
        order = sorted(self.cases, key=lambda k: (k[0], k[2], k[1]))     # (collection, index, case id)
        cases = [self.cases[k] for k in order]
        paths = {
            "summary": self._summary(meta, cases),
            "results": self._results(meta, cases),
            "junit": self._junit(meta, order, cases),
            "allure": self.allure_dir if partial else self._allure(meta, order),
            "html": self._html(meta, order, cases),
            "jsonl": self.lines.written(),
        }
        if failed:                          # the other formats are written; the caller reports the fault
            raise failed[0]
        return paths

    def _summary(self, meta: TaskReportMeta, cases: list[_Case]) -> Path:
        outcomes = Counter(c.outcome for c in cases)
        step_stat = summary._sum_step_stats(c.stat for c in cases)
        attempts = len(self.keys)
        success = sum(1 for c in cases if c.success)
        if meta.finished_at is not None:
            seconds = max(0.0, (meta.finished_at - meta.started_at).total_seconds())
        else:
            seconds = max(0.0, (self.last_end - meta.started_at.timestamp() * 1000) / 1000) if self.last_end else 0.0
        doc = summary.build_summary(meta, [])
        doc["success"] = success == len(cases) and meta.stop_reason is None and not skipped_by_accident(
            (c.outcome == "skipped", c.attempts[-1].reason) for c in cases)
        doc["stat"] = {"testcases": {"total": len(cases), "success": success, "fail": len(cases) - success,
                                     "attempts": attempts,
                                     **{o: outcomes.get(o, 0) for o in ("passed", "failed", "error", "broken", "skipped", "flaky")}},
                       "teststeps": step_stat}
        doc["time"] = summary._time(meta.started_at, seconds)
        doc.pop("details")
        head = dumps(doc)
        return atomic_write_parts(self.report_dir / summary.SUMMARY_FILE, _chain(
            head[:-1], b',"details":[', joined(b",", (c.summary for c in cases)), b"]}\n"))

    def _results(self, meta: TaskReportMeta, cases: list[_Case]) -> Path:
        rows: list[bytes] = []
        rejected: list[dict[str, Any]] = []
        for c in cases:
            for ok, bad in c.rows:
                if ok is not None:
                    rows.append(ok)
                else:
                    rejected.append(bad)            # type: ignore[arg-type]
        if meta.finished_at is not None:
            ts = int(meta.finished_at.timestamp())
        else:
            ts = self.last_end // 1000 if self.last_end else int(meta.started_at.timestamp())
        head = dumps({"engineCode": meta.engine_code, "timestamp": ts, "taskId": meta.task_id})
        rejected_path = self.report_dir / REJECTED_FILE
        if rejected:
            import json
            atomic_write(rejected_path, json.dumps(rejected, ensure_ascii=False, indent=2, default=str))
        elif rejected_path.exists():
            rejected_path.unlink()
        return atomic_write_parts(self.report_dir / RESULTS_FILE, _chain(head[:-1], b',"caseResultList":[', joined(b",", rows), b"]}"))

    def _junit(self, meta: TaskReportMeta, order: list[tuple[str, str, int]], cases: list[_Case]) -> Path:
        suites: dict[str, list[tuple[tuple[str, str, int], _Case]]] = {}
        for k, c in zip(order, cases):
            suites.setdefault(k[0], []).append((k, c))
        tz = meta.started_at.tzinfo or UTC
        host = socket.gethostname()
        parts: list[tuple[str, list[str], str]] = []     # per suite: head, its <testcase>s, tail
        tot = [0, 0, 0, 0.0]
        for name, members in suites.items():
            start = min(to_int(c.attempts[0].startTime) for _, c in members)
            suite = ET.Element("testsuite", name=xml_safe(name))
            props = ET.SubElement(suite, "properties")
            for key, value in (("taskId", meta.task_id), ("engineVersion", meta.engine_version),
                               ("timestamp", datetime.fromtimestamp(start / 1000, tz=tz).isoformat(timespec="seconds")),
                               ("hostname", host)):
                ET.SubElement(props, "property", name=key, value=xml_safe(value))
            counts = [len(members), sum(c.junit_flags[0] for _, c in members), sum(c.junit_flags[1] for _, c in members),
                      sum(c.junit_flags[2] for _, c in members)]
            seconds = sum(float(c.junit_time) for _, c in members)
            for attr, count in zip(("tests", "failures", "errors", "skipped"), counts):
                suite.set(attr, str(count))
            suite.set("time", f"{seconds:.3f}")
            tot[0] += counts[0]
            tot[1] += counts[1]
            tot[2] += counts[2]
            tot[3] += float(f"{seconds:.3f}")
            ET.SubElement(suite, "_cases_")
            ET.indent(suite, space=" ", level=1)
            head, tail = ET.tostring(suite, encoding="unicode").split("<_cases_ />", 1)
            seen: dict[str, int] = {}
            texts: list[str] = []
            for _, c in members:
                final = c.attempts[-1]
                base = final.caseName or final.caseId
                seen[base] = seen.get(base, 0) + 1
                if seen[base] == 1:
                    texts.append(c.junit)
                else:       # same name twice in a suite: the later one gets its index, as the batch writer
                    texts.append(junit.testcase_text(meta, name, c.attempts, {base: 1})[0])
            parts.append((head, texts, tail))
        root = ET.Element("testsuites", name=xml_safe(meta.task_name))
        for attr, total in zip(("tests", "failures", "errors"), tot[:3]):
            root.set(attr, str(total))
        root.set("time", f"{tot[3]:.3f}")
        opening = ET.tostring(root, encoding="unicode")

        def stream() -> Iterator[bytes]:
            yield b'<?xml version="1.0" encoding="UTF-8"?>\n'
            if not suites:
                yield opening.encode("utf-8") + b"\n"
                return
            yield opening[:-3].encode("utf-8") + b">\n "       # "<testsuites ... />" -> open tag
            for n, (head, texts, tail) in enumerate(parts):
                yield (b"\n " if n else b"") + head.encode("utf-8")
                yield from joined(b"\n  ", (t.encode("utf-8") for t in texts))
                yield tail.encode("utf-8")
            yield b"\n</testsuites>\n"
        return atomic_write_parts(self.report_dir / junit.JUNIT_FILE, stream())

    def _allure(self, meta: TaskReportMeta, order: list[tuple[str, str, int]]) -> Path:
        out = self.allure_dir
        out.mkdir(parents=True, exist_ok=True)
        for name in sorted(self.containers):
            members = self.containers[name]
            children = [a for k in sorted(members, key=lambda k: (k[2], k[1])) for a in sorted(members[k])]
            cid = str(uuid.uuid5(allure._NS, f"container|{meta.task_id}|{name}"))
            allure._dump(out / f"{cid}-container.json", {
                "uuid": cid, "name": name, "children": [c[1] for c in children], "befores": [], "afters": [],
                "start": min(c[2] for c in children), "stop": max(c[3] for c in children)})
        allure._write_environment(out, meta)
        allure._dump(out / "categories.json", allure.CATEGORIES)
        allure._dump(out / "executor.json", {"name": "liuma-pipeline", "type": "liuma-pipeline", "buildName": meta.task_name,
                                             "reportName": f"{meta.task_name} ({meta.task_id})"})
        return out

    def _html(self, meta: TaskReportMeta, order: list[tuple[str, str, int]], cases: list[_Case]) -> Path:
        chunk = html.CHUNK
        rows = (b'{"k":%d,"j":%d,' % (n // chunk, n % chunk) + c.html_row for n, c in enumerate(cases))
        blocks: list[str] = []
        for b in range(0, len(cases), chunk):
            sig = tuple((order[n], cases[n].version) for n in range(b, min(b + chunk, len(cases))))
            cached = self._blocks.get(b // chunk)
            if cached is None or cached[0] != sig:
                raw = b"[" + b",".join(cases[n].html_details for n in range(b, b + len(sig))) + b"]"
                cached = self._blocks[b // chunk] = (sig, base64.b64encode(zlib.compress(raw, 6)).decode("ascii"))
            blocks.append(cached[1])
        for stale in [k for k in self._blocks if k * chunk >= len(cases)]:
            del self._blocks[stale]
        totals = Counter(c.outcome for c in cases)
        start_ms = int(meta.started_at.timestamp() * 1000)
        end_ms = int(meta.finished_at.timestamp() * 1000) if meta.finished_at else (self.last_end or start_ms)
        index = {
            "task": {"id": meta.task_id, "name": meta.task_name, "started": meta.started_at.isoformat(timespec="seconds"),
                     "finished": meta.finished_at.isoformat(timespec="seconds") if meta.finished_at else None,
                     "engine": meta.engine_version, "wall": max(0, end_ms - start_ms), "t0": start_ms},
            "totals": {"cases": len(cases), "attempts": len(self.keys), "busy": sum(c.busy for c in cases),
                       **{o: totals.get(o, 0) for o in html.OUTCOMES}},
            "executors": list(self.executors),
        }
        head_blob = dumps(index).replace(b"<", _LT)
        title = _html.escape(f"{meta.task_name} - liuma-pipeline report")
        head, rest = TEMPLATE.split("__DATA__", 1)
        middle, tail = rest.split("__DETAILS__", 1)
        return atomic_write_parts(self.report_dir / html.HTML_FILE, _chain(
            head.replace("__TITLE__", title).encode("utf-8"), head_blob[:-1], b',"cases":[', joined(b",", rows), b"]}",
            middle.encode("utf-8"), b"[", joined(b",", (b'"%s"' % b.encode("ascii") for b in blocks)), b"]",
            tail.encode("utf-8")))


def _chain(*parts: bytes | Iterator[bytes]) -> Iterator[bytes]:
    """Bytes and streams of bytes, in order, as one stream."""
    for p in parts:
        if isinstance(p, bytes):
            yield p
        else:
            yield from p
