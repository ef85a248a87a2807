"""Stage start-up cost: a one-case ``run`` with stages exec'ed (``launcher = exec``) and forked from the
preloaded launcher (``launcher = fork``), side by side with one interpreter that imports the same libraries.
Prints wall and total CPU over every process (median of N), and memory per stage during a longer run:
RSS, USS (pages only that process has) and PSS (shared pages divided among their sharers); a forked stage
whose preloaded pages stay shared has USS well below RSS.

Two floors put the figures in proportion: *imports* is one interpreter importing everything a run imports
(``pipeline.launcher.PRELOAD`` and the supervisor's modules), the least any design with one import pays;
*7 forks* adds forking seven processes from it that each make a ZeroMQ context and bind a socket, then exit:
what the architecture (separate stage processes) costs before any stage does its own work.

Bytecode: the engine's own modules are compiled once and cached (``__pycache__``) like any installed
application; an environment with ``PYTHONDONTWRITEBYTECODE`` (this project's sandboxes set it) recompiles
~100 modules in every process start (~0.12 s CPU). The runs here unset it and warm the cache first, unless
``--no-pyc-cache``.

    .venv/bin/python bench/launcher.py [--runs 5] [--mem-cases 3000 (0: no memory run)] [--against CHECKOUT] [--profile]

``--against`` runs another checkout (``git archive <commit> | tar -x -C DIR``, its .venv symlinked) on the same
suite, interleaved with this one. ``--profile`` runs one more one-case run with ``LIUMA_PROFILE=cpu:DIR`` and prints
every process's CPU and its marks (ms since the ``run`` process entered its command) as one timeline.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
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
EVERYTHING = ("import pipeline.launcher as l, pipeline.cli, pipeline.supervisor, pipeline.suite, pipeline.console, "
              "pipeline.progress; assert not l.preload()")
SEVEN_FORKS = EVERYTHING + """
import os, zmq
for i in range(7):
    if os.fork() == 0:
        ctx = zmq.Context(); s = ctx.socket(zmq.PULL); s.bind(f"ipc://{DIR}/s{i}"); s.close(0); ctx.term(); os._exit(0)
for i in range(7):
    os.wait()
"""
ENV = dict(os.environ)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def one_interpreter(code: str = IMPORTS) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        c0, t0 = _cpu(), time.perf_counter()
        subprocess.run([sys.executable, "-c", code.replace("{DIR}", tmp)], check=True, cwd=ROOT, env=ENV)
        return time.perf_counter() - t0, _cpu() - c0


def one_run(launcher: str, cases: int = 1, sample: dict | None = None, root: Path = ROOT,
            profile: Path | None = None) -> tuple[float, float]:
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
        env = dict(ENV, **({"LIUMA_PROFILE": f"cpu:{profile}"} if profile else {}))
        r = subprocess.run([str(root / "bin" / "liuma-pipeline"), "run", str(suite), "--config", str(cfg)],
                           capture_output=True, text=True, env=env, cwd=str(root))
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
                    if not m.rss:                   # exited already (a zombie until reaped)
                        continue
                    out[name] = (m.rss / 2**20, m.uss / 2**20, m.pss / 2**20)
                except psutil.Error:
                    pass
            break
        time.sleep(0.2)


def timeline(prof: Path) -> None:
    rows = [json.loads(Path(f).read_text()) for f in glob.glob(str(prof / "*.json"))]
    if not rows:
        print("  (no profile written: this checkout has no LIUMA_PROFILE)")
        return
    t0 = min(m[1] for r in rows for m in r["marks"])
    for r in sorted(rows, key=lambda r: r["marks"][0][1]):
        marks = "  ".join(f"{m[0]} {1000 * (m[1] - t0):.0f}" + (f" ({m[2]:.2f})" if len(m) > 2 else "") for m in r["marks"])
        print(f"  {r['name']:<11} CPU {r['user'] + r['system']:5.2f} s   {marks}")
    print("  (mark ms since the start (CPU s of that process so far); LIUMA_PROFILE=cpu:DIR, no cProfile; forked processes count from 0)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mem-cases", type=int, default=3000, help="cases of the memory run; 0 skips it")
    ap.add_argument("--against", type=Path, default=None, help="another checkout to run side by side")
    ap.add_argument("--no-pyc-cache", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as the environment has it")
    ap.add_argument("--profile", action="store_true", help="one profiled run (LIUMA_PROFILE) printed as a timeline")
    args = ap.parse_args()
    if not args.no_pyc_cache:
        ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    roots = [("", ROOT)] + ([(" (against)", args.against.resolve())] if args.against else [])
    variants = [(f"{k}{label}", k, root) for label, root in roots for k in ("exec", "fork")]
    for _, k, root in variants:         # warm-up: bytecode caches written, page cache warm
        one_run(k, root=root)
    rows: dict[str, list[tuple[float, float]]] = {"interpreter": [], "imports": [], "7 forks": [], **{v[0]: [] for v in variants}}
    for _ in range(args.runs):          # interleaved: the machine's load hits every variant alike
        rows["interpreter"].append(one_interpreter())
        rows["imports"].append(one_interpreter(EVERYTHING))
        rows["7 forks"].append(one_interpreter(SEVEN_FORKS))
        for label, k, root in variants:
            rows[label].append(one_run(k, root=root))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rows.items()}
    base = med["interpreter"][1]
    print(f"one-case run, median of {args.runs} (interleaved), bytecode cache {'off' if args.no_pyc_cache else 'on'}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  {'':<58} wall s   CPU s   CPU / one interpreter")
    print(f"  one interpreter: {IMPORTS:<40} {med['interpreter'][0]:>6.2f} {base:>7.2f}   1.0x")
    print(f"  floor: one interpreter importing all a run imports        {med['imports'][0]:>6.2f} {med['imports'][1]:>7.2f}   "
          f"{med['imports'][1] / base:.1f}x")
    print(f"  floor: + 7 forked processes, each a ZeroMQ context+socket {med['7 forks'][0]:>6.2f} {med['7 forks'][1]:>7.2f}   "
          f"{med['7 forks'][1] / base:.1f}x")
    for label, _, _ in variants:
        print(f"  run, launcher = {label:<41} {med[label][0]:>6.2f} {med[label][1]:>7.2f}   {med[label][1] / base:.1f}x")
    print("target: one-case run total CPU <= 3x one interpreter importing the same libraries")
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            one_run("fork", profile=Path(tmp))
            print("\none profiled one-case run, launcher = fork (ms since the run process entered `run`):")
            timeline(Path(tmp))
    for k in ("exec", "fork") if args.mem_cases > 0 else ():
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
