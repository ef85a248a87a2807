"""The browser readied before a case's clock starts (``WebRunner.prepare``, called by the host): a parked
browser reset, a worn one recycled (``[Capacity] recycle-cases`` / ``recycle-rss-mb``), a failed start kept
for the case; and which start failures are infrastructure (``overload``). Real headless Chromium."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InfrastructureError
from stages.executor.context import RunSettings
from stages.executor.web.overload import start_failure_is_infrastructure
from tests.stages.executor.web.conftest import Web, logs


def _prepared_run(w: Web, n: int) -> list[int]:
    statuses = []
    for _ in range(n):
        case = w.case(w.open(), close=True)
        w.runner.prepare(case, w.ctx)
        statuses.append(w.runner.run(case, w.ctx).result.status)
    return statuses


@pytest.mark.browser
def test_prepare_resets_then_recycles_after_n_cases(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path, RunSettings(recycle_cases=2))
    try:
        assert _prepared_run(w, 5) == [0] * 5
        slot = w.runner.slot(w.ctx)
        assert (slot.starts, slot.resets) == (3, 2)       # new, reset | new, reset | new
    finally:
        w.close()


@pytest.mark.browser
def test_prepare_recycles_a_browser_above_the_rss_limit(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path, RunSettings(recycle_rss_mb=1.0))      # every Chromium is above 1 MB
    try:
        assert _prepared_run(w, 3) == [0] * 3
        slot = w.runner.slot(w.ctx)
        assert (slot.starts, slot.resets) == (3, 0)
    finally:
        w.close()


@pytest.mark.browser
def test_a_failed_prepared_start_is_reported_by_the_case(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path, RunSettings(webdriver={"binary": "/nonexistent/chromium"}))
    try:
        case = w.case(w.open(), close=True)
        w.runner.prepare(case, w.ctx)
        assert w.runner.slot(w.ctx).prestart_error is not None
        r = w.runner.run(case, w.ctx).result
        assert r.status == 2 and "浏览器启动失败" in logs(r)       # a configuration problem: a case error
    finally:
        w.close()


@pytest.mark.browser
def test_a_remote_start_failure_is_infrastructure(demo_url: str, tmp_path: Path) -> None:
    from tests.appium_server import free_port
    w = Web(demo_url, tmp_path, RunSettings(webdriver={"options": "remote", "remote-url": f"http://127.0.0.1:{free_port()}"}))
    case = w.case(w.open(), close=True)
    w.runner.prepare(case, w.ctx)
    with pytest.raises(InfrastructureError, match="Selenium Grid / remote WebDriver http://127.0.0.1:"):
        w.runner.run(case, w.ctx)


def test_which_start_failures_are_infrastructure() -> None:
    assert start_failure_is_infrastructure("remote", "no chrome binary", False, False)          # a Grid's
    assert not start_failure_is_infrastructure("headless", "unknown error: no chrome binary at /x", False, True)
    assert not start_failure_is_infrastructure("headless", "invalid argument: bad flag", True, True)
    assert start_failure_is_infrastructure("headless", "DevToolsActivePort file doesn't exist", False, False)
    assert start_failure_is_infrastructure("headless", "Read timed out", False, False)
    assert start_failure_is_infrastructure("headless", "session not created", False, True)       # host saturated
    assert not start_failure_is_infrastructure("headless", "session not created", False, False)
    assert start_failure_is_infrastructure("headless", "Connection aborted", True, False)         # transport
