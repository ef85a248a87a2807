"""The supervisor's side of config reload (``liuma-pipeline reload`` / SIGHUP): validate the file, apply
what can change live, grow the executor pool at once and shrink it only as executors go idle. The pure
decisions (what is live, which executors to start or retire) are in ``reload.py``. A plain collaborator
of ``Supervisor``: it owns what reloads add (generation, the executors being retired) and uses the
supervisor's watchers, deadlines and mailbox through its public names."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import load_config
from .errors import ConfigError
from .log import LIFECYCLE_FORMAT
from .messages import ConfigReload, StageDied, StageStop
from .reload import changed_keys, desired_pool, merge_live, plan_pool
from .watcher import StageWatcher

if TYPE_CHECKING:
    from .supervisor import Supervisor

__all__ = ["Reloader"]

log = logging.getLogger("pipeline.supervisor")


class Reloader:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.generation = 0                              # config reloads applied
        self.retiring: set[str] = set()                  # executors removed by a reload, stopped once idle
        self._retire_asked: dict[str, float] = {}
        self.asked = False                               # SIGHUP seen (the handler only sets this)

    def reload_if_asked(self, on_hangup: Callable[[], bool] | None) -> None:
        """After a SIGHUP: reload, unless ``on_hangup`` (``run``) finds the terminal hung up (output goes off)."""
        if not self.asked:
            return
        self.asked = False
        if on_hangup is not None and on_hangup():
            log.warning("terminal hung up: the run goes on detached (output in the log only); config not reloaded")
        else:
            self.reload()

    def reload(self) -> dict[str, Any]:
        """Re-read ``spec.config_path``; refuse it whole (old config stays) when invalid, else apply the live
        part: timeouts here, executor pool (new ones spawned, surplus stopped once idle), settings.json
        rewritten and ``config.reload`` sent so every stage re-reads it (log level, timeouts)."""
        sup = self.sup
        try:
            if not sup.spec.config_path:
                raise ConfigError("this engine was started without a config file; nothing to reload")
            cfg = load_config(sup.spec.config_path)
            values, ignored = merge_live(sup.spec.config, cfg.values)
            want = desired_pool(values, cfg.devices)
            served = {k for e in sup.spec.executors if not e.get("retired") for k in e["kinds"]}
            lost = served - {k for kinds, _ in want for k in kinds}
            if sup.spec.mode == "run" and lost:
                raise ConfigError(f"the running suite needs {', '.join(sorted(lost))} executors; the new config has none",
                                  file=cfg.path, section="Pipeline")
        except ConfigError as e:
            log.error(LIFECYCLE_FORMAT, "reload-refused", "supervisor", f"reason={str(e)!r}")
            return {"status": "error", "reason": f"config not reloaded, the old one stays: {e}", "errno": 2}
        busy = {w.name for w in sup.watchers.values() if w.kind == "executor" and self.executor_busy(w)}
        plan = plan_pool(sup.spec.executors, want, busy)
        changed = changed_keys(sup.spec.config, values) + (["Device"] if cfg.devices != sup.spec.devices else [])
        self.generation += 1
        sup.spec.config, sup.spec.devices, sup.spec.executors = values, dict(cfg.devices), plan.executors
        sup.spec.save()
        self._apply_live(values)
        for name in plan.start:
            self.retiring.discard(name)
            w = sup.watchers.get(name) or sup.add_watcher("executor", name)
            if w.state not in ("running", "stopping"):
                sup.spawn(w, sup.clock.monotonic())
        self.retiring |= set(plan.retire)
        for w in sup.watchers.values():
            if w.state == "running":
                sup.mailbox.send(w.name, ConfigReload(generation=self.generation, changed=changed))
        log.info(LIFECYCLE_FORMAT, "reload", "supervisor", f"generation={self.generation} changed={changed} "
                 f"started={plan.start} retiring={plan.retire} needs-restart={ignored}")
        return {"status": "ok", "generation": self.generation, "changed": changed, "started": plan.start,
                "retiring": plan.retire, "needs_restart": ignored}

    def _apply_live(self, values: dict[str, dict[str, Any]]) -> None:
        sup = self.sup
        p = values["Pipeline"]
        sup.grace, sup.stop_grace, sup.hb_timeout = float(p["kill-grace"]), float(p["stop-grace"]), float(p["heartbeat-timeout"])
        for w in sup.watchers.values():
            w.backoff.cap = float(p["restart-backoff-cap"])
            w.flapping.max_restarts, w.flapping.window = int(p["restart-max"]), float(p["restart-window"])
        logging.getLogger().setLevel(getattr(logging, str(values["Logging"]["level"]).upper(), logging.INFO))

    def retire_idle(self, now: float) -> None:
        """Stop retired executors that run no case (never one mid-case); drop those not running at all."""
        sup = self.sup
        if sup.shutdown_at is not None:
            return
        for name in sorted(self.retiring):
            w = sup.watchers.get(name)
            if w is None:
                self.retiring.discard(name)
            elif w.state in ("backoff", "pending", "failed", "stopped") or w.proc is None:
                self.retired(w, w.last_exit or "not running", False)
            elif w.state == "running" and not self.executor_busy(w):
                w.state = "stopping"
                self._retire_asked[name] = now
                log.info(LIFECYCLE_FORMAT, "retire", name, "idle; stopping (removed by config reload)")
                sup.mailbox.send(name, StageStop())
            elif w.state == "stopping" and now - self._retire_asked.get(name, now) > sup.stop_grace and w.proc is not None:
                w.proc.terminate(now)                   # asked politely and still there: SIGTERM, then the grace kill

    def executor_busy(self, w: StageWatcher) -> bool:
        """Running a case by its own heartbeat, or holding a unit by the scheduler's."""
        sup = self.sup
        sched = sup.watchers.get("scheduler")
        held = ((sched.heartbeat.get("stats") or {}).get("executors") or {}).get(w.name) if sched else None
        return bool(sup.deadlines.get(w.name) or w.heartbeat.get("current") or (held or {}).get("unit"))

    def retired(self, w: StageWatcher, cause: str, mid_case: bool) -> None:
        """A retired executor is gone: forget it, and tell the scheduler so it never dispatches to it again
        (whatever it was handed in the meantime is re-queued by the scheduler's executor-lost path)."""
        sup = self.sup
        self.retiring.discard(w.name)
        self._retire_asked.pop(w.name, None)
        sup.watchers.pop(w.name, None)
        log.info(LIFECYCLE_FORMAT, "exit", w.name, f"pid={w.proc.pid if w.proc else None} inc={w.inc} cause={cause!r} next=removed")
        if w.inc >= 0:
            reason = f"{w.name} removed by config reload" + (" while running a case" if mid_case else "")
            sup.mailbox.send("scheduler", StageDied(stage=w.name, inc=w.inc, reason=reason))

