"""Cost of the failure evidence recorder: bench/web.py's 40 WEB cases x 5 steps (one reused browser, the
``WebRunner`` in-process) with ``[Evidence] keep = never``, ``failure`` (all cases pass: everything is recorded,
nothing kept) and ``always`` (every bundle written, video encoded), interleaved, median of N runs. Then one
failing attempt's bundle: its parts and size. Target (issue 19): ``failure`` <= 10 % more wall time than ``never``.

Run: ``.venv/bin/python bench/evidence.py [--runs 3]``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.web import CASES, _op, make_case  # noqa: E402 - after the sys.path line
from examples.demo_server import serve  # noqa: E402 - after the sys.path line
from stages.executor.common.evidence import EvidenceSpec  # noqa: E402 - after the sys.path line
from stages.executor.context import RunContext  # noqa: E402 - after the sys.path line
from stages.executor.web import WebRunner  # noqa: E402 - after the sys.path line

MODES = ("never", "failure", "failure-no-video", "always")     # failure-no-video: [Evidence] video = false


def cpu_snapshot() -> dict[int, float]:
    """CPU seconds (user + system) of this process and every descendant (chromedriver, Chromium's processes)."""
    me = psutil.Process(os.getpid())
    out: dict[int, float] = {}
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    reaped = os.times()
    out[-1] = reaped.children_user + reaped.children_system      # reaped children: ffmpeg
    return out


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def run_mode(base: str, mode: str) -> tuple[float, float, list[int]]:
    """Wall and CPU seconds (this process, chromedriver and the browser) for CASES cases in one fresh browser
    (its start excluded: warmed up first); bundle sizes kept. CPU is the steadier figure on a shared machine:
    what the recorder costs the cores, whatever else runs there."""
    runner = WebRunner()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ev-"))
    ctx = RunContext(task_id="bench", collection_id="c", storage_root=tmp, data_dir=tmp)
    sizes: list[int] = []
    try:
        keep, video = mode.replace("-no-video", ""), not mode.endswith("-no-video")
        ctx.evidence = EvidenceSpec(keep=keep, task_report_dir=tmp / "reports" / "bench", collection_id="c", case_id="w",
                                    video=video)
        ctx.deadline = time.monotonic() + 60
        runner.run(make_case(base, 0), ctx)                  # browser start, not measured
        cpu0 = cpu_snapshot()
        t0 = time.monotonic()
        for i in range(CASES):
            ctx.evidence = EvidenceSpec(keep=keep, task_report_dir=tmp / "reports" / "bench", collection_id="c",
                                        case_id=f"c{i}", index=i + 1, attempt=1, video=video)
            ctx.evidence_result = {}
            ctx.deadline = time.monotonic() + 60
            res = runner.run(make_case(base, i), ctx).result
            assert res.status == 0, res
            if ctx.evidence_result:
                sizes.append(sum(f["bytes"] for f in ctx.evidence_result["files"]))
        wall = time.monotonic() - t0
        return wall, cpu_spent(cpu0, cpu_snapshot()), sizes
    finally:
        runner.close_shared(ctx)
        shutil.rmtree(tmp, ignore_errors=True)


def failing_bundle(base: str) -> dict[str, int]:
    runner = WebRunner()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ev-"))
    ctx = RunContext(task_id="bench", collection_id="c", storage_root=tmp, data_dir=tmp)
    try:
        ctx.evidence = EvidenceSpec(keep="failure", task_report_dir=tmp / "reports" / "bench", collection_id="c", case_id="f")
        case = make_case(base, 1)
        case["optList"].append(_op("assertion", "断言页面标题", assertion="equals", expect="not this title"))
        ctx.deadline = time.monotonic() + 60
        t0 = time.monotonic()
        runner.run(case, ctx)
        took = time.monotonic() - t0
        files = {f["name"]: f["bytes"] for f in ctx.evidence_result["files"]}
        files["(case wall ms)"] = int(took * 1000)
        return files
    finally:
        runner.close_shared(ctx)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES))
    args = ap.parse_args()
    modes = [m for m in MODES if m in args.modes.split(",")]
    if "never" not in modes:
        ap.error("--modes must include never (the baseline)")
    server, base = serve()
    try:
        walls: dict[str, list[float]] = {m: [] for m in modes}
        sizes: dict[str, list[int]] = {m: [] for m in modes}
        cpus: dict[str, list[float]] = {m: [] for m in modes}
        load = os.getloadavg()[0]
        for _ in range(args.runs):
            for mode in modes:                             # interleaved: machine noise hits every mode alike
                wall, cpu, kept = run_mode(base, mode)
                walls[mode].append(wall)
                cpus[mode].append(cpu)
                sizes[mode] += kept
        never = statistics.median(walls["never"])
        never_cpu = statistics.median(cpus["never"])
        print(f"{CASES} passing WEB cases x 5 steps, one reused browser, median of {args.runs} runs "
              f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores)")
        for mode in modes:
            med = statistics.median(walls[mode])
            per = f", bundle {statistics.median(sizes[mode]) / 1024:.0f} KB per attempt" if sizes[mode] else ", nothing kept"
            print(f"  keep = {mode:<16} {med:6.2f} s  ({med / CASES * 1000:5.0f} ms/case, {100 * (med / never - 1):+5.1f} % vs never){per}"
                  f"   runs: {', '.join(f'{w:.2f}' for w in walls[mode])}")
            cpu = statistics.median(cpus[mode])
            print(f"  {'':23}cpu {cpu:6.2f} s  ({100 * (cpu / never_cpu - 1):+5.1f} % vs never)"
                  f"   runs: {', '.join(f'{c:.2f}' for c in cpus[mode])}")
        files = failing_bundle(base)
        wall = files.pop("(case wall ms)")
        total = sum(files.values())
        print(f"one failing attempt (6 steps, {wall} ms incl. DOM + encode): bundle {total / 1024:.0f} KB: "
              + ", ".join(f"{k} {v / 1024:.1f} KB" for k, v in files.items()))
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
