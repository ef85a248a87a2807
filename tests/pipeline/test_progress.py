"""The progress renderer is a pure function of (state, width, now): table-tested. The writers are driven
with a fake supervisor and checked for what reaches the stream (ANSI redraw vs plain lines)."""
from __future__ import annotations

import io
from typing import Any

import pytest

from pipeline.progress import (
    BarWriter,
    PlainWriter,
    ProgressState,
    case_line,
    make_writer,
    rate_eta,
    render,
    running_from_status,
    totals_lines,
)
from tests.fakes import FakeClock


def state(total: int = 10, **kw: Any) -> ProgressState:
    st = ProgressState(total, started=100.0)
    for k, v in kw.items():
        setattr(st, k, v)
    return st


@pytest.mark.parametrize("st, width, expected", [
    (state(10), 100, ["[----------------------------------------] 0/10  passed 0  failed 0  error 0  running 0  0:00"]),
    (state(10, passed=5), 100, ["[####################--------------------] 5/10  passed 5  failed 0  error 0  running 0  0:00"]),
    (state(4, passed=2, failed=1, error=1), 100,
     ["[########################################] 4/4  passed 2  failed 1  error 1  running 0  0:00"]),
    # a longer counts line: the bar gives way so the whole line still fits 100 columns
    (state(3, skipped=1), 100, ["[############-------------------------] 1/3  passed 0  failed 0  error 0  skipped 1  running 0  0:00"]),
    (state(0), 100, ["[########################################] 0/0  passed 0  failed 0  error 0  running 0  0:00"]),
    # a narrow terminal: the bar shrinks to 10, the line is cut with an ellipsis at the width
    (state(10, passed=5), 40, ["[#####-----] 5/10  passed 5  failed 0  …"]),
    (state(2, running=[("executor-2", "登录 · step 3", 12.4, 300.0), ("executor-1", "health", 0.2, None)]), 100,
     ["[----------------------------------------] 0/2  passed 0  failed 0  error 0  running 2  0:00",
      "  executor-1      0 s  health",
      "  executor-2     12/300 s  登录 · step 3"]),
])
def test_render_table(st: ProgressState, width: int, expected: list[str]) -> None:
    out = render(st, width, now=100.0)
    assert out.split("\n") == expected
    assert all(len(line) <= width for line in out.split("\n"))


def test_render_clock_counts_minutes_and_hours() -> None:
    assert render(state(1), 100, now=100.0 + 125).endswith("2:05")
    assert render(state(1), 100, now=100.0 + 3 * 3600 + 61).endswith("3:01:01")


def reported(case_id: str, status: int, run_times: int = 1, outcome: str = "") -> dict[str, Any]:
    return {"task_id": "t", "collection_id": "c", "case_id": case_id, "index": 1, "status": status, "runTimes": run_times,
            "name": f"name-{case_id}", "elapsed_ms": 7, "executor": "executor-1", "outcome": outcome,
            "reason": "boom" if status else ""}


def test_a_retried_case_counts_once_by_its_latest_attempt() -> None:
    st = ProgressState(2)
    st.record(reported("a", 2, outcome="broken"))
    assert (st.error, st.done) == (1, 1)
    st.record(reported("a", 0, run_times=2, outcome="flaky"))
    st.record(reported("b", 1))
    assert (st.passed, st.failed, st.error, st.done) == (1, 1, 0, 2)


def test_case_line_words() -> None:
    assert case_line(reported("a", 0)) == "PASS   name-a [c/a#1] 7 ms executor-1"
    assert case_line(reported("a", 1)) == "FAIL   name-a [c/a#1] 7 ms executor-1 — boom"
    assert case_line(reported("a", 2, outcome="broken")).startswith("BROKEN name-a")
    assert case_line(reported("a", 0, run_times=2, outcome="flaky")) == "FLAKY  name-a [c/a#1] attempt 2 7 ms executor-1"


class FakeSup:
    shutdown_at = None

    def __init__(self, current: dict[str, Any] | None) -> None:
        self.current = current

    def status(self, now: float | None = None) -> dict[str, Any]:
        return {"stages": [{"name": "scheduler", "kind": "scheduler", "current": None},
                           {"name": "executor-1", "kind": "executor", "current": self.current}]}


def test_bar_writer_redraws_in_place_and_prints_cases_above() -> None:
    out = io.StringIO()
    w = BarWriter(out, 2, width=lambda: 80, hz=1000)
    sup = FakeSup({"case": "slow one", "case_id": "s", "step": "GET /slow", "elapsed_s": 3.2, "deadline_s": 30})
    w.tick(sup)
    first = out.getvalue()
    assert "\x1b" not in first and "0/2" in first and "running 1" in first and "executor-1" in first and "slow one · GET /slow" in first
    w.case(dict(reported("a", 0), executor="executor-2"))
    text = out.getvalue()[len(first):]
    # erase the two-line block (clear, up, clear), print the case line, draw the block again below it
    assert text.startswith("\r\x1b[2K\x1b[1A\r\x1b[2KPASS   name-a [c/a#1] 7 ms executor-2\n")
    assert text.rstrip().endswith("slow one · GET /slow") and "1/2  passed 1" in text
    w.close()
    assert out.getvalue().endswith("\n")


def test_bar_writer_throttles_redraws() -> None:
    out = io.StringIO()
    w = BarWriter(out, 1, width=lambda: 80, hz=0.001)
    w.tick(FakeSup(None))
    w.tick(FakeSup(None))
    assert out.getvalue().count("[") == 1


def test_plain_writer_and_mode_choice() -> None:
    out = io.StringIO()
    w = make_writer("auto", out, 3)
    assert type(w) is PlainWriter                        # StringIO is no terminal
    w.case(reported("a", 1))
    w.task({"totals": {"cases": 1, "passed": 0, "failed": 1, "error": 0, "skipped": 0, "flaky": 0, "attempts": 1},
            "paths": {"junit": "/r/junit.xml"}})
    assert out.getvalue() == ("FAIL   name-a [c/a#1] 7 ms executor-1 — boom\n\n"
                              "1 cases: 0 passed, 1 failed, 0 error, 0 broken, 0 skipped, 0 flaky (1 attempts) in 0:00\n"
                              "not passed:\n  FAIL   name-a [c/a#1] — boom\n  junit: /r/junit.xml\n")
    assert isinstance(make_writer("bar", io.StringIO(), 1), BarWriter)


def test_running_from_status_ignores_idle_and_non_executors() -> None:
    st = {"stages": [{"name": "executor-1", "kind": "executor", "current": None},
                     {"name": "executor-2", "kind": "executor", "current": {"case_id": "x", "elapsed_s": 1, "deadline_s": 5}},
                     {"name": "scheduler", "kind": "scheduler", "current": {"case_id": "nope"}}]}
    assert running_from_status(st) == [("executor-2", "x", 1.0, 5)]


def test_running_is_aged_by_the_heartbeat_and_forgets_reported_cases() -> None:
    cur = {"case": "slow", "case_id": "s", "index": 1, "run_times": 1, "elapsed_s": 1.0, "deadline_s": 30}
    st = {"stages": [{"name": "executor-1", "kind": "executor", "current": cur, "heartbeat_age_s": 0.8}]}
    assert running_from_status(st) == [("executor-1", "slow", 1.8, 30)]
    assert running_from_status(st, {("executor-1", "s", 1, 1)}) == []
    assert running_from_status(st, {("executor-1", "s", 1, 2)}) != []          # another attempt of it is running
    out = io.StringIO()
    w = BarWriter(out, 1, width=lambda: 80, hz=1000)
    w.tick(FakeSup(cur))
    assert w.state.running
    w.case(dict(reported("s", 0), index=1))
    assert w.state.running == [] and "running 0" in out.getvalue().rsplit("PASS", 1)[1]
    w.tick(FakeSup(cur))                                                       # a stale heartbeat still names it
    assert w.state.running == []


@pytest.mark.parametrize("done, total, elapsed, expected", [
    (0, 10, 5.0, ""),                                  # no pace yet
    (5, 10, 10.0, "  30.0/min  ETA 0:10"),
    (20, 50, 10.0, "  2.0/s  ETA 0:15"),
    (10, 10, 4.0, "  2.5/s"),                          # nothing left: no ETA
])
def test_rate_and_eta_from_the_pace_so_far(done: int, total: int, elapsed: float, expected: str) -> None:
    assert rate_eta(done, total, elapsed) == expected


def test_bar_shows_rate_and_eta() -> None:
    assert render(state(10, passed=5), 120, now=110.0).endswith("0:10  30.0/min  ETA 0:10")


def test_final_block_counts_broken_apart_and_recaps_what_did_not_pass() -> None:
    w = PlainWriter(io.StringIO())
    for b in (reported("a", 2, outcome="broken"), reported("a", 1, run_times=2), reported("b", 0), reported("c", 2)):
        w.remember(b)
    totals = {"cases": 3, "passed": 1, "failed": 1, "error": 1, "broken": 0, "skipped": 0, "flaky": 0, "attempts": 4}
    lines = totals_lines({"totals": totals}, 75.0, w.not_passed())
    assert lines[1] == "3 cases: 1 passed, 1 failed, 1 error, 0 broken, 0 skipped, 0 flaky (4 attempts) in 1:15"
    assert lines[2:] == ["not passed:", "  FAIL   name-a [c/a#1] attempt 2 — boom", "  ERROR  name-c [c/c#1] — boom"]
    totals.update(error=2, broken=1)
    assert "1 error, 1 broken" in totals_lines({"totals": totals})[1]


def test_reason_is_one_line() -> None:
    b = dict(reported("a", 2), reason="first\n  second")
    assert case_line(b).endswith("— first second")


def test_terminal_escapes_in_names_and_reasons_are_printed_escaped() -> None:
    from pipeline.progress import case_line
    line = case_line({"status": 1, "name": "evil\x1b]0;pwned\x07\x1b[2J", "case_id": "k\x9b", "collection_id": "c",
                      "index": 1, "reason": "line1\r\nline2", "executor": "executor-1"})
    assert not any(ord(ch) < 0x20 or 0x7f <= ord(ch) < 0xa0 for ch in line)
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J" in line and "k\\x9b" in line and "line1 line2" in line   # reason: one line


def test_bar_prefers_the_history_eta_over_the_pace() -> None:
    assert render(state(10, passed=5, eta_s=42.0), 120, now=110.0).endswith("0:10  30.0/min  ETA 0:42")
    assert render(state(10, eta_s=42.0), 120, now=110.0).endswith("0:10  ETA 0:42")     # before the first case ends
    assert render(state(2, passed=2, eta_s=3.0), 120, now=110.0).endswith("0:10  12.0/min")   # done: no ETA


def test_history_eta_is_aged_by_the_scheduler_heartbeat() -> None:
    from pipeline.progress import history_eta
    st = {"queues": {"tasks": 1, "eta_s": 10.0}, "stages": [{"name": "scheduler", "heartbeat_age_s": 0.5}]}
    assert history_eta(st) == 9.5
    assert history_eta({"queues": {"tasks": 0, "eta_s": 10.0}, "stages": []}) is None       # no task planned yet
    assert history_eta({"queues": {"tasks": 1, "eta_s": 0.2}, "stages": [{"name": "scheduler", "heartbeat_age_s": 1}]}) is None


class _Sup:
    shutdown_at = None

    def __init__(self, status: dict[str, Any]) -> None:
        self._status = status

    def status(self, now: float | None = None) -> dict[str, Any]:
        return self._status


def test_plain_writer_prints_one_eta_line() -> None:
    out, clock = io.StringIO(), FakeClock()
    w = PlainWriter(out, clock=clock)
    w.tick(_Sup({"queues": {"tasks": 0}, "stages": []}))
    sup = _Sup({"queues": {"tasks": 1, "eta_s": 75.0}, "stages": []})
    w.tick(sup)                                  # within the second: status is not asked again
    assert out.getvalue() == ""
    clock.advance(1.0)
    w.tick(sup)
    clock.advance(1.0)
    w.tick(sup)
    assert out.getvalue() == "ETA 1:15 (75.0 s left, estimated from the run history)\n"


def test_recap_lists_muted_cases_expired_mutes_and_history_off_loudly() -> None:
    totals = {"cases": 2, "passed": 1, "failed": 1, "error": 0, "broken": 0, "skipped": 0, "flaky": 0, "attempts": 2}
    lines = totals_lines({"totals": totals, "history_off": "run history /s/history.sqlite unusable (open: ...)",
                          "muted": [{"case_id": "w", "collection_id": "c", "index": 2, "name": "wobbly", "status": 1,
                                     "reason": "expected\nnope", "until": "2026-12-31"}],
                          "mutes_expired": [{"case_id": "old", "until": "2026-01-01"}]})
    assert lines[2:] == ["MUTED (1 known-flaky case(s) that did not pass, left out of the exit code by [Flaky] mute):",
                         "  FAIL   wobbly [c/w#2] muted until 2026-12-31 — expected nope",
                         "RUN HISTORY OFF: run history /s/history.sqlite unusable (open: ...)",
                         "MUTE EXPIRED: old (until 2026-01-01) counts again: renew or remove it in [Flaky] mute"]
