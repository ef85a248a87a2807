"""An executor whose supervisor dies (SIGKILL: no stop message, only the kernel's PR_SET_PDEATHSIG SIGTERM)
must take its browser and chromedriver with it, even while a case is inside a long step. Real ``run``,
real headless Chromium, a real demo site."""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.system.engine import run_dir_status, start_run, wait_for, write_config
from tests.system.suites import write_suite
from tests.system.test_web_crash import _op, web_case

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _executor(tmp: Path) -> dict[str, Any] | None:
    return next((s for s in (run_dir_status(tmp) or {}).get("stages", []) if s["name"] == "executor-1"), None)


@pytest.mark.parametrize("launcher", ["exec", "fork"])
def test_executor_kills_its_browser_when_the_supervisor_dies(tmp_path: Path, demo_url: str, launcher: str) -> None:
    slow = web_case("slow", "慢页面", demo_url, _op("browser", "强制等待", second="60"))
    suite = write_suite(tmp_path / "suite", {"c1": [slow]}, max_thread=1)
    proc = start_run(suite, write_config(tmp_path, api_workers=0, browsers=1, launcher=launcher))
    tree: list[psutil.Process] = []
    try:
        def waiting() -> dict[str, Any] | None:
            s = _executor(tmp_path)
            cur = (s or {}).get("current") or {}
            return s if cur.get("case_id") == "slow" and cur.get("step") == "强制等待" else None

        victim = wait_for(waiting, 60, "executor-1 waiting in the slow WEB case")
        executor = psutil.Process(victim["pid"])
        tree = executor.children(recursive=True)
        assert any(p.name() == "chromedriver" for p in tree), [p.name() for p in tree]
        assert any(p.name() != "chromedriver" and "chrom" in p.name() for p in tree), [p.name() for p in tree]
        os.kill(proc.pid, signal.SIGKILL)                   # `run` is the supervisor (the shim execs it)                 # no stop message: only the kernel's SIGTERM reaches it
        _, alive = psutil.wait_procs([executor], timeout=20)
        assert not alive, "the executor outlived its supervisor"
        _, alive = psutil.wait_procs(tree, timeout=10)
        left = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert not left, [(p.pid, p.name()) for p in left]      # browser and driver died with the executor
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        for p in tree:
            try:
                p.kill()
            except psutil.Error:
                pass


def _session_members(sid: int) -> list[psutil.Process]:
    """Live processes of the session ``sid`` (a stage leads its own session: its browsers and drivers are in it)."""
    out = []
    for p in psutil.process_iter(["status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(p.pid) == sid:
                out.append(p)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def test_sigterm_while_the_browser_starts_leaves_no_browser(tmp_path: Path, demo_url: str) -> None:
    """SIGTERM lands while the warm-up is still starting Chromium (the slot is empty, so quitting it finds
    nothing): the executor must still end every process of its session."""
    suite = write_suite(tmp_path / "suite", {"c1": [web_case("ok", "页面", demo_url, _op("browser", "强制等待", second="1"))]})
    proc = start_run(suite, write_config(tmp_path, api_workers=0, browsers=1))
    victim = 0
    try:
        def starting_driver() -> int:
            s = _executor(tmp_path)
            if not s or not s.get("pid"):
                return 0
            try:
                kids = psutil.Process(s["pid"]).children(recursive=True)
            except psutil.Error:
                return 0
            return int(s["pid"]) if any(p.name() == "chromedriver" for p in kids) else 0

        victim = wait_for(starting_driver, 60, "executor-1 starting its chromedriver")
        os.kill(victim, signal.SIGTERM)
        psutil.wait_procs([psutil.Process(victim)], timeout=20)
        wait_for(lambda: not _session_members(victim), 15, f"no process left in the session of executor pid {victim}")
        out, err = proc.communicate(timeout=120)       # a fresh executor runs the case
        assert proc.returncode == 0, (out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for p in _session_members(victim) if victim else []:
            p.kill()
