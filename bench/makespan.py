"""Makespan of a skewed suite: longest-first dispatch from the run history vs FIFO vs the lower bound.

    .venv/bin/python bench/makespan.py [--executors 4] [--short 40] [--long 3] [--long-s 8] [--short-s 0.5]

The suite: ``--short`` one-case collections of ``--short-s`` seconds listed first, then ``--long`` collections
of 4 cases summing to ``--long-s`` seconds (each a GET of the demo server's ``/api/slow?ms=``, a separate
process on a free port). Runs, each ``bin/liuma-pipeline run`` with ``--executors`` API workers:

1. longest-first without history (every case one step: the estimates tie, so the order is FIFO's),
2. longest-first again: the history of run 1 now says which collections are long,
3. FIFO (``[Pipeline] dispatch = fifo``).

Per run: the makespan (first case start to last case end, from results.json), the wall time of the whole
process, and the lower bound max(longest unit, total work / executors) from that run's own case durations.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PY = str(ROOT / ".venv" / "bin" / "python")

from tests.system.suites import api_case, write_suite  # noqa: E402 - after the sys.path line above


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def slow(case_id: str, url: str, seconds: float) -> dict[str, Any]:
    case = api_case(case_id, url, "/api/slow")
    case["apiList"][0]["query"] = {"ms": str(int(seconds * 1000))}
    return case


def build(root: Path, url: str, a: argparse.Namespace) -> Path:
    colls: dict[str, list[dict[str, Any]]] = {f"short-{i:02d}": [slow(f"s{i:02d}", url, a.short_s)] for i in range(a.short)}
    for j in range(a.long):
        colls[f"long-{j}"] = [slow(f"l{j}-{k}", url, a.long_s / 4) for k in range(4)]
    return write_suite(root / "suite", colls, task_id="makespan", max_thread=a.executors)


def run(suite: Path, tmp: Path, name: str, dispatch: str, executors: int) -> dict[str, Any]:
    cfg = tmp / f"{name}.ini"
    (tmp / "run").mkdir(exist_ok=True)
    cfg.write_text(f"[Pipeline]\nstorage-root = {tmp / 'storage'}\nreport-dir = {tmp / 'reports' / name}\nrun-dir = {tmp / 'run'}\n"
                   f"api-workers = {executors}\nbrowsers = 0\ndispatch = {dispatch}\n")
    t0 = time.monotonic()
    proc = subprocess.run([str(ROOT / "bin" / "liuma-pipeline"), "run", str(suite), "--config", str(cfg), "--progress", "plain"],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=600, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    rows = json.loads((tmp / "reports" / name / "makespan" / "results.json").read_text())
    rows = rows if isinstance(rows, list) else rows.get("caseResultList") or rows.get("results") or []
    start = min(r["startTime"] for r in rows)
    end = max(r["endTime"] for r in rows)
    per_unit: dict[str, float] = {}
    for r in rows:
        per_unit[r["collectionId"]] = per_unit.get(r["collectionId"], 0.0) + (r["endTime"] - r["startTime"]) / 1000
    work = sum(per_unit.values())
    bound = max(max(per_unit.values()), work / executors)
    eta = next((float(line.split("(")[1].split(" s left")[0]) for line in proc.stdout.splitlines() if line.startswith("ETA ")), None)
    return {"run": name, "makespan_s": (end - start) / 1000, "wall_s": wall, "work_s": work, "bound_s": bound, "eta_s": eta}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--executors", type=int, default=4)
    ap.add_argument("--short", type=int, default=40)
    ap.add_argument("--short-s", type=float, default=0.5)
    ap.add_argument("--long", type=int, default=3)
    ap.add_argument("--long-s", type=float, default=8.0)
    a = ap.parse_args()
    port = free_port()
    server = subprocess.Popen([PY, "-m", "examples.demo_server", "--port", str(port)], cwd=str(ROOT),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory(prefix="makespan-") as d:
            tmp = Path(d)
            suite = build(tmp, url, a)
            out = [run(suite, tmp, "longest-first-1 (no history)", "longest-first", a.executors),
                   run(suite, tmp, "longest-first-2 (history)", "longest-first", a.executors),
                   run(suite, tmp, "fifo", "fifo", a.executors)]
    finally:
        server.terminate()
        server.wait(10)
    print(f"suite: {a.short} x {a.short_s:g} s + {a.long} x {a.long_s:g} s (4 cases each), {a.executors} executors")
    print(f"{'run':<30} {'makespan':>9} {'bound':>7} {'ratio':>6} {'wall':>7} {'ETA':>6}")
    for r in out:
        eta = f"{r['eta_s']:.1f}" if r["eta_s"] is not None else "-"
        print(f"{r['run']:<30} {r['makespan_s']:>8.2f}s {r['bound_s']:>6.2f}s {r['makespan_s'] / r['bound_s']:>6.2f} "
              f"{r['wall_s']:>6.2f}s {eta:>6}")


if __name__ == "__main__":
    main()
