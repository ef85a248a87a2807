"""WEB throughput: 40 cases x 5 steps against the demo site, 1 and 2 browsers, median of 3 runs.

(a) ``WebRunner`` in N multiprocessing worker processes, one browser per worker reused across cases;
(b) the whole engine: ``bin/liuma-pipeline run`` of the same 40 cases (8 collections x 5) with
    ``--browsers N --api-workers 0``, process start to exit (all stages, reports included);
(c) the same steps as a plain pytest + pytest-xdist + selenium suite (one browser per xdist worker), with the
    engine's Chromium flags. Its isolation is the usual ``delete_all_cookies`` per test; (a) and (b) reset
    pages, windows, cookies, storage, cache and history before every case (session.reset_browser).
Also prints the browser start time and PSS per browser. Run: ``.venv/bin/python bench/web.py [--runs 3]``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stages.executor.web.browser import ENGINE_ARGS  # noqa: E402

CASES = 40
COLLECTIONS = 8


def _op(kind: str, name: str, el: tuple[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"operationType": kind, "operationId": name, "operationName": name, "operationDesc": None,
            "operationTrans": name, "operationCode": None,
            "operationElement": {"element": {"by": el[0], "expression": el[1], "target": "demo"}} if el else {},
            "operationData": {k: {"type": "String", "value": v} for k, v in data.items()}}


def make_case(base: str, i: int) -> dict[str, Any]:
    ops = [_op("browser", "打开网页", domain=base, path="/index.html"),
           _op("page", "输入", ("ID", "username"), text=f"user{i}"),
           _op("page", "单击", ("ID", "greet")),
           _op("assertion", "断言元素文本", ("ID", "greeting"), assertion="equals", expect=f"Hello, user{i}"),
           _op("page", "单击", ("LINK", "Go to page 2"))]
    return {"caseId": f"c{i}", "caseName": f"bench {i}", "startDriver": True, "closeDriver": True,
            "driverSetting": {}, "params": {}, "functions": [], "optList": ops}


def _worker(base: str, indices: list[int], out: Any) -> None:
    from stages.executor.context import RunContext
    from stages.executor.web import WebRunner
    runner = WebRunner()
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    ctx = RunContext(task_id="bench", collection_id="c", storage_root=tmp, data_dir=tmp)
    statuses = []
    try:
        for i in indices:
            ctx.deadline = time.monotonic() + 60
            statuses.append(runner.run(make_case(base, i), ctx).result.status)
    finally:
        runner.close_shared(ctx)
        shutil.rmtree(tmp, ignore_errors=True)
    out.put(statuses)


def run_runner(base: str, workers: int) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    t0 = time.monotonic()
    procs = [ctx.Process(target=_worker, args=(base, list(range(w, CASES, workers)), q)) for w in range(workers)]
    for p in procs:
        p.start()
    results = [q.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - t0
    assert sum(len(r) for r in results) == CASES and all(s == 0 for r in results for s in r), results
    return elapsed


def write_engine_suite(base: str, root: Path) -> Path:
    """task.json + <collection>/<case>.json: the same 40 cases in COLLECTIONS collections, in order."""
    per = CASES // COLLECTIONS
    colls = []
    for c in range(COLLECTIONS):
        (root / f"col{c}").mkdir(parents=True, exist_ok=True)
        refs = []
        for j in range(per):
            case = make_case(base, c * per + j)
            (root / f"col{c}" / f"{case['caseId']}.json").write_text(json.dumps(case, ensure_ascii=False))
            refs.append({"index": j + 1, "caseId": case["caseId"], "caseType": "WEB"})
        colls.append({"collectionId": f"col{c}", "deviceId": None, "testCaseList": refs})
    (root / "task.json").write_text(json.dumps({"taskId": "bench", "taskType": "run", "maxThread": 2, "reRun": False,
                                                "testCollectionList": colls, "downloadUrl": None, "debugData": None}))
    return root


def run_pipeline(suite: Path, browsers: int) -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-eng-"))
    (work / "run").mkdir()
    cfg = work / "config.ini"
    cfg.write_text(f"[Pipeline]\nstorage-root = {work / 'storage'}\nreport-dir = {work / 'reports'}\nrun-dir = {work / 'run'}\n")
    cmd = [str(ROOT / "bin" / "liuma-pipeline"), "run", str(suite), "--config", str(cfg),
           "--browsers", str(browsers), "--api-workers", "0"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.monotonic() - t0
    shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0 or f"{CASES} cases: {CASES} passed" not in proc.stdout:
        raise RuntimeError(f"engine run failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


PYTEST_SUITE = '''
import os, shutil, tempfile
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
BASE = os.environ["BENCH_BASE"]
ARGS = %r

@pytest.fixture(scope="session")
def driver():
    profile = tempfile.mkdtemp()
    o = Options(); o.binary_location = "/usr/bin/chromium"
    for a in (*ARGS, f"--user-data-dir={profile}", "--window-size=1280,800"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    yield d
    d.quit(); shutil.rmtree(profile, ignore_errors=True)

def full_reset(d):
    """BENCH_RESET=1: the engine's per-case reset (session.reset_browser), command for command."""
    handles = d.window_handles
    for h in handles[1:]:
        d.switch_to.window(h); d.close()
    d.switch_to.window(handles[0])
    d.get("about:blank")
    d.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": "*", "storageTypes": "all"})
    d.execute_cdp_cmd("Network.clearBrowserCache", {})
    d.execute_cdp_cmd("Page.resetNavigationHistory", {})
    d.implicitly_wait(0)
    d.set_window_rect(x=0, y=0, width=1280, height=800)

@pytest.mark.parametrize("i", range(%d))
def test_case(driver, i):
    if os.environ.get("BENCH_RESET") == "1":
        full_reset(driver)
    else:
        driver.delete_all_cookies()
    driver.get(BASE + "/index.html"); driver.implicitly_wait(2)
    driver.find_element(By.ID, "username").send_keys(f"user{i}")
    driver.find_element(By.ID, "greet").click()
    assert driver.find_element(By.ID, "greeting").text == f"Hello, user{i}"
    driver.find_element(By.LINK_TEXT, "Go to page 2").click()
''' % (ENGINE_ARGS, CASES)


def run_pytest(base: str, workers: int, suite: Path, reset: bool = False) -> float:
    env = {**os.environ, "BENCH_BASE": base, "SE_OFFLINE": "true", "BENCH_RESET": "1" if reset else "0"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(suite.parent),
           "-n", str(workers), str(suite)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=suite.parent)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    return elapsed


def browser_costs(n: int = 2) -> list[tuple[float, float]]:
    """(start seconds, PSS MB of chromedriver + its chromium tree) for ``n`` browsers started in turn."""
    import psutil

    from stages.executor.web.browser import BrowserConfig, start_browser
    out, browsers = [], []
    try:
        for _ in range(n):
            b = start_browser(BrowserConfig())
            browsers.append(b)
            b.driver.get("about:blank")
            time.sleep(1.0)
            root = psutil.Process(b.pids()[0])
            pss = sum(p.memory_full_info().pss for p in [root, *root.children(recursive=True)])
            out.append((b.started_in, pss / 2**20))
    finally:
        for b in browsers:
            b.quit()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from examples.demo_server import serve
    server, base = serve()
    suite_dir = Path(tempfile.mkdtemp(prefix="bench-pytest-"))
    suite = suite_dir / "test_bench_web.py"
    suite.write_text(textwrap.dedent(PYTEST_SUITE))
    engine_suite: Path | None = None
    try:
        for i, (start, pss) in enumerate(browser_costs(), 1):
            print(f"browser {i}: start {start:.2f} s, PSS {pss:.0f} MB")
        engine_suite = write_engine_suite(base, Path(tempfile.mkdtemp(prefix="bench-suite-")))
        rows = []
        for workers in (1, 2):
            runner = statistics.median(run_runner(base, workers) for _ in range(args.runs))
            engine = statistics.median(run_pipeline(engine_suite, workers) for _ in range(args.runs))
            plain = statistics.median(run_pytest(base, workers, suite) for _ in range(args.runs))
            same = statistics.median(run_pytest(base, workers, suite, reset=True) for _ in range(args.runs))
            rows.append((workers, runner, engine, plain, same))
        print(f"\n{CASES} cases x 5 steps, median of {args.runs} runs (wall seconds, process start to exit)")
        print("xdist = pytest-xdist, delete_all_cookies per test; xdist+reset = the engine's full per-case reset")
        print(f"{'browsers':>8} | {'WebRunner':>9} | {'engine':>7} | {'xdist':>6} | {'xdist+reset':>11} | "
              f"{'runner/xdist':>12} | {'engine/xdist':>12} | {'engine/xdist+reset':>18}")
        for workers, runner, engine, plain, same in rows:
            print(f"{workers:>8} | {runner:>9.2f} | {engine:>7.2f} | {plain:>6.2f} | {same:>11.2f} | "
                  f"{runner / plain:>12.2f} | {engine / plain:>12.2f} | {engine / same:>18.2f}")
    finally:
        server.shutdown()
        shutil.rmtree(suite_dir, ignore_errors=True)
        if engine_suite is not None:
            shutil.rmtree(engine_suite, ignore_errors=True)


if __name__ == "__main__":
    main()
