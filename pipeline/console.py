"""Output of ``run`` is never fatal: the progress writer runs behind ``Console``, and the first ``OSError``
writing the terminal or stdout (EIO after a terminal hangup, EPIPE on a closed pipe) switches the run to
log-only output; the run goes on and its reports are written as usual.

Switching also points the dead file descriptors at /dev/null, so nothing later (the console log handler,
a final ``print``, the interpreter's flush of ``sys.stdout`` at exit) trips over them again.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from .clock import SYSTEM_CLOCK
from .progress import case_line, totals_lines

__all__ = ["Console", "silence_fds"]

log = logging.getLogger("pipeline.console")


def silence_fds(fds: tuple[int, ...]) -> None:
    """Point ``fds`` at /dev/null (writes then succeed and go nowhere; reads see end of file)."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in fds:
        try:
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)


def _same_file(a: int, b: int) -> bool:
    try:
        return os.path.samestat(os.fstat(a), os.fstat(b))
    except OSError:
        return False


class Console:
    """Forwards ``case`` / ``task`` / ``tick`` / ``close`` to ``writer`` while output works; afterwards
    case lines and totals go to the log (``pipeline.console``) only."""

    def __init__(self, writer: Any, fd: int = 1) -> None:
        self.writer, self.fd = writer, fd
        self.live = True
        self.why = ""
        self.finals: dict[tuple[Any, ...], tuple[bool, str]] = {}   # per case, its latest attempt: (skipped?, reason)

    def detach(self, why: str, fds: tuple[int, ...] | None = None) -> None:
        """Stop writing to the terminal/stdout for good (``why`` is logged once)."""
        if not self.live:
            return
        self.live, self.why = False, why
        if fds is None:                     # stdout failed; stderr too when it is the same terminal or pipe
            fds = (self.fd, 2) if _same_file(self.fd, 2) else (self.fd,)
        silence_fds(fds)
        log.warning("%s: output goes to the log only from now on; the run goes on", why)

    def _call(self, name: str, *args: Any) -> bool:
        if not self.live:
            return False
        try:
            getattr(self.writer, name)(*args)
            return True
        except (OSError, ValueError) as e:          # ValueError: write to a closed file object
            self.detach(f"writing the progress output failed ({type(e).__name__}: {e})")
            return False

    def print(self, text: str) -> None:
        out = getattr(self.writer, "out", None)
        if out is None or not self._call_write(out, text):
            log.info("%s", text)

    def _call_write(self, out: Any, text: str) -> bool:
        if not self.live:
            return False
        try:
            out.write(text + "\n")
            out.flush()
            return True
        except (OSError, ValueError) as e:
            self.detach(f"writing the progress output failed ({type(e).__name__}: {e})")
            return False

    def case(self, b: dict[str, Any]) -> None:
        self.finals[(b.get("task_id"), b.get("collection_id"), b.get("case_id"), b.get("index"))] = \
            (int(b.get("status", -1)) == 3, str(b.get("reason") or ""))
        if not self._call("case", b):
            getattr(self.writer, "remember", lambda _b: None)(b)     # for the recap in the final block
            log.info("%s", case_line(b))

    def task(self, b: dict[str, Any]) -> None:
        if not self._call("task", b):
            started = getattr(self.writer, "started", None)
            clock = getattr(self.writer, "clock", SYSTEM_CLOCK)
            not_passed: list[dict[str, Any]] = getattr(self.writer, "not_passed", list)()
            for line in totals_lines(b, clock.monotonic() - started if started is not None else None, not_passed):
                if line:
                    log.info("%s", line)

    def tick(self, sup: Any) -> None:
        self._call("tick", sup)

    def close(self) -> None:
        self._call("close")
