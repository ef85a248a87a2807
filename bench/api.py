"""API end to end: this engine vs HttpRunner (hrun 4.3.5) vs a plain requests loop, same requests.

    python bench/api.py [--runs 5] [--no-hrun] [--against CHECKOUT] [--no-pyc-cache]

Workloads: 300 one-step API cases, and 50 cases x 4 steps, each step a GET with two checks (status code and
a JSON field) against the demo server (separate process, HTTP/1.1 keep-alive). The engine runs with its
stages forked from the preloaded launcher (the default) and, side by side, exec'ed (``launcher = exec``). Every contender is timed as a
whole process, start to exit. HttpRunner is installed into bench/.venv-hrun by this script on first use.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
HRUN_VENV = ROOT / "bench" / ".venv-hrun"
PORT = 18790


def ensure_hrun() -> Path | None:
    hrun = HRUN_VENV / "bin" / "hrun"
    if hrun.exists():
        return hrun
    print("installing httprunner==4.3.5 into bench/.venv-hrun ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(HRUN_VENV)], check=True)
    r = subprocess.run([str(HRUN_VENV / "bin" / "pip"), "install", "-q", "httprunner==4.3.5"])
    return hrun if r.returncode == 0 and hrun.exists() else None


def step(i: int, url: str) -> dict:
    return {"apiId": f"s{i}", "apiName": f"get items {i}", "apiDesc": None, "url": url, "path": "/api/items",
            "method": "GET", "protocol": "HTTP", "headers": {}, "proxies": {},
            "body": {"type": "json", "form": [], "raw": "", "file": [], "json": ""}, "query": {"size": "2"}, "rest": {},
            "assertions": [{"from": "resCode", "method": "", "expression": "", "assertion": "equals", "expect": "200"},
                           {"from": "resBody", "method": "jsonpath", "expression": "$.code", "assertion": "equalsNumber", "expect": "0"}],
            "relations": [], "controller": {}}


def liuma_suite(root: Path, url: str, cases: int, steps: int, collections: int) -> Path:
    colls = []
    for c in range(collections):
        cid = f"c{c:03d}"
        (root / cid).mkdir(parents=True)
        refs = []
        for j in range(cases // collections):
            case_id = f"case{c:03d}_{j:03d}"
            (root / cid / f"{case_id}.json").write_text(json.dumps({
                "comment": None, "caseId": case_id, "caseName": case_id, "functions": [], "params": {},
                "apiList": [step(k, url) for k in range(steps)]}))
            refs.append({"index": j + 1, "caseId": case_id, "caseType": "API"})
        colls.append({"collectionId": cid, "testCaseList": refs})
    (root / "task.json").write_text(json.dumps({"taskId": "bench", "taskType": "run", "maxThread": 8, "reRun": False,
                                                "testCollectionList": colls}))
    return root


def hrun_suite(root: Path, url: str, cases: int, steps: int) -> Path:
    (root / "testcases").mkdir(parents=True)
    for i in range(cases):
        lines = [f"config:\n  name: case {i}\n  base_url: {url}\nteststeps:"]
        for k in range(steps):
            lines.append(f"-   name: get items {k}\n    request:\n        method: GET\n        url: /api/items\n"
                         f"        params:\n            size: 2\n    validate:\n    -   eq: [status_code, 200]\n    -   eq: [body.code, 0]")
        (root / "testcases" / f"case_{i:03d}.yml").write_text("\n".join(lines) + "\n")
    return root / "testcases"


PLAIN = """
import sys, requests
url, n = sys.argv[1], int(sys.argv[2])
s = requests.Session()
for _ in range(n):
    r = s.get(url + "/api/items", params={"size": "2"})
    assert r.status_code == 200 and r.json()["code"] == 0
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Wall seconds of one process, start to exit (it must succeed)."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=str(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({r.returncode}): {r.stderr.decode()[-800:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-hrun", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--against", type=Path, default=None, help="another checkout to run side by side (forked stages)")
    ap.add_argument("--no-pyc-cache", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as the environment has it")
    args = ap.parse_args()
    run_env = dict(os.environ)
    if not args.no_pyc_cache:
        run_env.pop("PYTHONDONTWRITEBYTECODE", None)
    loads = []
    server = subprocess.Popen([PY, "-m", "examples.demo_server", "--port", str(PORT)], cwd=str(ROOT), stdout=subprocess.PIPE)
    url = server.stdout.readline().decode().strip()  # type: ignore[union-attr]
    hrun = None if args.no_hrun else ensure_hrun()
    env = dict(os.environ, DISABLE_GA="true", DISABLE_SENTRY="true",
               PATH=f"{HRUN_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")   # hrun calls black by name
    rows = []
    try:
        for label, cases, steps, colls in (("300 cases x 1 step", 300, 1, 20), ("50 cases x 4 steps", 50, 4, 10)):
            with tempfile.TemporaryDirectory() as tmp:
                t = Path(tmp)
                suite = liuma_suite(t / "suite", url, cases, steps, colls)
                cfgs = {}
                for mode in ("fork", "exec"):
                    cfgs[mode] = t / f"config-{mode}.ini"
                    cfgs[mode].write_text(f"[Pipeline]\nstorage-root = {t / 'storage'}\nreport-dir = {t / 'reports'}\n"
                                          f"api-workers = {args.workers}\nbrowsers = 0\nlauncher = {mode}\n[Logging]\nlevel = warning\n")
                plain = t / "plain.py"
                plain.write_text(PLAIN)
                times: dict[str, list[float]] = {"liuma-pipeline": [], "exec": [], "against": [], "requests loop": [], "hrun": []}
                hdir = hrun_suite(t / "hrun", url, cases, steps) if hrun else None
                ours = [("liuma-pipeline", ROOT, "fork"), ("exec", ROOT, "exec")]
                ours += [("against", args.against.resolve(), "fork")] if args.against else []
                for _, root, mode in ours:          # warm-up: bytecode cache written, page cache warm
                    timed([str(root / "bin" / "liuma-pipeline"), "run", str(suite), "--config", str(cfgs[mode])], root, run_env)
                for _ in range(args.runs):
                    loads.append(os.getloadavg()[0])
                    for key, root, mode in ours:
                        times[key].append(timed([str(root / "bin" / "liuma-pipeline"), "run", str(suite), "--config", str(cfgs[mode])],
                                                root, run_env))
                    times["requests loop"].append(timed([PY, str(plain), url, str(cases * steps)], t))
                    if hrun and hdir:
                        times["hrun"].append(timed([str(hrun), str(hdir)], t / "hrun", env))
                med = {k: statistics.median(v) for k, v in times.items() if v}
                rows.append((label, med))
    finally:
        server.terminate()
        server.wait()
    print(f"\nmedian wall time of {args.runs} runs, process start to exit ({args.workers} API workers), bytecode cache "
          f"{'off' if args.no_pyc_cache else 'on'}, load average {min(loads):.1f}-{max(loads):.1f} (1 min, at each round)")
    print(f"{'workload':<22} {'liuma-pipeline':>15} {'(exec)':>8} {'(against)':>10} {'requests loop':>14} {'hrun 4.3.5':>11} "
          f"{'vs loop':>8} {'exec/loop':>10} {'against/loop':>13} {'hrun/ours':>10}")
    for label, med in rows:
        ours, ex, loop, h, ag = med["liuma-pipeline"], med["exec"], med["requests loop"], med.get("hrun"), med.get("against")
        print(f"{label:<22} {ours:>14.2f}s {ex:>7.2f}s {(f'{ag:.2f}s' if ag else 'n/a'):>10} {loop:>13.2f}s "
              f"{(f'{h:.2f}s' if h else 'n/a'):>11} {ours / loop:>7.2f}x {ex / loop:>9.2f}x {(f'{ag / loop:.2f}x' if ag else 'n/a'):>13} "
              f"{(f'{h / ours:.2f}x' if h else 'n/a'):>10}")
    print("targets: ours <= 1.3 x requests loop; hrun/ours >= 7")


if __name__ == "__main__":
    main()
