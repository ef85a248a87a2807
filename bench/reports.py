"""Benchmark of the aggregator's report writers at scale.

Synthesises N case results (mixed outcomes and case types, 5 steps each, screenshots on some UI steps,
retries for some failures), times ``write_all`` (cold, then a warm rewrite as during a run), and times
opening ``report.html`` in headless Chromium until the case list is rendered (median of 3).

    .venv/bin/python bench/reports.py [--cases 5000] [--runs 3] [--keep DIR] [--html-only]

``--html-only`` writes and opens only ``report.html`` (for 50,000 cases, where writing every format takes
minutes and only the page's open time is in question).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
import zlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SE_OFFLINE", "true")

from pipeline.models import CaseResult  # noqa: E402
from stages.aggregator.writers import TaskReportMeta, allure, html, junit, summary, write_all  # noqa: E402  # noqa: E402
from stages.aggregator.writers import results as results_mod  # noqa: E402

OUTCOMES = ["passed"] * 70 + ["failed"] * 12 + ["error"] * 5 + ["broken"] * 3 + ["skipped"] * 5 + ["flaky"] * 5
STATUS = {"passed": 0, "flaky": 0, "failed": 1, "error": 2, "broken": 2, "skipped": 0}


def tiny_png() -> bytes:
    """A valid 1x1 PNG (no Pillow needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + \
        chunk(b"IEND", b"")


def _step(rng: random.Random, case_type: str, k: int, t0: int, status: int, shot: str | None) -> dict[str, Any]:
    log = (f"2024-01-16 10:00:0{k}.100000 - Debug - 【请求信息】:<br>GET http://127.0.0.1:8000/api/items/{k}<br>"
           f"<span>请求体: {{\"q\": \"<x>\"}}</span><br>【响应信息】:<br>响应码: 200<br><b>响应体: {{\"ok\": true}}</b>")
    detail: dict[str, Any] = {}
    if case_type == "API":
        detail["req_resps"] = [{"request": {"method": "GET", "url": f"http://127.0.0.1:8000/api/items/{k}",
                                            "headers": {"Accept": "application/json"}, "query": {}, "body": None},
                                "response": {"status_code": 200, "headers": {"Content-Type": "application/json"},
                                             "body": {"ok": True, "items": list(range(k))}}}]
        detail["validators"] = [{"type": "equals", "actual": 200, "expected": 200 if status == 0 else 201,
                                 "result": status == 0, "message": "", "check": "resCode"}]
    else:
        detail["actions"] = [{"method": "click", "params": {"by": "id", "value": f"btn{k}"}, "start_time": t0,
                              "elapsed_ms": rng.randint(5, 80), "error": "" if status == 0 else "element not found",
                              "screen_results": [{"image_path": shot}] if shot else []}]
    if status:
        detail["error"] = "assertion failed: expected 201, got 200" if status == 1 else "element not found"
    return {"id": f"op-{k}", "name": f"step {k}", "content": f"/api/items/{k}" if case_type == "API" else "",
            "description": None, "log": log, "during": rng.randint(1, 200) if case_type == "API" else 0,
            "status": status, "screenShotList": [shot] if shot else [], "startTime": t0 + k * 200,
            "stepType": "request-GET" if case_type == "API" else "browser", "detail": detail}


def synth_results(n: int, task_id: str, image_dir: Path, seed: int = 7) -> list[CaseResult]:
    """``n`` cases (plus a retry attempt for the flaky and some failed ones)."""
    rng = random.Random(seed)
    image_dir.mkdir(parents=True, exist_ok=True)
    png = tiny_png()
    t0 = 1_705_392_000_000
    out: list[CaseResult] = []
    for i in range(n):
        outcome = rng.choice(OUTCOMES)
        case_type = rng.choice(["API", "API", "WEB", "APP"])
        attempts = ["failed", "flaky"] if outcome == "flaky" else \
            (["failed", "failed"] if outcome == "failed" and i % 4 == 0 else [outcome])
        for run, oc in enumerate(attempts, start=1):
            start = t0 + i * 1000 + run * 100
            status = STATUS[oc]
            steps = []
            for k in range(5):
                st = status if k == 4 else 0
                shot = None
                if case_type != "API" and (st or k == 0 and i % 10 == 0):
                    shot = f"20240116_{i:06d}{run}{k}"
                    (image_dir / f"{shot}.png").write_bytes(png)
                steps.append(_step(rng, case_type, k, start, st, shot))
            out.append(CaseResult(
                taskId=task_id, collectionId=f"collection-{i % 20:02d}", caseId=f"case-{i:05d}", caseType=case_type,
                caseName=f"case {i} 名称", index=i, runTimes=run, status=status, startTime=start,
                endTime=start + rng.randint(200, 3000), transactionList=steps, outcome=oc,
                reason="timeout after 300 s" if oc == "broken" else "", executor=f"executor-{i % 4}",
                tags=["smoke"] if i % 3 == 0 else [], inOut={"config_vars": {"token": "s3cr3t"}, "export_vars": {}}))
    return out


OPEN_CASE: list[float] = []


def open_report(page: Path, runs: int) -> list[float]:
    """Seconds from ``driver.get`` to the list rendered (``data-ready`` set and rows present), per run."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    times = []
    for _ in range(runs):
        profile = tempfile.mkdtemp(prefix="bench-chrome-")
        opts = Options()
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        try:
            begin = time.perf_counter()
            driver.get(page.as_uri())
            while not driver.execute_script(
                    "return document.body && document.body.getAttribute('data-ready')==='1'"
                    " && document.querySelectorAll('#spacer .row').length>0"):
                time.sleep(0.01)
            times.append(time.perf_counter() - begin)
            begin = time.perf_counter()          # open one case: inflate its details block, render it
            driver.execute_script("document.querySelector('#spacer .row').click()")
            while not driver.execute_script("return !!document.querySelector('#detail h2')"):
                time.sleep(0.005)
            OPEN_CASE.append(time.perf_counter() - begin)
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="write the reports here and keep them")
    ap.add_argument("--html-only", action="store_true", help="write and open report.html only")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    try:
        task_id = "bench-task"
        results = synth_results(args.cases, task_id, work / "storage" / "image" / task_id)
        meta = TaskReportMeta(task_id=task_id, task_name="bench run", engine_version="0.1.0", engine_code="bench",
                              started_at=datetime(2024, 1, 16, 10, 0, tzinfo=timezone(timedelta(hours=8))),
                              finished_at=None, secrets=["s3cr3t"], storage_root=work / "storage")
        report_dir = args.keep or work / "report"
        rows = []
        if args.html_only:
            cpu = time.process_time()
            page = html.write_html(report_dir, replace(meta, secrets=()), results)
            rows.append(("  html alone (CPU)", f"{time.process_time() - cpu:.2f} s"))
            opens = open_report(page, args.runs)
            rows.append((f"open report.html, median of {args.runs}", f"{statistics.median(opens):.2f} s"))
            rows.append(("  each run", ", ".join(f"{t:.2f}" for t in opens)))
            rows.append(("then open one case, median", f"{statistics.median(OPEN_CASE) * 1000:.0f} ms"))
            rows.append(("report.html size", f"{page.stat().st_size / 1e6:.1f} MB"))
            print(f"\n{args.cases} cases, {len(results)} attempts, 5 steps each (report.html only)\n")
            for label, value in rows:
                print(f"{label:<40} {value:>28}")
            return
        for label in ("write_all (cold)", "write_all (rewrite, same data)"):
            begin, cpu = time.perf_counter(), time.process_time()
            paths = write_all(report_dir, meta, results)
            rows.append((label, f"{time.perf_counter() - begin:.2f} s wall / {time.process_time() - cpu:.2f} s CPU"))
        clean = replace(meta, secrets=())
        for name, writer in (("summary", summary.write_summary), ("results", results_mod.write_results),
                             ("junit", junit.write_junit), ("allure", allure.write_allure), ("html", html.write_html)):
            cpu = time.process_time()
            writer(report_dir, clean, results)
            rows.append((f"  {name} alone (CPU)", f"{time.process_time() - cpu:.2f} s"))
        opens = open_report(paths["html"], args.runs)
        rows.append((f"open report.html, median of {args.runs}", f"{statistics.median(opens):.2f} s"))
        rows.append(("  each run", ", ".join(f"{t:.2f}" for t in opens)))
        rows.append(("then open one case, median", f"{statistics.median(OPEN_CASE) * 1000:.0f} ms"))
        shots = sum(1 for _ in (work / "storage" / "image" / task_id).iterdir())
        print(f"\n{args.cases} cases, {len(results)} attempts, 5 steps each, {shots} screenshots\n")
        print(f"{'measure':<40} {'value':>28}")
        print("-" * 69)
        for label, value in rows:
            print(f"{label:<40} {value:>28}")
        for name in ("summary", "results", "junit", "html"):
            print(f"{name + ' size':<40} {paths[name].stat().st_size / 1e6:>25.1f} MB")
        print(f"{'allure-results files':<40} {sum(1 for _ in paths['allure'].iterdir()):>28}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
