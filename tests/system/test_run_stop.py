"""``run`` survives its operator: a terminal hangup on its controlling terminal, Ctrl-C (twice), a closed
stdout, and ``status`` while it runs. Real processes, a real pseudo-terminal, real signals."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.system.engine import BIN, ROOT, engine_processes, results, run_dir_status, start_run, wait_for, write_config
from tests.system.suites import api_case, write_suite

pytestmark = pytest.mark.slow


def _summary(tmp: Path, task_id: str = "t-1") -> dict[str, Any]:
    return json.loads((tmp / "reports" / task_id / "summary.json").read_text())  # type: ignore[no-any-return]


def _log(tmp: Path, name: str) -> str:
    path = tmp / "storage" / "log" / f"{name}.log"
    return path.read_text() if path.exists() else ""


def _running(tmp: Path, case_prefix: str, n: int) -> bool:
    cur = [(s.get("current") or {}).get("case_id") or "" for s in (run_dir_status(tmp) or {}).get("stages", [])]
    return sum(1 for c in cur if c.startswith(case_prefix)) >= n


def _on_pty(argv: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` as a session leader whose controlling terminal is a new pseudo-terminal."""
    master, slave = os.openpty()

    def become_terminal_owner() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, cwd=str(ROOT), stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=become_terminal_owner, close_fds=True)
    os.close(slave)
    return proc, master


class _Reader(threading.Thread):
    """Drains the pty master so the run never blocks on a full terminal; keeps what it read."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd, self.data, self.closed = fd, b"", False

    def run(self) -> None:
        while not self.closed:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.data += chunk


def test_terminal_hangup_mid_run_finishes_detached_with_full_reports(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {f"c{c}": [api_case(f"c{c}-{i}", demo_url, "/api/slow?ms=600") for i in range(4)]
                                             for c in (1, 2)})
    cfg = write_config(tmp_path, api_workers=2, browsers=0)
    proc, master = _on_pty([str(BIN), "run", str(suite), "--config", str(cfg)])
    reader = _Reader(master)
    reader.start()
    try:
        wait_for(lambda: b"PASS" in reader.data, 60, "a first case on the terminal")
        assert b"\x1b[" in reader.data                   # the live bar: it did think it was on a terminal
        hung_up = time.time()
        reader.closed = True
        os.close(master)                                 # the terminal hangs up: SIGHUP, then EIO on every write
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0                                     # it went on and every case passed
    rows = results(tmp_path)
    assert sorted(r["caseId"] for r in rows) == sorted(f"c{c}-{i}" for c in (1, 2) for i in range(4))
    assert all(r["status"] == 0 and r["runTimes"] == 1 for r in rows)
    assert any(r["endTime"] / 1000 > hung_up for r in rows)      # cases ran after the hangup
    summary = _summary(tmp_path)
    assert summary["finished"] is True and summary["success"] is True
    assert "terminal hung up" in _log(tmp_path, "supervisor")
    assert not engine_processes(tmp_path)


def test_sigint_mid_run_starts_no_case_in_running_collections_and_exits_130(tmp_path: Path, demo_url: str) -> None:
    colls = {f"c{c}": [api_case(f"c{c}-slow", demo_url, "/api/slow?ms=3000")]
             + [api_case(f"c{c}-next{i}", demo_url, "/api/health") for i in range(3)] for c in (1, 2)}
    suite = write_suite(tmp_path / "suite", dict(colls, c3=[api_case("c3-queued", demo_url, "/api/health")]))
    cfg = write_config(tmp_path, api_workers=2, browsers=0, stop_grace=10)
    proc = start_run(suite, cfg)
    wait_for(lambda: _running(tmp_path, "c1-slow", 1) and _running(tmp_path, "c2-slow", 1), 30, "both slow cases running")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    rows = {r["caseId"]: r for r in results(tmp_path)}
    assert set(rows) == {"c1-slow", "c2-slow", "c3-queued"} | {f"c{c}-next{i}" for c in (1, 2) for i in range(3)}
    assert rows["c1-slow"]["status"] == rows["c2-slow"]["status"] == 0           # finished within the grace
    for cid, r in rows.items():
        assert r["runTimes"] == 1, cid                                           # nothing retried
        if not cid.endswith("slow"):                                             # nothing else started
            assert r["status"] == 3 and "engine stopping (signal SIGINT)" in r["transactionList"][0]["log"], r
    summary = _summary(tmp_path)
    assert summary["finished"] is True
    sup = _log(tmp_path, "supervisor")
    after = sup[sup.index("draining: signal SIGINT"):]
    assert "LIFECYCLE restart" not in after, after                              # no executor came back
    held = [n for n in ("executor-1", "executor-2") if "no new case starts for any task" in _log(tmp_path, n)]
    assert len(held) == 2
    assert "7 skipped" in out, out
    assert not engine_processes(tmp_path)


def test_second_sigint_skips_the_grace_and_kills_the_running_case(tmp_path: Path, demo_url: str) -> None:
    hang = api_case("hang", demo_url, "/api/health", name="挂起",
                    controller={"pre": [{"name": "preScript", "value": "import time\ntime.sleep(120)", "index": 1}]})
    suite = write_suite(tmp_path / "suite", {"c1": [hang, api_case("after", demo_url, "/api/health")]})
    cfg = write_config(tmp_path, api_workers=1, browsers=0, stop_grace=300)
    proc = start_run(suite, cfg)
    wait_for(lambda: _running(tmp_path, "hang", 1), 30, "the hanging case running")
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: "draining: signal SIGINT" in _log(tmp_path, "supervisor"), 10, "the stop to begin")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)                  # far less than the 300 s grace
    assert proc.returncode == 130, (out, err)
    rows = {r["caseId"]: r for r in results(tmp_path)}
    assert rows["hang"]["status"] == 2 and "second stop signal" in rows["hang"]["transactionList"][0]["log"]
    assert rows["after"]["status"] == 3
    assert _summary(tmp_path)["finished"] is True
    assert not engine_processes(tmp_path)


def test_stdout_closed_mid_run_does_not_end_it(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case(f"a{i}", demo_url, "/api/slow?ms=300") for i in range(6)]})
    proc = start_run(suite, write_config(tmp_path, api_workers=1, browsers=0), "--progress", "plain")
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert first.startswith("liuma-pipeline: task t-1")
    proc.stdout.close()                                    # the reader goes away (`| head -1`)
    err = proc.stderr.read()
    assert proc.wait(timeout=90) == 0, err                 # not 1, not 120 (a failed flush at exit)
    assert len(results(tmp_path)) == 6 and _summary(tmp_path)["finished"] is True
    assert "output goes to the log only" in _log(tmp_path, "supervisor")
    assert "PASS" in _log(tmp_path, "supervisor")          # the case lines went to the log instead
    assert not engine_processes(tmp_path)


def test_status_json_reaches_a_running_run(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("slow", demo_url, "/api/slow?ms=4000")]})
    cfg = write_config(tmp_path, api_workers=1, browsers=0)
    proc = start_run(suite, cfg)
    try:
        def status() -> dict[str, Any] | None:
            r = subprocess.run([str(BIN), "status", "--json", "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT))
            st = json.loads(r.stdout) if r.returncode == 0 else None
            return st if st and any((s.get("current") or {}).get("case_id") == "slow" for s in st["stages"]) else None
        st = wait_for(status, 30, "status --json showing the slow case")
        assert st["mode"] == "run" and st["status"] == "ok"
        assert set(st) >= {"uptime_s", "shutting_down", "stages", "queues", "tasks", "config_generation"}
        assert {s["kind"] for s in st["stages"]} >= {"scheduler", "executor", "aggregator", "fetcher"}
        text = subprocess.run([str(BIN), "status", "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT))
        assert text.returncode == 0 and "engine run up" in text.stdout and "executor-1" in text.stdout
        other = subprocess.run([str(BIN), "status", "--pid", "1", "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT))
        assert other.returncode == 1 and f"running: {proc.pid}" in other.stderr
    finally:
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not list((tmp_path / "storage" / "runs").glob("*.json"))       # unregistered at the end
    r = subprocess.run([str(BIN), "status", "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT))
    assert r.returncode == 1 and "nothing is running" in r.stderr


def test_an_all_skipped_run_is_no_success_unless_every_case_was_disabled(tmp_path: Path, demo_url: str) -> None:
    cases = [api_case("a", demo_url, "/api/health"), api_case("b", demo_url, "/api/health")]
    blocked = write_suite(tmp_path / "blocked", {"c1": cases}, extra={"a": {"dependencies": ["gone"]}, "b": {"dependencies": ["gone"]}})
    proc = start_run(blocked, write_config(tmp_path, api_workers=1, browsers=0))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "every case was skipped" in err and _summary(tmp_path)["success"] is False
    off = write_suite(tmp_path / "off", {"c1": cases}, task_id="t-2",
                      extra={"a": {"enabled": False}, "b": {"enabled": False, "skipReason": "not today"}})
    proc = start_run(off, write_config(tmp_path, api_workers=1, browsers=0))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    summary = _summary(tmp_path, "t-2")
    assert summary["success"] is True and {d["reason"] for d in summary["details"]} == {
        "case disabled (enabled=false)", "case disabled: not today"}


@pytest.mark.parametrize("how", ["SIGTERM", "stop"])
def test_sigterm_and_stop_command_take_the_same_stop_path(tmp_path: Path, demo_url: str, how: str) -> None:
    # the slow case outlasts a `stop` CLI start on a loaded machine, and ends within the stop grace (5 s)
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("slow", demo_url, "/api/slow?ms=3500"),
                                                    api_case("next", demo_url, "/api/health")]})
    cfg = write_config(tmp_path, api_workers=1, browsers=0)
    proc = start_run(suite, cfg)
    wait_for(lambda: _running(tmp_path, "slow", 1), 30, "the slow case running")
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    else:
        r = subprocess.run([str(BIN), "stop", "--config", str(cfg)], capture_output=True, text=True, cwd=str(ROOT))
        assert r.returncode == 0, r.stderr
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if how == "SIGTERM" else 1), (out, err)
    rows = {r["caseId"]: r for r in results(tmp_path)}
    assert rows["slow"]["status"] == 0 and rows["next"]["status"] == 3
    why = "signal SIGTERM" if how == "SIGTERM" else "stop requested"
    assert f"engine stopping ({why})" in rows["next"]["transactionList"][0]["log"]
    meta = json.loads((tmp_path / "storage" / "data" / "t-1" / "metadata.json").read_text())
    assert meta["status"] == "stopped" and why in meta["stop_reason"]
    summary = _summary(tmp_path)
    assert summary["finished"] is True and why in summary["stop_reason"] and summary["success"] is False
    assert not engine_processes(tmp_path)
