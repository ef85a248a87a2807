"""Failure evidence end to end through ``bin/liuma-pipeline run``: real stages, real headless Chromium, the demo
site. The default ``[Evidence] keep = failure`` keeps a bundle for each failing attempt (and none for a passing
case) under ``<report-dir>/<taskId>/attachments/<case>/<attempt>/``; results.json lists it, report.html links
it relatively (its video plays from the report), Allure gets it as attachments; a task's ``evidence`` overrides
the engine's mode."""
from __future__ import annotations

import base64
import json
import shutil
import signal
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.system.engine import results, start_run, wait_for, write_config
from tests.system.suites import write_suite
from tests.system.test_run_stop import _running
from tests.system.test_web_crash import _op, web_case

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _suite(tmp: Path, demo_url: str, **task: Any) -> Path:
    fail = web_case("fail", "fails", demo_url, _op("browser", "执行脚本", script="console.error('evidence-sys')"),
                    _op("page", "单击", ("ID", "page2-link")))       # the title assertion then fails on page 2
    ok = web_case("ok", "passes", demo_url)
    suite = write_suite(tmp / "suite", {"web": [fail, ok]}, max_thread=1, rerun=True)   # a failure is retried once
    if task:
        raw = json.loads((suite / "task.json").read_text())
        (suite / "task.json").write_text(json.dumps(dict(raw, **task)))
    return suite


def _run(tmp: Path, suite: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Run the suite; each attempt's evidence as report.html carries it (results.json is the platform's body:
    it stays exactly as before, without evidence)."""
    cfg = write_config(tmp, api_workers=0, browsers=1)
    proc = start_run(suite, cfg)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, (out, err)                       # one case failed
    assert all("evidence" not in r for r in results(tmp))
    page = (tmp / "reports" / "t-1" / "report.html").read_text(encoding="utf-8")
    index = json.loads(_script(page, "report-data"))
    blocks = [json.loads(zlib.decompress(base64.b64decode(b))) for b in json.loads(_script(page, "report-details"))]
    return {(c["id"], a["r"]): a.get("ev", {}) for c in index["cases"] for a in blocks[c["k"]][c["j"]]}


def _script(page: str, element_id: str) -> str:
    """The JSON text of report.html's ``<script id=...>`` element (the page's index or its compressed details)."""
    return page.split(f'<script type="application/json" id="{element_id}">', 1)[1].split("</script>", 1)[0]


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="evidence-chrome-")
    opts = Options()
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", "--window-size=1280,800"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_failing_attempts_keep_bundles_linked_from_every_report(tmp_path: Path, demo_url: str, driver: WebDriver) -> None:
    by = _run(tmp_path, _suite(tmp_path, demo_url))
    task_dir = tmp_path / "reports" / "t-1"
    assert set(by) == {("fail", 1), ("fail", 2), ("ok", 1)}
    assert by[("ok", 1)] == {}
    for attempt in (1, 2):
        ev = by[("fail", attempt)]
        assert {f["k"] for f in ev["files"]} == {"console", "har", "dom", "dom-index", "driver-log", "video"}, ev
        assert all(f["u"].startswith(f"attachments/fail%40web.1/{attempt}/") for f in ev["files"]), ev
        assert all((task_dir / "attachments" / "fail@web.1" / str(attempt) / f["n"]).is_file() for f in ev["files"])
        assert any("evidence-sys" in row["text"] for row in ev["console"])
        assert any(row["u"].endswith("/page2.html") and row["s"] == 200 for row in ev["network"])
    # one bundle directory, for the failing case only; beside it the reports' copies of the screenshots
    assert sorted(p.name for p in (task_dir / "attachments").iterdir() if p.is_dir()) == ["fail@web.1"]
    assert all(p.suffix == ".png" for p in (task_dir / "attachments").iterdir() if p.is_file())

    allure = [json.loads(p.read_text()) for p in (task_dir / "allure-results").glob("*-result.json")]
    failed = [d for d in allure if d["name"] == "fails"]
    assert len(failed) == 2
    for doc in failed:
        types = {a["type"] for a in doc["attachments"]}
        assert {"video/webm", "application/json", "text/html", "text/plain"} <= types, doc["attachments"]
        assert all((task_dir / "allure-results" / a["source"]).is_file() for a in doc["attachments"])

    driver.get((task_dir / "report.html").as_uri())
    end = time.monotonic() + 10
    while driver.execute_script("return document.body.getAttribute('data-ready')") != "1":
        assert time.monotonic() < end, "report never rendered"
        time.sleep(0.05)
    driver.execute_script("Array.from(document.querySelectorAll('#spacer .row')).find(r => r.innerText.includes('fails')).click()")
    driver.set_script_timeout(20)
    media = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const vs = Array.from(document.querySelectorAll('#detail video'));
        if (!vs.length) return done({error: 'no video element'});
        const v = vs[0];
        const ready = () => done({n: vs.length, duration: v.duration, w: v.videoWidth, src: v.getAttribute('src'),
                                  frames: document.querySelectorAll('#detail iframe[sandbox]').length,
                                  tables: document.querySelectorAll('#detail table.evt').length});
        if (v.readyState >= 1) ready(); else { v.onloadedmetadata = ready; v.onerror = () => done({error: 'video error'}); v.load(); }""")
    assert "error" not in media and media["n"] == 2 and media["duration"] > 0 and media["w"] > 0, media
    assert media["src"].startswith("attachments/") and media["frames"] >= 2 and media["tables"] >= 4, media


def test_task_evidence_first_retry_keeps_only_the_retry(tmp_path: Path, demo_url: str) -> None:
    by = _run(tmp_path, _suite(tmp_path, demo_url, evidence="first-retry"))
    assert by[("fail", 1)] == {} and by[("ok", 1)] == {}
    assert by[("fail", 2)]["files"] and by[("fail", 2)]["notes"] == []
    attempts = list((tmp_path / "reports" / "t-1" / "attachments").glob("*/*"))
    assert [p.relative_to(tmp_path / "reports" / "t-1").as_posix() for p in attempts] == ["attachments/fail@web.1/2"]


def test_case_killed_at_its_deadline_keeps_what_was_collected(tmp_path: Path, demo_url: str, driver: WebDriver) -> None:
    # a custom step stuck in one native call: only the supervisor's SIGTERM (then SIGKILL) ends the case
    stuck = dict(_op("browser", "自定义"), operationCode="import time\ntime.sleep(120)")
    hang = web_case("hang", "hangs", demo_url, _op("browser", "执行脚本", script="console.error('before-the-kill')"),
                    _op("page", "单击", ("ID", "page2-link")), stuck)
    suite = write_suite(tmp_path / "suite", {"web": [hang]}, max_thread=1)
    cfg = write_config(tmp_path, "[Retry]\nmax-attempts = 1\n", api_workers=0, browsers=1, kill_grace=5)
    proc = start_run(suite, cfg, "--case-timeout", "8")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, (out, err)
    row = results(tmp_path)[0]
    assert row["status"] == 2 and "timeout after 8 s" in row["transactionList"][0]["log"], row   # the engine's result

    page = (tmp_path / "reports" / "t-1" / "report.html").read_text(encoding="utf-8")
    index = json.loads(_script(page, "report-data"))
    blocks = [json.loads(zlib.decompress(base64.b64decode(b))) for b in json.loads(_script(page, "report-details"))]
    ev = next(a.get("ev", {}) for c in index["cases"] for a in blocks[c["k"]][c["j"]])
    assert {f["k"] for f in ev.get("files", [])} == {"console", "har", "driver-log", "video"}, ev   # no DOM: killed
    assert any(n.startswith("attempt killed (the executor got SIGTERM") for n in ev["notes"]), ev["notes"]
    assert any("before-the-kill" in r["text"] for r in ev["console"]), ev["console"]
    assert any(r["u"].endswith("/page2.html") and r["s"] == 200 for r in ev["network"]), ev["network"]
    bundle = tmp_path / "reports" / "t-1" / "attachments" / "hang@web.1" / "1"
    assert "COMMAND Navigate" in (bundle / "chromedriver.log").read_text(errors="replace")

    driver.get((tmp_path / "reports" / "t-1" / "report.html").as_uri())
    driver.set_script_timeout(20)                 # the video of the attempt, up to the kill, plays in Chromium
    media = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const v = document.createElement('video'); v.muted = true; v.src = arguments[0];
        v.onerror = () => done({error: 'video error'});
        v.onloadedmetadata = () => done({duration: v.duration, w: v.videoWidth});
        document.body.appendChild(v);""", (bundle / "video.webm").as_uri())
    assert "error" not in media and media["duration"] > 0 and media["w"] > 0, media
    assert not (bundle / "evidence.json.tmp").exists()


def test_case_killed_at_the_end_of_the_stop_grace_keeps_its_bundle(tmp_path: Path, demo_url: str) -> None:
    # the engine stop SIGKILLs a case still running when the stop grace ends (no SIGTERM first): the executor
    # writes the bundle shortly before
    stuck = dict(_op("browser", "自定义"), operationCode="import time\ntime.sleep(120)")
    hang = web_case("hang", "hangs", demo_url, _op("browser", "执行脚本", script="console.error('before-the-stop')"), stuck)
    suite = write_suite(tmp_path / "suite", {"web": [hang]}, max_thread=1)
    cfg = write_config(tmp_path, "[Retry]\nmax-attempts = 1\n", api_workers=0, browsers=1, stop_grace=6)
    proc = start_run(suite, cfg)
    wait_for(lambda: _running(tmp_path, "hang", 1), 60, "the hanging case running")
    time.sleep(1)                                  # into its stuck step
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    row = results(tmp_path)[0]
    assert row["status"] == 2 and "grace" in row["transactionList"][0]["log"], row
    bundle = tmp_path / "reports" / "t-1" / "attachments" / "hang@web.1" / "1"
    manifest = json.loads((bundle / "evidence.json").read_text())
    assert {f["kind"] for f in manifest["files"]} >= {"console", "har", "driver-log"}, manifest
    assert any("the engine is stopping and the case did not end within the stop grace" in n for n in manifest["notes"])
    assert any("before-the-stop" in r["text"] for r in json.loads((bundle / "console.json").read_text()))
