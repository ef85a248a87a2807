"""Every report format of a REAL run (``bin/liuma-pipeline run`` of the mixed suite against the demo server),
fed to its real consumer: the HttpRunner-shaped JSON Schema plus HttpRunner's invariants, both JUnit XSDs
(Jenkins xUnit, Maven Surefire) through lxml, ``allure generate`` (Allure 2 on the JRE), and a zipped copy of
the report directory, moved away from storage, in which every link must still resolve."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.stages.aggregator.writers.consumers import (
    allure_expected,
    allure_generate,
    allure_widget,
    junit_problems,
    summary_problems,
)
from tests.system.engine import start_run, write_config
from tests.system.mixed_suite import TASK_ID, write_mixed_suite
from tests.system.suites import api_case, write_suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, demo_url: str) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("mixed")
    suite = write_mixed_suite(tmp / "suite", demo_url, tmp)
    proc = start_run(suite, write_config(tmp, api_workers=2, browsers=1))
    out, err = proc.communicate(timeout=180)
    report = tmp / "reports" / TASK_ID
    assert (report / "summary.json").is_file(), (out, err)
    return {"tmp": tmp, "report": report, "code": proc.returncode, "out": out, "err": err,
            "summary": json.loads((report / "summary.json").read_text(encoding="utf-8"))}


def test_the_run_has_every_outcome(run: dict[str, Any]) -> None:
    tc = run["summary"]["stat"]["testcases"]
    assert run["code"] == 1, run["out"]
    assert {k: tc[k] for k in ("total", "passed", "failed", "error", "broken", "skipped", "flaky")} == {
        "total": 9, "passed": 2, "failed": 2, "error": 1, "broken": 1, "skipped": 2, "flaky": 1}, tc
    assert tc["attempts"] > tc["total"]                       # retries happened


def test_summary_is_httprunner_valid_and_carries_every_request(run: dict[str, Any]) -> None:
    doc = run["summary"]
    assert summary_problems(doc) == []
    assert doc["success"] is False
    assert doc["platform"]["httprunner_version"] and doc["platform"]["go_version"]
    every = [x for d in doc["details"] for x in (*d["retries"], d)]
    assert len(every) == doc["stat"]["testcases"]["attempts"]
    sent = 0
    for d in every:
        if d["case_type"] != "API":
            continue
        for rec in d["records"]:
            if not rec["step_type"].startswith("request") or rec.get("skipped"):
                continue
            pair = (rec.get("data") or {}).get("req_resps")
            if d["case_id"] == "hang" or (d["case_id"], d["attempt"]) == ("flaky", 1):
                assert pair is None                           # never sent: its pre-script hung / raised
                continue
            assert pair is not None, (d["case_id"], rec)
            assert pair["request"]["method"] == "GET" and pair["request"]["url"].startswith("http://127.0.0.1")
            if d["case_id"] == "refused":
                assert pair["response"] is None               # transport error: no response, as Go
            else:
                assert isinstance(pair["response"]["status_code"], int) and isinstance(pair["response"]["body"], str)
            sent += 1
    assert sent >= 6


def test_junit_validates_against_xunit_and_surefire(run: dict[str, Any]) -> None:
    assert junit_problems(run["report"] / "junit.xml") == []


def test_allure_generate_counts_equal_the_results(run: dict[str, Any], tmp_path: Path) -> None:
    results = run["report"] / "allure-results"
    widgets = allure_generate(results, tmp_path / "allure-report")
    expected = allure_expected(results)
    assert widgets["statistic"] == expected
    tc = run["summary"]["stat"]["testcases"]
    assert expected == {"total": tc["total"], "passed": tc["passed"] + tc["flaky"], "failed": tc["failed"],
                        "broken": tc["error"] + tc["broken"], "skipped": tc["skipped"], "unknown": 0}
    for p in results.glob("*-result.json"):
        doc = json.loads(p.read_text(encoding="utf-8"))
        for step in doc["steps"]:
            assert all(s["name"] != step["name"] for s in step["steps"]), step      # no same-named twin
            assert not re.match(r"\d{4}-\d\d-\d\d ", step["statusDetails"]["message"])  # no log-line prefix
        assert all(not re.fullmatch(r"[0-9a-f-]{20,}", a["name"]) for s in doc["steps"] for a in s["attachments"])
    # the side files are read by Allure, not just present: each one shows up in its widget
    report = tmp_path / "allure-report"
    assert [e["name"] for e in allure_widget(report, "executors")] == ["liuma-pipeline"]
    cats = {c["name"]: c["statistic"]["total"] for c in allure_widget(report, "categories")["items"]}
    assert cats["Product defects (assertion failed)"] == tc["failed"] and cats["Timeouts"] == 1
    env = {e["name"]: e["values"] for e in allure_widget(report, "environment")}
    assert env["taskId"] == [TASK_ID]


def _links(report: Path) -> dict[str, list[str]]:
    """Every file link each format holds, as written (relative to the report directory)."""
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    shots = [s for d in summary["details"] for x in (*d["retries"], d) for r in x["records"]
             if isinstance(r.get("attachments"), dict) for s in r["attachments"].get("screenshots", [])]
    junit = re.findall(r"\[\[ATTACHMENT\|(.+?)\]\]", (report / "junit.xml").read_text(encoding="utf-8"))
    allure = []
    for p in (report / "allure-results").glob("*-result.json"):
        doc = json.loads(p.read_text(encoding="utf-8"))
        allure += [f"allure-results/{a['source']}" for s in [doc, *doc["steps"]] for a in s["attachments"]]
    return {"summary": shots, "junit": junit, "allure": allure}


def _html_images(page: Path) -> list[tuple[str, str, int]]:
    """Open report.html in headless Chromium, open every case, and return (case, src as written, natural
    width of the loaded image) for each screenshot: a broken link loads with width 0."""
    from tests.stages.aggregator.writers.browser import chrome
    from tests.stages.aggregator.writers.browser import open_report as _open

    out = []
    with chrome() as driver:
        _open(driver, page)
        n = driver.execute_script("return document.querySelectorAll('#spacer .row').length")
        for k in range(n):
            driver.execute_script("document.querySelectorAll('#spacer .row')[arguments[0]].click()", k)
            for img in driver.find_elements(By.CSS_SELECTOR, "#detail a.shot img"):
                deadline = time.monotonic() + 5
                while not driver.execute_script("return arguments[0].complete", img) and time.monotonic() < deadline:
                    time.sleep(0.02)
                out.append((driver.find_element(By.CSS_SELECTOR, "#detail h2").text, str(img.get_attribute("src")),
                            int(driver.execute_script("return arguments[0].naturalWidth", img))))
    return out


def test_zipped_report_is_whole_without_storage(run: dict[str, Any], tmp_path: Path) -> None:
    report = run["report"]
    archive = tmp_path / "report.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in report.rglob("*"):
            z.write(p, p.relative_to(report.parent))
    shutil.rmtree(run["tmp"] / "storage" / "image", ignore_errors=True)     # the janitor's 24 h cleanup
    moved = tmp_path / "elsewhere"
    with zipfile.ZipFile(archive) as z:
        z.extractall(moved)
    copy = moved / TASK_ID
    links = _links(copy)
    assert len(links["summary"]) >= 3 and links["junit"]
    assert len([x for x in links["allure"] if x.endswith(".png")]) >= 3
    for fmt, paths in links.items():
        for rel in paths:
            assert not rel.startswith("/") and ".." not in rel, (fmt, rel)
            target = copy / rel
            assert target.is_file() and target.stat().st_size > 0, (fmt, rel)
    pngs = {p.name for p in (copy / "attachments").iterdir()}
    assert {Path(s).name for s in links["summary"]} <= pngs
    images = _html_images(copy / "report.html")
    assert {c for c, _, _ in images} == {"中文页面", "标题不符"}
    for case, src, width in images:
        assert src.startswith((copy / "attachments").as_uri()) and width > 0, (case, src)


def test_all_disabled_run_is_a_success_in_summary_and_exit_code(tmp_path: Path, demo_url: str) -> None:
    """Every case skipped on purpose (enabled: false) is the one all-skipped run that succeeds (pipeline.models'
    rule); an accidental all-skip (a stop before dispatch) is covered in tests/system/test_run_stop.py."""
    suite = write_suite(tmp_path / "suite", {"c": [api_case("a", demo_url, "/api/health"),
                                                   api_case("b", demo_url, "/api/health")]},
                        extra={"a": {"enabled": False}, "b": {"enabled": False}})
    proc = start_run(suite, write_config(tmp_path, api_workers=1, browsers=0))
    out, err = proc.communicate(timeout=60)
    doc = json.loads((tmp_path / "reports" / "t-1" / "summary.json").read_text(encoding="utf-8"))
    assert summary_problems(doc) == []
    assert doc["stat"]["testcases"]["skipped"] == 2 and doc["success"] is True, (out, err)
    assert proc.returncode == 0, (out, err)


def test_allure_is_installed_project_local() -> None:
    proc = subprocess.run([str(Path(__file__).resolve().parents[2] / "tools/allure/node_modules/.bin/allure"),
                           "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().startswith("2."), (proc.stdout, proc.stderr)
