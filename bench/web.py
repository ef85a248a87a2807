"""WEB throughput: 40 cases x 5 steps against the demo site, 1 and 2 workers, median of 3 runs.

(a) ``WebRunner`` in N multiprocessing worker processes, one browser per worker reused across cases;
(b) the same steps as a plain pytest + pytest-xdist + selenium suite (one browser per xdist worker).
Also prints the browser start time and PSS per browser. Run: ``.venv/bin/python bench/web.py [--runs 3]``.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
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
CASES = 40


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
    out.put(statuses)


def run_engine(base: str, workers: int) -> float:
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


PYTEST_SUITE = '''
import os, shutil, tempfile
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
BASE = os.environ["BENCH_BASE"]

@pytest.fixture(scope="session")
def driver():
    profile = tempfile.mkdtemp()
    o = Options(); o.binary_location = "/usr/bin/chromium"
    for a in ("--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", "--window-size=1280,800",
              "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    yield d
    d.quit(); shutil.rmtree(profile, ignore_errors=True)

@pytest.mark.parametrize("i", range(%d))
def test_case(driver, i):
    driver.delete_all_cookies()
    driver.get(BASE + "/index.html"); driver.implicitly_wait(2)
    driver.find_element(By.ID, "username").send_keys(f"user{i}")
    driver.find_element(By.ID, "greet").click()
    assert driver.find_element(By.ID, "greeting").text == f"Hello, user{i}"
    driver.find_element(By.LINK_TEXT, "Go to page 2").click()
''' % CASES


def run_pytest(base: str, workers: int, suite: Path) -> float:
    env = {**os.environ, "BENCH_BASE": base, "SE_OFFLINE": "true"}
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
    try:
        for i, (start, pss) in enumerate(browser_costs(), 1):
            print(f"browser {i}: start {start:.2f} s, PSS {pss:.0f} MB")
        rows = []
        for workers in (1, 2):
            eng = statistics.median(run_engine(base, workers) for _ in range(args.runs))
            plain = statistics.median(run_pytest(base, workers, suite) for _ in range(args.runs))
            rows.append((workers, eng, plain))
        print(f"\n{CASES} cases x 5 steps, median of {args.runs} runs (wall seconds, incl. worker + browser start)")
        print(f"{'workers':>7} | {'WebRunner':>9} | {'pytest-xdist':>12} | {'ratio':>5} | {'cases/min (runner)':>18}")
        for workers, eng, plain in rows:
            print(f"{workers:>7} | {eng:>9.2f} | {plain:>12.2f} | {eng / plain:>5.2f} | {CASES / eng * 60:>18.0f}")
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
