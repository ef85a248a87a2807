"""results.json: the result/upload body, every row valid per reference §7/§10, bad rows isolated."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline.models import CaseResult
from stages.aggregator.writers import TaskReportMeta
from stages.aggregator.writers.results import (
    MAX_API_CONTENT,
    REJECTED_FILE,
    platform_row,
    validate_platform_row,
    write_results,
)

ROW_KEYS = {"status", "startTime", "endTime", "collectionId", "caseId", "caseType", "caseName", "caseDesc",
            "index", "runTimes", "transactionList"}
STEP_KEYS = {"id", "name", "content", "description", "log", "during", "status", "screenShotList"}


@pytest.fixture
def body(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(write_results(report_dir, meta, results).read_text(encoding="utf-8"))
    return doc


def _row(body: dict[str, Any], case_id: str, run: int = 1) -> dict[str, Any]:
    return next(r for r in body["caseResultList"] if r["caseId"] == case_id and r["runTimes"] == run)


def test_body_envelope(body: dict[str, Any], meta: TaskReportMeta) -> None:
    assert set(body) == {"engineCode", "timestamp", "taskId", "caseResultList"}
    assert body["engineCode"] == "engine-abc" and body["taskId"] == "task-1"
    assert body["timestamp"] == int(meta.finished_at.timestamp())   # type: ignore[union-attr]
    assert len(body["caseResultList"]) == 8                            # every attempt is a row


def test_every_row_has_platform_keys_and_types(body: dict[str, Any]) -> None:
    for row in body["caseResultList"]:
        assert set(row) == ROW_KEYS, row["caseId"]
        assert validate_platform_row(row) == []
        for key in ("status", "startTime", "endTime", "index", "runTimes"):
            assert type(row[key]) is int, (row["caseId"], key)
        assert row["caseType"] in ("API", "WEB", "APP")
        assert row["transactionList"]
        for step in row["transactionList"]:
            assert set(step) == STEP_KEYS
            assert isinstance(step["screenShotList"], list)
            assert type(step["during"]) is int and step["status"] in (0, 1, 2, 3)


def test_repairs(body: dict[str, Any], K: SimpleNamespace) -> None:
    broken = _row(body, "app-broken")
    assert broken["transactionList"] == [{
        "id": "app-broken", "name": "未知", "content": "未知", "description": None,
        "log": "executor-2 crashed (signal 9) while running case app-broken", "during": 0, "status": 2,
        "screenShotList": []}]
    err = _row(body, "api-error")["transactionList"][0]
    assert len(err["content"]) == MAX_API_CONTENT and err["content"].startswith("/api/xxx")
    assert K.SECRET not in err["log"] and "******" in err["log"]
    assert _row(body, "web-flaky", 1)["transactionList"][0]["screenShotList"] == [K.SHOT_FLAKY]


def _good() -> dict[str, Any]:
    return platform_row(CaseResult(taskId="t", collectionId="c", caseId="x", caseType="WEB", startTime=1, endTime=2,
                                   transactionList=[{"id": "s", "name": "n", "log": "", "screenShotList": []}]))


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r.update(startTime=None), "startTime must be an integer"),
    (lambda r: r.update(endTime=1.5), "endTime must be an integer"),
    (lambda r: r.update(status=None), "status must be an integer"),
    (lambda r: r.update(caseType=None), "caseType must be one of"),
    (lambda r: r.update(transactionList=[]), "transactionList must be a non-empty list"),
    (lambda r: r["transactionList"][0].pop("screenShotList"), "step 0 screenShotList must be a list"),
    (lambda r: r.update(caseType="API") or r["transactionList"][0].update(content="/" * 201),
     "content is 201 chars, the platform allows 200"),
    (lambda r: r.update(caseType="API") or r["transactionList"][0].update(content=None),
     "content (the API path) must be a string"),
    (lambda r: r.update(caseId=""), "caseId must be a non-empty string"),
])
def test_validate_platform_row_names_the_problem(mutate: Any, expected: str) -> None:
    row = _good()
    assert validate_platform_row(row) == []
    mutate(row)
    problems = validate_platform_row(row)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("case 'x' (collection 'c', runTimes 1)") or "caseId" in p for p in problems)


def test_unrepairable_row_is_left_out_and_reported(report_dir: Path, meta: TaskReportMeta,
                                                   results: list[CaseResult]) -> None:
    bad = CaseResult(taskId="task-1", collectionId="col-x", caseId="weird", caseType="DESKTOP", startTime=1, endTime=2,
                     transactionList=[{"id": "s", "name": "n"}])
    body = json.loads(write_results(report_dir, meta, [*results, bad]).read_text(encoding="utf-8"))
    assert len(body["caseResultList"]) == 8 and all(r["caseId"] != "weird" for r in body["caseResultList"])
    rejected = json.loads((report_dir / REJECTED_FILE).read_text(encoding="utf-8"))
    assert [r["row"]["caseId"] for r in rejected] == ["weird"]
    assert any("caseType must be one of" in p for p in rejected[0]["problems"])
    write_results(report_dir, meta, results)       # fixed on the next write: the stale file goes away
    assert not (report_dir / REJECTED_FILE).exists()
