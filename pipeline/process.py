"""One OS process of a stage: spawned in its own session (so its process group holds everything it starts,
browsers and drivers included), stopped by signal -> grace -> SIGKILL to the whole group."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from .clock import SYSTEM_CLOCK, Clock

__all__ = ["ProcessHandle", "describe_exit", "helper_pids", "set_child_subreaper", "spawn_many", "stop_launcher", "sweep_orphans",
           "try_launcher", "use_launcher"]

_LAUNCHER: Launcher | None = None


def set_child_subreaper() -> None:
    """Orphans of our children (a browser whose executor died) are re-parented to us, not to PID 1, so the
    sweep after a kill finds and reaps them. Linux only; harmless elsewhere."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def describe_exit(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name} ({-code})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Launcher:
    """The supervisor's side of :mod:`pipeline.launcher`: started once, asked for one stage per line.

    Forked from this process (after ``preload``) while it has one thread and no ZeroMQ context: no second
    interpreter and no second import of everything. Otherwise (a caller that already runs threads) the
    launcher is exec'ed as ``python -m pipeline.launcher`` and preloads for itself."""

    def __init__(self, log_path: Path, cwd: str | None, run_dir: str = "") -> None:
        import sys
        self.log_path, self.cwd = log_path, cwd
        log_path.parent.mkdir(parents=True, exist_ok=True)
        from .orphans import SUPERVISOR_ENV
        env = dict(os.environ, PYTHONUNBUFFERED="1", SE_OFFLINE="true", **{SUPERVISOR_ENV: str(os.getpid())},
                   PYTHONPATH=(cwd or ".") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc: subprocess.Popen[bytes] | _Forked
        self.stdin: IO[bytes]
        self.stdout: IO[bytes]
        if _single_threaded():
            from . import launcher
            self.preload_failed = launcher.preload()
            pid, req_w, rep_r = launcher.fork_launcher(str(log_path), env, cwd, run_dir)
            self.proc, self.forked = _Forked(pid), True
            self.stdin, self.stdout = os.fdopen(req_w, "wb"), os.fdopen(rep_r, "rb")
        else:
            with open(log_path, "ab") as out:
                popen = subprocess.Popen([sys.executable, "-m", "pipeline.launcher", run_dir], env=env, cwd=cwd,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=out, start_new_session=True)
            assert popen.stdin is not None and popen.stdout is not None
            self.proc, self.forked, self.stdin, self.stdout = popen, False, popen.stdin, popen.stdout
        ready = self._reply(60.0)
        if "ready" not in ready:
            raise OSError(f"launcher did not start: {ready}")
        self.preload_failed = ready.get("preload_failed") or getattr(self, "preload_failed", [])
        import logging
        logging.getLogger("pipeline.process").info(
            "launcher pid %d %s", self.proc.pid, "forked from the supervisor after preloading" if self.forked
            else "exec'ed (the supervisor already runs threads): it preloads for itself")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _reply(self, timeout: float) -> dict[str, Any]:
        import json
        import select
        r, _, _ = select.select([self.stdout], [], [], timeout)
        line = self.stdout.readline() if r else b""
        if not line:
            raise OSError(f"launcher pid {self.proc.pid} gave no answer ({describe_exit(self.proc.poll())})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: str | None) -> int:
        import json
        req = {"argv": argv, "env": env, "log": str(log_path), "cwd": cwd, "supervisor": os.getpid()}
        self.stdin.write((json.dumps(req) + "\n").encode())
        self.stdin.flush()
        reply = self._reply(30.0)
        if "pid" not in reply:
            raise OSError(f"launcher could not start {argv[3:5]}: {reply.get('error')}")
        return int(reply["pid"])

    def fork_batch(self, stages: list[tuple[list[str], dict[str, str], Path, str | None]]) -> list[int]:
        """Several stages in one request, forked from one intermediate (``(argv, env, log_path, cwd)`` each)."""
        import json
        reqs = [{"argv": a, "env": e, "log": str(lp), "cwd": c, "supervisor": os.getpid()} for a, e, lp, c in stages]
        self.stdin.write((json.dumps({"batch": reqs}) + "\n").encode())
        self.stdin.flush()
        reply = self._reply(30.0)
        pids = reply.get("pids")
        if not isinstance(pids, list) or len(pids) != len(stages):
            raise OSError(f"launcher could not start {len(stages)} stages: {reply.get('error')}")
        return [int(p) for p in pids]

    def close(self) -> None:
        try:
            self.stdin.close()
            self.stdout.close()
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _single_threaded() -> bool:
    """Only this thread runs here, native ones included (a ZeroMQ context's I/O threads, which ``threading``
    does not list): the one state in which forking the launcher from this process is safe."""
    import threading
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1


def use_launcher(enabled: bool, log_path: Path, cwd: str | None, run_dir: str = "") -> None:
    """Start stages through a preloaded launcher (``[Pipeline] launcher = fork``) or not (``exec``). The
    launcher needs this process to be a child subreaper (Linux); without it stages are exec'ed as before."""
    global _LAUNCHER
    stop_launcher()
    if enabled and _subreaper_ok():
        _LAUNCHER = Launcher(log_path, cwd, run_dir)


def try_launcher(log_path: Path, cwd: str, run_dir: str) -> None:
    """``[Pipeline] launcher = fork``: a launcher that cannot start is no failure, stages are exec'ed (logged)."""
    try:
        use_launcher(True, log_path, cwd, run_dir)
    except OSError as e:
        import logging
        logging.getLogger("pipeline.supervisor").warning("launcher not started (%s): stages are exec'ed", e)


def stop_launcher() -> None:
    global _LAUNCHER
    if _LAUNCHER is not None:
        _LAUNCHER.close()
        _LAUNCHER = None


def helper_pids() -> set[int]:
    """Our own helper children that are not stages (the orphan sweep must leave them alone)."""
    return {_LAUNCHER.pid} if _LAUNCHER is not None and _LAUNCHER.alive() else set()


def sweep_orphans(live: set[int]) -> None:
    """We are the subreaper: orphans of dead stages are our children now. Kill and reap every child that is
    neither in ``live`` (the running stages) nor one of our helpers."""
    import psutil
    keep = live | helper_pids()
    victims = []
    for p in psutil.Process().children(recursive=False):
        if p.pid in keep:
            continue
        try:
            victims.append(p)
            p.kill()
        except psutil.Error:
            pass
    if victims:
        psutil.wait_procs(victims, timeout=3)


def _subreaper_ok() -> bool:
    try:
        import ctypes
        flag = ctypes.c_int(0)
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(37, ctypes.byref(flag), 0, 0, 0)   # PR_GET_CHILD_SUBREAPER
        return flag.value == 1
    except (OSError, AttributeError):
        return False


class _Forked:
    """A stage forked by the launcher and re-parented to us: waited for by pid, like ``Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:             # reaped elsewhere (it must have exited)
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.01)
        return self.returncode       # type: ignore[return-value]


def spawn_many(handles: list[Any]) -> None:
    """Spawn several stage processes at once (the start-up): through the launcher in one request when every
    handle is a :class:`ProcessHandle` and a launcher runs (one intermediate process and one round trip for
    all), else each on its own (``handle.spawn()``; tests' fake processes too)."""
    batchable = len(handles) > 1 and all(type(h) is ProcessHandle for h in handles)
    if batchable and _LAUNCHER is not None and _LAUNCHER.alive():
        for h in handles:
            h.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            pids = _LAUNCHER.fork_batch([(h.argv, h.env, h.log_path, h.cwd) for h in handles])
        except (OSError, ValueError) as e:
            import logging
            logging.getLogger("pipeline.process").warning("launcher failed (%s): starting the stages one by one", e)
        else:
            for h, pid in zip(handles, pids):
                h.popen, h.started_at, h.term_sent_at = _Forked(pid), h.clock.monotonic(), None
            return
    for h in handles:
        h.spawn()


class ProcessHandle:
    """A spawned stage process. ``pid == pgid`` because it leads its own session."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: str | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.argv, self.env, self.log_path, self.cwd, self.clock = argv, env, log_path, cwd, clock
        self.popen: subprocess.Popen[bytes] | _Forked | None = None
        self.started_at = 0.0
        self.term_sent_at: float | None = None

    def spawn(self) -> int:
        """The one place a stage process starts: forked by the preloaded launcher when one is in use (see
        :mod:`pipeline.launcher`), else ``exec``'ed; either way in its own session and waited for by us."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if _LAUNCHER is not None and _LAUNCHER.alive():
            try:
                self.popen = _Forked(_LAUNCHER.fork(self.argv, self.env, self.log_path, self.cwd))
                self.started_at = self.clock.monotonic()
                self.term_sent_at = None
                return self.popen.pid
            except (OSError, ValueError) as e:
                import logging
                logging.getLogger("pipeline.process").warning("launcher failed (%s): exec'ing %s instead", e, self.argv[3:5])
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at = self.clock.monotonic()
        self.term_sent_at = None
        return self.popen.pid

    @property
    def pid(self) -> int:
        return self.popen.pid if self.popen else 0

    def poll(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self, now: float) -> None:
        if self.term_sent_at is None:
            self.term_sent_at = now
            self.signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self.signal_group(signal.SIGKILL)
