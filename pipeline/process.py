"""One OS process of a stage: spawned in its own session (so its process group holds everything it starts,
browsers and drivers included), stopped by signal -> grace -> SIGKILL to the whole group."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["ProcessHandle", "describe_exit", "set_child_subreaper"]


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


class ProcessHandle:
    """A spawned stage process. ``pid == pgid`` because it leads its own session."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: str | None = None) -> None:
        self.argv, self.env, self.log_path, self.cwd = argv, env, log_path, cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.term_sent_at: float | None = None

    def spawn(self) -> int:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at = time.monotonic()
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
