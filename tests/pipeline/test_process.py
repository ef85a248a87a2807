"""ProcessHandle: one real OS process in its own session; signals go to its whole group (a grandchild, like
a browser an executor started, goes too); times come from the Clock it is handed."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from pipeline.process import ProcessHandle, describe_exit
from tests.fakes import FakeClock

# a parent that starts a grandchild in its group, tells its pid through a FIFO (read blocking: no polling), waits
FAMILY = "import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); " \
         "open(sys.argv[1], 'w').write(f'{c.pid}\\n'); time.sleep(60)"


@pytest.fixture
def family(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    fifo = tmp_path / "pid.fifo"
    os.mkfifo(fifo)
    h = ProcessHandle([sys.executable, "-c", FAMILY, str(fifo)], dict(os.environ), tmp_path / "log" / "family.out", clock=clock)
    yield h, clock
    h.kill()
    if h.popen is not None and h.poll() is None:
        h.popen.wait(timeout=30)


def grandchild(h: ProcessHandle) -> int:
    with open(h.argv[-1]) as fifo:
        return int(fifo.readline())


def test_spawn_leads_its_own_session_and_is_timed_by_the_clock(family: tuple[ProcessHandle, FakeClock]) -> None:
    h, clock = family
    pid = h.spawn()
    assert pid == h.pid and os.getpgid(pid) == pid and os.getsid(pid) == pid
    assert h.started_at == clock.now and h.term_sent_at is None and h.poll() is None


def test_terminate_signals_the_group_once_and_kill_ends_the_grandchild_too(family: tuple[ProcessHandle, FakeClock]) -> None:
    h, clock = family
    h.spawn()
    gc = grandchild(h)
    assert os.getpgid(gc) == h.pid
    clock.advance(5)
    h.terminate(clock.now)
    h.terminate(clock.now + 1)                    # a second call does not restart the grace
    assert h.term_sent_at == clock.now
    assert h.popen is not None and h.popen.wait(timeout=30) == -signal.SIGTERM
    psutil.Process(gc).wait(timeout=30)           # the grandchild got the group's SIGTERM as well
    assert not psutil.pid_exists(gc) or psutil.Process(gc).status() == psutil.STATUS_ZOMBIE


def test_kill_is_sigkill_to_the_group(family: tuple[ProcessHandle, FakeClock]) -> None:
    h, _ = family
    h.spawn()
    gc = grandchild(h)
    h.kill()
    assert h.popen is not None and h.popen.wait(timeout=30) == -signal.SIGKILL
    psutil.Process(gc).wait(timeout=30)


def test_signalling_a_process_that_is_gone_is_harmless(tmp_path: Path) -> None:
    h = ProcessHandle([sys.executable, "-c", "pass"], dict(os.environ), tmp_path / "quick.out")
    h.spawn()
    assert h.popen is not None and h.popen.wait(timeout=30) == 0
    h.terminate(0.0)
    h.kill()
    assert h.poll() == 0


@pytest.mark.parametrize("code, text", [(None, "running"), (0, "exit code 0"), (78, "exit code 78"),
                                        (-9, "killed by signal SIGKILL (9)"), (-200, "killed by signal 200")])
def test_describe_exit(code: int | None, text: str) -> None:
    assert describe_exit(code) == text


def test_a_supervisor_running_threads_execs_the_launcher_instead_of_forking_it(tmp_path: Path) -> None:
    """Forking copies only the calling thread: with another thread alive the launcher is exec'ed (it preloads
    for itself) and still answers; closing it ends it."""
    import threading

    from pipeline.process import Launcher
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        launcher = Launcher(tmp_path / "log" / "launcher.out", str(Path(__file__).resolve().parents[2]), str(tmp_path))
    finally:
        stop.set()
        t.join()
    try:
        assert not launcher.forked and launcher.alive() and launcher.preload_failed == []
        assert "pipeline.launcher" in " ".join(psutil.Process(launcher.pid).cmdline())
    finally:
        launcher.close()
    assert not launcher.alive()
