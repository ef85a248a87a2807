from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.platform import PlatformClient
from stages.uploader.client import Deliverer
from stages.uploader.outbox import Outbox
from tests.fakeplatform import ENGINE_CODE, ENGINE_SECRET, PNG, FakePlatform, module_platform  # noqa: F401 (fixture)


@pytest.fixture
def client(platform: FakePlatform) -> Iterator[PlatformClient]:
    c = PlatformClient(platform.base_url, ENGINE_CODE, ENGINE_SECRET, timeout=2, connect_timeout=0.5)
    yield c
    c.close()


def make_deliverer(root: Path, client: Any, **kw: Any) -> Deliverer:
    box = Outbox(root, first=0.2, cap=0.5)
    box.open()
    return Deliverer(box, client, **kw)


def row(n: int, case_type: str = "API", **over: Any) -> dict[str, Any]:
    r = {"status": 0, "startTime": 1705392000123 + n, "endTime": 1705392001456 + n, "collectionId": "c-1",
         "caseId": f"k-{n}", "caseType": case_type, "caseName": f"case {n}", "caseDesc": None, "index": n,
         "runTimes": 1, "transactionList": [{"id": "a", "name": "n", "content": "/api/x", "description": None,
                                             "log": "", "during": 5, "status": 0, "screenShotList": []}]}
    r.update(over)
    return r


def shot(folder: Path) -> Path:
    path = folder / f"20240116_{uuid.uuid1()}.png"
    path.write_bytes(PNG)
    return path


def drain(d: Deliverer, until: float = 8.0) -> None:
    deadline = time.monotonic() + until
    while len(d.outbox) and time.monotonic() < deadline:
        d.tick(time.monotonic())
        time.sleep(0.05)


def uploads_for(platform: FakePlatform, task_id: str) -> list[list[str]]:
    return [[r["caseId"] for r in c.body["caseResultList"]]
            for c in platform.state.calls("/openapi/engine/result/upload") if c.body["taskId"] == task_id]


def test_rows_batched_by_size_and_interval(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    d = make_deliverer(tmp_path, client, batch_size=2, interval=10.0)
    d.submit_results("t-batch", [row(n) for n in range(1, 6)], now=0.0)
    assert d.tick(1.0) == 4                               # two full batches; the odd row waits
    assert uploads_for(platform, "t-batch") == [["k-1", "k-2"], ["k-3", "k-4"]]
    assert d.tick(5.0) == 0
    assert d.tick(10.0) == 1                              # its interval elapsed
    assert uploads_for(platform, "t-batch")[-1] == ["k-5"]


def test_invalid_row_refused_others_delivered(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    d = make_deliverer(tmp_path, client, batch_size=10, interval=0.0)
    bad = row(2, "WEB")
    del bad["transactionList"][0]["screenShotList"]
    problems = d.submit_results("t-valid", [row(1), bad, row(3)], now=0.0)
    assert problems and "screenShotList" in problems[0]
    d.tick(0.0)
    assert uploads_for(platform, "t-valid") == [["k-1", "k-3"]]


def test_rejected_batch_is_split_and_the_bad_row_isolated(platform: FakePlatform, client: PlatformClient,
                                                          tmp_path: Path) -> None:
    d = make_deliverer(tmp_path, client, batch_size=10, interval=0.0, max_rejects=2, validator=lambda r: [])
    d.submit_results("t-split", [row(1), row(2, startTime=None), row(3)], now=0.0)
    assert d.tick(0.0) == 2
    assert [r["caseId"] for r in platform.state.results["t-split"]] == ["k-1", "k-3"]
    assert d.tick(10.0) == 0                               # second rejection: given up
    assert len(d.outbox) == 0 and len(d.outbox.dead()) == 1


def test_outage_is_retried_until_everything_is_delivered_once(platform: FakePlatform, client: PlatformClient,
                                                               tmp_path: Path) -> None:
    d = make_deliverer(tmp_path / "box", client, batch_size=3, interval=0.0)
    client.apply_token()
    platform.outage(1.5)
    now = time.monotonic()
    d.submit_results("t-out", [row(n) for n in range(1, 8)], now)
    screenshot = shot(tmp_path)
    d.submit_screenshot("t-out", screenshot, now)
    d.submit_complete("t-out", now)
    assert d.tick(now) == 0 and screenshot.exists()
    drain(d)
    assert len(d.outbox) == 0
    assert sorted(r["caseId"] for r in platform.state.results["t-out"]) == [f"k-{n}" for n in range(1, 8)]
    assert platform.state.screenshots[screenshot.name] == PNG and not screenshot.exists()
    assert platform.state.completions["t-out"] == 1
    calls = [c for c in platform.state.requests if isinstance(c.body, dict) and c.body.get("taskId") == "t-out"]
    assert calls[-1].path == "/openapi/engine/task/complete"


def test_503_outage_also_retried(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    d = make_deliverer(tmp_path, client, interval=0.0)
    platform.outage(0.6, mode="503")
    d.submit_results("t-503", [row(1)], time.monotonic())
    d.submit_complete("t-503", time.monotonic())
    drain(d)
    assert uploads_for(platform, "t-503")[-1] == ["k-1"] and platform.state.completions["t-503"] == 1


def test_uploader_restart_resends_what_was_not_acked(platform: FakePlatform, client: PlatformClient,
                                                     tmp_path: Path) -> None:
    first = make_deliverer(tmp_path / "box", client, interval=0.0)
    screenshot = shot(tmp_path)
    first.submit_results("t-restart", [row(1), row(2)], now=0.0)
    first.submit_screenshot("t-restart", screenshot, now=0.0)
    first.submit_complete("t-restart", now=0.0)
    del first                                              # the process died before any tick
    second = make_deliverer(tmp_path / "box", client, interval=0.0)
    drain(second)
    assert uploads_for(platform, "t-restart") == [["k-1", "k-2"]]
    assert screenshot.name in platform.state.screenshots and platform.state.completions["t-restart"] == 1
    third = make_deliverer(tmp_path / "box", client, interval=0.0)
    assert third.submit_complete("t-restart", now=0.0) == ""  # exactly once, even after a restart


def test_screenshot_kept_until_confirmed(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    d = make_deliverer(tmp_path / "box", client, max_rejects=2)
    screenshot = shot(tmp_path)
    platform.inject("/openapi/engine/screenshot/upload", status=1000, data="截图文件上传失败")
    d.submit_screenshot("t-shot", screenshot, now=0.0)
    assert d.tick(0.0) == 0 and screenshot.exists()
    assert d.tick(10.0) == 1 and not screenshot.exists()
