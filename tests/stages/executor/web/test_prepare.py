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


@pytest.mark.browser
def test_a_browser_due_for_recycling_is_replaced_by_a_spare_started_during_its_last_case(demo_url: str,
                                                                                       tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path, RunSettings(recycle_cases=2))
    try:
        slot = w.runner.slot(w.ctx)
        assert _prepared_run(w, 1) == [0] and slot.spare is None          # 1 case served of 2
        case = w.case(w.open(), close=True)
        w.runner.prepare(case, w.ctx)                                      # its last case: the spare starts now
        assert slot.spare is not None and slot.spare.config == slot.browser.config  # type: ignore[union-attr]
        worn = slot.browser
        assert w.runner.run(case, w.ctx).result.status == 0
        assert _prepared_run(w, 3) == [0] * 3
        assert (slot.starts, slot.resets, slot.spares) == (3, 2, 2)       # both replacements were spares
    finally:
        w.close()
    assert slot.spare is None and slot.browser is None                    # the spare of the 6th case went too
    assert worn is not None and worn.profile_dir and not Path(worn.profile_dir).exists()   # the worn one quit


@pytest.mark.browser
def test_the_replacement_of_a_lost_browser_starts_at_once_in_the_background(demo_url: str, tmp_path: Path) -> None:
    import signal
    import threading

    import psutil

    from tests.stages.executor.web.conftest import op
    from tests.system.engine import wait_for
    w = Web(demo_url, tmp_path)
    try:
        assert _prepared_run(w, 1) == [0]
        slot = w.runner.slot(w.ctx)
        assert slot.browser is not None
        chromium = psutil.Process(slot.browser.pids()[0]).children(recursive=True)

        def crash() -> None:                                               # the browser dies mid-case
            wait_for(lambda: "强制等待" in w.steps, 60, "the case waiting")
            for p in chromium:
                p.send_signal(signal.SIGKILL)
        killer = threading.Thread(target=crash)
        killer.start()
        case = w.case(w.open(), op("browser", "强制等待", second="3"), w.open(), close=True)
        w.runner.prepare(case, w.ctx)
        with pytest.raises(InfrastructureError):
            w.runner.run(case, w.ctx)
        killer.join()
        assert slot.browser is None and slot.spare is not None            # the replacement is on its way
        assert _prepared_run(w, 1) == [0] and slot.spares == 1
    finally:
        w.close()


@pytest.mark.browser
def test_no_spare_when_spares_are_off(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path, RunSettings(recycle_cases=1, spare_browser=False))
    try:
        assert _prepared_run(w, 3) == [0] * 3
        slot = w.runner.slot(w.ctx)
        assert (slot.starts, slot.spares) == (3, 0)
    finally:
        w.close()
