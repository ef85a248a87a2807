"""summary.json: schema (exact JSON types), units, counts, Go key mapping, redaction, crash-safe rewrite."""
from __future__ import annotations

import copy
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.models import CaseResult
from stages.aggregator.writers import TaskReportMeta
from stages.aggregator.writers.summary import write_summary
from tests.stages.aggregator.writers.consumers import summary_problems
from tests.stages.aggregator.writers.consumers import summary_validator as _validator


@pytest.fixture
def summary(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> dict[str, Any]:
    path = write_summary(report_dir, meta, results)
    assert path == report_dir / "summary.json"
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _detail(summary: dict[str, Any], case_id: str, attempt: int = 1) -> dict[str, Any]:
    every = [x for d in summary["details"] for x in (*d["retries"], d)]
    return next(d for d in every if d["case_id"] == case_id and d["attempt"] == attempt)


def test_summary_validates_against_schema_and_httprunner_invariants(summary: dict[str, Any]) -> None:
    assert summary_problems(summary) == []


def test_invariant_check_catches_attempts_counted_as_cases(summary: dict[str, Any]) -> None:
    doc = copy.deepcopy(summary)
    doc["details"].append(copy.deepcopy(doc["details"][0]["retries"][0] if doc["details"][0]["retries"]
                                        else doc["details"][0]))
    assert any("len(details)" in p for p in summary_problems(doc))


@pytest.mark.parametrize("path, bad", [
    (("details", 0, "records", 0, "elapsed_ms"), 1.5),               # Go int64: a float fails to unmarshal
    (("details", 0, "records", 0, "start_time"), "1705392000010"),
    (("time", "start_at"), 1705392000.0),                             # Python dialect epoch float, not Go's
    (("time", "start_at"), "2024-01-16 16:00:00"),                    # not RFC 3339
    (("stat", "testcases", "total"), 6.0),
    (("details", 0, "time", "duration"), "1.5"),
    (("stat", "teststeps", "actions"), {"click": 1.0}),
])
def test_schema_rejects_wrong_types(summary: dict[str, Any], path: tuple[Any, ...], bad: Any) -> None:
    doc = copy.deepcopy(summary)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    assert list(_validator().iter_errors(doc)), f"schema accepted {path} = {bad!r}"


def test_root_time_stat_and_platform(summary: dict[str, Any]) -> None:
    start = datetime.fromisoformat(summary["time"]["start_at"])
    assert start.utcoffset() == timedelta(hours=8)
    assert summary["time"]["duration"] == 90.0 and isinstance(summary["time"]["duration"], float)
    assert summary["platform"]["liuma_pipeline_version"] == "0.1.0"
    assert summary["platform"]["python_version"].startswith("CPython 3.")
    assert summary["platform"]["httprunner_version"] == "v5.0.0-250803"
    assert summary["platform"]["go_version"].startswith("cpython3.")
    # 6 cases judged by their final attempt, one detail each; 8 attempts, the 2 earlier ones nested as retries
    assert summary["stat"]["testcases"] == {"total": 6, "success": 3, "fail": 3, "attempts": 8, "passed": 1,
                                            "failed": 1, "error": 1, "broken": 1, "skipped": 1, "flaky": 1}
    assert summary["success"] is False
    assert len(summary["details"]) == 6
    assert {d["case_id"]: [r["attempt"] for r in d["retries"]] for d in summary["details"]} == {
        "api-pass": [], "api-fail": [1], "web-flaky": [1], "app-broken": [], "web-skip": [], "api-error": []}
    steps = summary["stat"]["teststeps"]
    assert (steps["total"], steps["successes"], steps["failures"]) == (6, 4, 2)
    assert steps["actions"] == {"click": 1, "input": 1}


def test_api_record_units_and_go_keys(summary: dict[str, Any], K: SimpleNamespace) -> None:
    d = _detail(summary, "api-pass")
    assert d["success"] is True and d["final"] is True and d["outcome"] == "passed"
    assert d["time"]["duration"] == 1.5
    assert datetime.fromisoformat(d["time"]["start_at"]).timestamp() * 1000 == K.T0
    assert d["in_out"] == {"config_vars": {"base": "http://127.0.0.1"}, "export_vars": {"item_id": 1}}
    rec = d["records"][0]
    assert (rec["start_time"], rec["elapsed_ms"], rec["step_type"]) == (K.T0 + 10, 12, "request-GET")
    # the executor's [{request, response}] list becomes Go's single object; the response body a string
    assert rec["data"]["req_resps"] == {
        "request": {"method": "GET", "url": "http://127.0.0.1/api/items/1", "headers": {"Accept": "application/json"}},
        "response": {"status_code": 200, "headers": {"Content-Type": "application/json"},
                     "body": '{\n    "id": 1\n}'}}
    post = d["records"][1]["data"]["req_resps"]
    assert post["request"] == {"method": "POST", "url": "http://127.0.0.1/api/items?page=2", "headers": {},
                               "body": {"name": "x"}}
    assert post["response"]["body"] == "[]"
    assert rec["data"]["validators"][1] == {"check": "$.id", "assert": "contains", "expect": "id",
                                            "msg": "body has id", "check_value": "{\"id\": 1}",
                                            "check_result": "pass"}
    assert "msg" not in rec["data"]["validators"][0]          # omitempty, as Go
    assert rec["export_vars"] == {"item_id": 1}
    assert "attachments" not in rec
    assert d["records"][1]["step_type"] == "request-POST"    # derived from the request when stepType is empty


def test_failed_attempts_and_error_attachments(summary: dict[str, Any]) -> None:
    first, second = _detail(summary, "api-fail", 1), _detail(summary, "api-fail", 2)
    assert (first["final"], second["final"]) == (False, True)
    assert first["success"] is second["success"] is False
    rec = second["records"][0]
    assert rec["success"] is False and rec["attachments"] == "code mismatch run 2"
    assert rec["data"]["validators"][0]["check_result"] == "fail"
    err = _detail(summary, "api-error")["records"][0]
    assert err["attachments"].startswith("do request failed: connection refused")


def test_ui_records_actions_and_screenshot_attachments(summary: dict[str, Any], meta: TaskReportMeta,
                                                       K: SimpleNamespace, report_dir: Path) -> None:
    failed, passed = _detail(summary, "web-flaky", 1), _detail(summary, "web-flaky", 2)
    assert passed["flaky"] is True and passed["success"] is True and failed["success"] is False
    rec = failed["records"][0]
    assert rec["step_type"] == "browser"
    assert rec["elapsed_ms"] == 49                           # UI steps: sum of their actions (during is 0)
    assert [a["method"] for a in rec["actions"]] == ["click", "input"]
    assert rec["actions"][0]["error"] == "element not found" and "error" not in rec["actions"][1]
    assert rec["attachments"] == {"screenshots": [f"attachments/{K.SHOT_FLAKY}.png"], "error": "element not found: #go"}
    assert failed["stat"]["actions"] == {"click": 1, "input": 1}
    skip = _detail(summary, "web-skip")
    assert skip["skipped"] is True and skip["success"] is True and skip["records"][0]["skipped"] is True


def test_broken_case_without_steps(summary: dict[str, Any]) -> None:
    d = _detail(summary, "app-broken")
    assert d["records"] == [] and d["success"] is False and d["reason"].startswith("executor-2 crashed")


def test_secrets_are_masked_everywhere(report_dir: Path, summary: dict[str, Any], K: SimpleNamespace) -> None:
    text = (report_dir / "summary.json").read_text(encoding="utf-8")
    assert K.SECRET not in text
    assert _detail(summary, "api-error")["in_out"]["config_vars"]["token"] == "******"
    assert summary["task_name"] == "nightly ******"


def test_running_task_duration_uses_latest_case_end(report_dir: Path, meta: TaskReportMeta,
                                                    results: list[CaseResult]) -> None:
    running = TaskReportMeta(**{**{f: getattr(meta, f) for f in meta.__slots__}, "finished_at": None})
    doc = json.loads(write_summary(report_dir, running, results).read_text(encoding="utf-8"))
    latest = max(r.endTime for r in results) / 1000
    assert doc["finished"] is False
    assert doc["time"]["duration"] == pytest.approx(latest - meta.started_at.timestamp())


def test_empty_run_is_valid(report_dir: Path, meta: TaskReportMeta) -> None:
    doc = json.loads(write_summary(report_dir, meta, []).read_text(encoding="utf-8"))
    assert summary_problems(doc) == []
    assert doc["success"] is True and doc["stat"]["testcases"]["total"] == 0


def test_all_skipped_run_is_not_a_success(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> None:
    skipped = [r for r in results if r.outcome == "skipped"]
    doc = json.loads(write_summary(report_dir, meta, skipped).read_text(encoding="utf-8"))
    assert summary_problems(doc) == []
    assert doc["success"] is False and doc["details"][0]["success"] is True     # the case itself did not fail


def test_crash_mid_write_keeps_previous_file(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    write_summary(report_dir, meta, results[:2])
    before = (report_dir / "summary.json").read_bytes()

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_summary(report_dir, meta, results)
    assert (report_dir / "summary.json").read_bytes() == before
    assert sorted(p.name for p in report_dir.iterdir()) == ["summary.json"]   # no temp file left behind


def test_naive_datetime_is_refused(storage: Path) -> None:
    with pytest.raises(ValueError, match="started_at must be a timezone-aware"):
        TaskReportMeta(task_id="t", task_name="n", started_at=datetime(2024, 1, 1), storage_root=storage)


def test_a_stopped_task_is_no_success_even_when_every_case_that_ran_passed(report_dir: Path, meta: TaskReportMeta,
                                                                           results: list[CaseResult]) -> None:
    import dataclasses
    passed = [r for r in results if r.outcome == "passed"]
    assert json.loads(write_summary(report_dir, meta, passed).read_text(encoding="utf-8"))["success"] is True
    stopped = dataclasses.replace(meta, stop_reason="engine stopping (signal SIGINT)")
    doc = json.loads(write_summary(report_dir, stopped, passed).read_text(encoding="utf-8"))
    assert doc["success"] is False and doc["stop_reason"] == "engine stopping (signal SIGINT)"
