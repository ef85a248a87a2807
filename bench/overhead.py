"""Engine overhead: 1,000 and 5,000 no-op cases (API cases without steps: ~20 µs of runner work) through
every stage. Prints cases/s, time from plan to first dispatch, wall time, memory per stage (max RSS) and
message rates per hop (frames pushed, from each stage's counters).

    python bench/overhead.py [--sizes 1000 5000] [--workers 2]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def noop_suite(root: Path, cases: int, per_collection: int = 50) -> Path:
    colls = []
    for c in range(0, cases, per_collection):
        cid = f"c{c // per_collection:04d}"
        (root / cid).mkdir(parents=True)
        refs = []
        for j in range(min(per_collection, cases - c)):
            case_id = f"n{c + j:05d}"
            (root / cid / f"{case_id}.json").write_text(json.dumps(
                {"comment": None, "caseId": case_id, "caseName": case_id, "functions": [], "params": {}, "apiList": []}))
            refs.append({"index": j + 1, "caseId": case_id, "caseType": "API"})
        colls.append({"collectionId": cid, "testCaseList": refs})
    (root / "task.json").write_text(json.dumps({"taskId": "noop", "taskType": "run", "maxThread": 64, "reRun": False,
                                                "testCollectionList": colls}))
    return root


def sample(run_root: Path, stop: threading.Event, mem: dict[str, float], stats: dict[str, dict]) -> None:
    procs: dict[int, psutil.Process] = {}
    while not stop.is_set():
        for d in run_root.glob("lmp-*"):
            try:
                st = json.loads((d / "status.json").read_text())
            except (OSError, ValueError):
                continue
            for s in st["stages"]:
                if s.get("stats"):
                    stats[s["name"]] = s["stats"]
                pid = s.get("pid")
                if not pid:
                    continue
                try:
                    p = procs.setdefault(pid, psutil.Process(pid))
                    mem[s["name"]] = max(mem.get(s["name"], 0.0), p.memory_info().rss / 2**20)
                except psutil.Error:
                    pass
        time.sleep(0.1)


def run(cases: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        suite = noop_suite(t / "suite", cases)
        (t / "run").mkdir()
        cfg = t / "config.ini"
        cfg.write_text(f"[Pipeline]\nstorage-root = {t / 'storage'}\nreport-dir = {t / 'reports'}\nrun-dir = {t / 'run'}\n"
                       f"api-workers = {workers}\nbrowsers = 0\nheartbeat-interval = 0.5\n[Logging]\nlevel = info\n")
        mem: dict[str, float] = {}
        stats: dict[str, dict] = {}
        stop = threading.Event()
        th = threading.Thread(target=sample, args=(t / "run", stop, mem, stats), daemon=True)
        th.start()
        t0 = time.perf_counter()
        r = subprocess.run([str(ROOT / "bin" / "liuma-pipeline"), "run", str(suite), "--config", str(cfg)],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
        if r.returncode != 0:
            raise SystemExit(r.stderr[-2000:])
        rows = json.loads((t / "reports" / "noop" / "results.json").read_text())["caseResultList"]
        starts = sorted(x["startTime"] for x in rows)
        ends = sorted(x["endTime"] for x in rows)
        log = (t / "storage" / "log" / "scheduler.log").read_text()
        m = re.search(r"^(\S+ \S+) INFO stage.scheduler: task noop planned", log, re.M)
        planned = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() * 1000 if m else starts[0]
        span = (ends[-1] - starts[0]) / 1000
        return {"cases": len(rows), "wall": wall, "span": span, "rate": len(rows) / span if span else 0,
                "first_dispatch_ms": starts[0] - planned, "mem": mem, "stats": stats}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print(f"{'cases':>6} {'wall s':>7} {'run s':>6} {'cases/s':>8} {'ms/case':>8} {'plan->1st dispatch':>19}")
    results = []
    for n in args.sizes:
        res = run(n, args.workers)
        results.append(res)
        print(f"{res['cases']:>6} {res['wall']:>7.2f} {res['span']:>6.2f} {res['rate']:>8.0f} {1000 / res['rate']:>8.2f} "
              f"{res['first_dispatch_ms']:>16.0f} ms")
    last = results[-1]
    print(f"\nmax RSS per stage (MB), {last['cases']}-case run:")
    print("  " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(last["mem"].items())))
    print(f"frames pushed per hop, {last['cases']}-case run (includes acks, statuses, heartbeats; rate over the run span):")
    for src, st in sorted(last["stats"].items()):
        for dst, n in sorted((st.get("sent_to") or {}).items()):
            print(f"  {src:>11} -> {dst:<11} {n:>7}  {n / last['span']:>8.0f}/s")
    print("targets: >= 1000 no-op cases/s (<= 1 ms per case); first dispatch < 1 s after the plan")


if __name__ == "__main__":
    main()
