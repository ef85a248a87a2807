"""Chromium's leftovers are swept only when no live process holds them (``pipeline.chromium_litter``), with
real processes: a real headless Chromium SIGKILLed beside a live one, and helper processes that hold a
``/dev/shm`` segment open, name a profile on their command line or keep a singleton socket bound."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.chromium_litter import SHM_DIR, SHM_PREFIX, litter, sweep
from tests.system.engine import wait_for

OLD = 600.0


def _dead(p: psutil.Process) -> bool:
    """Gone or a zombie (chromedriver, its parent, reaps it only at its own quit)."""
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _aged(path: Path) -> Path:
    t = time.time() - OLD
    os.utime(path, (t, t))
    return path


@pytest.fixture
def helpers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def _hold(helpers: list[subprocess.Popen[bytes]], code: str, *args: str) -> None:
    p = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE)
    helpers.append(p)
    assert p.stdout is not None and p.stdout.readline() == b"ready\n"


def test_shm_segments_go_only_when_no_live_process_holds_them(helpers: list[subprocess.Popen[bytes]]) -> None:
    tag = f"lmtest{os.getpid()}"
    held, gone, young = (Path(SHM_DIR) / f"{SHM_PREFIX}{tag}{n}" for n in ("held", "gone", "young"))
    try:
        for p in (held, gone, young):
            p.write_bytes(b"\0" * 4096)
        _hold(helpers, "import sys, time; f = open(sys.argv[1], 'rb'); print('ready', flush=True); time.sleep(120)", str(held))
        _aged(held), _aged(gone)
        removed = sweep([], min_age=60)
        assert str(gone) in removed and not gone.exists()
        assert held.exists() and young.exists()            # open in a live process; too young to judge
        assert str(held) not in removed and str(young) not in removed
    finally:
        for p in (held, gone, young):
            p.unlink(missing_ok=True)


def test_dirs_named_on_a_live_command_line_or_with_a_bound_socket_are_kept(tmp_path: Path,
                                                                         helpers: list[subprocess.Popen[bytes]]) -> None:
    named, bound, dead, other = (tmp_path / n for n in ("liuma-chrome-named", "org.chromium.Chromium.bound",
                                                        "org.chromium.Chromium.dead", "not-ours"))
    for d in (named, bound, dead, other):
        d.mkdir()
    _hold(helpers, "import time; print('ready', flush=True); time.sleep(120)", f"--user-data-dir={named}")
    _hold(helpers, "import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen();"
                   " print('ready', flush=True); time.sleep(120)", str(bound / "SingletonSocket"))
    dead_sock = socket.socket(socket.AF_UNIX)
    dead_sock.bind(str(dead / "SingletonSocket"))
    dead_sock.close()                                       # the file stays, nothing is bound to it any more
    for d in (named, bound, dead, other):
        _aged(d)
    assert litter([str(tmp_path)], shm_dir=str(tmp_path / "no-shm"), min_age=60) == [str(dead)]
    helpers[0].kill()
    helpers[0].wait()
    assert sorted(sweep([str(tmp_path)], shm_dir=str(tmp_path / "no-shm"), min_age=60)) == [str(named), str(dead)]
    assert bound.is_dir() and other.is_dir() and not dead.exists() and not named.exists()


@pytest.mark.browser
def test_a_sigkilled_browser_leaves_nothing_after_its_quit_and_a_live_one_keeps_its_files(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from stages.executor.web.browser import BrowserConfig, start_browser
    root = Path(tempfile.mkdtemp(prefix="lmt-", dir="/tmp"))    # short: Chromium's socket path has a limit
    request_cleanup = shutil.rmtree
    monkeypatch.setenv("TMPDIR", str(root))                 # profiles and Chromium's singleton dirs land here
    monkeypatch.setattr(tempfile, "tempdir", None)
    victim, live = start_browser(BrowserConfig(), 60.0), start_browser(BrowserConfig(), 60.0)
    try:
        assert victim.singleton_dir and live.singleton_dir and victim.profile_dir and live.profile_dir
        assert all(Path(p).parent == root for p in (victim.singleton_dir, live.singleton_dir, victim.profile_dir))
        driver_pid = victim.pids()[0]
        chromium = psutil.Process(driver_pid).children(recursive=True)
        assert chromium
        for p in chromium:                                  # the browser is killed, its chromedriver lives on
            p.send_signal(signal.SIGKILL)
        wait_for(lambda: all(_dead(p) for p in chromium), 30, "the killed browser's processes to die")
        assert Path(victim.singleton_dir).is_dir()          # Chromium could not clean up after itself
        victim.quit()                                       # what the executor does with a lost browser
        assert victim.sweeper is not None
        victim.sweeper.join(60)
        assert not Path(victim.singleton_dir).exists() and not Path(victim.profile_dir).exists()
        assert Path(live.singleton_dir).is_dir() and Path(live.profile_dir).is_dir()
        for d in (live.singleton_dir, live.profile_dir):    # even when old: the live browser holds them
            _aged(Path(d))
        assert not set(sweep([str(root)], min_age=60)) & {live.singleton_dir, live.profile_dir}
        live.driver.get("data:text/html,<title>alive</title>")
        assert live.driver.title == "alive"
    finally:
        victim.quit()
        live.quit()
    try:
        if live.sweeper is not None:                        # none: Chromium had removed its singleton dir itself
            live.sweeper.join(60)
        wait_for(lambda: os.listdir(root) == [], 30, "a cleanly quit browser's files to be gone")
    finally:
        request_cleanup(root, ignore_errors=True)
