"""Stage start-up cost: a one-case ``run`` with stages exec'ed (``launcher = exec``) and forked from the
preloaded launcher (``launcher = fork``), side by side with one interpreter that imports the same libraries.
Prints wall and total CPU over every process (median of N), and memory per stage during a longer run:
RSS, USS (pages only that process has) and PSS (shared pages divided among their sharers); a forked stage
whose preloaded pages stay shared has USS well below RSS.

    .venv/bin/python bench/launcher.py [--runs 5] [--mem-cases 3000]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from overhead import noop_suite  # noqa: E402

IMPORTS = "import zmq, msgpack, requests, selenium.webdriver, psutil"


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def one_interpreter() -> tuple[float, float]:
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True, cwd=ROOT)
    return time.perf_counter() - t0, _cpu() - c0


def one_run(launcher: str, cases: int = 1, sample: dict | None = None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        suite = noop_suite(t / "suite", cases)
        (t / "run").mkdir()
        cfg = t / "config.ini"
        cfg.write_text(f"[Pipeline]\nstorage-root = {t / 'storage'}\nreport-dir = {t / 'reports'}\nrun-dir = {t / 'run'}\n"
                       f"api-workers = 2\nbrowsers = 0\nlauncher = {launcher}\n[Logging]\nlevel = info\n")
        stop = threading.Event()
        th = None
        if sample is not None:
            th = threading.Thread(target=_sample_mem, args=(t / "run", stop, sample), daemon=True)
            th.start()
        c0, t0 = _cpu(), time.perf_counter()
        r = subprocess.run([str(ROOT / "bin" / "liuma-pipeline"), "run", str(suite), "--config", str(cfg)],
                           capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        stop.set()
        if th:
            th.join()
        if r.returncode != 0:
            raise SystemExit(r.stderr[-2000:])
        return wall, cpu


def _sample_mem(run_root: Path, stop: threading.Event, out: dict) -> None:
    """Once the run is busy, one USS/PSS snapshot of every stage (memory_full_info reads smaps: slow)."""
    time.sleep(1.0)
    while not stop.is_set() and not out:
        for d in run_root.glob("lmp-*"):
            try:
                st = json.loads((d / "status.json").read_text())
            except (OSError, ValueError):
                continue
            if not st["stages"] or not all(s.get("pid") and s.get("stats") for s in st["stages"]):
                continue                    # every stage up and heartbeating: imports done
            pids = {s["name"]: s["pid"] for s in st["stages"]}
            for name, pid in pids.items():
                try:
                    m = psutil.Process(pid).memory_full_info()
                    out[name] = (m.rss / 2**20, m.uss / 2**20, m.pss / 2**20)
                except psutil.Error:
                    pass
            break
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mem-cases", type=int, default=3000)
    args = ap.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {"interpreter": [], "exec": [], "fork": []}
    for _ in range(args.runs):          # interleaved: the machine's load hits every variant alike
        rows["interpreter"].append(one_interpreter())
        rows["exec"].append(one_run("exec"))
        rows["fork"].append(one_run("fork"))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rows.items()}
    base = med["interpreter"][1]
    print(f"one-case run, median of {args.runs} (interleaved)       wall s   CPU s   CPU / one interpreter")
    print(f"  one interpreter: {IMPORTS:<28} {med['interpreter'][0]:>6.2f} {base:>7.2f}   1.0x")
    for k in ("exec", "fork"):
        print(f"  run, launcher = {k:<30} {med[k][0]:>6.2f} {med[k][1]:>7.2f}   {med[k][1] / base:.1f}x")
    print("target: one-case run total CPU <= 3x one interpreter importing the same libraries")
    for k in ("exec", "fork"):
        mem: dict = {}
        one_run(k, args.mem_cases, mem)
        print(f"\nmemory per stage during a {args.mem_cases}-case run, launcher = {k} (MB: RSS / USS / PSS):")
        for name, (rss, uss, pss) in sorted(mem.items()):
            print(f"  {name:<11} {rss:6.1f} / {uss:6.1f} / {pss:6.1f}")
        if mem:
            print(f"  total       {sum(v[0] for v in mem.values()):6.1f} / {sum(v[1] for v in mem.values()):6.1f} / "
                  f"{sum(v[2] for v in mem.values()):6.1f}")


if __name__ == "__main__":
    main()
