"""Preloaded stage launcher: one interpreter imports the heavy modules once and forks every stage from them.

Each stage used to be ``python -m pipeline.stage_main ...``: a new interpreter paying its own start-up and
imports (zmq, msgpack, requests, selenium, the stage packages; ~0.2 s CPU each, times seven stages and every
restart). With ``[Pipeline] launcher = fork`` the supervisor starts this module once (``python -m
pipeline.launcher``, in its own session) and asks it over stdin/stdout, one JSON line each way, to start a
stage: ``{"argv", "env", "log", "cwd", "supervisor"}`` -> ``{"pid"}`` (or ``{"error"}``).

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
from typing import Any

__all__ = ["main", "PRELOAD"]

PR_SET_PDEATHSIG = 1
PRELOAD = ("zmq", "msgpack", "psutil", "requests", "urllib3", "jsonpath_ng", "jsonpath_ng.ext", "orjson", "setproctitle",
           "pipeline.stage", "pipeline.stage_main", "pipeline.transport", "pipeline.codec", "pipeline.journal",
           "stages.fetcher", "stages.scheduler", "stages.executor", "stages.aggregator", "stages.uploader",
           "stages.janitor", "stages.executor.api", "selenium.webdriver")


def _pdeathsig(sig: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _preload() -> list[str]:
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
        try:        # first, while environ is untouched (setproctitle finds the argv area through it)
            import setproctitle
            setproctitle.setproctitle(" ".join(req["argv"]))
        except ImportError:
            pass
        end = time.monotonic() + 5.0
        while os.getppid() != supervisor and time.monotonic() < end:     # re-parented once the middle exits
            time.sleep(0.001)
        _pdeathsig(signal.SIGKILL)
        if os.getppid() != supervisor:
            os._exit(70)
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
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


def _fork_stage(req: dict[str, Any]) -> int:
    supervisor = int(req["supervisor"])
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:                     # intermediate: fork the stage, tell its pid, leave
        try:
            os.close(r)
            pid = os.fork()
            if pid == 0:
                os.close(w)
                _run_stage(req, supervisor)
            os.write(w, str(pid).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 64):
        data += chunk
    os.close(r)
    os.waitpid(middle, 0)
    if not data:
        raise OSError("the intermediate process did not report the stage's pid")
    return int(data)


def main() -> int:
    """``python -m pipeline.launcher RUN_DIR`` (the run directory only names whose launcher this is in ps)."""
    supervisor = os.getppid()
    _pdeathsig(signal.SIGKILL)
    if os.getppid() != supervisor:
        return 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # Ctrl-C is the supervisor's to handle
    failed = _preload()
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid(), "preload_failed": failed}) + "\n")
    out.flush()
    for line in sys.stdin:
        reply: dict[str, Any]
        try:
            req = json.loads(line)
            reply = {"pid": _fork_stage(req)}
            print(f"launcher {os.getpid()}: forked {' '.join(req['argv'][4:])} as pid {reply['pid']}", file=sys.stderr, flush=True)
        except Exception as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
