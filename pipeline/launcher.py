"""Preloaded stage launcher: one interpreter imports the heavy modules once and forks every stage from them.

Each stage used to be ``python -m pipeline.stage_main ...``: a new interpreter paying its own start-up and
imports (zmq, msgpack, requests, selenium, the stage packages; ~0.2 s CPU each, times seven stages and every
restart). With ``[Pipeline] launcher = fork`` the supervisor imports ``PRELOAD`` itself and forks the launcher
from its own process (``fork_launcher``) before it has a thread or a ZeroMQ context, so nothing is imported
twice and no second interpreter starts; a supervisor that already runs threads execs ``python -m
pipeline.launcher`` instead. Either way it asks the launcher over two pipes, one JSON line each way, to start
a stage: ``{"argv", "env", "log", "cwd", "supervisor"}`` -> ``{"pid"}`` (or ``{"error"}``), or several at once
(the start-up): ``{"batch": [request, ...]}`` -> ``{"pids": [...]}``, all forked from one intermediate.

Who owns what (the supervisor keeps everything it had with ``Popen``):

- *Double fork*: the launcher forks an intermediate that forks the stage and exits at once. The supervisor
  is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so the orphaned stage is re-parented to the supervisor,
  not to PID 1: the supervisor ``waitpid``s it like any child of its own and sees its real exit status; no
  exit reports, no pidfd, no polling of a process that is not its child.
- The stage calls ``setsid()``: its own session and process group (pid == pgid), so the supervisor's
  signal -> grace -> SIGKILL of the whole group, deadlines and kills work unchanged.
- Dying together: the launcher has ``PR_SET_PDEATHSIG = SIGKILL`` towards the supervisor, and exits when its
  stdin closes. A stage waits until it is re-parented to the supervisor, then sets its own
  ``PR_SET_PDEATHSIG = SIGKILL`` and checks ``getppid()`` again: a SIGKILLed supervisor leaves no stage
  (and no launcher) running.
- Fresh state per stage: the launcher never creates a ZeroMQ context, a socket, a thread or a logging
  handler, so a forked stage makes its own (``stage_main`` sets up logging, the stage its mailbox); the
  environment, working directory, ``TMPDIR`` (``tempfile``'s cached directory is reset) and stdio (the
  stage's ``.out`` log) are the ones the supervisor asked for, exactly as with ``Popen``.

What stays a clean interpreter: everything a stage itself starts with ``subprocess`` (case scripts,
chromedriver, browsers, Appium) is an ``exec`` as before. Pages of the preloaded modules stay shared
copy-on-write between the launcher and every stage (``bench/launcher.py`` measures USS/PSS).
"""
from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import IO, Any

__all__ = ["PRELOAD", "fork_launcher", "main", "preload", "serve"]

PR_SET_PDEATHSIG = 1
_MAXFD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024
PRELOAD = ("zmq", "msgpack", "psutil", "requests", "urllib3", "jsonpath_ng", "jsonpath_ng.ext", "orjson", "setproctitle",
           "pipeline.stage", "pipeline.stage_main", "pipeline.transport", "pipeline.codec", "pipeline.journal",
           "stages.fetcher", "stages.scheduler", "stages.executor", "stages.aggregator", "stages.uploader",
           "stages.janitor", "stages.executor.api", "selenium.webdriver")


def _pdeathsig(sig: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _forget_logging() -> None:
    """Drop the handlers a forked child inherited (their files are the parent's): each stage sets up its own."""
    import logging
    for lg in [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]:
        lg.handlers.clear()


def _stdio(log_path: str) -> None:
    """stdin from /dev/null, stdout and stderr appended to ``log_path``, unbuffered as with an exec'ed stage."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    for f in (sys.stdout, sys.stderr):
        try:
            f.reconfigure(line_buffering=True, write_through=True)      # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


def _title(args: list[str]) -> None:
    """Make ``/proc/<pid>/cmdline`` read ``args``, NUL-separated as an exec'ed process's would: ``ps``,
    ``pgrep``, psutil, the orphan sweep (``pipeline.orphans``) and the tests parse it. The arguments are
    written over this process's own argument area (``arg_start``/``arg_end`` of ``/proc/self/stat``) and
    the rest of it zeroed; only when they do not fit there, ``setproctitle`` (one space-separated title
    that may run into the environment's area; psutil splits it on spaces). Forked from the supervisor, that
    area is the ``run`` command line's; a title shorter than it reads back NUL-padded, as one argument."""
    data = b"\0".join(os.fsencode(a) for a in args) + b"\0"
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()       # after "pid (comm)": field N is fields[N - 3]
        start, end = int(fields[45]), int(fields[46])         # arg_start (48), arg_end (49)
        if start and len(data) <= end - start:
            ctypes.memmove(start, data, len(data))
            ctypes.memset(start + len(data), 0, end - start - len(data))
            return
    except (OSError, ValueError, IndexError):
        pass
    try:
        import setproctitle
        setproctitle.setproctitle(" ".join(args))
    except ImportError:
        pass


def preload() -> list[str]:
    """Import every module of ``PRELOAD`` into this process; returns the ones that failed (with why)."""
    failed = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as e:         # a stage that needs it will fail to import it itself, loudly
            failed.append(f"{name}: {e}")
    return failed


def _run_stage(req: dict[str, Any], supervisor: int) -> None:
    """In the grandchild: become the stage process described by ``req``, then exit with its code."""
    code = 1
    try:
        os.setsid()
        _title(req["argv"])      # first, while environ is untouched (the setproctitle fallback finds the area through it)
        end = time.monotonic() + 5.0
        while os.getppid() != supervisor and time.monotonic() < end:     # re-parented once the middle exits
            time.sleep(0.001)
        _pdeathsig(signal.SIGKILL)
        if os.getppid() != supervisor:
            os._exit(70)
        _stdio(req["log"])
        os.closerange(3, _MAXFD)           # the launcher's pipes: a stage holds what an exec'ed one would
        os.environ.clear()
        os.environ.update(req["env"])
        os.chdir(req["cwd"] or ".")
        import tempfile
        tempfile.tempdir = None
        argv = req["argv"]
        # argv is [python, "-m", "pipeline.stage_main", *args]: run that module's main in this process, under
        # the same command line (set above: ps, pgrep and the tests' process checks see a stage)
        sys.argv = [argv[2], *argv[3:]]

        from pipeline import stage_main
        code = stage_main.main(argv[3:])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            import logging
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _fork_stages(reqs: list[dict[str, Any]]) -> list[int]:
    """Fork every stage of ``reqs`` from one intermediate process, which reports their pids and exits (the
    stages are then orphans, re-parented to the supervisor). One intermediate for a whole start-up instead
    of one per stage: each is a fork and an exit of the preloaded interpreter (~3 ms CPU)."""
    supervisors = {int(r["supervisor"]) for r in reqs}
    if len(supervisors) != 1:
        raise ValueError("a batch names one supervisor")
    supervisor = supervisors.pop()
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:                     # intermediate: fork the stages, tell their pids, leave
        try:
            os.close(r)
            pids = []
            for req in reqs:
                pid = os.fork()
                if pid == 0:
                    os.close(w)
                    _run_stage(req, supervisor)
                pids.append(pid)
            os.write(w, ",".join(map(str, pids)).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(middle, 0)
    pids = [int(x) for x in data.split(b",") if x]
    if len(pids) != len(reqs):
        raise OSError(f"the intermediate process reported {len(pids)} of {len(reqs)} stage pids")
    return pids


def serve(inp: IO[str], out: IO[str], preload_failed: list[str]) -> int:
    """The launcher's loop: one request line in, one reply line out, until ``inp`` closes."""
    out.write(json.dumps({"ready": os.getpid(), "preload_failed": preload_failed}) + "\n")
    out.flush()
    for line in inp:
        reply: dict[str, Any]
        try:
            req = json.loads(line)
            batch = req["batch"] if "batch" in req else [req]       # {"batch": [request, ...]} -> {"pids": [...]}
            pids = _fork_stages(batch)
            for one, pid in zip(batch, pids):
                print(f"launcher {os.getpid()}: forked {' '.join(one['argv'][4:])} as pid {pid}", file=sys.stderr, flush=True)
            reply = {"pids": pids} if "batch" in req else {"pid": pids[0]}
        except Exception as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


def fork_launcher(log_path: str, env: dict[str, str], cwd: str | None, run_dir: str) -> tuple[int, int, int]:
    """Fork the launcher from this (the supervisor's) process, which has imported ``PRELOAD`` already: no
    second interpreter start and no second import of every module. Returns ``(pid, request fd to write,
    reply fd to read)``. Only while this process has one thread and no ZeroMQ context (the caller checks):
    a fork copies only the calling thread, and a context's I/O threads and sockets would be broken copies.
    The child keeps nothing of the supervisor's: its own session, default signals, no logging handler, no
    profiler, stdio on ``log_path``, every other descriptor closed; it exits (``os._exit``: no atexit
    handler of the supervisor's runs twice) when the request pipe closes."""
    supervisor = os.getpid()
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    for f in (sys.stdout, sys.stderr):      # nothing buffered may be written twice
        f.flush()
    pid = os.fork()
    if pid:
        os.close(req_r)
        os.close(rep_w)
        return pid, req_w, rep_r
    code = 1
    try:
        sys.setprofile(None)                # LIUMA_PROFILE: the supervisor's profiler stays the supervisor's
        _title([sys.executable, "-m", "pipeline.launcher", run_dir])    # first, while environ is untouched
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the supervisor's to handle
        _pdeathsig(signal.SIGKILL)
        if os.getppid() != supervisor:
            os._exit(0)
        _forget_logging()
        _stdio(log_path)
        keep = sorted((req_r, rep_w))
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, _MAXFD)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd or ".")
        with os.fdopen(req_r, "r") as inp, os.fdopen(rep_w, "w") as out:
            import gc
            gc.freeze()                     # the preloaded objects: no stage GC pass writes to (and copies) their pages
            gc.enable()                     # paused by ``cli`` for the start-up: on again here and in every stage
            from .profiling import Profile
            with Profile("launcher"):
                code = serve(inp, out, [])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def main() -> int:
    """``python -m pipeline.launcher RUN_DIR`` (the run directory only names whose launcher this is in ps):
    the exec'ed launcher, used when the supervisor cannot fork one (it already runs threads)."""
    supervisor = os.getppid()
    _pdeathsig(signal.SIGKILL)
    if os.getppid() != supervisor:
        return 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C is the supervisor's to handle
    import gc
    gc.disable()                                        # the preload builds nothing that is garbage
    failed = preload()
    gc.freeze()                                         # its objects out of every stage's collections (shared pages)
    gc.enable()
    return serve(sys.stdin, sys.stdout, failed)


if __name__ == "__main__":
    sys.exit(main())
