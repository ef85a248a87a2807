"""Chaos runs: one real engine run of a few hundred cases during which random stage processes get real
SIGKILLs (and one a SIGSTOP, i.e. a hang). Used by tests/chaos and by bench/chaos.py (which reports figures)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.system.engine import engine_processes, run_dir_status, start_run, write_config
from tests.system.suites import api_case

FAILING_EVERY = 25          # every 25th API case asserts something false: a deterministic product failure


def web_case(case_id: str, url: str) -> dict[str, Any]:
    def op(t: str, name: str, data: dict[str, Any], element: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"operationType": t, "operationId": f"{case_id}-{name}", "operationName": name, "operationDesc": None,
                "operationTrans": name, "operationCode": None, "operationElement": element or {},
                "operationData": {k: {"type": "String", "value": v} for k, v in data.items()}}
    return {"comment": None, "caseId": case_id, "caseName": case_id, "functions": [], "params": {},
            "startDriver": True, "closeDriver": False, "driverSetting": {},
            "optList": [op("browser", "打开网页", {"domain": url, "path": "/index.html"}),
                        op("assertion", "断言页面标题", {"assertion": "contains", "expect": "LiuMa", "continue": "false"})]}


def chaos_suite(root: Path, url: str, api_cases: int = 300, web_cases: int = 6, collections: int = 30) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    colls: list[dict[str, Any]] = []
    per = api_cases // collections
    n = 0
    for c in range(collections):
        cid = f"api-{c:02d}"
        (root / cid).mkdir(exist_ok=True)
        refs = []
        for j in range(per):
            n += 1
            case_id = f"a{n:04d}"
            asserts = [{"from": "resBody", "method": "jsonpath", "expression": "$.code", "assertion": "equalsNumber",
                        "expect": "1" if n % FAILING_EVERY == 0 else "0"}]
            case = api_case(case_id, url, "/api/slow?ms=40", assertions=asserts)
            (root / cid / f"{case_id}.json").write_text(json.dumps(case))
            refs.append({"index": j + 1, "caseId": case_id, "caseType": "API"})
        colls.append({"collectionId": cid, "testCaseList": refs})
    if web_cases:
        (root / "web").mkdir(exist_ok=True)
        refs = []
        for j in range(web_cases):
            case_id = f"w{j + 1:02d}"
            (root / "web" / f"{case_id}.json").write_text(json.dumps(web_case(case_id, url)))
            refs.append({"index": j + 1, "caseId": case_id, "caseType": "WEB"})
        colls.insert(len(colls) // 2, {"collectionId": "web", "testCaseList": refs})
    (root / "task.json").write_text(json.dumps({"taskId": "chaos", "taskType": "run", "maxThread": 4, "reRun": False,
                                                "testCollectionList": colls}))
    return root


@dataclass
class ChaosRun:
    code: int
    out: str
    err: str
    wall_s: float
    kills: list[tuple[float, str, str]] = field(default_factory=list)      # (t, stage name, signal)
    restarts: dict[str, int] = field(default_factory=dict)


def run_engine(suite: Path, tmp: Path, *, chaos: bool, kills: int = 8, seed: int = 7, hang: bool = True) -> ChaosRun:
    """Run the suite; with ``chaos``, a thread sends ``kills`` SIGKILLs to random stages (every kind at least
    once when possible) and, with ``hang``, SIGSTOPs one stage so the supervisor must detect it as hung."""
    cfg = write_config(tmp, "[Retry]\nmax-attempts = 3\nbudget = 200\n", api_workers=2, browsers=1,
                       heartbeat_timeout=4, restart_max=30, restart_window=60)
    rng = random.Random(seed)
    t0 = time.monotonic()
    proc = start_run(suite, cfg)
    run = ChaosRun(0, "", "", 0.0)
    stop = threading.Event()

    def monkey() -> None:
        order = ["executor", "scheduler", "aggregator", "fetcher", "uploader", "janitor", "executor", "scheduler"]
        sent = 0
        while not stop.is_set() and sent < kills:
            time.sleep(rng.uniform(0.6, 1.6))
            st = run_dir_status(tmp) or {}
            live = [s for s in st.get("stages", []) if s["state"] == "running" and s["pid"]]
            want = order[sent] if sent < len(order) else rng.choice(["executor", "scheduler", "aggregator", "fetcher", "uploader", "janitor"])
            pool = [s for s in live if s["kind"] == want] or live
            if not pool:
                continue
            victim = rng.choice(pool)
            try:
                os.kill(victim["pid"], signal.SIGKILL)
                run.kills.append((time.monotonic() - t0, victim["name"], "SIGKILL"))
                sent += 1
            except ProcessLookupError:
                continue
        if hang and not stop.is_set():
            st = run_dir_status(tmp) or {}
            victim = next((s for s in st.get("stages", []) if s["name"] == "janitor" and s["pid"]), None)
            if victim:
                os.kill(victim["pid"], signal.SIGSTOP)
                run.kills.append((time.monotonic() - t0, victim["name"], "SIGSTOP"))

    def watch_restarts() -> None:
        while not stop.is_set():
            for s in (run_dir_status(tmp) or {}).get("stages", []):
                run.restarts[s["name"]] = max(run.restarts.get(s["name"], 0), s["restarts"])
            time.sleep(0.2)

    threads = [threading.Thread(target=watch_restarts, daemon=True)]
    if chaos:
        threads.append(threading.Thread(target=monkey, daemon=True))
    for t in threads:
        t.start()
    try:
        run.out, run.err = proc.communicate(timeout=600)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
    for t in threads:
        t.join(timeout=5)
    run.code, run.wall_s = proc.returncode, time.monotonic() - t0
    return run


def final_statuses(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], int]:
    last: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        k = (r["collectionId"], r["caseId"], r["index"])
        if k not in last or r["runTimes"] > last[k]["runTimes"]:
            last[k] = r
    return {k: v["status"] for k, v in last.items()}


def leftovers(tmp: Path) -> list[str]:
    """Stage processes of this test's runs (under ``tmp``) still alive; other engines on the machine are not ours."""
    return [" ".join(p.cmdline()[:3]) for p in engine_processes(tmp) if p.is_running()]


def kill_leftovers(tmp: Path) -> None:
    for p in engine_processes(tmp):
        try:
            p.kill()
        except Exception:
            pass
    subprocess.run(["true"])
