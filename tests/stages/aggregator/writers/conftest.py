"""A small task with every shape the writers must handle, with real PNG screenshots on disk.

Cases (collection ``col-api`` unless said):
  1 api-pass      API passed; req_resps (the executor's list of {request, response}), validators, export_vars
  2 api-fail      API failed twice (attempt 1 and 2): a rerun that never passed
  3 web-flaky     WEB (col-web): attempt 1 error with a screenshot, attempt 2 passed -> outcome flaky
  4 app-broken    APP (col-app): broken, no step recorded, reason "executor-2 crashed ..."
  5 web-skip      WEB (col-web): skipped, one step with status 3
  6 api-error     API error: transport error, 250-char content, secret in log and inOut, hostile HTML in log
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from pipeline.models import CaseResult
from stages.aggregator.writers import TaskReportMeta

TASK = "task-1"
SECRET = "tok-9f8e7d6c5b"
T0 = 1_705_392_000_000           # 2024-01-16 08:00:00 UTC in ms
TZ = timezone(timedelta(hours=8))
SHOT_WEB = "20240116_aaaa0001"
SHOT_FLAKY = "20240116_bbbb0002"
HOSTILE = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>"


def step(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "s", "name": "step", "content": "", "description": None, "log": "",
                            "during": 0, "status": 0, "screenShotList": [], "startTime": T0, "stepType": "",
                            "detail": {}}
    base.update(kw)
    return base


def _api_pass() -> CaseResult:
    steps = [
        step(id="api-1", name="get item", content="/api/items/1", during=12, startTime=T0 + 10, stepType="request-GET",
             log="2024-01-16 10:00:00.000000 - Debug - 【请求信息】:<br>GET http://127.0.0.1/api/items/1<br>"
                 "<span>请求体: {\"q\": \"<x>\"}</span><br>",
             detail={"req_resps": [{"request": {"method": "GET", "url": "http://127.0.0.1/api/items/1",
                                                "headers": {"Accept": "application/json"}, "query": {}, "body": None},
                                    "response": {"status_code": 200, "headers": {"Content-Type": "application/json"},
                                                 "body": {"id": 1}}}],
                     "validators": [
                         {"type": "equals", "actual": 200, "expected": 200, "result": True, "message": "",
                          "check": "resCode"},
                         {"type": "contains", "actual": "{\"id\": 1}", "expected": "id", "result": True,
                          "message": "body has id", "check": "$.id"}],
                     "export_vars": {"item_id": 1}}),
        step(id="api-2", name="list", content="/api/items", during=7, startTime=T0 + 30,
             detail={"req_resps": [{"request": {"method": "POST", "url": "http://127.0.0.1/api/items",
                                                "headers": {}, "query": {"page": 2}, "body": {"name": "x"}},
                                    "response": {"status_code": 200, "headers": {}, "body": []}}]}),
    ]
    return CaseResult(taskId=TASK, collectionId="col-api", caseId="api-pass", caseType="API", caseName="API passes",
                      index=1, runTimes=1, status=0, startTime=T0, endTime=T0 + 1500, transactionList=steps,
                      outcome="passed", tags=["smoke"], inOut={"config_vars": {"base": "http://127.0.0.1"},
                                                               "export_vars": {"item_id": 1}})


def _api_fail(run: int) -> CaseResult:
    bad = step(id="api-3", name="check code", content="/api/fail", during=5, status=1, startTime=T0 + 2000 * run,
               log="2024-01-16 - Error - 断言失败", stepType="request-GET",
               detail={"validators": [{"type": "equals", "actual": 500, "expected": 200, "result": False,
                                       "message": f"code mismatch run {run}", "check": "resCode"}],
                       "req_resps": [{"request": {"method": "GET", "url": "http://127.0.0.1/api/fail", "headers": {},
                                              "query": {}, "body": None},
                                      "response": {"status_code": 500, "headers": {}, "body": "oops"}}]})
    return CaseResult(taskId=TASK, collectionId="col-api", caseId="api-fail", caseType="API", caseName="API fails",
                      index=2, runTimes=run, status=1, startTime=T0 + 2000 * run, endTime=T0 + 2000 * run + 250,
                      transactionList=[bad], outcome="failed")


def _web_flaky(run: int) -> CaseResult:
    ok = run == 2
    actions = [{"method": "click", "params": {"by": "id", "value": "go"}, "start_time": T0 + 5000 * run,
                "elapsed_ms": 40, "error": "" if ok else "element not found",
                "screen_results": [] if ok else [{"image_path": SHOT_FLAKY}]},
               {"method": "input", "params": {"value": "x"}, "start_time": T0 + 5000 * run + 50, "elapsed_ms": 9}]
    s = step(id="web-1", name="click go", status=0 if ok else 2, startTime=T0 + 5000 * run, stepType="browser",
             screenShotList=[] if ok else [SHOT_FLAKY], log="WEB操作[点击]开始<br>" + ("成功" if ok else "元素未找到"),
             detail={"actions": actions} if ok else {"actions": actions, "error": "element not found: #go"})
    return CaseResult(taskId=TASK, collectionId="col-web", caseId="web-flaky", caseType="WEB", caseName="Web flaky",
                      index=1, runTimes=run, status=0 if ok else 2, startTime=T0 + 5000 * run,
                      endTime=T0 + 5000 * run + 900, transactionList=[s], outcome="flaky" if ok else "error")


def _others() -> list[CaseResult]:
    shot_step = step(id="web-2", name="screenshot", status=3, startTime=T0 + 9000, stepType="browser",
                     screenShotList=[SHOT_WEB], log="skipped by condition")
    long_path = "/api/" + "x" * 245
    err_step = step(id="api-9", name="call", content=long_path, during=30001, status=2, startTime=T0 + 12000,
                    log=f"Authorization: Bearer {SECRET}<br>{HOSTILE}<br>\x01ctl",
                    detail={"error": f"do request failed: connection refused (token {SECRET})"})
    return [
        CaseResult(taskId=TASK, collectionId="col-app", caseId="app-broken", caseType="APP", caseName="App broken",
                   index=1, runTimes=1, status=2, startTime=T0 + 7000, endTime=T0 + 7300, transactionList=[],
                   outcome="broken", reason="executor-2 crashed (signal 9) while running case app-broken"),
        CaseResult(taskId=TASK, collectionId="col-web", caseId="web-skip", caseType="WEB", caseName="Web skipped",
                   index=2, runTimes=1, status=0, startTime=T0 + 9000, endTime=T0 + 9000,
                   transactionList=[shot_step], outcome="skipped", reason="dependency web-flaky failed"),
        CaseResult(taskId=TASK, collectionId="col-api", caseId="api-error", caseType="API", caseName="API error",
                   index=3, runTimes=1, status=2, startTime=T0 + 12000, endTime=T0 + 42000, transactionList=[err_step],
                   outcome="error", inOut={"config_vars": {"token": SECRET}, "export_vars": {}}),
    ]


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """storage_root with two real PNG screenshots (different sizes, so a wrong link is detectable)."""
    root = tmp_path / "storage"
    image_dir = root / "image" / TASK
    image_dir.mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(image_dir / f"{SHOT_WEB}.png")
    Image.new("RGB", (64, 48), (30, 30, 200)).save(image_dir / f"{SHOT_FLAKY}.png")
    return root


@pytest.fixture
def meta(storage: Path) -> TaskReportMeta:
    return TaskReportMeta(task_id=TASK, task_name=f"nightly {SECRET}", started_at=datetime(2024, 1, 16, 16, 0, tzinfo=TZ),
                          finished_at=datetime(2024, 1, 16, 16, 1, 30, tzinfo=TZ), engine_version="0.1.0",
                          engine_code="engine-abc", secrets=[SECRET, ""], storage_root=storage)


@pytest.fixture
def results() -> list[CaseResult]:
    # shuffled on purpose: writers must not depend on arrival order
    return [_web_flaky(2), _api_fail(2), *_others(), _api_pass(), _api_fail(1), _web_flaky(1)]


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    return tmp_path / "report"


@pytest.fixture
def K() -> SimpleNamespace:
    """The constants above, for test modules (importing conftest by name is ambiguous across test dirs)."""
    return SimpleNamespace(TASK=TASK, SECRET=SECRET, T0=T0, TZ=TZ, SHOT_WEB=SHOT_WEB, SHOT_FLAKY=SHOT_FLAKY,
                           HOSTILE=HOSTILE)
