"""What an operator sees of a running engine, hooked into the supervisor with four calls (``start``,
``on_message``, ``tick``, ``close``) plus the control commands ``submit`` and ``task``:

- one structured log line per case attempt (``event = case.finished``, with task/case/attempt);
- the metrics (``pipeline.metrics``) fed from the messages the supervisor receives, and ``[Metrics] listen``'s
  HTTP server (``pipeline.health``);
- systemd notifications (``pipeline.sdnotify``): READY=1 once every stage is running and has sent a
  heartbeat, STATUS= when the one-line summary changes, WATCHDOG=1 from the loop, STOPPING=1 on shutdown;
- the queue of suites handed over by ``liuma-pipeline submit`` (``pipeline.submit_queue``).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .codec import Envelope
from .log import fields
from .messages import CaseReported, Message, StageHeartbeat, TaskReported
from .metrics import EngineMetrics
from .sdnotify import Notifier, watchdog_interval
from .submit_queue import SubmitQueue

__all__ = ["Operations", "COMMANDS"]

log = logging.getLogger("pipeline.supervisor")
COMMANDS = ("submit", "task")
_OUTCOME_WORD = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP", "broken": "BROKEN", "flaky": "FLAKY"}


class Operations:
    def __init__(self, sup: Any) -> None:
        self.sup = sup
        self.metrics = EngineMetrics()
        self.notifier = Notifier.from_env()
        self.watchdog_every = watchdog_interval()
        self.server: Any = None
        self.submits = SubmitQueue(Path(sup.spec.storage_root) / "state" / "submit", sup.mailbox) if sup.spec.mode == "start" else None
        self._ready = self._stopping = False
        self._status_line = ""
        self._last_watchdog = 0.0
        self._last_refresh = 0.0
        self._snap: dict[str, Any] = {"at": 0.0}

    # -- hooks -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.submits is not None:
            self.submits.start()
        listen = str((self.sup.spec.config.get("Metrics") or {}).get("listen") or "")
        if listen:
            from prometheus_client import CollectorRegistry

            from .health import OpsServer
            registry = CollectorRegistry(auto_describe=False)
            registry.register(self.metrics)
            self.server = OpsServer(listen, registry, self.health)
            host, port = self.server.start()
            log.info("metrics and health on http://%s:%d/metrics and /healthz", host, port,
                     extra=fields(event="metrics.listen"))

    def on_message(self, env: Envelope[Message]) -> None:
        if isinstance(env.body, CaseReported):
            b = env.body.to_wire()            # the metrics and the submit queue keep the map (it is written to disk)
            self.metrics.on_case(b)
            log.info("case %s %s [%s/%s#%s] attempt %s: %s%s", _OUTCOME_WORD.get(str(b.get("outcome")), b.get("outcome")),
                     b.get("name") or b.get("case_id"), b.get("collection_id"), b.get("case_id"), b.get("index"),
                     b.get("runTimes"), b.get("executor") or "-", f" ({b['reason']})" if b.get("reason") else "",
                     extra=fields(task=b.get("task_id"), case=b.get("case_id"), attempt=b.get("runTimes"), event="case.finished"))
            if self.submits is not None:
                self.submits.on_case(b)
        elif isinstance(env.body, TaskReported):
            self.metrics.on_task(env.body.to_wire())
            if self.submits is not None:
                self.submits.on_task(env.body.to_wire())
        elif isinstance(env.body, StageHeartbeat):
            w = self.sup.watchers.get(env.src)
            if w is not None and env.inc == w.inc:
                self.metrics.on_stage_stats(env.src, env.inc, env.body.stats or {})

    def tick(self, now: float) -> None:
        if now - self._last_refresh >= 0.5:
            self._last_refresh = now
            self._refresh(now)
        self._notify(now)

    def close(self) -> None:
        if not self._stopping:
            self._stopping = True
            self.notifier.send("STOPPING=1", f"STATUS=stopped: {self.sup.shutdown_reason or 'shutdown'}")
        if self.server is not None:
            self.server.close()
        self.notifier.close()

    def control(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.submits is None:
            return {"status": "error", "reason": "submit needs the long-running engine (`liuma-pipeline start`)", "errno": 2}
        if req.get("cmd") == "submit":
            if self.sup.shutdown_at is not None or self.sup.draining_since is not None:
                return {"status": "error", "reason": "the engine is shutting down; submit again once it is started", "errno": 1}
            prio = req.get("priority")
            return self.submits.submit(req.get("body") or {}, None if prio is None else int(prio))
        return self.submits.describe(str(req.get("task_id")), int(req.get("since") or 0))

    # -- gauges, health, systemd ---------------------------------------------------------------------
    def _refresh(self, now: float) -> None:
        sup = self.sup
        stats = {name: (w.heartbeat.get("stats") or {}) for name, w in sup.watchers.items()}
        sched = stats.get("scheduler", {})
        entries = {e["name"]: e for e in sup.spec.executors}
        busy_units = {n for n, e in (sched.get("executors") or {}).items() if e.get("unit")}
        quarantined = set(sched.get("quarantined") or {})
        executors: dict[tuple[str, str], int] = {}
        devices: dict[str, int] = {}
        for name, w in sup.watchers.items():
            if w.kind != "executor":
                continue
            entry = entries.get(name) or {}
            kinds = entry.get("kinds") or []
            kind = "APP" if entry.get("device") else ("WEB" if "WEB" in kinds else "API")
            if w.state != "running":
                state = "down"
            elif not w.heartbeat:
                state = "starting"
            else:
                state = "busy" if (sup.deadlines.get(name) or name in busy_units) else "idle"
            executors[(kind, state)] = executors.get((kind, state), 0) + 1
            if entry.get("device"):
                dstate = "quarantined" if name in quarantined else {"idle": "available", "busy": "busy"}.get(state, "down")
                devices[dstate] = devices.get(dstate, 0) + 1
        fetcher = stats.get("fetcher", {})
        platform_configured = bool(sup.spec.setting("Platform", "url"))
        platform_up = bool(fetcher.get("platform_up")) if platform_configured else False
        self.metrics.set_gauges(queue_cases=int(sched.get("queued_cases") or 0),
                                queue_oldest_wait_seconds=float(sched.get("oldest_wait_s") or 0.0),
                                tasks_running=int(sched.get("tasks") or 0), executors=executors, devices=devices,
                                uploads_pending=int(stats.get("uploader", {}).get("pending_uploads") or 0),
                                platform_up=1 if platform_up else 0)
        self.metrics.set_restarts({name: w.restarts for name, w in sup.watchers.items()})
        self._snap = {"at": now, "stages": {name: w.state for name, w in sup.watchers.items()},
                      "shutting_down": sup.shutdown_at is not None or sup.draining_since is not None,
                      "platform": {"configured": platform_configured, "up": platform_up, "error": fetcher.get("platform_error")}}
        if self.submits is not None:
            self.submits.tick()

    def health(self) -> tuple[int, dict[str, Any]]:
        """Called on the HTTP thread: reads only the snapshot the loop refreshed."""
        from .health import disk_usage, evaluate
        warn = float(self.sup.spec.setting("Retention", "disk-warn-percent"))
        return evaluate(self._snap, disk_usage(self.sup.spec.storage_root), warn, self.sup.clock.monotonic())

    def summary(self) -> str:
        sup, g = self.sup, self.metrics.gauges
        running = sum(1 for w in sup.watchers.values() if w.state == "running")
        busy = sum(n for (_, s), n in g["executors"].items() if s == "busy")
        total = sum(g["executors"].values())
        line = (f"{running}/{len(sup.watchers)} stages up; executors {busy}/{total} busy; "
                f"{g['tasks_running']} task(s) running, {g['queue_cases']} case(s) queued")
        if sup.spec.setting("Platform", "url"):
            line += "; platform " + ("up" if g["platform_up"] else "unreachable")
        return line

    def _notify(self, now: float) -> None:
        if not self.notifier.enabled:
            return
        sup = self.sup
        if (sup.shutdown_at is not None or sup.draining_since is not None) and not self._stopping:
            self._stopping = True
            self.notifier.send("STOPPING=1", f"STATUS=stopping: {sup.shutdown_reason or 'shutdown'}")
        if not self._ready and not self._stopping and sup.watchers and all(
                w.state == "running" and w.heartbeat for w in sup.watchers.values()):
            self._ready = True
            self._status_line = self.summary()
            self.notifier.send("READY=1", f"STATUS={self._status_line}", f"MAINPID={os.getpid()}")
        if self._ready and not self._stopping:
            line = self.summary()
            if line != self._status_line:
                self._status_line = line
                self.notifier.send(f"STATUS={line}")
        if self.watchdog_every and now - self._last_watchdog >= self.watchdog_every:
            self._last_watchdog = now
            self.notifier.send("WATCHDOG=1")
