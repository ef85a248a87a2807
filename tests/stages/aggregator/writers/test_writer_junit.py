"""junit.xml parsed back with ElementTree: suites, counts, failure vs error, Surefire flaky/rerun elements, logs;
and validated with both consumers' XSDs (Jenkins xUnit, Maven Surefire)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.models import CaseResult
from stages.aggregator.writers import TaskReportMeta, write_all
from stages.aggregator.writers.junit import write_junit
from tests.stages.aggregator.writers.consumers import junit_problems


@pytest.fixture
def root(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> ET.Element:
    path = write_junit(report_dir, meta, results)
    assert path.read_text(encoding="utf-8").startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.parse(path).getroot()


def _case(root: ET.Element, name: str) -> ET.Element:
    found = root.findall(f".//testcase[@name='{name}']")
    assert len(found) == 1, name
    return found[0]


def test_suites_and_counts(root: ET.Element) -> None:
    assert root.tag == "testsuites" and root.get("name") == "nightly ******"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"col-api", "col-web", "col-app"}
    counts = {n: tuple(int(s.get(k, "-1")) for k in ("tests", "failures", "errors", "skipped"))
              for n, s in suites.items()}
    assert counts == {"col-api": (3, 1, 1, 0), "col-web": (2, 0, 0, 1), "col-app": (1, 0, 1, 0)}
    assert tuple(int(root.get(k, "-1")) for k in ("tests", "failures", "errors")) == (6, 1, 2)
    assert set(root.attrib) == {"name", "tests", "failures", "errors", "time"}       # all xUnit's junit-10 allows
    for s in suites.values():
        assert "hostname" not in s.attrib and "timestamp" not in s.attrib              # Surefire 3.0 refuses them
        props = {p.get("name"): p.get("value") for p in s.iter("property")}
        assert props["timestamp"].startswith("2024-01-16T") and props["hostname"]
    for s in suites.values():
        for case in s.findall("testcase"):
            assert case.get("classname") == s.get("name")
    assert float(_case(root, "API error").get("time", "0")) == 30.0


def test_passed_case_has_no_problem_element(root: ET.Element) -> None:
    case = _case(root, "API passes")
    assert [c.tag for c in case] == ["system-out"]


def test_failure_vs_error(root: ET.Element) -> None:
    failure = _case(root, "API fails").find("failure")
    assert failure is not None and failure.get("type") == "failed"
    assert failure.get("message") == "attempt 1: check code: code mismatch run 1"
    error = _case(root, "API error").find("error")
    assert error is not None and "connection refused" in (error.get("message") or "")
    broken = _case(root, "App broken").find("error")
    assert broken is not None and broken.get("type") == "broken"
    assert "executor-2 crashed" in (broken.get("message") or "")


def test_rerun_that_never_passed(root: ET.Element) -> None:
    case = _case(root, "API fails")
    reruns = case.findall("rerunFailure")
    assert len(case.findall("failure")) == 1 and len(reruns) == 1
    assert "code mismatch run 2" in (reruns[0].get("message") or "")
    assert reruns[0].find("stackTrace") is not None and reruns[0].find("system-out") is not None


def test_validates_against_xunit_and_surefire_schemas(report_dir: Path, meta: TaskReportMeta,
                                                       results: list[CaseResult]) -> None:
    path = write_junit(report_dir, meta, results)
    assert junit_problems(path) == []


def test_schema_check_catches_what_xunit_refuses(report_dir: Path, meta: TaskReportMeta,
                                                results: list[CaseResult]) -> None:
    path = write_junit(report_dir, meta, results)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("<testsuites ", '<testsuites skipped="1" ', 1), encoding="utf-8")
    assert any(p.startswith("xunit:") and "skipped" in p for p in junit_problems(path))


def test_flaky_case_passes_with_flaky_error(root: ET.Element, meta: TaskReportMeta, K: SimpleNamespace,
                                            report_dir: Path, results: list[CaseResult]) -> None:
    case = _case(root, "Web flaky")
    assert case.find("failure") is None and case.find("error") is None
    flaky = case.findall("flakyError")
    assert len(flaky) == 1 and "element not found: #go" in (flaky[0].get("message") or "")
    out = flaky[0].findtext("system-out") or ""
    assert f"[[ATTACHMENT|attachments/{K.SHOT_FLAKY}.png]]" in out          # relative to the report dir
    write_all(report_dir, meta, results)
    paths = re.findall(r"\[\[ATTACHMENT\|(.+?)\]\]", out)
    assert paths and all((report_dir / p).is_file() for p in paths)


def test_skipped_case(root: ET.Element) -> None:
    skipped = _case(root, "Web skipped").find("skipped")
    assert skipped is not None and skipped.get("message") == "dependency web-flaky failed"


def test_system_out_is_plain_text_redacted_and_xml_safe(root: ET.Element, K: SimpleNamespace) -> None:
    api = _case(root, "API passes").findtext("system-out") or ""
    assert "<br>" not in api and "<span>" not in api
    assert "GET http://127.0.0.1/api/items/1\n" in api and '请求体: {"q": "<x>"}' in api   # body text kept
    err = _case(root, "API error").findtext("system-out") or ""
    assert K.SECRET not in err and "Bearer ******" in err
    assert "\x01" not in err and "ctl" in err


def test_a_passing_testcase_formatted_directly_is_what_elementtree_writes(meta: TaskReportMeta) -> None:
    from stages.aggregator.writers.junit import _testcase, testcase_text

    def attempt(run: int, outcome: str, log: str) -> CaseResult:
        return CaseResult(status=0, startTime=1000, endTime=3456, collectionId='c<1>&"x"', caseId="k",
                          caseType="API", caseName='名 <a href="x">&\t\r\n', index=2, runTimes=run, outcome=outcome,
                          transactionList=[{"id": "s", "name": "s&<>", "content": "", "log": log, "during": 5,
                                            "status": 0}])
    cases = [[attempt(1, "passed", "")], [attempt(1, "passed", "a < b && c > d\x01 \"q\" 'p'")],
             [attempt(1, "failed", "x"), attempt(2, "flaky", "<br>ok")]]
    for attempts in cases:
        for seen in ({}, {attempts[-1].caseName: 1}):          # first of its name, and a repeated name
            elem = _testcase(meta, attempts[-1].collectionId, attempts, dict(seen))
            ET.indent(elem, space=" ", level=2)
            text, flags, seconds = testcase_text(meta, attempts[-1].collectionId, attempts, dict(seen))
            assert text == ET.tostring(elem, encoding="unicode")
            assert seconds == elem.get("time") == "2.456"
            assert flags == tuple(elem.find(t) is not None for t in ("failure", "error", "skipped"))
