"""``[Pipeline] launcher = fork``: stages forked from the preloaded launcher are the supervisor's children
(exit status, restarts, kills as with exec), and a SIGKILLed supervisor leaves neither them nor the
launcher running."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

from tests.system.engine import BIN, ROOT, run_dir_status, start_run, wait_for, write_config
from tests.system.suites import api_case, write_suite


def _stages(tmp: Path) -> list[dict]:
    return [s for s in (run_dir_status(tmp) or {}).get("stages", []) if s.get("pid")]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _launcher(tmp: Path) -> psutil.Process:
    found = [p for p in psutil.process_iter(["cmdline"])
           if "pipeline.launcher" in " ".join(p.info["cmdline"] or []) and str(tmp) in " ".join(p.info["cmdline"] or [])]
    assert len(found) == 1, [p.info["cmdline"] for p in found]
    return found[0]
    return p


def run_dir_of(tmp: Path) -> Path:
    return next((tmp / "run").glob("lmp-*"))


def _fds(pid: int) -> dict[int, str]:
    return {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


def test_the_launcher_is_forked_from_the_supervisor_and_holds_nothing_of_it(tmp_path: Path, demo_url: str) -> None:
    """No second interpreter: the launcher is the supervisor's fork (after it preloaded), its own session,
    holding only its stdio and its two pipes; a stage holds neither pipe; nothing the supervisor printed
    before the fork reaches the launcher's log."""
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("slow", demo_url, "/api/slow?ms=3000")]})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}     # stdout a pipe: block-buffered
    proc = subprocess.Popen([str(BIN), "run", str(suite), "--config", str(write_config(tmp_path, api_workers=1, browsers=0,
                            launcher="fork"))], cwd=str(ROOT), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        wait_for(lambda: any((s.get("current") or {}).get("case_id") for s in _stages(tmp_path)), 60, "the case running")
        launcher = _launcher(tmp_path)
        assert launcher.ppid() == proc.pid and os.getsid(launcher.pid) == launcher.pid
        sup = (tmp_path / "storage" / "log" / "supervisor.log").read_text()
        assert f"launcher pid {launcher.pid} forked from the supervisor after preloading" in sup, sup
        fds = _fds(launcher.pid)
        pipes = {v for fd, v in fds.items() if fd > 2}
        assert len(pipes) == 2 and all(v.startswith("pipe:") for v in pipes), fds       # its request and reply pipes only
        assert fds[1].endswith("launcher.out") and fds[2].endswith("launcher.out"), fds
        assert [a for a in launcher.cmdline() if a][1:] == ["-m", "pipeline.launcher", str(run_dir_of(tmp_path))]
        for s in _stages(tmp_path):
            assert not pipes & set(_fds(s["pid"]).values()), (s["name"], _fds(s["pid"]))
            args = [a for a in psutil.Process(s["pid"]).cmdline() if a]      # one argument each, as an exec'ed stage's
            assert args[1:] == ["-m", "pipeline.stage_main", str(run_dir_of(tmp_path)), s["kind"], s["name"], "0"], args
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (out, err)
        assert out.count("liuma-pipeline: task") == 1, out
        assert "liuma-pipeline: task" not in (tmp_path / "storage" / "log" / "launcher.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_forked_stages_are_the_supervisors_children_and_restart_through_the_launcher(tmp_path: Path, demo_url: str) -> None:
    slow = api_case("slow", demo_url, "/api/slow?ms=3000")
    suite = write_suite(tmp_path / "suite", {"c1": [slow], "c2": [api_case("fast", demo_url, "/api/health")]})
    proc = start_run(suite, write_config(tmp_path, api_workers=2, browsers=0, launcher="fork"))
    try:
        victim = wait_for(lambda: next((s for s in _stages(tmp_path) if s["kind"] == "executor"
                                        and (s.get("current") or {}).get("case_id") == "slow"), None), 60, "the slow case running")
        stages = _stages(tmp_path)
        launcher = _launcher(tmp_path)
        log = tmp_path / "storage" / "log" / "launcher.out"
        forked = log.read_text()
        for s in stages:
            p = psutil.Process(s["pid"])
            assert f"as pid {s['pid']}" in forked, (s, forked)           # forked by the launcher ...
            assert p.ppid() == proc.pid and os.getpgid(s["pid"]) == s["pid"]   # ... yet our child, own group
            assert "pipeline.stage_main" in " ".join(p.cmdline()) and s["name"] in " ".join(p.cmdline())
        os.kill(victim["pid"], signal.SIGKILL)
        again = wait_for(lambda: next((s for s in _stages(tmp_path) if s["name"] == victim["name"] and s["restarts"] >= 1
                                       and s["state"] == "running" and s["pid"] != victim["pid"]), None), 30, "the restart")
        assert f"as pid {again['pid']}" in log.read_text()                  # the restart went through the launcher
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (out, err)
        sup = (tmp_path / "storage" / "log" / "supervisor.log").read_text()
        assert f"pid={victim['pid']}" in sup and "killed by signal SIGKILL" in sup     # its exit status was seen
        assert _gone(launcher.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_sigkilled_supervisor_leaves_no_forked_stage_or_launcher(tmp_path: Path, demo_url: str) -> None:
    cases = {f"c{i}": [api_case(f"s{i}", demo_url, "/api/slow?ms=5000")] for i in range(2)}
    suite = write_suite(tmp_path / "suite", cases)
    proc = start_run(suite, write_config(tmp_path, api_workers=2, browsers=0, launcher="fork"))
    try:
        wait_for(lambda: any((s.get("current") or {}).get("case_id") for s in _stages(tmp_path)), 60, "a case running")
        pids = [s["pid"] for s in _stages(tmp_path)]
        launcher = _launcher(tmp_path)
        assert len(pids) >= 6 and all(not _gone(p) for p in pids)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for(lambda: all(_gone(p) for p in [*pids, launcher.pid]), 30, "every stage and the launcher gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for s in _stages(tmp_path):
            if not _gone(s["pid"]):
                os.killpg(s["pid"], signal.SIGKILL)
