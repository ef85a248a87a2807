"""``junit.xml`` for CI (Jenkins, GitLab, GitHub actions): anchors.md §5.2 shape plus Surefire's rerun elements.

One ``<testsuite>`` per collection, one ``<testcase classname=<collection>>`` per case (not per attempt).
The final attempt decides the verdict: failed -> ``<failure>``, error/broken -> ``<error>`` (product vs
test/infra defect, as Allure's failed/broken), skipped -> ``<skipped>``. Earlier attempts follow Surefire
(§4.3): a case that finally passed keeps them as ``<flakyFailure>``/``<flakyError>``; a case that never
passed reports its first attempt as ``<failure>``/``<error>`` and each rerun as ``<rerunFailure>``/
``<rerunError>``. Step logs (HTML stripped) go to ``<system-out>`` with ``[[ATTACHMENT|path]]`` lines for
screenshots (Jenkins attachments plugin), the path relative to the report directory (``attachments/...``).

The file validates against both consumers' schemas (tests feed a real run to them): Jenkins xUnit's
``junit-10.xsd`` for the whole file (so ``<testsuites>`` carries only name/tests/failures/errors/time) and
Maven Surefire's ``surefire-test-report-3.0.xsd`` for each ``<testsuite>`` (so no ``hostname``/``timestamp``
attributes: they are ``<property>`` rows instead, and a testcase's children follow Surefire's order
failure, rerunFailure, flakyFailure, skipped, error, rerunError, flakyError, system-out). The root's skipped
count is left out (xUnit refuses it); each suite's ``skipped`` is there.
"""
from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.models import CaseResult, Status
from stages.aggregator.writers._common import (
    Redactor,
    atomic_write,
    group_attempts,
    html_log_to_text,
    outcome_of,
    prepare,
    step_attachments,
    step_error,
    step_ms,
    to_int,
    xml_safe,
)

if TYPE_CHECKING:
    from stages.aggregator.writers import TaskReportMeta

__all__ = ["write_junit", "build_junit", "testcase_text", "JUNIT_FILE"]

JUNIT_FILE = "junit.xml"
_FAILED = ("failed",)
_ERRORED = ("error", "broken")
_ORDER = ("failure", "rerunFailure", "flakyFailure", "skipped", "error", "rerunError", "flakyError")   # Surefire 3.0
_STEP_STATUS: dict[int, str] = {Status.PASS: "PASS", Status.FAIL: "FAIL", Status.ERROR: "ERROR", Status.SKIP: "SKIP"}


def write_junit(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> Path:
    """Write ``<report_dir>/junit.xml`` atomically; returns its path."""
    root = build_junit(meta, results)
    ET.indent(root, space=" ")
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
    return atomic_write(Path(report_dir) / JUNIT_FILE, text)


def build_junit(meta: TaskReportMeta, results: list[CaseResult]) -> ET.Element:
    """The ``<testsuites>`` element (secrets already masked)."""
    groups = group_attempts(prepare(meta, results))
    suites: dict[str, list[list[CaseResult]]] = {}
    for attempts in groups:
        suites.setdefault(attempts[-1].collectionId, []).append(attempts)
    root = ET.Element("testsuites", name=xml_safe(Redactor(meta.secrets).text(meta.task_name)))
    for name, cases in suites.items():
        root.append(_suite(meta, name, cases))
    _sum_counts(root, list(root))
    return root


def _suite(meta: TaskReportMeta, name: str, cases: list[list[CaseResult]]) -> ET.Element:
    suite = ET.Element("testsuite", name=xml_safe(name))
    props = ET.SubElement(suite, "properties")
    start = min(to_int(a[0].startTime) for a in cases)
    tz = meta.started_at.tzinfo or UTC
    for key, value in (("taskId", meta.task_id), ("engineVersion", meta.engine_version),
                       ("timestamp", datetime.fromtimestamp(start / 1000, tz=tz).isoformat(timespec="seconds")),
                       ("hostname", socket.gethostname())):
        ET.SubElement(props, "property", name=key, value=xml_safe(value))
    seen: dict[str, int] = {}
    for attempts in cases:
        suite.append(_testcase(meta, name, attempts, seen))
    _sum_counts(suite, suite.findall("testcase"))
    return suite


def _sum_counts(elem: ET.Element, children: list[ET.Element]) -> None:
    """tests/failures/errors/skipped/time of a suite from its testcases, or of the root from its suites."""
    if elem.tag == "testsuite":
        counts = {
            "tests": len(children),
            "failures": sum(1 for c in children if c.find("failure") is not None),
            "errors": sum(1 for c in children if c.find("error") is not None),
            "skipped": sum(1 for c in children if c.find("skipped") is not None),
        }
    else:       # the root: xUnit's junit-10.xsd has no "skipped" on <testsuites>
        counts = {k: sum(int(c.get(k, "0")) for c in children) for k in ("tests", "failures", "errors")}
    for key, value in counts.items():
        elem.set(key, str(value))
    elem.set("time", f"{sum(float(c.get('time', '0')) for c in children):.3f}")


def _testcase(meta: TaskReportMeta, suite: str, attempts: list[CaseResult], seen: dict[str, int]) -> ET.Element:
    final = attempts[-1]
    name = final.caseName or final.caseId
    seen[name] = seen.get(name, 0) + 1
    if seen[name] > 1:   # CI tools merge same-named cases of a suite; keep them apart
        name = f"{name} [{final.index}]"
    seconds = max(0, to_int(final.endTime) - to_int(final.startTime)) / 1000
    case = ET.Element("testcase", classname=xml_safe(suite), name=xml_safe(name), time=f"{seconds:.3f}")
    outcome = outcome_of(final)
    earlier = attempts[:-1]
    if outcome in _FAILED + _ERRORED:
        bad = [a for a in attempts if outcome_of(a) in _FAILED + _ERRORED]
        first, reruns = bad[0], bad[1:]
        case.append(_problem(meta, first, "failure" if outcome_of(first) in _FAILED else "error", nested=False))
        for a in reruns:
            case.append(_problem(meta, a, "rerunFailure" if outcome_of(a) in _FAILED else "rerunError", nested=True))
    elif outcome == "skipped":
        ET.SubElement(case, "skipped", message=xml_safe(final.reason or "skipped"))
    else:
        for a in earlier:
            if outcome_of(a) in _FAILED + _ERRORED:
                tag = "flakyFailure" if outcome_of(a) in _FAILED else "flakyError"
                case.append(_problem(meta, a, tag, nested=True))
    case[:] = sorted(case, key=lambda e: _ORDER.index(e.tag))      # stable: attempts keep their order
    out = ET.SubElement(case, "system-out")
    out.text = xml_safe(_attempt_log(meta, final))
    return case


def testcase_text(meta: TaskReportMeta, suite: str, attempts: list[CaseResult],
                  seen: dict[str, int]) -> tuple[str, tuple[bool, bool, bool], str]:
    """One ``<testcase>`` as the text ``write_junit`` gives it inside its suite (indented at level 2), its
    (failure, error, skipped) flags and its ``time``. A case whose every attempt passed (most of a run) is
    formatted directly: building, indenting and serialising an element tree per case was most of the cost."""
    final = attempts[-1]
    if all(outcome_of(a) in _PLAIN for a in attempts):
        name = final.caseName or final.caseId
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} [{final.index}]"
        seconds = f"{max(0, to_int(final.endTime) - to_int(final.startTime)) / 1000:.3f}"
        log = xml_safe(_attempt_log(meta, final))
        out = f"<system-out>{_cdata(log)}</system-out>" if log else "<system-out />"
        return (f'<testcase classname="{_attr(xml_safe(suite))}" name="{_attr(xml_safe(name))}" time="{seconds}">'
                f"\n   {out}\n  </testcase>", (False, False, False), seconds)
    elem = _testcase(meta, suite, attempts, seen)
    flags = (elem.find("failure") is not None, elem.find("error") is not None, elem.find("skipped") is not None)
    time = elem.get("time", "0.000")
    ET.indent(elem, space=" ", level=2)
    return ET.tostring(elem, encoding="unicode"), flags, time


_PLAIN = frozenset(("passed", "flaky"))     # attempts all of these: the <testcase> holds only its <system-out>
_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#09;"})
_CDATA = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _attr(text: str) -> str:
    """ElementTree's attribute escaping."""
    return text.translate(_ATTR)


def _cdata(text: str) -> str:
    """ElementTree's text escaping."""
    return text.translate(_CDATA)


def _problem(meta: TaskReportMeta, attempt: CaseResult, tag: str, *, nested: bool) -> ET.Element:
    """A failure-like element; Surefire's rerun/flaky ones carry their own stackTrace and system-out."""
    message = _message(attempt)
    elem = ET.Element(tag, message=xml_safe(message), type=xml_safe(outcome_of(attempt)))
    detail = xml_safe(_failure_detail(attempt))
    if nested:
        ET.SubElement(elem, "stackTrace").text = detail
        ET.SubElement(elem, "system-out").text = xml_safe(_attempt_log(meta, attempt))
    else:
        elem.text = detail
    return elem


def _message(attempt: CaseResult) -> str:
    for step in attempt.transactionList:
        if isinstance(step, dict) and to_int(step.get("status")) in (Status.FAIL, Status.ERROR):
            return f"attempt {attempt.runTimes}: {step.get('name')}: {step_error(step)}"
    return f"attempt {attempt.runTimes}: {attempt.reason or outcome_of(attempt)}"


def _failure_detail(attempt: CaseResult) -> str:
    lines = [f"attempt {attempt.runTimes} {outcome_of(attempt)}" + (f": {attempt.reason}" if attempt.reason else "")]
    for step in attempt.transactionList:
        if isinstance(step, dict) and to_int(step.get("status")) in (Status.FAIL, Status.ERROR):
            lines.append(f"step {step.get('name')!s}: {step_error(step)}")
    return "\n".join(lines)


def _attempt_log(meta: TaskReportMeta, attempt: CaseResult) -> str:
    """Plain-text step logs of one attempt, screenshot paths as ``[[ATTACHMENT|path]]`` lines."""
    parts = [f"== {attempt.caseName} (attempt {attempt.runTimes}, {outcome_of(attempt)}) =="]
    if attempt.reason:
        parts.append(f"reason: {attempt.reason}")
    for step in attempt.transactionList:
        if isinstance(step, dict):
            parts.append(_step_text(meta, step))
    return "\n".join(parts)


def _step_text(meta: TaskReportMeta, step: dict[str, Any]) -> str:
    status = _STEP_STATUS.get(to_int(step.get("status")), str(step.get("status")))
    lines = [f"-- [{status}] {step.get('name')!s} ({step_ms(step)} ms)"]
    log = html_log_to_text(str(step.get("log") or "")).strip()
    if log:
        lines.append(log)
    lines.extend(f"[[ATTACHMENT|{p}]]" for p in step_attachments(meta, step))
    return "\n".join(lines)
