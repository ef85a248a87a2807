"""Everyday use through ``bin/liuma-pipeline``: live progress (a bar on a pseudo-terminal, plain lines in a
pipe), ``status --json`` fields, config reload (grow/shrink the pool, invalid file refused), metadata.json
and the greppable LIFECYCLE lines of a crash and restart. Real processes, real signals."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.system.engine import BIN, ROOT, run_dir_status, wait_for, write_config
from tests.system.suites import api_case, write_suite

pytestmark = pytest.mark.slow


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args, "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT), timeout=30)


def status(cfg: Path) -> dict[str, Any] | None:
    r = cli(cfg, "status", "--json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def executors(st: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (st or {}).get("stages", []) if s["kind"] == "executor"}


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_status_reload_and_lifecycle_lines_of_a_running_engine(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, api_workers=1, browsers=1)
    base = cfg.read_text()
    eng = subprocess.Popen([str(BIN), "start", "--foreground", "--config", str(cfg)], cwd=str(ROOT),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    try:
        def all_running(n_exec: int) -> Any:
            st = status(cfg)
            ok = st and len(executors(st)) == n_exec and all(s["state"] == "running" and s["pid"] and s["stats"]   # stats: heartbeat in
                                                              for s in st["stages"])
            if ok:
                seen.update(s["pid"] for s in st["stages"])
            return st if ok else None

        st = wait_for(lambda: all_running(2), 30, "all stages running")
        ex = executors(st)
        assert (ex["executor-1"]["kinds"], ex["executor-1"]["browser"], ex["executor-1"]["device"]) == (["API"], None, None)
        assert ex["executor-2"]["kinds"] == ["API", "WEB"] and ex["executor-2"]["browser"] == "chromium (headless)"
        assert ex["executor-2"]["current"] is None and ex["executor-2"]["retiring"] is False
        for s in st["stages"]:
            assert {"pid", "state", "uptime_s", "restarts", "last_exit", "current", "incarnation"} <= set(s)
        assert st["tasks"] == [] and st["config_generation"] == 0 and "queued_units" in st["queues"]

        # grow: one more API worker (and debug logging) without a restart of anything running
        before = {s["name"]: s["pid"] for s in st["stages"]}
        cfg.write_text(base.replace("[Pipeline]\n", "[Pipeline]\napi-workers = 2\n", 1).replace("api-workers = 1\n", "")
                       + "[Logging]\nlevel = debug\n")
        r = cli(cfg, "reload")
        assert r.returncode == 0 and "generation 1" in r.stdout and "executors started executor-3" in r.stdout, r
        assert "Pipeline.api-workers" in r.stdout and "Logging.level" in r.stdout
        st = wait_for(lambda: all_running(3), 30, "the third executor running")
        assert executors(st)["executor-3"]["kinds"] == ["API"] and st["config_generation"] == 1
        assert {s["name"]: s["pid"] for s in st["stages"] if s["name"] != "executor-3"} == before
        settings = json.loads(next((tmp_path / "run").glob("settings.json")).read_text())
        assert settings["config"]["Pipeline"]["api-workers"] == 2 and settings["config"]["Logging"]["level"] == "debug"
        sched_log = tmp_path / "storage" / "log" / "scheduler.log"
        wait_for(lambda: "config reload 1 applied" in sched_log.read_text(), 10, "the scheduler applying the reload")

        # invalid file: refused with the reason by the CLI and by the engine (SIGHUP); the old config stays
        good = cfg.read_text()
        cfg.write_text(good.replace("api-workers = 2", "api-workers = many"))
        r = cli(cfg, "reload")
        assert r.returncode == 2 and "config not reloaded, the old one stays" in r.stderr and "api-workers" in r.stderr and "many" in r.stderr
        eng.send_signal(signal.SIGHUP)
        sup_log = tmp_path / "storage" / "log" / "supervisor.log"
        refused = wait_for(lambda: [x for x in sup_log.read_text().splitlines() if "LIFECYCLE reload-refused stage=supervisor" in x],
                           10, "the engine refusing the file")
        assert "many" in refused[0] and "[Pipeline]:api-workers" in refused[0]
        cfg.write_text(good)
        st = status(cfg)
        assert eng.poll() is None and st["config_generation"] == 1 and len(executors(st)) == 3

        # a crash: SIGKILL an executor -> exit and restart lines, greppable
        victim = executors(st)["executor-1"]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: executors(status(cfg))["executor-1"]["restarts"] == 1 and all_running(3), 30, "executor-1 restarted")
        lines = sup_log.read_text().splitlines()
        assert any(re.search(rf"LIFECYCLE exit stage=executor-1 pid={victim} inc=0 cause='killed by signal SIGKILL \(9\)' next=backoff", x)
                   for x in lines), lines[-10:]
        assert any(re.search(r"LIFECYCLE restart stage=executor-1 restarts=1 after='killed by signal SIGKILL \(9\)'", x) for x in lines)
        assert any(re.search(r"LIFECYCLE start stage=executor-1 pid=\d+ inc=1", x) for x in lines)

        # shrink back: the surplus (idle) executor is stopped and removed
        third = executors(status(cfg))["executor-3"]["pid"]
        cfg.write_text(good.replace("api-workers = 2", "api-workers = 1"))
        r = cli(cfg, "reload")
        assert r.returncode == 0 and "retiring executor-3" in r.stdout, r
        wait_for(lambda: set(executors(status(cfg))) == {"executor-1", "executor-2"}, 20, "executor-3 removed")
        wait_for(lambda: not alive(third), 10, "executor-3's process gone")
        lines = sup_log.read_text().splitlines()
        assert any("LIFECYCLE retire stage=executor-3" in x for x in lines)
        assert any(f"LIFECYCLE exit stage=executor-3 pid={third}" in x and "next=removed" in x for x in lines)

        assert cli(cfg, "stop").returncode == 0
        assert eng.wait(timeout=30) == 0
        wait_for(lambda: not any(alive(p) for p in seen), 10, "every stage process gone")
    finally:
        if eng.poll() is None:
            eng.kill()
            eng.wait()
        for p in seen:
            if alive(p):
                os.killpg(p, signal.SIGKILL)


def read_pty(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    chunks, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:             # EIO: the child side closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode("utf-8", "replace")


def test_run_on_a_terminal_draws_a_live_bar_and_records_metadata(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {
        "c1": [api_case("slow-1", demo_url, "/api/slow?ms=1500", name="慢一"), api_case("ok-1", demo_url, "/api/health")],
        "c2": [api_case("bad-1", demo_url, "/api/items", assertions=[
            {"from": "resBody", "method": "jsonpath", "expression": "$.data[0].name", "assertion": "equals", "expect": "nope"}])],
    })
    cfg = write_config(tmp_path, "[Retry]\nmax-attempts = 1\n", api_workers=1, browsers=0)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))      # a 120-column terminal
    proc = subprocess.Popen([str(BIN), "run", str(suite), "--config", str(cfg)], cwd=str(ROOT), stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        def in_flight() -> Any:
            tasks = (run_dir_status(tmp_path) or {}).get("tasks") or []
            return tasks if tasks and any((s.get("current") or {}).get("case_id") == "slow-1"
                                          for s in (run_dir_status(tmp_path) or {}).get("stages", [])) else None
        tasks = wait_for(in_flight, 30, "the task in flight while the slow case runs")
        assert tasks[0]["task_id"] == "t-1" and tasks[0]["cases"] == 3
        meta = json.loads((tmp_path / "storage" / "data" / "t-1" / "metadata.json").read_text())
        assert meta["status"] == "running" and meta["taskId"] == "t-1"
        out = read_pty(master, proc, 60).replace("\r\n", "\n")          # the tty turns \n into \r\n
        assert proc.wait(timeout=30) == 1
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "\x1b[2K" in out and "\x1b[1A" in out                     # redrawn in place
    assert re.search(r"\[#*-*\] 0/3  passed 0  failed 0  error 0  running 1", out)
    assert "executor-1" in out and "慢一" in out
    assert re.search(r"executor-1 +\d+/300 s  慢一", out)                  # ... with elapsed vs deadline
    assert re.search(r"\[#+\] 3/3  passed 2  failed 1  error 0", out)
    assert "PASS   慢一 [c1/slow-1#1]" in out and "FAIL   bad-1 [c2/bad-1#1]" in out
    assert "3 cases: 2 passed, 1 failed, 0 error" in out
    meta = json.loads((tmp_path / "storage" / "data" / "t-1" / "metadata.json").read_text())
    assert meta["status"] == "finished" and meta["finish_time"] and meta["cases"] == 3
    assert (meta["counts"]["passed"], meta["counts"]["failed"], meta["counts"]["cases"]) == (2, 1, 3)


def test_run_in_a_pipe_prints_plain_lines_and_bar_can_be_forced(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health"), api_case("b", demo_url, "/api/text")]})
    cfg = write_config(tmp_path, api_workers=1, browsers=0)
    r = subprocess.run([str(BIN), "run", str(suite), "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT), timeout=90)
    assert r.returncode == 0, r
    assert "\x1b" not in r.stdout
    lines = [x for x in r.stdout.splitlines() if x.startswith("PASS")]
    assert [x.split()[1] for x in lines] == ["a", "b"]
    assert "2 cases: 2 passed, 0 failed" in r.stdout
    r = subprocess.run([str(BIN), "run", str(suite), "--config", str(cfg), "--progress", "bar"], capture_output=True,
                       text=True, cwd=str(ROOT), timeout=90)
    assert r.returncode == 0 and "\x1b[2K" in r.stdout and "2/2  passed 2" in r.stdout


def test_shrinking_the_pool_mid_run_lets_running_cases_finish(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("slow-1", demo_url, "/api/slow?ms=2500")],
                                             "c2": [api_case("slow-2", demo_url, "/api/slow?ms=2500")]})
    cfg = write_config(tmp_path, api_workers=2, browsers=0)
    proc = subprocess.Popen([str(BIN), "run", str(suite), "--config", str(cfg)], cwd=str(ROOT), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def both_busy() -> bool:
            return sum(1 for s in (run_dir_status(tmp_path) or {}).get("stages", []) if s["kind"] == "executor" and s.get("current")) == 2
        wait_for(both_busy, 30, "both executors running a slow case")
        cfg.write_text(cfg.read_text().replace("api-workers = 2", "api-workers = 1"))
        proc.send_signal(signal.SIGHUP)                       # `run` has no control socket of its own name: SIGHUP
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    rows = json.loads((tmp_path / "reports" / "t-1" / "results.json").read_text())["caseResultList"]
    assert sorted((r["caseId"], r["status"], r["runTimes"]) for r in rows) == [("slow-1", 0, 1), ("slow-2", 0, 1)]
    log = (tmp_path / "storage" / "log" / "supervisor.log").read_text()
    assert re.search(r"LIFECYCLE reload stage=supervisor generation=1 changed=\['Pipeline.api-workers'\] started=\[\] "
                     r"retiring=\['executor-\d'\]", log), log[-2000:]
    assert "while running" not in log and "BROKEN" not in out
