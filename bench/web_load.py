"""Heavy parallel WEB suite under load (issue 17): 120 cases in 12 collections on local pages with
timing-sensitive behaviour (timers, delayed and vanishing elements, CSS animations, new windows; every 10th
case fails on purpose), run with ``bin/liuma-pipeline run`` serially (one browser, maxThread 1, which is
also N = 1), at fixed N = 2, 4, 8 and ``auto``, and through a real Selenium Grid 4 (2 slots, 4 executors).
Reports per run: wall time, verdicts against the serial run's (extra failures, broken), retried attempts;
and, in-process, the per-case browser overhead (reset or new browser) inside the case before the host's
``prepare`` step and after. Prints the load average, which on a shared 2-core machine dominates.

Run: ``.venv/bin/python bench/web_load.py [--only serial,2,4,8,auto,auto-sized,grid,grid-new] [--cases 120]``
(``auto-sized``: ``auto`` without its load limit, i.e. the sizing alone; ``spare``: the wall a new browser costs
between two cases with and without the background spare, in-process; ``grid-new``: through the Grid with a
new session per case, ``[WebDriver] reset = session``, as before Grid sessions were reused).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGES = {
    "/delayed.html": """<title>Delayed</title><div id=box></div><script>
setTimeout(() => { const e = document.createElement('span'); e.id = 'ready'; e.textContent = 'ready';
document.getElementById('box').appendChild(e); }, 700);</script>""",
    "/timer.html": """<title>Timer</title><span id=count>0</span><script>let n = 0; const t = setInterval(() => {
n += 1; document.getElementById('count').textContent = String(n);
if (n === 8) { clearInterval(t); const d = document.createElement('b'); d.id = 'done'; d.textContent = 'done 8';
document.body.appendChild(d); } }, 100);</script>""",
    "/vanish.html": """<title>Vanish</title><div id=spinner>loading</div><p id=msg></p><script>
setTimeout(() => { document.getElementById('spinner').remove(); document.getElementById('msg').textContent = 'loaded'; },
600);</script>""",
    "/anim.html": """<title>Anim</title><style>#m{width:10px;transition:width .5s}#m.go{width:200px}</style>
<div id=m></div><script>const m = document.getElementById('m');
m.addEventListener('transitionend', () => { const s = document.createElement('i'); s.id = 'moved';
s.textContent = 'moved'; document.body.appendChild(s); });
requestAnimationFrame(() => requestAnimationFrame(() => m.classList.add('go')));</script>""",
    "/opener.html": """<title>Opener</title><a id=child href="/child.html" target=_blank>open child</a>""",
    "/child.html": """<title>Child</title><p id=who>child window</p>""",
}


class _Pages(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = PAGES.get(self.path.split("?")[0])
        self.send_response(200 if body else 404)
        data = f"<!doctype html><meta charset=utf-8>{body or 'not found'}".encode()
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve() -> tuple[ThreadingHTTPServer, str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def _op(kind: str, name: str, el: tuple[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"operationType": kind, "operationId": f"{name}-{len(data)}", "operationName": name, "operationDesc": None,
            "operationTrans": name, "operationCode": None,
            "operationElement": {"element": {"by": el[0], "expression": el[1], "target": "b"}} if el else {},
            "operationData": {k: {"type": "String", "value": v} for k, v in data.items()}}


def make_case(base: str, i: int) -> dict[str, Any]:
    kind = i % 5
    wrong = i % 10 == 9                       # fails on purpose, in every run alike
    if kind == 0:
        ops = [_op("browser", "打开网页", domain=base, path="/delayed.html"), _op("page", "等待元素出现", ("ID", "ready"), second="5"),
               _op("assertion", "断言元素文本", ("ID", "ready"), assertion="equals", expect="nope" if wrong else "ready")]
    elif kind == 1:
        ops = [_op("browser", "打开网页", domain=base, path="/timer.html"), _op("page", "等待元素出现", ("ID", "done"), second="5"),
               _op("assertion", "断言元素文本", ("ID", "done"), assertion="equals", expect="done 9" if wrong else "done 8")]
    elif kind == 2:
        ops = [_op("browser", "打开网页", domain=base, path="/vanish.html"), _op("page", "等待元素消失", ("ID", "spinner"), second="5"),
               _op("assertion", "断言元素文本", ("ID", "msg"), assertion="equals", expect="x" if wrong else "loaded")]
    elif kind == 3:
        ops = [_op("browser", "打开网页", domain=base, path="/anim.html"), _op("page", "等待元素出现", ("ID", "moved"), second="5"),
               _op("assertion", "断言元素文本", ("ID", "moved"), assertion="equals", expect="still" if wrong else "moved")]
    else:
        ops = [_op("browser", "打开网页", domain=base, path="/opener.html"), _op("browser", "单击跳转新窗口", ("ID", "child")),
               _op("assertion", "断言页面标题", assertion="equals", expect="Parent" if wrong else "Child")]
    return {"caseId": f"k{i:03d}", "caseName": f"load {i}", "comment": None, "startDriver": True, "closeDriver": True,
            "driverSetting": {}, "params": {}, "functions": [], "optList": ops}


def write_suite(root: Path, base: str, cases: int, collections: int, max_thread: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    colls = []
    for c in range(collections):
        (root / f"g{c}").mkdir(exist_ok=True)
        refs = []
        for j, i in enumerate(range(c, cases, collections), start=1):
            case = make_case(base, i)
            (root / f"g{c}" / f"{case['caseId']}.json").write_text(json.dumps(case, ensure_ascii=False))
            refs.append({"index": j, "caseId": case["caseId"], "caseType": "WEB"})
        colls.append({"collectionId": f"g{c}", "deviceId": None, "testCaseList": refs})
    (root / "task.json").write_text(json.dumps({"taskId": "load", "taskType": "run", "maxThread": max_thread, "reRun": False,
                                                "testCollectionList": colls, "downloadUrl": None, "debugData": None}))
    return root


def run_engine(tmp: Path, suite: Path, browsers: str, extra: str = "") -> dict[str, Any]:
    (tmp / "run").mkdir(parents=True, exist_ok=True)
    cfg = tmp / "config.ini"
    cfg.write_text(f"[Pipeline]\nstorage-root = {tmp}/storage\nreport-dir = {tmp}/reports\nrun-dir = {tmp}/run\n"
                   f"api-workers = 0\nbrowsers = {browsers}\ncase-timeout = 60\n{extra}")
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    p = subprocess.run([str(ROOT / "bin" / "liuma-pipeline"), "run", str(suite), "--config", str(cfg), "--progress", "plain"],
                       cwd=str(ROOT), capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    rows = json.loads((tmp / "reports" / "load" / "results.json").read_text())["caseResultList"]
    final: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: r["runTimes"]):
        final[r["caseId"]] = r["status"]
    executors = len(list((tmp / "storage" / "log").glob("executor-*.log")))
    parked = sum(f.read_text(errors="replace").count(" parked (") for f in (tmp / "storage" / "log").glob("executor-*.log"))
    return {"wall": wall, "final": final, "attempts": len(rows), "exit": p.returncode, "load": (load0 + os.getloadavg()[0]) / 2,
            "executors": executors, "parked": parked, "stuck": "slot check" in (tmp / "storage" / "log" / "scheduler.log").read_text()}


def overhead(base: str, n: int = 12) -> tuple[float, float]:
    """Median case wall time with the browser reset inside the case (no prepare) and with ``prepare`` first."""
    from stages.executor.context import RunContext, RunSettings
    from stages.executor.web import WebRunner
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    out = []
    for use_prepare in (False, True):
        runner = WebRunner()
        ctx = RunContext(task_id="b", collection_id="c", storage_root=tmp, data_dir=tmp, settings=RunSettings())
        times = []
        try:
            for i in range(n + 1):
                case = make_case(base, i * 5 + 2)                 # the vanish page, passing
                ctx.deadline = time.monotonic() + 60
                if use_prepare:
                    runner.prepare(case, ctx)
                t0 = time.monotonic()
                runner.run(case, ctx)
                if i:                                             # the first one starts the browser
                    times.append(time.monotonic() - t0)
        finally:
            runner.close_shared(ctx)
        out.append(statistics.median(times))
    return out[0], out[1]


def spare_overhead(base: str, n: int = 8) -> tuple[float, float]:
    """A new browser for every case (``recycle-cases = 1``): median wall of the host's ``prepare`` (the browser
    overhead between two cases; the case clock never includes it) without and with the background spare."""
    from stages.executor.context import RunContext, RunSettings
    from stages.executor.web import WebRunner
    tmp = Path(tempfile.mkdtemp(prefix="bench-spare-"))
    out = []
    for spare in (False, True):
        runner = WebRunner()
        ctx = RunContext(task_id="b", collection_id="c", storage_root=tmp, data_dir=tmp,
                         settings=RunSettings(recycle_cases=1, spare_browser=spare))
        times = []
        try:
            for i in range(n + 1):
                case = make_case(base, i * 5 + 2)
                t0 = time.monotonic()
                runner.prepare(case, ctx)
                if i:                                             # the first start is no replacement
                    times.append(time.monotonic() - t0)
                ctx.deadline = time.monotonic() + 60
                runner.run(case, ctx)
        finally:
            runner.close_shared(ctx)
        out.append(statistics.median(times))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="serial,2,4,8,auto,grid")
    ap.add_argument("--cases", type=int, default=120)
    ap.add_argument("--collections", type=int, default=12)
    args = ap.parse_args()
    srv, base = serve()
    work = Path(tempfile.mkdtemp(prefix="bench-web-load-"))
    print(f"{os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}; {args.cases} cases in "
          f"{args.collections} collections; work dir {work}", flush=True)
    before, after = overhead(base)
    print(f"per-case wall, browser reset inside the case: {before:.3f} s; prepared before the case: {after:.3f} s "
          f"(overhead out of the case path: {before - after:.3f} s)", flush=True)
    if "spare" in args.only.split(","):
        off, on = spare_overhead(base)
        print(f"a new browser per case (recycle-cases 1), median prepare between cases: started then {off:.3f} s; "
              f"spare started during the previous case {on:.3f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for name in args.only.split(","):
        if name == "spare":
            continue
        tmp = work / name
        suite = write_suite(tmp / "suite", base, args.cases, args.collections, 1 if name == "serial" else 16)
        if name in ("grid", "grid-new"):      # grid-new: a new Grid session per case (reset = session), as before reuse
            from tests.grid_server import GridServer
            with GridServer(tmp / "grid", slots=2) as g:
                reset = "reset = session\n" if name == "grid-new" else ""
                r = run_engine(tmp, suite, "4", f"[WebDriver]\noptions = remote\nremote-url = {g.url}\n{reset}")
                r["sessions"] = g.log_tail(10**8).count("Session created by the Node")
        elif name == "auto-sized":             # the sizing alone: no load limit (other tenants' load ignored)
            r = run_engine(tmp, suite, "auto", "[Capacity]\nmax-load = 1000\n")
        else:
            r = run_engine(tmp, suite, "1" if name == "serial" else name)
        results[name] = r
        ref = results.get("serial", r)["final"]
        diff = sorted(k for k in r["final"] if r["final"][k] != ref.get(k))
        fails = sum(1 for v in r["final"].values() if v == 1)
        broken = sum(1 for v in r["final"].values() if v == 2)
        print(f"{name:>6}: wall {r['wall']:6.1f} s, executors {r['executors']}, attempts {r['attempts']}, failed {fails}, "
              f"broken {broken}, verdicts differing from serial {len(diff)} {diff[:8]}, parked events {r['parked']}, "
              f"stuck-slot heals {'yes' if r['stuck'] else 'none'}, mean load {r['load']:.1f}, exit {r['exit']}"
              + (f", Grid sessions {r['sessions']}" if "sessions" in r else ""), flush=True)
    if "serial" in results:
        s = results["serial"]["wall"]
        print("speed-up over serial (= N 1): " + ", ".join(f"{k} {s / v['wall']:.2f}x" for k, v in results.items()))
    srv.shutdown()


if __name__ == "__main__":
    main()
