"""StageWatcher: the policy for one stage instance (circus' watcher level): start it, notice its exit,
restart it with growing delay, give it up when it flaps, and remember what happened for ``status``."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clock import SYSTEM_CLOCK, Clock
from .orphans import SUPERVISOR_ENV
from .process import ProcessHandle, describe_exit
from .restart import Backoff, FlappingDetector

__all__ = ["StageWatcher", "EX_CONFIG"]

EX_CONFIG = 78
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass
class StageWatcher:
    kind: str
    name: str
    run_dir: Path
    log_dir: Path
    backoff: Backoff = field(default_factory=Backoff)
    flapping: FlappingDetector = field(default_factory=FlappingDetector)
    inc: int = -1
    state: str = "pending"          # pending | running | backoff | failed | stopping | stopped
    proc: ProcessHandle | None = None
    restarts: int = 0
    last_exit: str = ""
    next_start: float = 0.0
    last_heartbeat: float = 0.0
    heartbeat: dict[str, Any] = field(default_factory=dict)
    kill_reason: str = ""           # why *we* killed it (timeout, hang, stop): reported instead of the signal
    fatal_reason: str = ""
    clock: Clock = SYSTEM_CLOCK
    make_process: Callable[..., ProcessHandle] = ProcessHandle     # tests hand in a process that spawns nothing

    @property
    def tmp_dir(self) -> Path:
        return self.run_dir / "tmp" / self.name

    def prepare(self, extra_env: dict[str, str] | None = None) -> ProcessHandle:
        """The next incarnation's process, not spawned yet (``spawn`` does both; the supervisor's start-up
        spawns all stages at once, then calls ``started``)."""
        self.inc += 1
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TMPDIR=str(self.tmp_dir), SE_OFFLINE="true", PYTHONUNBUFFERED="1",
                   PYTHONPATH=PROJECT_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   **{SUPERVISOR_ENV: str(os.getpid())}, **(extra_env or {}))       # the stage dies with us
        argv = [sys.executable, "-m", "pipeline.stage_main", str(self.run_dir), self.kind, self.name, str(self.inc)]
        self.proc = self.make_process(argv, env, self.log_dir / f"{self.name}.out", cwd=PROJECT_ROOT, clock=self.clock)
        return self.proc

    def started(self, now: float) -> int:
        """The process made by ``prepare`` was spawned: the stage runs (its pid)."""
        assert self.proc is not None
        self.state, self.kill_reason, self.last_heartbeat, self.heartbeat = "running", "", now, {}
        return self.proc.pid

    def spawn(self, now: float, extra_env: dict[str, str] | None = None) -> int:
        self.prepare(extra_env).spawn()
        return self.started(now)

    def uptime(self, now: float) -> float:
        return now - self.proc.started_at if self.proc and self.state == "running" else 0.0

    def exit_cause(self, code: int | None) -> str:
        return self.kill_reason or self.fatal_reason or describe_exit(code)

    def decide_after_exit(self, code: int | None, now: float, shutting_down: bool) -> str:
        """Returns the new state: stopped | failed | backoff (restart at ``next_start``)."""
        uptime = now - (self.proc.started_at if self.proc else now)
        self.last_exit = self.exit_cause(code)
        if shutting_down:
            self.state = "stopped"
        elif code == EX_CONFIG or self.fatal_reason:
            self.state = "failed"
        elif self.kill_reason.startswith(("timeout", "stopped")):
            self.state, self.next_start = "backoff", now          # a case's fault, not the stage's: at once
        elif self.flapping.record(now):
            self.state = "failed"
            self.last_exit += f"; gave up after {self.flapping.max_restarts + 1} exits within {self.flapping.window:.0f} s"
        else:
            self.state, self.next_start = "backoff", now + self.backoff.next_delay(uptime)
        return self.state

    def as_status(self, now: float) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "pid": self.proc.pid if self.proc else None, "state": self.state,
                "incarnation": self.inc, "uptime_s": round(self.uptime(now), 1), "restarts": self.restarts,
                "last_exit": self.last_exit, "heartbeat_age_s": round(now - self.last_heartbeat, 1) if self.last_heartbeat else None,
                "current": self.heartbeat.get("current"), "stats": self.heartbeat.get("stats", {})}
