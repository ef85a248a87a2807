"""APP evidence against real Appium 3 servers with the fake driver: the page source at failure, the server's
log lines where the driver has that log type and the recording where it has one (the fake driver has
neither: both skipped with a note); a passing attempt keeps nothing under failure."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.evidence import left_bundle
from pipeline.models import CaseResult
from stages.executor.app.runner import AppRunner
from stages.executor.common.evidence import EvidenceSpec
from tests.appium_server import AppiumServer, appium_server  # noqa: F401
from tests.stages.executor.app.appcases import by_id, case, fake_device, make_ctx, op

pytestmark = pytest.mark.appium
FAILING = [op("assertion", "断言元素文本", {"element": by_id("username")}, {"assertion": "equals", "expect": "no such text"})]
PASSING = [op("assertion", "断言元素存在", {"element": by_id("username")}, {"assertion": "equals", "expect": ("Boolean", "true")})]


def run(url: str, tmp: Path, ops: list[dict[str, Any]], keep: str = "failure") -> tuple[CaseResult, dict[str, Any], AppRunner, Any]:
    runner = AppRunner()
    ctx = make_ctx(tmp, fake_device(url), {})
    ctx.evidence = EvidenceSpec(keep=keep, task_report_dir=tmp / "reports" / "task-1", collection_id="col-1",
                                case_id="case-1", index=1, attempt=1)
    try:
        result = runner.run(case(ops), ctx).result
    finally:
        runner.close_shared(ctx)
    return result, ctx.evidence_result, runner, ctx


def test_failing_attempt_keeps_page_source_and_notes_what_the_driver_lacks(appium_server: AppiumServer,  # noqa: F811
                                                                           tmp_path: Path) -> None:
    r, ev, _, _ = run(appium_server.url, tmp_path, FAILING)
    assert r.status == 1
    assert [f["name"] for f in ev["files"]] == ["page-source.xml"], ev
    d = tmp_path / "reports" / "task-1" / ev["dir"]
    assert ev["dir"] == "attachments/case-1@col-1.1/1" and "username" in (d / "page-source.xml").read_text()
    assert "screen recording skipped: not supported by this driver" in ev["notes"]              # the fake driver
    assert "Appium server log not available: this driver offers no 'server' log type" in ev["notes"], ev["notes"]


def test_passing_attempt_keeps_nothing_and_never_records_nothing(appium_server: AppiumServer, tmp_path: Path) -> None:  # noqa: F811
    r, ev, _, _ = run(appium_server.url, tmp_path, PASSING)
    assert r.status == 0, r.transactionList and ev == {}
    r, ev, _, _ = run(appium_server.url, tmp_path, FAILING, keep="never")
    assert r.status == 1 and ev == {}
    assert not (tmp_path / "reports").exists()


def test_killed_attempt_keeps_what_the_session_has_with_a_manifest(appium_server: AppiumServer,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    # the executor's SIGTERM handler calls ctx.evidence_flush while the case thread is stuck in a step
    runner = AppRunner()
    ctx = make_ctx(tmp_path, fake_device(appium_server.url), {})
    ctx.evidence = EvidenceSpec(keep="failure", task_report_dir=tmp_path / "reports" / "task-1", collection_id="col-1",
                                case_id="case-1", index=1, attempt=1)
    stuck = op("action", "自定义", code="import time\ntime.sleep(4)", trans="stuck")
    out: list[CaseResult] = []
    thread = threading.Thread(target=lambda: out.append(runner.run(case([stuck]), ctx).result))
    start_ms = int(time.time() * 1000)
    thread.start()
    try:
        end = time.monotonic() + 30
        while ctx.evidence_flush is None:           # the recorder began: the session is up
            assert time.monotonic() < end and thread.is_alive(), "the recorder never began"
            time.sleep(0.05)
        ctx.evidence_flush("killed by the test")
        left = left_bundle(tmp_path / "reports" / "task-1", "col-1", "case-1", 1, 1, start_ms, int(time.time() * 1000))
        assert left is not None and [f["name"] for f in left["files"]] == ["page-source.xml"], left
        assert "attempt killed (killed by the test); the bundle holds what was collected until then" in left["notes"]
        thread.join(30)
    finally:
        runner.close_shared(ctx)
    assert out and out[0].status == 0                       # the case itself went on: its result is its own
    assert ctx.evidence_result["dir"] == left["dir"]        # and carries the killed attempt's bundle (run once)
