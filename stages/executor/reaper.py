"""Ending every process an executor started. A stage leads its own session (``setsid``), and chromedriver,
Chromium and its helpers inherit it, so the session finds them even after a parent died and they were
re-parented (a browser started by a warm-up that SIGTERM interrupted, a crashed chromedriver's Chromium).
Called last on the way out, after the polite ``quit``; the supervisor's group kill stays the backstop."""
from __future__ import annotations

import logging
import os
import signal

import psutil

__all__ = ["reap_session", "session_members"]

log = logging.getLogger("stages.executor")


def session_members(sid: int) -> list[psutil.Process]:
    """Live processes of session ``sid`` other than the calling process."""
    out = []
    me = os.getpid()
    for p in psutil.process_iter(["status"]):
        if p.pid == me or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            if os.getsid(p.pid) == sid:
                out.append(p)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def reap_session(grace: float = 2.0) -> int:
    """SIGTERM, then after ``grace`` SIGKILL, every other process of our session when we lead it (a stage
    process); nothing when we do not (a test driving an executor in-process). Returns how many were left."""
    sid = os.getsid(0)
    if sid != os.getpid():
        return 0
    left = session_members(sid)
    for p in left:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(left, timeout=grace)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    if left:
        log.info("ended %d leftover process(es) of this executor: %s", len(left),
                 ", ".join(sorted({_name(p) for p in left})))
    return len(left)


def _name(p: psutil.Process) -> str:
    try:
        return str(p.name())
    except psutil.Error:
        return str(p.pid)
