"""The arbiter (parent process): owns one ``StageWatcher`` per stage instance and the case deadline table.

``tick()`` = receive heartbeats/events, reap exited stages (one crash path, naming the victim case),
enforce case deadlines from outside (SIGTERM -> grace -> SIGKILL of the executor's process group),
detect hung stages (no heartbeat), restart with backoff or give up, serve the control socket.
Signal handlers only set a flag that ``tick`` turns into the same shutdown path as ``liuma-pipeline stop``.

One stop path (``stop``, SIGINT, SIGTERM):
``begin_drain`` tells the scheduler and every executor at once that no case may start any more (an executor
stops inside its unit too); running cases get ``stop-grace`` s; then their executors are SIGKILLed. From the
first moment of the stop no executor is restarted (so nothing is retried); the scheduler settles every case
that did not run with the stop reason, and the run ends once the reports are written. A second SIGINT/SIGTERM
skips the grace.
"""
from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, cast

from .clock import SYSTEM_CLOCK, Clock
from .codec import Envelope
from .config import warn_if_unauthenticated
from .curve import mailbox_options
from .deadlines import DeadlineTable, death_reason
from .log import LIFECYCLE_FORMAT
from .messages import (
    CaseDeadline,
    CaseReported,
    CasesReported,
    Kind,
    Message,
    StageDied,
    StageFatal,
    StageHeartbeat,
    StageKill,
    StageStop,
    TaskReported,
    TaskStop,
    Victim,
)
from .ops import COMMANDS as OPS_COMMANDS
from .ops import Operations
from .orphans import SUPERVISOR_PID_FILE, end_leftovers
from .process import ProcessHandle, set_child_subreaper, spawn_many, stop_launcher, sweep_orphans, try_launcher
from .profiling import mark
from .restart import Backoff, FlappingDetector
from .supervisor_reload import Reloader
from .supervisor_status import status, write_status
from .topology import RunSpec, endpoint_resolver
from .transport import ControlServer, Mailbox
from .watcher import PROJECT_ROOT, StageWatcher

__all__ = ["CRITICAL", "Handler", "Supervisor"]

log = logging.getLogger("pipeline.supervisor")
CRITICAL = ("fetcher", "scheduler", "aggregator")     # the run cannot finish without these
Handler = Callable[["Supervisor", Envelope[Message]], None]


class Supervisor:
    """``clock``: every time the arbiter reads; ``processes`` makes the stage processes and ``sweep`` ends the
    orphans of dead ones (tests hand in ``tests.fakes.FakeClock`` and ``FakeProcess`` and sweep nothing)."""

    def __init__(self, spec: RunSpec, *, on_case: Callable[[dict[str, Any]], None] | None = None,
                 on_task: Callable[[dict[str, Any]], None] | None = None, stage_env: dict[str, dict[str, str]] | None = None,
                 on_tick: Callable[[Supervisor], None] | None = None, on_hangup: Callable[[], bool] | None = None,
                 clock: Clock = SYSTEM_CLOCK, processes: Callable[..., ProcessHandle] = ProcessHandle,
                 sweep: Callable[[set[int]], None] = sweep_orphans) -> None:
        self.spec = spec
        self.clock, self.processes, self.sweep = clock, processes, sweep
        self.run_dir = Path(spec.run_dir)
        self.mailbox = Mailbox("supervisor", 0, endpoint_resolver(spec), clock=clock, **mailbox_options(spec))
        self.control = ControlServer(f"ipc://{self.run_dir / 'control.sock'}")
        self.deadlines = DeadlineTable()
        self.watchers: dict[str, StageWatcher] = {}
        self.on_case, self.on_task, self.on_tick = on_case, on_task, on_tick
        self.stage_env = stage_env or {}
        self.grace = float(spec.setting("Pipeline", "kill-grace"))
        self.stop_grace = float(spec.setting("Pipeline", "stop-grace"))
        self.hb_timeout = float(spec.setting("Pipeline", "heartbeat-timeout"))
        self.shutdown_reason = ""
        self.shutdown_at: float | None = None
        self.draining_since: float | None = None
        self.fatal: str = ""
        self.reported: list[dict[str, Any]] = []
        self.storage_faults: list[str] = []              # "<stage>: <file>: [Errno N ...] ..." (pipeline.storage)
        self._signal: str = ""
        self._hurry = False                              # a second stop signal: the grace is skipped
        self.on_hangup = on_hangup                       # run mode: was a SIGHUP the terminal going away? (see _on_sighup)
        self.reloader = Reloader(self)                   # config reload and the executors it retires
        self._last_status = 0.0
        self.started = clock.monotonic()
        self.ops = Operations(self)                      # metrics, health, systemd, submit (pipeline/ops.py)

    # -- setup ------------------------------------------------------------------------------------
    def start(self) -> None:
        # first: a signal while the stages are being spawned must take the stop path, not leave them orphaned
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_sighup)
        set_child_subreaper()
        end_leftovers(self.spec.storage_root)           # stages of a dead engine on our storage root
        warn_if_unauthenticated(self.spec.config["Pipeline"])
        if self.spec.config["Pipeline"].get("launcher", "exec") == "fork":   # stages forked from a preloaded interpreter
            try_launcher(Path(self.spec.storage_root) / "log" / "launcher.out", PROJECT_ROOT, str(self.run_dir))
            mark("launcher ready")
        # the start-up's objects (imports, config, suite) live as long as we do: out of every later collection,
        # and the cyclic GC ``cli`` paused for the start-up (the launcher has forked by now) runs again
        gc.freeze()
        gc.enable()
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run_dir.chmod(0o700)
        (self.run_dir / SUPERVISOR_PID_FILE).write_text(f"{os.getpid()}\n")   # how a later engine spots our leftovers
        self.mailbox.start()
        self.control.start()
        self.spawn_all()
        mark("stages spawned")
        self.ops.start()

    def spawn_all(self) -> None:
        """One watcher per stage instance (executors retired by an earlier reload excluded), each spawned."""
        names = [(k, k) for k in ("scheduler", "aggregator", "uploader", "janitor")]
        names += [("executor", e["name"]) for e in self.spec.executors] + [("fetcher", "fetcher")]
        names = [(k, n) for k, n in names if not any(e["name"] == n and e.get("retired") for e in self.spec.executors)]
        for kind, name in names:
            self.add_watcher(kind, name)
        watchers = list(self.watchers.values())
        spawn_many([w.prepare(self.stage_env.get(w.kind)) for w in watchers])     # one launcher request for all
        now = self.clock.monotonic()
        for w in watchers:
            log.info(LIFECYCLE_FORMAT, "start", w.name, f"pid={w.started(now)} inc={w.inc}")

    def add_watcher(self, kind: str, name: str) -> StageWatcher:
        cfg = self.spec.config["Pipeline"]
        w = self.watchers[name] = StageWatcher(kind, name, self.run_dir, Path(self.spec.storage_root) / "log",
                                               backoff=Backoff(cap=float(cfg["restart-backoff-cap"]), immediate_first=kind == "executor"),
                                               flapping=FlappingDetector(int(cfg["restart-max"]), float(cfg["restart-window"])),
                                               clock=self.clock, make_process=self.processes)
        return w

    def _on_sighup(self, signum: int, frame: Any) -> None:
        """Reload the config, unless ``on_hangup`` (``run``; called by ``tick``, outside the handler) finds
        that the terminal hung up: then it switches the output off and the run finishes detached."""
        self.reloader.asked = True

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal or self.draining_since is not None:      # already stopping: this one skips the grace
            self._hurry = True
        self._signal = self._signal or signal.Signals(signum).name

    def spawn(self, w: StageWatcher, now: float) -> None:
        pid = w.spawn(now, self.stage_env.get(w.kind))
        log.info(LIFECYCLE_FORMAT, "start", w.name, f"pid={pid} inc={w.inc}")

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        self.start()
        try:
            while not self.finished():
                # stopping: look for the stages' exits often (a stage's exit does not wake the mailbox poll);
                # the last one gone is the end of the run
                self.tick(10 if self.shutdown_at is not None else 100)
            mark("stages gone")
        finally:
            self.close()
            mark("closed")

    def tick(self, timeout_ms: int = 100) -> None:
        self.mailbox.poll(timeout_ms)
        while (env := self.mailbox.recv_nowait()) is not None:
            try:
                self._handle(env)
            except Exception as e:                  # the arbiter never dies of one message (the codec checks types first)
                logging.getLogger("pipeline.deadletter").exception("supervisor: %s from %s failed: %s", env.kind.value, env.src, e)
        self.mailbox.flush_acks()
        self.mailbox.resend_due()
        self.control.serve_pending(self._control)
        now = self.clock.monotonic()
        if self._signal and self.draining_since is None and self.shutdown_at is None:
            self.begin_drain(f"signal {self._signal}")
        self.reloader.reload_if_asked(self.on_hangup)
        self._reap(now)
        self._enforce_deadlines(now)
        self._detect_hangs(now)
        self._restart_due(now)
        self._progress_shutdown(now)
        self.reloader.retire_idle(now)
        if now - self._last_status > 0.5:
            self._last_status = now
            write_status(self, now)
        self.ops.tick(now)
        if self.on_tick:
            self.on_tick(self)

    def _handle(self, env: Envelope[Message]) -> None:
        self.ops.on_message(env)
        handler = self.HANDLERS.get(env.kind)
        if handler is not None:
            handler(self, env)

    def _current(self, env: Envelope[Message]) -> StageWatcher | None:
        """The sender's watcher, or None when the message is an older incarnation's last words."""
        w = self.watchers.get(env.src)
        return w if w is not None and env.inc == w.inc else None

    def on_heartbeat(self, env: Envelope[Message]) -> None:
        w, b = self._current(env), env.body
        if w is None or not isinstance(b, StageHeartbeat):
            return
        beat = b.to_wire()
        if b.stats is None and w.heartbeat:           # a light one (state news between two full ones): keep the stats
            beat["stats"] = w.heartbeat.get("stats")
        w.last_heartbeat, w.heartbeat = self.clock.monotonic(), beat
        self._note_faults(w.name, (b.stats or {}).get("storage_faults"))
        cur = b.current
        if cur and cur.get("deadline_s") is not None:
            self._case_deadline(w, dict(cur), float(cur.get("elapsed_s") or 0), env.sent_at.timestamp())
            self.deadlines.step(w.name, cur.get("step") or "")
        elif w.kind == "executor":
            self.deadlines.finished(w.name, as_of=env.sent_at.timestamp())

    def on_case_deadline(self, env: Envelope[Message]) -> None:
        """Told by an executor's case thread before the case runs; aged by the time the message travelled."""
        w, b = self._current(env), env.body
        if w is not None and isinstance(b, CaseDeadline):
            since = env.sent_at.timestamp()
            self._case_deadline(w, b.to_wire(), max(0.0, self.clock.wall() - since), since)

    def on_case_reported(self, env: Envelope[Message]) -> None:
        if self.on_case and isinstance(env.body, CaseReported):
            self.on_case(env.body.to_wire())

    def on_cases_reported(self, env: Envelope[Message]) -> None:
        """A batch of ``case.reported``: each entry handled as if it had come alone (logs, metrics, progress)."""
        if not isinstance(env.body, CasesReported):
            return
        for i, item in enumerate(env.body.cases):
            try:
                body = CaseReported.from_wire(item)
            except (TypeError, ValueError) as e:
                logging.getLogger("pipeline.deadletter").warning(
                    "supervisor: cases.reported from %s: entry %d dropped: %s", env.src, i, e)
                continue
            self._handle(replace(env, kind=Kind.CASE_REPORTED, body=body))

    def on_task_reported(self, env: Envelope[Message]) -> None:
        b = env.body
        if not isinstance(b, TaskReported) or any(r["task_id"] == b.task_id for r in self.reported):
            return
        self.reported.append(b.to_wire())
        self._note_faults(env.src, b.storage_faults)
        if self.on_task:
            self.on_task(b.to_wire())
        if self.spec.mode == "run":
            mark("task reported")
            self.begin_shutdown("run complete")

    def on_stage_fatal(self, env: Envelope[Message]) -> None:
        w = self.watchers.get(env.src)
        if w is not None and isinstance(env.body, StageFatal):
            w.fatal_reason = env.body.reason

    def on_stage_kill(self, env: Envelope[Message]) -> None:
        """The scheduler asks for an executor's group to be killed (its task was stopped)."""
        b = env.body
        if not isinstance(b, StageKill):
            return
        victim = self.watchers.get(b.stage)
        if victim is not None and victim.proc is not None and victim.inc == b.inc and victim.proc.poll() is None:
            victim.kill_reason = b.reason
            log.warning(LIFECYCLE_FORMAT, "kill", victim.name, victim.kill_reason)
            victim.proc.terminate(self.clock.monotonic())

    HANDLERS: ClassVar[dict[Kind, Handler]] = {
        Kind.STAGE_HEARTBEAT: on_heartbeat, Kind.CASE_DEADLINE: on_case_deadline, Kind.CASE_REPORTED: on_case_reported,
        Kind.CASES_REPORTED: on_cases_reported, Kind.TASK_REPORTED: on_task_reported, Kind.STAGE_FATAL: on_stage_fatal, Kind.STAGE_KILL: on_stage_kill,
    }

    def _note_faults(self, stage: str, faults: Any) -> None:
        """Failed report/journal writes a stage reported: kept for ``status`` and for ``run``'s exit code."""
        for f in faults if isinstance(faults, list) else ():
            text = f"{stage}: {f}"
            if text not in self.storage_faults:
                self.storage_faults.append(text)
                log.error("storage fault in %s: %s", stage, f)

    def _case_deadline(self, w: StageWatcher, cur: dict[str, Any], elapsed: float, since: float) -> None:
        """A case started on ``w`` (told by its case thread before the case runs, or by a heartbeat)."""
        label = f"{cur.get('case') or cur.get('name') or cur.get('case_id')} ({cur.get('case_id')}#{cur.get('index')}, attempt {cur.get('run_times')})"
        key = (str(cur.get("case_id")), int(cur.get("index") or 0), int(cur.get("run_times") or 0))
        self.deadlines.started(w.name, w.inc, label, float(cur["deadline_s"]), elapsed, self.clock.monotonic(), key=key, since=since,
                               named=bool(cur.get("case")))

    # -- exits ------------------------------------------------------------------------------------
    def _reap(self, now: float) -> None:
        for w in list(self.watchers.values()):
            if w.proc is None or w.state not in ("running", "stopping"):
                continue
            code = w.proc.poll()
            if code is None:
                continue
            w.proc.kill()                                    # anything left in its group: browsers, drivers
            self._sweep_orphans()
            shutil.rmtree(w.tmp_dir, ignore_errors=True)     # browser profiles and other temp files
            cause = w.exit_cause(code)
            running = self.deadlines.get(w.name)
            self.deadlines.finished(w.name)
            if w.name in self.reloader.retiring and self.shutdown_at is None:
                self.reloader.retired(w, cause, running is not None)
                continue
            state = w.decide_after_exit(code, now, self.shutdown_at is not None or (self.draining_since is not None and w.kind == "executor"))
            event = "exit" if state != "failed" else "giveup"
            log.log(logging.INFO if state == "stopped" else logging.WARNING, LIFECYCLE_FORMAT, event, w.name,
                    f"pid={w.proc.pid} inc={w.inc} cause={cause!r} next={state}")
            if w.kind == "executor" and (state != "stopped" or self.shutdown_at is None):   # stopped mid-drain: its case is settled
                victim = cast("Victim | None", running.victim() if running else None)
                self.mailbox.send("scheduler", StageDied(stage=w.name, inc=w.inc, reason=death_reason(w.name, cause, running),
                                                         case=victim))
            if state == "failed":
                self._gave_up(w)

    def _gave_up(self, w: StageWatcher) -> None:
        msg = f"stage {w.name} given up: {w.last_exit}"
        log.error(msg)
        executors = [x for x in self.watchers.values() if x.kind == "executor"]
        if w.kind in CRITICAL or (executors and all(x.state == "failed" for x in executors)):
            self.fatal = msg if w.kind in CRITICAL else f"every executor was given up (last: {msg})"
            self.begin_shutdown(self.fatal)

    def _sweep_orphans(self) -> None:
        self.sweep({w.proc.pid for w in self.watchers.values() if w.proc and w.proc.poll() is None})

    def _restart_due(self, now: float) -> None:
        if self.shutdown_at is not None:
            return
        for w in self.watchers.values():
            if w.kind == "executor" and self.draining_since is not None:
                continue                                  # stopping: no executor comes back, no case is retried
            if w.state == "backoff" and now >= w.next_start:
                w.restarts += 1
                log.info(LIFECYCLE_FORMAT, "restart", w.name, f"restarts={w.restarts} after={w.last_exit!r}")
                self.spawn(w, now)

    def _enforce_deadlines(self, now: float) -> None:
        for r in self.deadlines.expired(now):
            w = self.watchers.get(r.stage)
            if w is None or w.proc is None or w.inc != r.inc:
                continue
            w.kill_reason = (f"timeout after {r.budget:g} s: case {r.case}" + (f" at step {r.step!r}" if r.step else "")
                             + f" exceeded its deadline; {w.name} killed")
            log.warning(LIFECYCLE_FORMAT, "timeout", w.name, w.kill_reason)
            w.proc.terminate(now)
        for w in self.watchers.values():
            if w.proc and w.proc.term_sent_at is not None and w.proc.poll() is None and now - w.proc.term_sent_at >= self.grace:
                w.proc.kill()

    def _detect_hangs(self, now: float) -> None:
        for w in self.watchers.values():
            if w.state != "running" or w.proc is None or w.proc.term_sent_at is not None:
                continue
            if now - w.last_heartbeat > self.hb_timeout:
                w.kill_reason = f"hung: no heartbeat from {w.name} for {now - w.last_heartbeat:.0f} s; killed"
                log.warning(LIFECYCLE_FORMAT, "hang", w.name, w.kill_reason)
                w.proc.terminate(now)

    # -- shutdown ---------------------------------------------------------------------------------
    def begin_drain(self, why: str) -> None:
        """Stop taking work everywhere at once: the scheduler dispatches nothing more and every executor
        starts no further case (not even the next one of its unit); running cases may finish within the stop
        grace; then their executors are killed and the scheduler settles what did not run."""
        if self.draining_since is not None or self.shutdown_at is not None:
            return
        log.info("draining: %s", why)
        self.shutdown_reason = why
        self.draining_since = self.clock.monotonic()
        body = TaskStop(task_id=None, reason=f"engine stopping ({why})", drain=True)
        self.mailbox.send("scheduler", body)
        for w in self.watchers.values():
            if w.kind == "executor" and w.state == "running":
                self.mailbox.send(w.name, body)

    def begin_shutdown(self, why: str) -> None:
        if self.shutdown_at is not None:
            return
        self.shutdown_reason = self.shutdown_reason or why
        self.shutdown_at = self.clock.monotonic()
        log.info("shutting down: %s", why)
        for w in self.watchers.values():
            if w.state == "running":
                w.state = "stopping"
                try:
                    self.mailbox.send(w.name, StageStop())
                except Exception:
                    pass
            elif w.state in ("backoff", "pending"):
                w.state = "stopped"

    def _progress_shutdown(self, now: float) -> None:
        if self.draining_since is not None and self.shutdown_at is None:
            busy = [(w, w.proc) for w in self.watchers.values() if w.kind == "executor" and self.deadlines.get(w.name)
                    and w.proc is not None and w.proc.poll() is None and not w.kill_reason]
            if self._hurry or now - self.draining_since > self.stop_grace:
                for w, proc in busy:         # the grace is over (or skipped): no second grace, SIGKILL the group
                    grace = "second stop signal: no grace" if self._hurry and now - self.draining_since <= self.stop_grace \
                        else f"case killed after {self.stop_grace:g} s grace"
                    w.kill_reason = f"stopped: engine shutting down ({self.shutdown_reason}); {grace}"
                    log.warning(LIFECYCLE_FORMAT, "kill", w.name, w.kill_reason)
                    proc.kill()
            if self.drained() or now - self.draining_since > self.stop_grace + self.grace + 10:
                self.begin_shutdown(self.shutdown_reason)
        if self.shutdown_at is None:
            return
        for w in self.watchers.values():
            if w.state == "stopping" and w.proc and w.proc.poll() is None:
                if self._hurry or now - self.shutdown_at > self.stop_grace / 2:
                    w.proc.terminate(now)

    def drained(self) -> bool:
        """The drain is over: ``run`` once its task is reported (the scheduler settled what did not run);
        ``start`` once no executor runs a case any more, so running cases get their grace there too."""
        if self.spec.mode == "run":
            return bool(self.reported)
        return not any(w.kind == "executor" and self.deadlines.get(w.name) and w.proc is not None and w.proc.poll() is None
                       for w in self.watchers.values())

    def finished(self) -> bool:
        if self.shutdown_at is None:
            return False
        return all(w.state in ("stopped", "failed") or w.proc is None or w.proc.poll() is not None for w in self.watchers.values())

    def close(self) -> None:
        for w in self.watchers.values():
            if w.proc:
                w.proc.kill()           # the whole group, which may outlive its leader
        stop_launcher()
        self._sweep_orphans()
        write_status(self, self.clock.monotonic(), final=True)
        self.ops.close()
        self.control.close()
        self.mailbox.close()

    # -- status / control -------------------------------------------------------------------------
    def status(self, now: float | None = None) -> dict[str, Any]:
        return status(self, self.clock.monotonic() if now is None else now)

    def _control(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "stop":
            self.begin_drain("stop requested")
            return {"status": "ok", "reason": "stopping"}
        if cmd == "stop-task":
            tid = req.get("task_id")
            self.mailbox.send("scheduler", TaskStop(task_id=str(tid) if tid is not None else None, reason="stopped by request"))
            return {"status": "ok"}
        if cmd == "reload":
            return self.reloader.reload()
        if cmd in OPS_COMMANDS:
            return self.ops.control(req)
        return {"status": "error", "reason": f"unknown command {cmd!r} (known: status, stop, stop-task, reload)", "errno": 1}

