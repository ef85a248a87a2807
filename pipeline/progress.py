"""Live progress of ``run``: a redrawn bar on a terminal, one line per case attempt elsewhere (CI logs).

``render(state, width)`` is pure (table-tested); ``BarWriter`` redraws it in place a few times a second
from the supervisor's tick and prints finished cases above it; ``PlainWriter`` only prints the lines.
Both take the supervisor's ``case.reported`` / ``task.reported`` bodies.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from .clock import SYSTEM_CLOCK, Clock

__all__ = ["ProgressState", "render", "rate_eta", "case_line", "totals_lines", "PlainWriter", "BarWriter", "make_writer",
           "history_eta"]

STATUS_WORD = {0: "PASS", 1: "FAIL", 2: "ERROR", 3: "SKIP"}
CLEAR_LINE = "\r\x1b[2K"
UP = "\x1b[1A"


@dataclass
class ProgressState:
    """What the bar shows. ``running``: (executor, case label, elapsed s, deadline s) per busy executor."""

    total: int
    passed: int = 0
    failed: int = 0
    error: int = 0
    skipped: int = 0
    started: float = field(default_factory=SYSTEM_CLOCK.monotonic)
    running: list[tuple[str, str, float, float | None]] = field(default_factory=list)
    eta_s: float | None = None          # from the run history (the scheduler's estimates): preferred over the pace
    _final: dict[tuple[Any, ...], int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.passed + self.failed + self.error + self.skipped

    def record(self, b: dict[str, Any]) -> None:
        """Count a case by its latest attempt: a retried case moves from FAIL/ERROR to its new status."""
        key = (b.get("task_id"), b.get("collection_id"), b["case_id"], b.get("index"))
        prev = self._final.get(key)
        if prev is not None:
            self._bump(prev, -1)
        self._final[key] = int(b["status"])
        self._bump(int(b["status"]), +1)

    def _bump(self, status: int, d: int) -> None:
        name = {0: "passed", 1: "failed", 2: "error", 3: "skipped"}.get(status, "error")
        setattr(self, name, getattr(self, name) + d)


def _clock(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 60}:{s % 60:02d}" if s < 3600 else f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def rate_eta(done: int, total: int, elapsed: float) -> str:
    """``12.5/min  ETA 0:48`` from the pace so far ("" before the first case ends)."""
    if done <= 0 or elapsed <= 0:
        return ""
    per_s = done / elapsed
    rate = f"{per_s:.1f}/s" if per_s >= 1 else f"{per_s * 60:.1f}/min"
    left = max(0, total - done)
    return f"  {rate}  ETA {_clock(left / per_s)}" if left else f"  {rate}"


def render(state: ProgressState, width: int, now: float | None = None) -> str:
    """The bar block: one summary line (counts, rate, ETA), then one line per busy executor; every line
    fits ``width``."""
    now = SYSTEM_CLOCK.monotonic() if now is None else now
    width = max(20, width)
    counts = (f" {state.done}/{state.total}  passed {state.passed}  failed {state.failed}  error {state.error}"
              + (f"  skipped {state.skipped}" if state.skipped else "")
              + f"  running {len(state.running)}  {_clock(now - state.started)}"
              + (rate_eta(state.done, state.total, now - state.started).split("  ETA")[0] + f"  ETA {_clock(state.eta_s)}"
                 if state.eta_s is not None and state.done < state.total else rate_eta(state.done, state.total, now - state.started)))
    bar_w = max(10, min(40, width - len(counts) - 2))
    filled = bar_w if state.total <= 0 else min(bar_w, round(bar_w * state.done / state.total))
    lines = [_cut("[" + "#" * filled + "-" * (bar_w - filled) + "]" + counts, width)]
    for executor, label, elapsed, deadline in sorted(state.running):
        limit = f"/{deadline:g} s" if deadline else " s"
        lines.append(_cut(f"  {executor:<11} {elapsed:>5.0f}{limit}  {printable(label)}", width))
    return "\n".join(lines)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)] if c not in (0x09,)}
_CONTROL.update({0x0a: "\\n", 0x0d: "\\r"})


def printable(value: Any) -> str:
    """``value`` as text with terminal control characters escaped (``\\x1b``, ``\\n``...): a case name, reason
    or id written by someone else must not move the cursor, clear the screen or retitle the terminal."""
    return str(value).translate(_CONTROL)


def case_line(b: dict[str, Any], brief: bool = False) -> str:
    """One finished case attempt, as printed in both modes (``brief``: without time and executor, for
    the recap); a case that did not pass carries its one-line reason; control characters come escaped."""
    word = "FLAKY" if b.get("outcome") == "flaky" else ("BROKEN" if b.get("outcome") == "broken" else STATUS_WORD.get(b["status"], "?"))
    attempt = f" attempt {b.get('runTimes')}" if b.get("runTimes", 1) > 1 else ""
    reason = " — " + " ".join(str(b["reason"]).split()) if b.get("reason") and b["status"] != 0 else ""
    where = "" if brief else f" {b.get('elapsed_ms', 0)} ms {b.get('executor') or ''}"
    return printable(f"{word:<6} {b.get('name') or b['case_id']} [{b.get('collection_id')}/{b['case_id']}#{b.get('index')}]"
                     f"{attempt}{where}{reason}")


def totals_lines(b: dict[str, Any], wall_s: float | None = None, not_passed: list[dict[str, Any]] | None = None) -> list[str]:
    """The final block: counts (broken apart from error), wall time, the cases that did not pass with
    their reasons (``not_passed``: their final case.reported bodies), the report paths."""
    t = b["totals"]
    broken = int(t.get("broken") or 0)
    wall = f" in {_clock(wall_s)}" if wall_s is not None else ""
    out = ["", f"{t['cases']} cases: {t['passed']} passed, {t['failed']} failed, {t['error'] - broken} error, {broken} broken, "
               f"{t['skipped']} skipped, {t['flaky']} flaky ({t['attempts']} attempts){wall}"]
    if not_passed:
        out.append("not passed:")
        out += [f"  {case_line(x, brief=True)}" for x in not_passed]
    if b.get("muted"):
        out.append(f"MUTED ({len(b['muted'])} known-flaky case(s) that did not pass, left out of the exit code by [Flaky] mute):")
        out += [printable(f"  {STATUS_WORD.get(m['status'], '?'):<6} {m.get('name') or m['case_id']} "
                          f"[{m.get('collection_id')}/{m['case_id']}#{m.get('index')}] muted until {m['until']}"
                          + (" — " + " ".join(str(m["reason"]).split()) if m.get("reason") else "")) for m in b["muted"]]
    if b.get("history_off"):
        out.append(printable(f"RUN HISTORY OFF: {b['history_off']}"))
    for m in b.get("mutes_expired") or []:
        out.append(printable(f"MUTE EXPIRED: {m['case_id']} (until {m['until']}) counts again: renew or remove it in [Flaky] mute"))
    out += [f"  {name}: {path}" for name, path in sorted((b.get("paths") or {}).items())]
    if b.get("missing"):
        out.append(f"  MISSING results: {b['missing']}")
    return out


def history_eta(status: dict[str, Any]) -> float | None:
    """The scheduler's ETA (s, from the run history's estimates) in ``Supervisor.status()``, aged by its
    heartbeat's age; None before a task is planned or once nothing is left."""
    q = status.get("queues") or {}
    if not q.get("tasks") or q.get("eta_s") is None:
        return None
    age = next((float(s.get("heartbeat_age_s") or 0) for s in status.get("stages", []) if s.get("name") == "scheduler"), 0.0)
    left = float(q["eta_s"]) - age
    return left if left > 0 else None


class PlainWriter:
    """One line per case attempt, then the final block: what CI logs want. Once the scheduler has an
    estimate, one ``ETA`` line (from the run history) says when the run should end."""

    def __init__(self, out: TextIO, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.out, self.clock = out, clock
        self.started = clock.monotonic()
        self.eta_said = False
        self._eta_checked = -1e9
        self.finals: dict[tuple[Any, ...], dict[str, Any]] = {}     # per case, its latest attempt's body
        self._unflushed = False

    def remember(self, b: dict[str, Any]) -> None:
        key = (b.get("task_id"), b.get("collection_id"), b["case_id"], b.get("index"))
        prev = self.finals.get(key)
        if prev is None or int(b.get("runTimes", 1)) >= int(prev.get("runTimes", 1)):
            self.finals[key] = b

    def not_passed(self) -> list[dict[str, Any]]:
        return [b for b in self.finals.values() if int(b["status"]) in (1, 2)]

    def case(self, b: dict[str, Any]) -> None:
        """Writes the line; the flush waits for the supervisor's turn to end (``tick``): one write per burst
        of results instead of one per case (a 50,000-case run paid a pipe write each)."""
        self.remember(b)
        self.out.write(case_line(b) + "\n")
        self._unflushed = True

    def task(self, b: dict[str, Any]) -> None:
        lines = totals_lines(b, self.clock.monotonic() - self.started, self.not_passed())
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._unflushed = False

    def tick(self, sup: Any) -> None:
        if self._unflushed:
            self._unflushed = False
            self.out.flush()
        now = self.clock.monotonic()
        if self.eta_said or sup.shutdown_at is not None or now - self._eta_checked < 1.0:
            return
        self._eta_checked = now                       # status() is not free: asked at most once a second
        left = history_eta(sup.status())
        if left is not None:
            self.eta_said = True
            self.out.write(f"ETA {_clock(left)} ({left:.1f} s left, estimated from the run history)\n")
            self.out.flush()

    def close(self) -> None:
        if self._unflushed:
            self._unflushed = False
            self.out.flush()


def running_from_status(status: dict[str, Any], done: frozenset[tuple[Any, ...]] | set[tuple[Any, ...]] = frozenset()
                        ) -> list[tuple[str, str, float, float | None]]:
    """Busy executors from ``Supervisor.status()``: their heartbeat's current case, aged by the heartbeat's
    age; a case already reported (``done``: (executor, case_id, index, run_times)) is no longer running."""
    out = []
    for s in status.get("stages", []):
        cur = s.get("current") if s.get("kind") == "executor" else None
        if cur and (s["name"], cur.get("case_id"), cur.get("index"), cur.get("run_times")) not in done:
            label = str(cur.get("case") or cur.get("case_id")) + (f" · {cur['step']}" if cur.get("step") else "")
            elapsed = float(cur.get("elapsed_s") or 0) + float(s.get("heartbeat_age_s") or 0)
            out.append((s["name"], label, elapsed, cur.get("deadline_s")))
    return out


class BarWriter(PlainWriter):
    """Redraws the bar block in place (ANSI) at most ``hz`` times a second; case lines scroll above it."""

    def __init__(self, out: TextIO, total: int, *, width: Callable[[], int] | None = None, hz: float = 4.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(out, clock=clock)
        self.state = ProgressState(total, started=self.started)
        self.width = width or _terminal_width(out)
        self.every = 1.0 / hz
        self._drawn = 0              # lines of the block currently on screen
        self._last = float("-inf")  # not 0.0: monotonic() counts from boot, may be < every on a fresh machine
        self._done: set[tuple[Any, ...]] = set()

    def _erase(self) -> str:
        return CLEAR_LINE + (UP + CLEAR_LINE) * max(0, self._drawn - 1) if self._drawn else ""

    def _draw(self) -> None:
        block = render(self.state, self.width(), self.clock.monotonic())
        self.out.write(self._erase() + block)
        self._drawn = block.count("\n") + 1
        self.out.flush()

    def case(self, b: dict[str, Any]) -> None:
        self.remember(b)
        self.state.record(b)
        key = (b.get("executor"), b["case_id"], b.get("index"), b.get("runTimes", 1))
        self._done.add(key)
        self.state.running = [r for r in self.state.running if r[0] != key[0]]
        self.out.write(self._erase() + case_line(b) + "\n")
        self._drawn = 0
        self._draw()

    def task(self, b: dict[str, Any]) -> None:
        self.out.write(self._erase())
        self._drawn = 0
        super().task(b)

    def tick(self, sup: Any) -> None:
        now = self.clock.monotonic()
        if now - self._last < self.every or sup.shutdown_at is not None:
            return
        self._last = now
        status = sup.status(now)
        self.state.running = running_from_status(status, self._done)
        self.state.eta_s = history_eta(status)
        self._draw()

    def close(self) -> None:
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
            self._drawn = 0


def _terminal_width(out: TextIO) -> Callable[[], int]:
    import os
    import shutil

    def width() -> int:
        try:
            cols = os.get_terminal_size(out.fileno()).columns
        except (OSError, ValueError, AttributeError):
            cols = 0
        return cols or shutil.get_terminal_size().columns or 80      # a fresh pty reports 0 columns
    return width


def make_writer(mode: str, out: TextIO, total: int) -> PlainWriter:
    """``mode``: auto (bar when ``out`` is a terminal) | bar | plain."""
    is_tty = bool(getattr(out, "isatty", lambda: False)())
    return BarWriter(out, total) if mode == "bar" or (mode == "auto" and is_tty) else PlainWriter(out)
