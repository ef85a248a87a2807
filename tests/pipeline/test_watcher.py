"""StageWatcher, the policy for one stage instance: what it decides after an exit, fed with FakeClock times
and FakeProcess exits (no process is started)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.restart import Backoff, FlappingDetector
from pipeline.watcher import EX_CONFIG, StageWatcher
from tests.fakes import FakeClock, FakeProcess


def watcher(tmp_path: Path, kind: str = "janitor", **kw: object) -> tuple[StageWatcher, FakeClock]:
    clock = FakeClock()
    w = StageWatcher(kind, kind, tmp_path / "run", tmp_path / "log", clock=clock, make_process=FakeProcess, **kw)  # type: ignore[arg-type]
    return w, clock


def test_spawn_starts_the_stage_main_of_its_kind_and_incarnation_in_its_own_tmp(tmp_path: Path) -> None:
    w, clock = watcher(tmp_path, "executor", backoff=Backoff(immediate_first=True))
    w.name = "executor-2"
    w.spawn(clock.now, {"EXTRA": "1"})
    assert isinstance(w.proc, FakeProcess) and w.inc == 0 and w.state == "running"
    assert w.proc.argv == [sys.executable, "-m", "pipeline.stage_main", str(tmp_path / "run"), "executor", "executor-2", "0"]
    assert w.proc.env["TMPDIR"] == str(tmp_path / "run" / "tmp" / "executor-2") and w.proc.env["EXTRA"] == "1"
    assert w.tmp_dir.is_dir() and w.proc.started_at == clock.now and w.last_heartbeat == clock.now
    clock.advance(4)
    assert w.uptime(clock.now) == 4.0 and w.as_status(clock.now)["heartbeat_age_s"] == 4.0


@pytest.mark.parametrize("code, kill, fatal, shutting_down, state, delay", [
    (0, "", "", True, "stopped", None),                            # the engine stops: nothing comes back
    (EX_CONFIG, "", "", False, "failed", None),                    # a config error never heals by restarting
    (1, "", "journal unreadable", False, "failed", None),         # the stage said it cannot go on
    (-9, "timeout after 5 s: case x", "", False, "backoff", 0.0),  # the case's fault, not the stage's: at once
    (-9, "stopped: task t", "", False, "backoff", 0.0),
    (1, "", "", False, "backoff", 1.0),                            # a crash: Backoff's first delay
    (-15, "hung: no heartbeat", "", False, "backoff", 1.0),
])
def test_decide_after_exit(tmp_path: Path, code: int, kill: str, fatal: str, shutting_down: bool,
                           state: str, delay: float | None) -> None:
    w, clock = watcher(tmp_path)
    w.spawn(clock.now)
    w.kill_reason, w.fatal_reason = kill, fatal
    clock.advance(2)
    assert w.decide_after_exit(code, clock.now, shutting_down) == state == w.state
    assert w.last_exit == (kill or fatal or {0: "exit code 0", EX_CONFIG: "exit code 78", 1: "exit code 1",
                                             -15: "killed by signal SIGTERM (15)"}.get(code, ""))
    if delay is not None:
        assert w.next_start == clock.now + delay


def test_crashes_back_off_doubling_and_flapping_gives_up(tmp_path: Path) -> None:
    w, clock = watcher(tmp_path, backoff=Backoff(first=1.0, cap=4.0), flapping=FlappingDetector(3, 60.0))
    delays = []
    for _ in range(4):
        w.spawn(clock.now)
        clock.advance(1)
        if w.decide_after_exit(1, clock.now, False) == "failed":
            break
        delays.append(w.next_start - clock.now)
        clock.now = w.next_start
    assert delays == [1.0, 2.0, 4.0] and w.state == "failed"
    assert w.last_exit == "exit code 1; gave up after 4 exits within 60 s"


def test_a_stage_that_stayed_up_long_enough_restarts_with_the_first_delay_again(tmp_path: Path) -> None:
    w, clock = watcher(tmp_path, backoff=Backoff(first=1.0, stable=30.0))
    for uptime, expected in [(1, 1.0), (1, 2.0), (1, 4.0), (31, 1.0)]:
        w.spawn(clock.now)
        clock.advance(uptime)
        w.decide_after_exit(1, clock.now, False)
        assert w.next_start - clock.now == expected
        clock.advance(100)                       # far apart: no flapping
