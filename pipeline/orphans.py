"""No orphans: every stage dies with its supervisor, and a new engine ends what a dead one left behind.

- ``die_with_parent`` (in the stage process): ``PR_SET_PDEATHSIG`` asks the kernel to send SIGTERM when the
  supervisor dies (the stage's normal stop path: drain, close browsers); if the supervisor is already gone
  by then, the stage stops at once. ``parent_gone`` is the per-tick check behind it (a signal can be missed
  by a stage stuck in native code; its next turn notices).
- ``end_leftovers`` (in a starting supervisor): stage processes of a dead engine on the same storage root
  (their supervisor, named in their environment, is no longer their parent) are killed with their process
  group (browsers and drivers included) before the new engine starts.
"""
from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import psutil

__all__ = ["SUPERVISOR_ENV", "SUPERVISOR_PID_FILE", "die_with_parent", "parent_gone", "end_leftovers", "supervisor_of"]

log = logging.getLogger("pipeline.orphans")
SUPERVISOR_ENV = "LIUMA_SUPERVISOR_PID"
PR_SET_PDEATHSIG = 1


def die_with_parent(supervisor_pid: int) -> None:
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):        # not Linux: the per-tick check still works
        pass
    if parent_gone(supervisor_pid):          # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def parent_gone(supervisor_pid: int) -> bool:
    return bool(supervisor_pid) and os.getppid() != supervisor_pid


SUPERVISOR_PID_FILE = "supervisor.pid"


def supervisor_of(run_dir: Path) -> int:
    """The pid the supervisor of ``run_dir`` wrote there (0 if none): a stage forked by the launcher has its
    environment overwritten by its process title, so its supervisor's pid is read here instead."""
    try:
        return int((run_dir / SUPERVISOR_PID_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def end_leftovers(storage_root: str | Path, me: int | None = None) -> list[int]:
    """Kill the stage processes (and their groups) of dead engines on ``storage_root``; returns their pids."""
    root = str(Path(storage_root).resolve())
    me = os.getpid() if me is None else me
    killed: list[psutil.Process] = []
    for p in psutil.process_iter(["cmdline", "ppid"]):
        cmd = p.info["cmdline"] or []
        if "pipeline.stage_main" not in cmd:
            continue
        try:
            at = cmd.index("pipeline.stage_main")
            run_dir = Path(cmd[at + 1])
            sup = int(p.environ().get(SUPERVISOR_ENV) or 0) or supervisor_of(run_dir)
            theirs = str(Path(json.loads((run_dir / "settings.json").read_text())["storage_root"]).resolve())
        except (psutil.Error, OSError, ValueError, IndexError, KeyError, TypeError):
            continue
        if not sup or sup == me or (p.info["ppid"] == sup and psutil.pid_exists(sup)):
            continue                                           # not marked (an older engine's: leave it), ours, or a live engine's
        if theirs != root:
            continue
        log.warning("ending leftover stage %s (pid %d) of a dead engine (supervisor %s) on %s", " ".join(cmd[at + 2:at + 5]), p.pid, sup or "?", root)
        try:
            os.killpg(p.pid, signal.SIGKILL)                   # a stage leads its own session: browsers go too
        except (ProcessLookupError, PermissionError):
            try:
                p.kill()
            except psutil.Error:
                pass
        killed.append(p)
    psutil.wait_procs(killed, timeout=3)
    return [p.pid for p in killed]
