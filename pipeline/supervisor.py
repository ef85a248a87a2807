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

import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Callable

import psutil

from .codec import Envelope
from .config import unauthenticated_tcp
from .curve import mailbox_options
from .deadlines import DeadlineTable
from .log import LIFECYCLE_FORMAT
from .messages import Kind
from .ops import COMMANDS as OPS_COMMANDS, Operations
from .orphans import SUPERVISOR_PID_FILE, end_leftovers
from .process import describe_exit, helper_pids, set_child_subreaper, stop_launcher, use_launcher
from .restart import Backoff, FlappingDetector
from .secrets import redact_urls
from .supervisor_reload import ReloadMixin
from .topology import RunSpec, endpoint_resolver
from .transport import ControlServer, Mailbox
from .watcher import StageWatcher

__all__ = ["Supervisor", "CRITICAL"]

log = logging.getLogger("pipeline.supervisor")
CRITICAL = ("fetcher", "scheduler", "aggregator")     # the run cannot finish without these


class Supervisor(ReloadMixin):
    def __init__(self, spec: RunSpec, *, on_case: Callable[[dict[str, Any]], None] | None = None,
                 on_task: Callable[[dict[str, Any]], None] | None = None, stage_env: dict[str, dict[str, str]] | None = None,
                 on_tick: Callable[["Supervisor"], None] | None = None, on_hangup: Callable[[], bool] | None = None) -> None:
        self.spec = spec
        self.run_dir = Path(spec.run_dir)
        self.mailbox = Mailbox("supervisor", 0, endpoint_resolver(spec), **mailbox_options(spec))
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
        self._reload_asked = False
        self.generation = 0                              # config reloads applied
        self.retiring: set[str] = set()                  # executors removed by a reload, stopped once idle
        self._retire_asked: dict[str, float] = {}
        self._last_status = 0.0
        self.started = time.monotonic()
        self.ops = Operations(self)                      # metrics, health, systemd, submit (pipeline/ops.py)

    # -- setup ------------------------------------------------------------------------------------
    def start(self) -> None:
        # first: a signal while the stages are being spawned must take the stop path, not leave them orphaned
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_sighup)
        set_child_subreaper()
        end_leftovers(self.spec.storage_root)           # stages of a dead engine on our storage root
        if unauthenticated_tcp(self.spec.config["Pipeline"]):
            log.warning("UNAUTHENTICATED TRANSPORT: transport = tcp on %s without CURVE keys: any local user can forge "
                        "messages to the stages (e.g. end a run as passed). Create keys with `liuma-pipeline keys` and set "
                        "[Pipeline] curve-keys, or use transport = ipc.", self.spec.setting("Pipeline", "tcp-host"))
        self._start_launcher()
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run_dir.chmod(0o700)
        (self.run_dir / SUPERVISOR_PID_FILE).write_text(f"{os.getpid()}\n")   # how a later engine spots our leftovers
        self.mailbox.start()
        self.control.start()
        names = [(k, k) for k in ("scheduler", "aggregator", "uploader", "janitor")]
        names += [("executor", e["name"]) for e in self.spec.executors] + [("fetcher", "fetcher")]
        names = [(k, n) for k, n in names if not any(e["name"] == n and e.get("retired") for e in self.spec.executors)]
        for kind, name in names:
            self._add_watcher(kind, name)
        now = time.monotonic()
        for w in self.watchers.values():
            self._spawn(w, now)
        self.ops.start()

    def _start_launcher(self) -> None:
        """``[Pipeline] launcher = fork``: stages forked from one preloaded interpreter (pipeline/launcher.py)."""
        if self.spec.config["Pipeline"].get("launcher", "exec") != "fork":
            return
        from .watcher import PROJECT_ROOT
        try:
            use_launcher(True, Path(self.spec.storage_root) / "log" / "launcher.out", PROJECT_ROOT, str(self.run_dir))
        except OSError as e:
            log.warning("launcher not started (%s): stages are exec'ed", e)

    def _add_watcher(self, kind: str, name: str) -> StageWatcher:
        cfg = self.spec.config["Pipeline"]
        w = self.watchers[name] = StageWatcher(kind, name, self.run_dir, Path(self.spec.storage_root) / "log",
                                               backoff=Backoff(cap=float(cfg["restart-backoff-cap"]), immediate_first=kind == "executor"),
                                               flapping=FlappingDetector(int(cfg["restart-max"]), float(cfg["restart-window"])))
        return w

    def _on_sighup(self, signum: int, frame: Any) -> None:
        """Reload the config, unless ``on_hangup`` (``run``; called by ``tick``, outside the handler) finds
        that the terminal hung up: then it switches the output off and the run finishes detached."""
        self._reload_asked = True

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal or self.draining_since is not None:      # already stopping: this one skips the grace
            self._hurry = True
        self._signal = self._signal or signal.Signals(signum).name

    def _spawn(self, w: StageWatcher, now: float) -> None:
        pid = w.spawn(now, self.stage_env.get(w.kind))
        log.info(LIFECYCLE_FORMAT, "start", w.name, f"pid={pid} inc={w.inc}")

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> None:
        self.start()
        try:
            while not self.finished():
                self.tick()
        finally:
            self.close()

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
        now = time.monotonic()
        if self._signal and self.draining_since is None and self.shutdown_at is None:
            self.begin_drain(f"signal {self._signal}")
        if self._reload_asked:
            self._reload_asked = False
            if self.on_hangup is not None and self.on_hangup():
                log.warning("terminal hung up: the run goes on detached (output in the log only); config not reloaded")
            else:
                self.reload()
        self._reap(now)
        self._enforce_deadlines(now)
        self._detect_hangs(now)
        self._restart_due(now)
        self._progress_shutdown(now)
        self._retire_idle(now)
        if now - self._last_status > 0.5:
            self._last_status = now
            self.write_status(now)
        self.ops.tick(now)
        if self.on_tick:
            self.on_tick(self)

    def _handle(self, env: Envelope) -> None:
        self.ops.on_message(env)
        w = self.watchers.get(env.src)
        if env.kind is Kind.STAGE_HEARTBEAT:
            if w is None or env.inc != w.inc:
                return                                        # an older incarnation's last words
            w.last_heartbeat, w.heartbeat = time.monotonic(), (env.body if "stats" in env.body or not w.heartbeat
                                                                 else dict(env.body, stats=w.heartbeat.get("stats")))  # a light one
            self._note_faults(w.name, (env.body.get("stats") or {}).get("storage_faults"))
            cur = env.body.get("current")
            if cur and cur.get("deadline_s") is not None:
                self._case_deadline(w, cur, float(cur.get("elapsed_s") or 0), env.sent_at.timestamp())
                self.deadlines.step(w.name, cur.get("step") or "")
            elif w.kind == "executor":
                self.deadlines.finished(w.name, as_of=env.sent_at.timestamp())
        elif env.kind is Kind.CASE_DEADLINE:
            if w is not None and env.inc == w.inc:
                self._case_deadline(w, env.body, max(0.0, time.time() - env.sent_at.timestamp()), env.sent_at.timestamp())
        elif env.kind is Kind.CASE_REPORTED:
            if self.on_case:
                self.on_case(env.body)
        elif env.kind is Kind.TASK_REPORTED:
            if any(r["task_id"] == env.body["task_id"] for r in self.reported):
                return
            self.reported.append(env.body)
            self._note_faults(env.src, env.body.get("storage_faults"))
            if self.on_task:
                self.on_task(env.body)
            if self.spec.mode == "run":
                self.begin_shutdown("run complete")
        elif env.kind is Kind.STAGE_FATAL and w is not None:
            w.fatal_reason = str(env.body.get("reason"))
        elif env.kind is Kind.STAGE_KILL:
            victim = self.watchers.get(env.body["stage"])
            if victim is not None and victim.proc is not None and victim.inc == int(env.body["inc"]) and victim.proc.poll() is None:
                victim.kill_reason = str(env.body["reason"])
                log.warning(LIFECYCLE_FORMAT, "kill", victim.name, victim.kill_reason)
                victim.proc.terminate(time.monotonic())

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
        self.deadlines.started(w.name, w.inc, label, float(cur["deadline_s"]), elapsed, time.monotonic(), key=key, since=since,
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
            if w.name in self.retiring and self.shutdown_at is None:
                self._retired(w, cause, running is not None)
                continue
            state = w.decide_after_exit(code, now, self.shutdown_at is not None or (self.draining_since is not None and w.kind == "executor"))
            event = "exit" if state != "failed" else "giveup"
            log.log(logging.INFO if state == "stopped" else logging.WARNING, LIFECYCLE_FORMAT, event, w.name,
                    f"pid={w.proc.pid} inc={w.inc} cause={cause!r} next={state}")
            if w.kind == "executor" and (state != "stopped" or self.shutdown_at is None):   # stopped mid-drain: its case is settled
                reason = cause if cause.startswith(("timeout", "hung", "stopped")) else f"{w.name} {cause}"
                if running and not cause.startswith("timeout"):
                    reason += f" while running case {running.case}" + (f" at step {running.step!r}" if running.step else "")
                victim = ({"case_id": running.key[0], "index": running.key[1], "run_times": running.key[2],
                           "started_ms": int(running.since * 1000)} if running and running.key else None)
                self.mailbox.send("scheduler", Kind.STAGE_DIED, {"stage": w.name, "inc": w.inc, "reason": reason, "case": victim})
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
        """We are the subreaper: orphans of dead stages are our children now. Kill and reap those that are
        not a live stage process."""
        live = {w.proc.pid for w in self.watchers.values() if w.proc and w.proc.poll() is None} | helper_pids()
        me = psutil.Process()
        victims = []
        for p in me.children(recursive=False):
            if p.pid in live:
                continue
            try:
                victims.append(p)
                p.kill()
            except psutil.Error:
                pass
        if victims:
            psutil.wait_procs(victims, timeout=3)

    def _restart_due(self, now: float) -> None:
        if self.shutdown_at is not None:
            return
        for w in self.watchers.values():
            if w.kind == "executor" and self.draining_since is not None:
                continue                                  # stopping: no executor comes back, no case is retried
            if w.state == "backoff" and now >= w.next_start:
                w.restarts += 1
                log.info(LIFECYCLE_FORMAT, "restart", w.name, f"restarts={w.restarts} after={w.last_exit!r}")
                self._spawn(w, now)

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
        self.draining_since = time.monotonic()
        body = {"task_id": None, "reason": f"engine stopping ({why})", "drain": True}
        self.mailbox.send("scheduler", Kind.TASK_STOP, body)
        for w in self.watchers.values():
            if w.kind == "executor" and w.state == "running":
                self.mailbox.send(w.name, Kind.TASK_STOP, body)

    def begin_shutdown(self, why: str) -> None:
        if self.shutdown_at is not None:
            return
        self.shutdown_reason = self.shutdown_reason or why
        self.shutdown_at = time.monotonic()
        log.info("shutting down: %s", why)
        for w in self.watchers.values():
            if w.state == "running":
                w.state = "stopping"
                try:
                    self.mailbox.send(w.name, Kind.STAGE_STOP, {})
                except Exception:
                    pass
            elif w.state in ("backoff", "pending"):
                w.state = "stopped"

    def _progress_shutdown(self, now: float) -> None:
        if self.draining_since is not None and self.shutdown_at is None:
            busy = [w for w in self.watchers.values() if w.kind == "executor" and self.deadlines.get(w.name)
                    and w.proc is not None and w.proc.poll() is None and not w.kill_reason]
            if self._hurry or now - self.draining_since > self.stop_grace:
                for w in busy:               # the grace is over (or skipped): no second grace, SIGKILL the group
                    grace = "second stop signal: no grace" if self._hurry and now - self.draining_since <= self.stop_grace \
                        else f"case killed after {self.stop_grace:g} s grace"
                    w.kill_reason = f"stopped: engine shutting down ({self.shutdown_reason}); {grace}"
                    log.warning(LIFECYCLE_FORMAT, "kill", w.name, w.kill_reason)
                    w.proc.kill()
            if self.reported_all() or now - self.draining_since > self.stop_grace + self.grace + 10:
                self.begin_shutdown(self.shutdown_reason)
        if self.shutdown_at is None:
            return
        for w in self.watchers.values():
            if w.state == "stopping" and w.proc and w.proc.poll() is None:
                if self._hurry or now - self.shutdown_at > self.stop_grace / 2:
                    w.proc.terminate(now)

    def reported_all(self) -> bool:
        return bool(self.reported) if self.spec.mode == "run" else True

    def finished(self) -> bool:
        if self.shutdown_at is None:
            return False
        return all(w.state in ("stopped", "failed") or w.proc is None or w.proc.poll() is not None for w in self.watchers.values())

    def close(self) -> None:
        for w in self.watchers.values():
            if w.proc and w.proc.poll() is None:
                w.proc.kill()
            if w.proc:
                w.proc.kill()           # the group may outlive its leader
        stop_launcher()
        self._sweep_orphans()
        self.write_status(time.monotonic(), final=True)
        self.ops.close()
        self.control.close()
        self.mailbox.close()

    # -- status / control -------------------------------------------------------------------------
    def status(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        stages = [w.as_status(now) for w in self.watchers.values()]
        entries = {e["name"]: e for e in self.spec.executors}
        for s in stages:
            r = self.deadlines.get(s["name"])
            if r:
                s["deadline_in_s"] = round(r.deadline - now, 1)
            if s["kind"] == "executor":
                s.update(self._executor_fields(entries.get(s["name"]) or {}))
                s["retiring"] = s["name"] in self.retiring
        sched = self.watchers.get("scheduler")
        agg = self.watchers.get("aggregator")
        return {"status": "ok", "mode": self.spec.mode, "uptime_s": round(now - self.started, 1),
                "shutting_down": self.shutdown_at is not None, "reason": self.shutdown_reason or None,
                "config_generation": self.generation,
                "stages": stages, "queues": (sched.heartbeat.get("stats", {}) if sched else {}),
                "tasks": ((agg.heartbeat.get("stats") or {}).get("tasks") or []) if agg else [],
                "tasks_reported": [r["task_id"] for r in self.reported], "storage_faults": list(self.storage_faults),
                "disk_short": (sched.heartbeat.get("stats") or {}).get("disk_short") if sched else None}

    def _executor_fields(self, entry: dict[str, Any]) -> dict[str, Any]:
        """What an executor runs on: its case kinds, the browser (WEB) and the device (APP) it owns."""
        kinds = list(entry.get("kinds") or [])
        wd = self.spec.config.get("WebDriver") or {}
        browser = None
        if "WEB" in kinds:
            browser = (f"remote {wd.get('remote-url')}" if wd.get("options") == "remote"
                       else f"{Path(str(wd.get('binary') or 'chromium')).name} ({wd.get('options') or 'headless'})")
        device = entry.get("device")
        dev = self.spec.devices.get(device) if device else None
        return {"kinds": kinds, "browser": redact_urls(browser) if browser else None, "device": device,
                "device_info": {k: redact_urls(str(v)) for k, v in (dev or {}).items()
                                if "password" not in k and "secret" not in k} or None}

    def write_status(self, now: float, final: bool = False) -> None:
        data = self.status(now)
        if final:
            for s in data["stages"]:
                s["state"] = "stopped" if s["state"] != "failed" else "failed"
        tmp = self.run_dir / "status.json.tmp"
        try:
            tmp.write_text(json.dumps(data, default=str))
            tmp.replace(self.run_dir / "status.json")
        except OSError:
            pass

    def _control(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "stop":
            self.begin_drain("stop requested")
            return {"status": "ok", "reason": "stopping"}
        if cmd == "stop-task":
            self.mailbox.send("scheduler", Kind.TASK_STOP, {"task_id": req.get("task_id"), "reason": "stopped by request"})
            return {"status": "ok"}
        if cmd == "reload":
            return self.reload()
        if cmd in OPS_COMMANDS:
            return self.ops.control(req)
        return {"status": "error", "reason": f"unknown command {cmd!r} (known: status, stop, stop-task, reload)", "errno": 1}


def exit_description(code: int | None) -> str:
    return describe_exit(code)
