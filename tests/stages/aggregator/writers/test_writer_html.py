"""report.html: the log sanitiser (pure) and the page itself in real headless Chromium (filters, failures first,
grouping, deep links, assertion rows, request/response panes, step durations, lightbox, 390 px layout,
screenshots, escaping, virtual list)."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse

import pytest

os.environ.setdefault("SE_OFFLINE", "true")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from pipeline.models import CaseResult  # noqa: E402
from stages.aggregator.writers import TaskReportMeta, write_all  # noqa: E402
from stages.aggregator.writers.html import safe_log_html, write_html  # noqa: E402
from tests.stages.aggregator.writers.browser import chrome  # noqa: E402
from tests.stages.aggregator.writers.browser import open_report as _open


@pytest.mark.parametrize("log, expected", [
    ("a<br>b<br/>c<BR >d", "a<br>b<br>c<br>d"),
    ("<span>请求体: {\"k\": \"<v>\"}</span><br><b>响应体: x</b>",
     "<span>请求体: {&quot;k&quot;: &quot;&lt;v&gt;&quot;}</span><br><b>响应体: x</b>"),
    ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
    ("<span class='x'>no attributes allowed</span>", "&lt;span class=&#x27;x&#x27;&gt;no attributes allowed</span>"),
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("a & b", "a &amp; b"),
    ("", ""),
])
def test_safe_log_html(log: str, expected: str) -> None:
    assert safe_log_html(log) == expected


def test_report_is_self_contained(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult],
                                  K: SimpleNamespace) -> None:
    text = write_html(report_dir, meta, results).read_text(encoding="utf-8")
    assert "http://" not in text.split('id="report-data"')[0]        # no CDN or remote asset in the page shell
    assert "<link" not in text and "src=\"http" not in text
    assert K.SECRET not in text
    assert "</script><script>window.__xss" not in text                 # the blob cannot close its script tag


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with chrome() as drv:
        yield drv


def _rows(driver: WebDriver) -> list[tuple[str, str]]:
    """(outcome, text) of every row element that exists in the list."""
    rows = driver.execute_script(   # one atomic read: rows are re-rendered while scrolling
        "return Array.from(document.querySelectorAll('#spacer .row'))"
        ".map(function(r){return [r.getAttribute('data-outcome'), r.innerText];})")
    return [(o, t) for o, t in rows]


@pytest.fixture
def page(driver: WebDriver, report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> WebDriver:
    _open(driver, write_all(report_dir, meta, results)["html"])       # write_all: screenshots into attachments/
    return driver


def _click_case(driver: WebDriver, name: str) -> None:
    row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#spacer .row") if name in r.text)
    row.click()


@pytest.mark.browser
def test_page_opens_with_totals(page: WebDriver) -> None:
    assert page.title == "nightly ****** - liuma-pipeline report"
    assert len(_rows(page)) == 6
    totals = page.find_element(By.ID, "totals").text
    assert "6 cases" in totals and "1 flaky" in totals and "1 broken" in totals and "8 attempts" in totals


@pytest.mark.browser
def test_status_filter_hides_other_rows(page: WebDriver) -> None:
    select = Select(page.find_element(By.ID, "status"))
    select.select_by_value("failed")
    assert [o for o, _ in _rows(page)] == ["failed"] and "API fails" in _rows(page)[0][1]
    select.select_by_value("broken")
    assert [o for o, _ in _rows(page)] == ["broken"]
    select.select_by_value("")
    assert len(_rows(page)) == 6
    assert page.find_element(By.ID, "shown").text == "6 of 6 shown"


@pytest.mark.browser
def test_text_filter_hides_other_rows(page: WebDriver) -> None:
    box = page.find_element(By.ID, "q")
    box.send_keys("api f")
    rows = _rows(page)
    assert len(rows) == 1 and "API fails" in rows[0][1]
    box.clear()
    box.send_keys("col-web")
    assert sorted(o for o, _ in _rows(page)) == ["flaky", "skipped"]


@pytest.mark.browser
def test_screenshot_link_resolves_to_the_png(page: WebDriver, meta: TaskReportMeta, K: SimpleNamespace,
                                             report_dir: Path) -> None:
    _click_case(page, "Web flaky")
    detail = page.find_element(By.ID, "detail").text
    assert "attempt 2: flaky" in detail and "attempt 1: error" in detail
    (link,) = page.find_elements(By.CSS_SELECTOR, "#detail a.shot")
    assert not (link.get_attribute("href") or "").startswith("/")
    href = page.execute_script("return arguments[0].href", link)   # resolved against the report's URL
    target = Path(unquote(urlparse(href).path))
    original = meta.storage_root / "image" / K.TASK / f"{K.SHOT_FLAKY}.png"
    assert target == report_dir / "attachments" / f"{K.SHOT_FLAKY}.png"       # the report's own copy
    assert target.read_bytes() == original.read_bytes()
    img = link.find_element(By.TAG_NAME, "img")
    deadline = time.monotonic() + 5
    while not page.execute_script("return arguments[0].complete", img) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert page.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img) == [64, 48]


@pytest.mark.browser
def test_logs_are_escaped_except_markers(page: WebDriver, K: SimpleNamespace) -> None:
    _click_case(page, "API error")
    log = page.find_element(By.CSS_SELECTOR, "#detail .log")
    assert page.execute_script("return window.__xss === undefined")
    assert '<img src=x onerror="window.__xss=1">' in log.text
    assert "Bearer ******" in log.text and K.SECRET not in page.page_source
    assert len(log.find_elements(By.TAG_NAME, "br")) == 2 and not log.find_elements(By.TAG_NAME, "img")


@pytest.mark.browser
def test_list_is_virtual_at_scale(driver: WebDriver, report_dir: Path, meta: TaskReportMeta,
                                  results: list[CaseResult]) -> None:
    base = results[0]
    many = [CaseResult(**{**base.to_dict(), "caseId": f"c{i}", "caseName": f"bulk {i:04d}", "index": i,
                          "runTimes": 1}) for i in range(3000)]
    begin = time.perf_counter()
    _open(driver, write_html(report_dir, meta, many))
    assert time.perf_counter() - begin < 5
    assert driver.find_element(By.ID, "shown").text == "3000 of 3000 shown"
    assert 10 < len(_rows(driver)) < 100                      # only the rows in view exist
    driver.execute_script("var l=document.getElementById('list'); l.scrollTop=l.scrollHeight;")
    deadline = time.monotonic() + 5
    while not any("bulk 2999" in t for _, t in _rows(driver)):
        assert time.monotonic() < deadline, "last row never rendered after scrolling"
        time.sleep(0.05)


def _detail_text(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "detail").text)


@pytest.mark.browser
def test_failures_come_first_and_sort_can_change(page: WebDriver) -> None:
    assert [o for o, _ in _rows(page)] == ["failed", "broken", "error", "flaky", "skipped", "passed"]
    Select(page.find_element(By.ID, "sort")).select_by_value("d")              # slowest first
    assert "API error" in _rows(page)[0][1]                                     # 30 s


@pytest.mark.browser
def test_grouping_by_status_collection_and_message(page: WebDriver) -> None:
    group = Select(page.find_element(By.ID, "group"))
    group.select_by_value("c")
    heads = [g.text for g in page.find_elements(By.CSS_SELECTOR, "#spacer .grp")]
    assert [h.split()[-2:] for h in heads] == [["col-api", "3"], ["col-app", "1"], ["col-web", "2"]]
    page.find_elements(By.CSS_SELECTOR, "#spacer .grp")[0].click()             # collapse col-api
    assert len(_rows(page)) == 3 and page.find_element(By.ID, "shown").text == "6 of 6 shown"
    group.select_by_value("m")
    heads = [g.text for g in page.find_elements(By.CSS_SELECTOR, "#spacer .grp")]
    assert any("code mismatch run 2" in h for h in heads) and heads[-1].splitlines() == ["▾", "(no failure)", "2"]


@pytest.mark.browser
def test_deep_link_opens_the_case(driver: WebDriver, report_dir: Path, meta: TaskReportMeta,
                                  results: list[CaseResult]) -> None:
    path = write_all(report_dir, meta, results)["html"]
    driver.get(path.as_uri() + "#case=" + "col-api%2Fapi-fail%2F2")
    deadline = time.monotonic() + 10
    while "API fails" not in _detail_text(driver):
        assert time.monotonic() < deadline, "deep link did not open the case"
        time.sleep(0.05)
    _click_case(driver, "API passes")
    assert driver.execute_script("return location.hash") == "#case=col-api%2Fapi-pass%2F1"


@pytest.mark.browser
def test_assertion_rows_and_request_response_panes(page: WebDriver) -> None:
    _click_case(page, "API passes")
    rows = page.find_elements(By.CSS_SELECTOR, "#detail table.asserts tr")
    assert [c.text for c in rows[0].find_elements(By.TAG_NAME, "th")] == [
        "check", "comparator", "expected", "actual", "result", "message"]
    assert [c.text for c in rows[2].find_elements(By.TAG_NAME, "td")] == [
        "$.id", "contains", "id", '{"id": 1}', "pass", "body has id"]
    bodies = page.find_elements(By.CSS_SELECTOR, "#detail pre.json")
    assert bodies[0].get_attribute("textContent") == '{\n  "id": 1\n}'            # pretty, not one long line
    assert "GET http://127.0.0.1/api/items/1" in _detail_text(page) and "status 200" in _detail_text(page)
    assert page.execute_script("return getComputedStyle(arguments[0]).whiteSpace", bodies[0]) == "pre"
    _click_case(page, "API fails")
    bad = page.find_element(By.CSS_SELECTOR, "#detail table.asserts tr.bad")
    assert [c.text for c in bad.find_elements(By.TAG_NAME, "td")][1:5] == ["equals", "200", "500", "FAIL"]


@pytest.mark.browser
def test_ui_step_duration_is_its_actions_time(page: WebDriver) -> None:
    _click_case(page, "Web flaky")
    heads = [h.text for h in page.find_elements(By.CSS_SELECTOR, "#detail .sh")]
    assert any(h.startswith("ERROR") and h.endswith("49 ms") for h in heads), heads


@pytest.mark.browser
def test_screenshot_lightbox_opens_full_size_and_closes(page: WebDriver) -> None:
    _click_case(page, "Web flaky")
    page.find_element(By.CSS_SELECTOR, "#detail a.shot img").click()
    box = page.find_element(By.ID, "lb")
    assert box.is_displayed() and "screenshot: click go (1/1)" in box.text
    img = box.find_element(By.TAG_NAME, "img")
    deadline = time.monotonic() + 5
    while not page.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert page.execute_script("return arguments[0].naturalWidth", img) == 64
    page.find_element(By.TAG_NAME, "body").send_keys("\ue00c")                  # Escape
    assert not box.is_displayed()
    assert len(page.window_handles) == 1                                         # no new tab opened


@pytest.mark.browser
def test_run_summary_shows_wall_time(page: WebDriver) -> None:
    run = page.find_element(By.ID, "run").text
    assert "wall time 1 min 30 s" in run and "started 2024-01-16T16:00:00+08:00" in run


@pytest.mark.browser
def test_narrow_screen_390px(driver: WebDriver, report_dir: Path, meta: TaskReportMeta,
                             results: list[CaseResult]) -> None:
    driver.set_window_size(390, 844)
    try:
        _open(driver, write_all(report_dir, meta, results)["html"])
        width = driver.execute_script("return document.documentElement.clientWidth")        # 390 less a scrollbar
        assert width <= 390 and driver.execute_script("return document.documentElement.scrollWidth") <= width
        for name in driver.find_elements(By.CSS_SELECTOR, "#spacer .row .nm"):
            assert driver.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", name), name.text
        _click_case(driver, "API passes")
        pane = driver.find_element(By.ID, "detail")
        assert driver.execute_script("return arguments[0].getBoundingClientRect().width", pane) == width
        driver.find_element(By.ID, "back").click()
        assert not pane.is_displayed()
    finally:
        driver.set_window_size(1280, 800)


@pytest.mark.browser
def test_rows_and_details_show_the_previous_runs_and_flake_rate(driver: WebDriver, tmp_path: Path, report_dir: Path,
                                                                 meta: TaskReportMeta, results: list[CaseResult]) -> None:
    """The history comes from a real store, written the way the aggregator writes it (HistoryStore.record)."""
    from dataclasses import replace

    from pipeline.history import Attempt, HistoryStore
    store = HistoryStore(tmp_path / "history.sqlite")
    store.record([Attempt(f"run{i}", meta.task_id, "col-api", "api-fail", 1, 1, "API", st, out, 1.0, 1000.0 + i, code="x")
                  for i, (st, out) in enumerate([(0, "passed"), (1, "failed"), (0, "passed"), (0, "passed")])]
                 + [Attempt(f"run{i}", meta.task_id, "col-api", f"filler{k}", 1, 1, "API", 0, "passed", 1.0, 1000.0 + i)
                    for i in range(4) for k in range(5)])
    meta = replace(meta, history=store.flakes(None))
    _open(driver, write_all(report_dir, meta, results)["html"])
    row = next(t for _o, t in _rows(driver) if "API fails" in t)
    assert "\u2713\u2717\u2713\u2713 50%" in row, row         # passed, failed, passed, passed: 2 changes in 4 runs
    assert not any("%" in t for _o, t in _rows(driver) if "API passes" in t)    # no history: no cell
    _click_case(driver, "API fails")
    assert "history \u2713\u2717\u2713\u2713 50%" in driver.find_element(By.TAG_NAME, "body").text
