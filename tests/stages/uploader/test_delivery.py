"""Delivery against the fake platform: de-duplication across re-forwards and restarts, screenshots after
their row, ``complete`` once and after everything, none for a task the platform stopped."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import SCHEMA
from pipeline.messages import ResultRecord, TaskReported
from pipeline.topology import RunSpec
from stages.uploader.delivery import Delivery
from tests.fakeplatform import ENGINE_CODE, ENGINE_SECRET, FakePlatform, wait_until

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16 + b"IEND\xaeB`\x82"


@pytest.fixture(scope="module")
def platform() -> Iterator[FakePlatform]:
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET) as p:
        yield p


def spec_for(tmp: Path, url: str) -> RunSpec:
    config = {s: {k: d for k, (_, d) in keys.items()} for s, keys in SCHEMA.items()}
    config["Platform"].update(url=url, timeout=2.0)
    config["Engine"].update({"engine-code": ENGINE_CODE, "engine-secret": ENGINE_SECRET})
    config["Upload"].update({"batch-size": 20, "interval": 0.0})
    return RunSpec(str(tmp / "run"), "start", config, storage_root=str(tmp / "storage"))


def result(task_id: str, case_id: str, shots: list[str] | None = None, run_times: int = 1) -> ResultRecord:
    step: dict[str, Any] = {"id": "s", "name": "打开网页", "content": "", "description": None, "log": "", "during": 0, "status": 1,
                            "screenShotList": shots or [], "startTime": 1, "stepType": "browser", "detail": {}}
    return ResultRecord.from_wire({"result": {"taskId": task_id, "collectionId": "c", "caseId": case_id, "caseType": "WEB", "caseName": case_id,
                       "caseDesc": None, "index": 1, "runTimes": run_times, "status": 1, "startTime": 1705392000000,
                       "endTime": 1705392001000, "transactionList": [step], "outcome": "failed", "reason": "",
                       "executor": "executor-1", "tags": [], "inOut": {}}})


def reported(task_id: str) -> TaskReported:
    totals = {k: 0 for k in ("cases", "passed", "failed", "error", "skipped", "flaky", "attempts")}
    return TaskReported.from_wire({"task_id": task_id, "report_dir": "reports", "totals": totals})


def drain(d: Delivery, platform: FakePlatform, task_id: str, until: float = 8.0) -> None:
    end = time.monotonic() + until
    while time.monotonic() < end and d.outbox is not None and d.outbox.pending(task_id):
        d.tick()
        time.sleep(0.05)


def test_rows_once_screenshots_then_complete_once(tmp_path: Path, platform: FakePlatform) -> None:
    task_id = str(uuid.uuid4())
    shot = f"20240116_{uuid.uuid1()}"
    image = tmp_path / "storage" / "image" / task_id
    image.mkdir(parents=True)
    (image / f"{shot}.png").write_bytes(PNG)
    d = Delivery(spec_for(tmp_path, platform.base_url))
    d.start()
    d.result_record(result(task_id, "k-1", [shot, "20240116_missing"]))
    d.result_record(result(task_id, "k-1", [shot]))          # a re-forward after an aggregator crash
    d.flush()
    d.close()
    d = Delivery(spec_for(tmp_path, platform.base_url))        # uploader restarted before delivering
    d.start()
    d.result_record(result(task_id, "k-1", [shot]))
    d.result_record(result(task_id, "k-1", [shot], run_times=2))
    d.task_reported(reported(task_id))
    d.task_reported(reported(task_id))
    drain(d, platform, task_id)
    rows = platform.state.results[task_id]
    assert sorted((r["caseId"], r["runTimes"]) for r in rows) == [("k-1", 1), ("k-1", 2)]
    assert set(rows[0]) == {"status", "startTime", "endTime", "collectionId", "caseId", "caseType", "caseName",
                            "caseDesc", "index", "runTimes", "transactionList"}
    assert f"{shot}.png" in platform.state.screenshots and not (image / f"{shot}.png").exists()
    assert wait_until(lambda: platform.state.completions[task_id] == 1)
    paths = [r.path for r in platform.state.requests if isinstance(r.body, dict) and r.body.get("taskId") == task_id]
    assert paths[-1] == "/openapi/engine/task/complete" and paths.count("/openapi/engine/task/complete") == 1
    d.close()


def test_stopped_task_gets_rows_but_no_complete(tmp_path: Path, platform: FakePlatform) -> None:
    """Here the stop is a marker file left by a build before ``task.stopped`` (upgrade mid-task); the message
    itself is tested from the fetcher's side (tests/stages/fetcher/test_platform_loop.py)."""
    task_id = str(uuid.uuid4())
    spec = spec_for(tmp_path, platform.base_url)
    marker = Path(spec.storage_root) / "state" / "stopped" / task_id
    marker.parent.mkdir(parents=True)
    marker.touch()
    d = Delivery(spec)
    d.start()
    d.result_record(result(task_id, "k-9"))
    d.task_reported(reported(task_id))
    drain(d, platform, task_id)
    time.sleep(0.3)
    d.tick()
    assert [r["caseId"] for r in platform.state.results[task_id]] == ["k-9"]
    assert platform.state.completions[task_id] == 0
    d.close()
