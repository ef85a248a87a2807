"""A browser executor that crashes mid case, end to end through ``bin/liuma-pipeline run``: real stage
processes, real headless Chromium, a real demo site. The executor (the stage process only, as in a crash)
gets SIGKILL while a WEB case waits in ``强制等待``; its case must be reported broken and retried, its
browser and driver must not outlive it, and a fresh executor must carry on."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.system.engine import results, run_dir_status, start_run, wait_for, write_config
from tests.system.suites import write_suite

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _op(kind: str, name: str, element: tuple[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"operationType": kind, "operationId": f"{name}-{len(data)}", "operationName": name, "operationDesc": None,
            "operationTrans": name, "operationCode": None,
            "operationElement": {"element": {"by": element[0], "expression": element[1], "target": "demo"}} if element else {},
            "operationData": {k: {"type": "String", "value": v} for k, v in data.items()}}


def web_case(case_id: str, name: str, base: str, *extra: dict[str, Any]) -> dict[str, Any]:
    ops = [_op("browser", "打开网页", domain=base, path="/index.html"), *extra,
           _op("assertion", "断言页面标题", assertion="equals", expect="LiuMa Demo")]
    return {"caseId": case_id, "caseName": name, "comment": None, "startDriver": True, "closeDriver": True,
            "driverSetting": {}, "params": {}, "functions": [], "optList": ops}


def _run_processes(tmp: Path) -> list[psutil.Process]:
    """Live (non-zombie) processes of this run's browsers: the run's tmp dir in their command line or in their
    TMPDIR / LIUMA_TMPDIR (the executor's temp dir, kept when Chromium needs a shorter TMPDIR)."""
    marker = str(tmp)
    out = []
    for p in psutil.process_iter(["cmdline", "name", "status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE or "chrom" not in (p.info["name"] or "") + " ".join(p.info["cmdline"] or []):
            continue
        try:
            env = p.environ()
        except psutil.Error:
            env = {}
        if marker in " ".join(p.info["cmdline"] or []) or any(env.get(k, "").startswith(marker) for k in ("TMPDIR", "LIUMA_TMPDIR")):
            out.append(p)
    return out


def _orphan_drivers(tmp: Path) -> list[psutil.Process]:
    """chromedriver processes of this run whose parent is gone (reparented to init or a subreaper)."""
    return [p for p in _run_processes(tmp) if "chromedriver" in (p.info["name"] or "")
            and (p.ppid() == 1 or not psutil.pid_exists(p.ppid()))]


def _executor(tmp: Path, name: str = "executor-1") -> dict[str, Any] | None:
    return next((s for s in (run_dir_status(tmp) or {}).get("stages", []) if s["name"] == name), None)


def test_sigkill_of_browser_executor_mid_case_is_broken_reaped_and_retried(tmp_path: Path, demo_url: str) -> None:
    slow = web_case("slow", "慢页面", demo_url, _op("browser", "强制等待", second="3"))
    after = [web_case(f"after-{i}", f"后续页面{i}", demo_url) for i in (1, 2)]
    suite = write_suite(tmp_path / "suite", {"c1": [slow, *after]}, max_thread=1)
    proc = start_run(suite, write_config(tmp_path, api_workers=0, browsers=1))
    tree: list[psutil.Process] = []
    try:
        def waiting_in_slow_case() -> dict[str, Any] | None:
            s = _executor(tmp_path)
            cur = (s or {}).get("current") or {}
            return s if cur.get("case_id") == "slow" and cur.get("step") == "强制等待" else None

        victim = wait_for(waiting_in_slow_case, 60, "executor-1 waiting in the slow WEB case")
        tree = psutil.Process(victim["pid"]).children(recursive=True)
        drivers = [p for p in tree if p.name() == "chromedriver"]
        browsers = [p for p in tree if "chrom" in p.name() and p not in drivers]
        assert drivers and browsers, [p.name() for p in tree]         # the case really runs in a browser
        browsers = [p for p in browsers if _live(p)]                  # a helper that just exited has no cmdline
        profiles = {a.split("=", 1)[1] for p in browsers for a in p.cmdline() if a.startswith("--user-data-dir=")}
        assert profiles and all(str(tmp_path) in d and os.path.isdir(d) for d in profiles), profiles
        scratch = {p.environ().get("TMPDIR", "") for p in browsers} - {""}     # a short TMPDIR outside the run

        os.kill(victim["pid"], signal.SIGKILL)                          # the stage process only, like a crash
        killed_at = time.time()
        wait_for(lambda: (s := _executor(tmp_path)) and s["restarts"] >= 1 and s["state"] == "running"
                 and s["pid"] != victim["pid"], 20, "a fresh executor-1")
        gone, alive = psutil.wait_procs(tree, timeout=5)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive   # browser + driver reaped
        assert not any(os.path.exists(d) for d in profiles)             # the dead executor's profile is deleted
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for p in tree:                      # a failure above must not leave the victim's browser and driver behind
            try:
                p.kill()
            except psutil.Error:
                pass

    rows = results(tmp_path)
    slow_rows = [r for r in rows if r["caseId"] == "slow"]
    assert [r["runTimes"] for r in slow_rows] == [1, 2], slow_rows
    broken, retry = slow_rows
    assert broken["status"] == 2
    log = broken["transactionList"][0]["log"]
    assert "executor-1" in log and "SIGKILL" in log and "慢页面" in log and "强制等待" in log, log
    assert broken["endTime"] / 1000 - killed_at < 3.0                   # reported within seconds of the kill
    assert retry["status"] == 0 and retry["caseName"] == "慢页面"
    later = {r["caseId"]: r for r in rows if r["caseId"] != "slow"}
    assert {k: r["status"] for k, r in later.items()} == {"after-1": 0, "after-2": 0}
    assert all(r["startTime"] / 1000 > killed_at for r in [retry, *later.values()])   # served by the fresh executor
    assert "BROKEN 慢页面" in out and "FLAKY  慢页面" in out
    assert proc.returncode == 0, (out, err)                             # the retry passed: flaky, not failed
    assert not _run_processes(tmp_path) and not _orphan_drivers(tmp_path)
    assert not [d for d in scratch if os.path.exists(d)]                # swept by the fresh executor


def _live(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
