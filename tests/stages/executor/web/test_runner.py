"""WebRunner lifecycle (§5.1): startDriver/closeDriver, reuse with reset, close_shared, driverSetting, remote
WebDriver, a lost browser as InfrastructureError, screenshots on every step."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.errors import InfrastructureError
from stages.executor.context import RunSettings
from stages.executor.ui import SCREENSHOT_ID
from stages.executor.web.session import NO_BROWSER
from tests.stages.executor.web.conftest import Web, logs, op, statuses

pytestmark = pytest.mark.browser


def test_start_driver_false_without_browser_is_case_error(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path)
    r = w.run(w.open(), start=False)
    assert r.status == 2 and [t["name"] for t in r.transactionList] == ["未知"]
    assert NO_BROWSER in logs(r) and r.transactionList[0]["id"] == "case-1"


def test_reuse_resets_state_and_close_parks(web: Web) -> None:
    slot = web.runner.slot(web.ctx)
    web.run(web.open(), op("browser", "添加cookie", name="a", value="1"),
            op("browser", "执行脚本", script="localStorage.setItem('k', 'v')"),
            op("browser", "单击跳转新窗口", {"element": ("ID", "new-window-link")}), close=True)
    starts = slot.starts
    assert slot.browser is not None and not slot.open          # parked, not quit
    r = web.run(web.open(), start=False)
    assert r.status == 2 and NO_BROWSER in logs(r)               # closed as far as cases can tell
    r = web.run(web.open(), op("relation", "提取cookies", save_name="c"),
                op("relation", "自定义", trans="ls", code="sys_return(driver.execute_script(\"return localStorage.getItem('k')\"))",
                   save_name="ls"), op("relation", "提取所有窗口句柄", save_name="h"))
    assert r.status == 0 and slot.starts == starts and slot.resets >= 1
    assert web.ctx.variables["c"] == [] and web.ctx.variables["ls"] is None and len(web.ctx.variables["h"]) == 1


def test_reset_dismisses_open_alert_and_forgets_session_storage_and_history(web: Web) -> None:
    slot = web.runner.slot(web.ctx)
    r = web.run(web.open(), op("browser", "执行脚本", script="sessionStorage.setItem('s', '1')"),
                op("page", "单击", {"element": ("ID", "page2-link")}), op("browser", "后退"),
                op("page", "单击", {"element": ("ID", "alert-btn")}))        # leaves the alert open
    assert r.status == 0, logs(r)
    starts, resets = slot.starts, slot.resets
    r = web.run(op("relation", "提取页面url", save_name="blank"), op("browser", "后退"),
                op("relation", "提取页面url", save_name="after_back"), web.open(),
                op("relation", "自定义", trans="ss", code="sys_return(driver.execute_script(\"return sessionStorage.getItem('s')\"))",
                   save_name="ss"))
    assert r.status == 0, logs(r)
    assert (slot.starts, slot.resets) == (starts, resets + 1)                   # reset, not restarted
    v = web.ctx.variables
    assert v["blank"] == "about:blank" and v["after_back"] == "about:blank" and v["ss"] is None


def test_failed_case_with_close_quits_browser(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path)
    try:
        r = w.run(w.open(), op("page", "单击", {"element": ("ID", "no-such")}), close=True)
        assert r.status == 2
        assert w.runner.slot(w.ctx).browser is None
    finally:
        w.close()


def test_close_shared_quits_and_deletes_profile(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path)
    w.run(w.open())
    browser = w.runner.slot(w.ctx).browser
    assert browser is not None and browser.profile_dir and os.path.isdir(browser.profile_dir)
    pid = browser.pids()[0]
    w.close()
    assert not os.path.exists(browser.profile_dir) and "web.browser" not in w.ctx.shared
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_reset_shared_parks_browser_for_next_collection_or_quits_without_reuse(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path)
    try:
        w.run(w.open(), op("browser", "添加cookie", name="a", value="1"))          # left open
        slot = w.runner.slot(w.ctx)
        browser = slot.browser
        w.runner.reset_shared(w.ctx)                                               # collection boundary
        assert slot.browser is browser and not slot.open and os.path.isdir(browser.profile_dir)
        r = w.run(w.open(), start=False)
        assert r.status == 2 and NO_BROWSER in logs(r)                            # as if it had been quit
        r = w.run(w.open(), op("relation", "提取cookies", save_name="c"))
        assert r.status == 0 and slot.browser is browser and (slot.starts, slot.resets) == (1, 1)
        assert w.ctx.variables["c"] == []
        w.runner.reuse = False
        w.runner.reset_shared(w.ctx)
        assert "web.browser" not in w.ctx.shared and not os.path.exists(browser.profile_dir)
    finally:
        w.close()


def test_warm_up_starts_the_default_browser_parked_for_the_first_case(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path)
    try:
        assert w.runner.warm_up(w.ctx) > 0
        slot = w.runner.slot(w.ctx)
        browser = slot.browser
        assert browser is not None and not slot.open and w.runner.warm_up(w.ctx) == 0.0   # once
        r = w.run(w.open(), start=False)
        assert r.status == 2 and NO_BROWSER in logs(r)             # parked: not usable without startDriver
        r = w.run(w.open())
        # the warmed browser never served a case: taken as is, no reset
        assert r.status == 0 and slot.browser is browser and (slot.starts, slot.resets) == (1, 0)
    finally:
        w.close()


def test_driver_setting_arguments_and_bad_setting(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path)
    try:
        r = w.run(w.open(), op("relation", "提取窗口宽度", save_name="w"),
                  driverSetting={"arguments": [{"value": "--window-size={{width}},700"}], "experimentals": [],
                                 "extensions": [], "files": [], "binary": ""},
                  params={"width": {"type": "String", "value": "1000"}})
        assert r.status == 0 and w.ctx.variables["w"] == 1000
        r = w.run(w.open(), driverSetting={"binary": "/nonexistent/chrome"})
        assert r.status == 2 and "浏览器启动失败" in logs(r) and r.transactionList[0]["name"] == "未知"
    finally:
        w.close()


def test_lost_browser_raises_infrastructure_error(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path)
    try:
        w.run(w.open())
        browser = w.runner.slot(w.ctx).browser
        assert browser is not None
        tree = psutil.Process(browser.pids()[0])
        procs = [tree, *tree.children(recursive=True)]
        for p in procs:
            p.kill()
        psutil.wait_procs(procs, timeout=5)
        with pytest.raises(InfrastructureError, match="浏览器已丢失"):
            w.run(op("assertion", "断言页面标题", assertion="equals", expect="x"), start=False)
        assert w.runner.slot(w.ctx).browser is None        # dropped: the next case starts a new one
        assert w.run(w.open()).status == 0
    finally:
        w.close()


def test_screenshot_on_a_lost_browser_is_broken_not_passed(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path)
    try:
        w.run(w.open())
        browser = w.runner.slot(w.ctx).browser
        assert browser is not None
        browser.driver.quit()                      # the session is gone behind the case's back
        with pytest.raises(InfrastructureError, match="浏览器已丢失"):
            w.run(op("browser", "屏幕截图", name="x"), start=False)
    finally:
        w.close()


def test_screenshot_every_step_and_on_step(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path, RunSettings(screenshot_every_step=True))
    try:
        r = w.run(w.open(), op("browser", "刷新"))
        shots = [s for t in r.transactionList for s in t["screenShotList"]]
        assert len(shots) == 2 and all(re.match(SCREENSHOT_ID, s) for s in shots)
        for s in shots:
            data = (w.ctx.image_dir / f"{s}.png").read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
        assert w.steps == ["打开网页", "刷新"]
        assert r.transactionList[0]["stepType"] == "browser"
    finally:
        w.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def remote_driver() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(["/usr/bin/chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        for p in [*psutil.Process(proc.pid).children(recursive=True)]:
            p.kill()
        proc.kill()
        proc.wait()


def test_remote_webdriver(demo_url: str, tmp_path: Path, remote_driver: str) -> None:
    w = Web(demo_url, tmp_path, RunSettings(webdriver={"options": "remote", "path": remote_driver}))
    try:
        r = w.run(w.open(), op("page", "输入", {"element": ("ID", "username")}, text="remote"),
                  op("page", "单击", {"element": ("ID", "greet")}),
                  op("assertion", "断言元素文本", {"element": ("ID", "greeting")}, assertion="equals", expect="Hello, remote"))
        assert statuses(r) == [0, 0, 0, 0]
        assert w.runner.slot(w.ctx).browser.profile_dir is None  # type: ignore[union-attr]
    finally:
        w.close()
    r2 = Web(demo_url, tmp_path, RunSettings(webdriver={"options": "remote", "path": "/not/a/url"})).run()
    assert r2.status == 2 and "remote WebDriver URL" in logs(r2)


def test_a_crashed_tab_is_a_lost_browser_not_a_case_error(demo_url: str, tmp_path: Path) -> None:
    """chrome://crash kills the renderer ("tab crashed"), here inside a custom operation's user code."""
    w = Web(demo_url, tmp_path)
    try:
        with pytest.raises(InfrastructureError, match="tab crashed"):
            w.run(w.open(), op("browser", "自定义", trans="crash", code='driver.get("chrome://crash")'))
        assert w.runner.slot(w.ctx).browser is None        # dropped: the next case starts a new one
        assert w.run(w.open()).status == 0
    finally:
        w.close()
