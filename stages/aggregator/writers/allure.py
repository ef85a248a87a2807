"""``allure-results/``: Allure 2 result files (anchors.md §5.1) for ``allure generate`` / Allure 3.

One ``<uuid>-result.json`` per case attempt, ``historyId`` = md5 of (collection, case, index) so attempts of
one case group under Retries and history lines up across runs; status mapping passed/flaky -> passed
(``statusDetails.flaky``), failed -> failed, error/broken -> broken (test/infra defect), skipped -> skipped.
Each step becomes an Allure step with its assertions as sub-steps; a UI step is one operation, so its single
action is not repeated as a sub-step of the same name (its parameters become the step's parameters); only
a step made of several actions lists them. Screenshots are hard-linked from the report's ``attachments/``
as ``<uuid>-attachment.png`` named ``screenshot: <step>``; the attempt's plain-text log is
``log: <case> (attempt n)`` (when a step logged something or the attempt has a reason). Messages carry no log-line prefix. One ``<uuid>-container.json`` per collection,
plus ``categories.json`` (product defects, test defects, timeouts, crashes, skips), ``executor.json`` and
``environment.properties``. All uuids are derived from the result key (uuid5), so rewriting during a run
replaces files instead of adding new ones; unchanged files are not rewritten.
"""
from __future__ import annotations

import hashlib
import json
import platform
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.models import CaseResult, Status
from stages.aggregator.writers._common import (
    ATTACH_DIR,
    Redactor,
    dumps,
    group_attempts,
    html_log_to_text,
    outcome_of,
    prepare,
    step_error,
    step_ms,
    step_screenshots,
    strip_log_prefix,
    submap,
    to_int,
    write_if_changed,
)
from stages.aggregator.writers.attachments import place

if TYPE_CHECKING:
    from stages.aggregator.writers import TaskReportMeta

__all__ = ["write_allure", "ALLURE_DIR", "STATUS_MAP", "history_id"]

ALLURE_DIR = "allure-results"
STATUS_MAP = {"passed": "passed", "flaky": "passed", "failed": "failed", "error": "broken",
              "broken": "broken", "skipped": "skipped"}
_STEP_STATUS: dict[int, str] = {Status.PASS: "passed", Status.FAIL: "failed", Status.ERROR: "broken", Status.SKIP: "skipped"}
_NS = uuid.UUID("6f1c1f0e-5b7a-4c59-9f57-3a1e0c2d4b10")



def write_allure(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> Path:
    """Write ``<report_dir>/allure-results/``; returns the directory."""
    out = Path(report_dir) / ALLURE_DIR
    out.mkdir(parents=True, exist_ok=True)
    parent = Redactor(meta.secrets).text(meta.task_name)
    collections: dict[str, list[tuple[str, int, int]]] = {}
    for attempts in group_attempts(prepare(meta, results)):
        for attempt in attempts:
            doc = _result(meta, out, attempt, parent, Path(report_dir))
            _dump(out / f"{doc['uuid']}-result.json", doc)
            collections.setdefault(attempt.collectionId, []).append((doc["uuid"], doc["start"], doc["stop"]))
    for name, children in collections.items():
        cid = str(uuid.uuid5(_NS, f"container|{meta.task_id}|{name}"))
        _dump(out / f"{cid}-container.json", {
            "uuid": cid, "name": name, "children": [c[0] for c in children], "befores": [], "afters": [],
            "start": min(c[1] for c in children), "stop": max(c[2] for c in children)})
    _write_environment(out, meta)
    _dump(out / "categories.json", CATEGORIES)
    # Allure reads buildOrder as a number: a task id there makes it drop the whole file
    _dump(out / "executor.json", {"name": "liuma-pipeline", "type": "liuma-pipeline", "buildName": parent,
                                  "reportName": f"{parent} ({meta.task_id})"})
    return out


def history_id(result: CaseResult) -> str:
    """Same case (collection, case id, index) -> same id, whatever the attempt or the run."""
    return hashlib.md5(f"{result.collectionId}|{result.caseId}|{result.index}".encode()).hexdigest()


CATEGORIES = [
    {"name": "Product defects (assertion failed)", "matchedStatuses": ["failed"]},
    {"name": "Timeouts", "matchedStatuses": ["broken"], "messageRegex": "(?s).*(timeout|timed out|超时).*"},
    {"name": "Executor or device lost", "matchedStatuses": ["broken"],
     "messageRegex": "(?s).*(crashed|signal|lost|会话已丢失|无法创建).*"},
    {"name": "Test defects (step error)", "matchedStatuses": ["broken"]},
    {"name": "Skipped", "matchedStatuses": ["skipped"]},
]


def _dump(path: Path, doc: Any) -> None:
    write_if_changed(path, dumps(doc))


def _result(meta: TaskReportMeta, out: Path, r: CaseResult, parent: str, report_dir: Path,
            write: Any = write_if_changed) -> dict[str, Any]:
    rid = str(uuid.uuid5(_NS, "|".join(map(str, (r.taskId or meta.task_id, *r.key[1:])))))
    outcome = outcome_of(r)
    steps = [_step(meta, out, rid, i, t, report_dir) for i, t in enumerate(r.transactionList) if isinstance(t, dict)]
    message = next((s["statusDetails"]["message"] for s in steps
                    if s["status"] in ("failed", "broken") and s["statusDetails"].get("message")), "")
    labels = [{"name": "suite", "value": r.collectionId}, {"name": "parentSuite", "value": parent},
              {"name": "framework", "value": "liuma-pipeline"}, {"name": "language", "value": r.caseType}]
    labels += [{"name": "tag", "value": str(t)} for t in r.tags or []]
    if r.executor:
        labels.append({"name": "thread", "value": r.executor})
    doc: dict[str, Any] = {
        "uuid": rid, "historyId": history_id(r),
        "testCaseId": hashlib.md5(f"{r.collectionId}|{r.caseId}".encode()).hexdigest(),
        "name": r.caseName, "fullName": f"{r.collectionId}.{r.caseName}",
        "status": STATUS_MAP.get(outcome, "unknown"),
        "statusDetails": {"message": strip_log_prefix(r.reason) or message, "trace": _trace(r), "known": False,
                          "flaky": outcome == "flaky"},
        "stage": "finished", "description": r.caseDesc or "",
        "start": to_int(r.startTime), "stop": max(to_int(r.endTime), to_int(r.startTime)),
        "steps": steps, "labels": labels, "links": [],
        "parameters": [{"name": "attempt", "value": str(r.runTimes), "excluded": True}],
        "attachments": _log_attachment(out, rid, r, write) + _evidence(out, rid, r, write),
    }
    return doc


def _log_attachment(out: Path, rid: str, r: CaseResult, write: Any) -> list[dict[str, str]]:
    """The attempt's log as a text attachment, left out when no step logged anything and the attempt has no
    reason: it would only repeat the result's own steps and statuses, and creating a file costs 50-250 µs of
    CPU on this project's machine kind (two per attempt were most of the report thread's cost)."""
    text = _case_log(r)
    return [_text_attachment(out, rid, "log", f"log: {r.caseName} (attempt {r.runTimes})", text, write)] if text else []


_EVIDENCE_TYPES = {".webm": "video/webm", ".mp4": "video/mp4", ".har": "application/json", ".json": "application/json",
                   ".html": "text/html", ".xml": "text/xml", ".log": "text/plain"}


def _evidence(out: Path, rid: str, r: CaseResult, write: Any = write_if_changed) -> list[dict[str, str]]:
    """The attempt's evidence bundle (``<report_dir>/<ev.dir>/``) copied in as attachments, notes as one text."""
    ev = r.evidence if isinstance(r.evidence, dict) else {}
    found = []
    for f in ev.get("files") or []:
        name = str(f.get("name") or "") if isinstance(f, dict) else ""
        ext = Path(name).suffix.lower()
        if not name or ext not in _EVIDENCE_TYPES or f.get("kind") == "dom-index":
            continue
        source = f"{uuid.uuid5(_NS, f'{rid}|evidence|{name}')}-attachment{ext}"
        if place(out.parent / str(ev.get("dir")) / name, out / source):
            found.append({"name": name, "source": source, "type": _EVIDENCE_TYPES[ext]})
    if ev.get("notes"):
        found.append(_text_attachment(out, rid, "evidence-notes", "evidence notes", "\n".join(map(str, ev["notes"])), write))
    return found


def _trace(r: CaseResult) -> str:
    return "\n".join(f"{t.get('name')}: {step_error(t)}" for t in r.transactionList
                     if isinstance(t, dict) and to_int(t.get("status")) in (Status.FAIL, Status.ERROR))


def _case_log(r: CaseResult) -> str:
    """The attempt's step logs as plain text; "" when there is nothing but statuses to say."""
    parts = [f"{r.caseName} attempt {r.runTimes}: {outcome_of(r)}" + (f" ({r.reason})" if r.reason else "")]
    logged = bool(r.reason)
    for t in r.transactionList:
        if isinstance(t, dict):
            log = html_log_to_text(str(t.get("log") or "")).strip() if t.get("log") else ""
            logged = logged or bool(log)
            parts.append(f"-- {t.get('name')} [{_STEP_STATUS.get(to_int(t.get('status')), '?')}]")
            parts.append(log)
    return "\n".join(parts) if logged else ""


def _text_attachment(out: Path, rid: str, key: str, name: str, text: str, write: Any = write_if_changed) -> dict[str, str]:
    source = f"{uuid.uuid5(_NS, f'{rid}|{key}')}-attachment.txt"
    write(out / source, text)
    return {"name": name, "source": source, "type": "text/plain"}


def _step(meta: TaskReportMeta, out: Path, rid: str, i: int, t: dict[str, Any], report_dir: Path) -> dict[str, Any]:
    detail = submap(t, "detail")
    start = to_int(t.get("startTime"))
    status = _STEP_STATUS.get(to_int(t.get("status")), "broken")
    name = str(t.get("name") or "")
    sub = [_assert_step(v, start) for v in detail.get("validators") or [] if isinstance(v, dict)]
    actions = [a for a in detail.get("actions") or [] if isinstance(a, dict)]
    params = [{"name": "content", "value": str(t.get("content")).strip()}] if str(t.get("content") or "").strip() else []
    if len(actions) == 1:           # the operation itself: its parameters, not a same-named sub-step
        params += [{"name": k, "value": _param(v)} for k, v in (actions[0].get("params") or {}).items() if v]
    else:
        sub += [_action_step(a) for a in actions]
    attachments = []
    shots = step_screenshots(meta, t)
    for n, shot in enumerate(shots):
        rel = f"{ATTACH_DIR}/{shot.name}"
        source = f"{uuid.uuid5(_NS, f'{rid}|{i}|{n}|{rel}')}-attachment.png"
        place(shot, report_dir / rel)            # normally done by write_all already: then a no-op
        if place(report_dir / rel, out / source):
            label = f"screenshot: {name}" + (f" ({n + 1}/{len(shots)})" if len(shots) > 1 else "")
            attachments.append({"name": label, "source": source, "type": "image/png"})
    return {"name": name, "status": status,
            "statusDetails": {"message": step_error(t) if status in ("failed", "broken") else ""},
            "stage": "finished", "start": start, "stop": start + step_ms(t),
            "steps": sub, "attachments": attachments, "parameters": params}


def _param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _assert_step(v: dict[str, Any], start: int) -> dict[str, Any]:
    name = f"{v.get('check')} {v.get('type')} {v.get('expected')!r} (actual {v.get('actual')!r})"
    return {"name": name, "status": "passed" if v.get("result") else "failed",
            "statusDetails": {"message": str(v.get("message") or "")}, "stage": "finished",
            "start": start, "stop": start, "steps": [], "attachments": [], "parameters": []}


def _action_step(a: dict[str, Any]) -> dict[str, Any]:
    start = to_int(a.get("start_time"))
    return {"name": str(a.get("method") or "action"), "status": "broken" if a.get("error") else "passed",
            "statusDetails": {"message": str(a.get("error") or "")}, "stage": "finished",
            "start": start, "stop": start + to_int(a.get("elapsed_ms")), "steps": [], "attachments": [],
            "parameters": [{"name": "params", "value": json.dumps(a.get("params"), ensure_ascii=False,
                                                                   default=str)}]}


def _write_environment(out: Path, meta: TaskReportMeta) -> None:
    lines = [f"taskId={meta.task_id}", f"engine=liuma-pipeline {meta.engine_version}",
             f"engineCode={meta.engine_code}", f"startedAt={meta.started_at.isoformat()}",
             f"python={platform.python_implementation()} {platform.python_version()}",
             f"platform={platform.system()}-{platform.machine()}"]
    # .properties is ISO-8859-1 with \uXXXX escapes: non-Latin-1 text (a Chinese task name) must be escaped
    lines = ["".join(c if ord(c) < 128 else f"\\u{ord(c):04x}" for c in line) for line in lines]
    write_if_changed(out / "environment.properties", "\n".join(lines) + "\n")
