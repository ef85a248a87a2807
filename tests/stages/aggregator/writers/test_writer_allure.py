"""allure-results/: one result per attempt, status mapping, retries grouped, steps, attachments, containers."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.models import CaseResult
from stages.aggregator.writers import TaskReportMeta
from stages.aggregator.writers.allure import write_allure


@pytest.fixture
def out(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> Path:
    path = write_allure(report_dir, meta, results)
    assert path == report_dir / "allure-results"
    return path


def _results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*-result.json"))]


def _by_name(out: Path, name: str) -> list[dict[str, Any]]:
    docs = [d for d in _results(out) if d["name"] == name]
    return sorted(docs, key=lambda d: int(d["parameters"][0]["value"]))


def test_one_result_per_attempt_named_by_uuid(out: Path) -> None:
    docs = _results(out)
    assert len(docs) == 8
    for d in docs:
        assert (out / f"{d['uuid']}-result.json").is_file()
        assert d["stage"] == "finished" and d["stop"] >= d["start"] > 0
        labels = {(lbl["name"], lbl["value"]) for lbl in d["labels"]}
        assert ("parentSuite", "nightly ******") in labels


@pytest.mark.parametrize("name, statuses", [
    ("API passes", ["passed"]), ("API fails", ["failed", "failed"]), ("Web flaky", ["broken", "passed"]),
    ("App broken", ["broken"]), ("Web skipped", ["skipped"]), ("API error", ["broken"]),
])
def test_status_mapping(out: Path, name: str, statuses: list[str]) -> None:
    assert [d["status"] for d in _by_name(out, name)] == statuses


def test_retries_share_history_id(out: Path) -> None:
    fails = _by_name(out, "API fails")
    flaky = _by_name(out, "Web flaky")
    assert fails[0]["historyId"] == fails[1]["historyId"] and fails[0]["uuid"] != fails[1]["uuid"]
    assert flaky[0]["historyId"] == flaky[1]["historyId"] != fails[0]["historyId"]
    assert flaky[1]["statusDetails"]["flaky"] is True and flaky[0]["statusDetails"]["flaky"] is False
    assert fails[0]["fullName"] == "col-api.API fails"
    assert {(lbl["name"], lbl["value"]) for lbl in _by_name(out, "API passes")[0]["labels"]} >= {
        ("suite", "col-api"), ("tag", "smoke")}


def test_steps_with_substeps_and_status_details(out: Path) -> None:
    passed = _by_name(out, "API passes")[0]
    assert [s["name"] for s in passed["steps"]] == ["get item", "list"]
    assert [s["status"] for s in passed["steps"][0]["steps"]] == ["passed", "passed"]
    assert passed["steps"][0]["stop"] - passed["steps"][0]["start"] == 12
    failed = _by_name(out, "API fails")[1]
    assert failed["steps"][0]["status"] == "failed"
    assert failed["steps"][0]["statusDetails"]["message"] == "code mismatch run 2"
    assert failed["statusDetails"]["message"] == "code mismatch run 2"
    broken = _by_name(out, "App broken")[0]
    assert broken["statusDetails"]["message"].startswith("executor-2 crashed")


def test_screenshot_copied_as_attachment(out: Path, meta: TaskReportMeta, K: SimpleNamespace) -> None:
    step = _by_name(out, "Web flaky")[0]["steps"][0]
    assert step["status"] == "broken"
    assert [s["name"] for s in step["steps"]] == ["click", "input"]
    (att,) = step["attachments"]
    assert att["type"] == "image/png" and att["source"].endswith("-attachment.png")
    original = meta.storage_root / "image" / K.TASK / f"{K.SHOT_FLAKY}.png"
    assert (out / att["source"]).read_bytes() == original.read_bytes()
    log = _by_name(out, "API error")[0]["attachments"][0]
    text = (out / log["source"]).read_text(encoding="utf-8")
    assert "Bearer ******" in text and K.SECRET not in text


def test_container_per_collection(out: Path) -> None:
    containers = [json.loads(p.read_text(encoding="utf-8")) for p in out.glob("*-container.json")]
    assert sorted(c["name"] for c in containers) == ["col-api", "col-app", "col-web"]
    by_uuid = {d["uuid"]: d for d in _results(out)}
    api = next(c for c in containers if c["name"] == "col-api")
    assert len(api["children"]) == 4
    assert {by_uuid[u]["labels"][0]["value"] for u in api["children"]} == {"col-api"}


def test_rewrite_replaces_instead_of_adding(out: Path, report_dir: Path, meta: TaskReportMeta,
                                            results: list[CaseResult]) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    write_allure(report_dir, meta, results)
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert after == before                       # same names, unchanged files not rewritten
    changed = [r for r in results if r.caseId != "api-pass"]
    passed = next(r for r in results if r.caseId == "api-pass")
    write_allure(report_dir, meta, [*changed, CaseResult(**{**passed.to_dict(), "caseName": "renamed"})])
    assert set(p.name for p in out.iterdir()) == set(before)
    assert [d["name"] for d in _results(out) if d["historyId"] == _by_name(out, "renamed")[0]["historyId"]] == [
        "renamed"]


def test_attachments_named_for_people(out: Path) -> None:
    step = _by_name(out, "Web flaky")[0]["steps"][0]
    assert [a["name"] for a in step["attachments"]] == ["screenshot: click go"]
    assert _by_name(out, "API fails")[1]["attachments"][0]["name"] == "log: API fails (attempt 2)"


def test_single_action_ui_step_is_not_repeated_as_its_own_substep(report_dir: Path, meta: TaskReportMeta,
                                                                  results: list[CaseResult]) -> None:
    flaky = next(r for r in results if r.caseId == "web-flaky" and r.runTimes == 1)
    step = dict(flaky.transactionList[0])
    step["detail"] = {"actions": [step["detail"]["actions"][0]], "error": "2026-12-01 23:38:37.5 - Error - not found"}
    one = CaseResult(**{**flaky.to_dict(), "transactionList": [step]})
    doc = next(d for d in _results(write_allure(report_dir, meta, [one])))
    (s,) = doc["steps"]
    assert s["status"] == "broken" and s["steps"] == []                  # no inner "passed" twin
    assert {p["name"]: p["value"] for p in s["parameters"]} == {"by": "id", "value": "go"}
    assert s["statusDetails"]["message"] == "not found"                  # log-line prefix stripped
    assert s["stop"] - s["start"] == 40                                   # the action's duration, not 0


def test_categories_executor_and_environment(out: Path) -> None:
    cats = json.loads((out / "categories.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in cats][0] == "Product defects (assertion failed)"
    assert {s for c in cats for s in c["matchedStatuses"]} == {"failed", "broken", "skipped"}
    ex = json.loads((out / "executor.json").read_text(encoding="utf-8"))
    assert ex["name"] == "liuma-pipeline" and ex["buildName"] == "nightly ******"
    env = (out / "environment.properties").read_text(encoding="ascii")
    assert "taskId=task-1" in env and "engineCode=engine-abc" in env


def test_the_log_attachment_is_left_out_when_it_would_only_repeat_the_statuses(report_dir: Path, meta: TaskReportMeta) -> None:
    def attempt(case_id: str, log: str, reason: str = "") -> CaseResult:
        return CaseResult(status=0, startTime=1, endTime=2, collectionId="c", caseId=case_id, caseType="API",
                          caseName=case_id, index=1, runTimes=1, reason=reason, transactionList=[
                              {"id": "s", "name": "step", "content": "/x", "log": log, "during": 0, "status": 0}])
    out = write_allure(report_dir, meta, [attempt("quiet", ""), attempt("markup-only", "<br><b></b>"),
                                          attempt("logged", "GET /x -> 200"), attempt("reasoned", "", "retried: flaky")])
    names = {name: [a["name"] for a in _by_name(out, name)[0]["attachments"]]
             for name in ("quiet", "markup-only", "logged", "reasoned")}
    assert names == {"quiet": [], "markup-only": [], "logged": ["log: logged (attempt 1)"],
                     "reasoned": ["log: reasoned (attempt 1)"]}
    texts = sorted(p.read_text(encoding="utf-8") for p in out.glob("*-attachment.txt"))
    assert texts == ["logged attempt 1: passed\n-- step [passed]\nGET /x -> 200",
                     "reasoned attempt 1: passed (retried: flaky)\n-- step [passed]\n"]
    assert len(list(out.glob("*-attachment.txt"))) == 2       # one file per attempt that has something to say
