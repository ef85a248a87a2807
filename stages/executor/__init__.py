"""Executor stage: one process per browser, device or API worker. Announces credit (idle) to the
scheduler, runs one unit at a time (see ``host.UnitWorker``), reports each case as it starts and ends,
and delivers every result to the aggregator reliably before telling the scheduler the case is done.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from pipeline.codec import Envelope
from pipeline.messages import Kind
from pipeline.stage import Handler, Stage
from pipeline.transport import Notifier

from .context import RunSettings
from .host import UnitWorker

__all__ = ["Executor", "STAGE"]


class Executor(Stage):
    POLL_MS = 200

    def __init__(self, name: str, inc: int, spec: Any) -> None:
        super().__init__(name, inc, spec)
        me = next((e for e in spec.executor_specs() if e.name == name), None)
        self.kinds = list(me.kinds) if me else ["API"]
        self.device_name = me.device if me else None
        self.worker: UnitWorker | None = None
        self.last_unit = ""
        self._last_status = 0.0

    def on_start(self) -> None:
        cfg = self.spec.config
        wd = {k: v for k, v in cfg["WebDriver"].items()}
        settings = RunSettings(
            enable_stderr=cfg["Platform"]["enable-stderr"], strict_templates=cfg["Pipeline"]["strict-templates"],
            faker_locale=cfg["Pipeline"]["faker-locale"], screenshot_every_step=cfg["Pipeline"]["screenshot-every-step"],
            default_step_timeout=cfg["Pipeline"]["step-timeout"], webdriver=wd, devices=dict(self.spec.devices),
            evidence_keep=cfg["Evidence"]["keep"], evidence_max_mb=cfg["Evidence"]["max-mb"],
            evidence_video=cfg["Evidence"]["video"], report_dir=str(self.spec.report_dir))
        device = dict(self.spec.devices.get(self.device_name, {}), name=self.device_name) if self.device_name else None
        self.worker = UnitWorker(self.name, settings, Path(self.spec.storage_root), device, fetch_file=self._fetcher())
        self._deadline_notice = Notifier(self.mailbox, "supervisor")
        self.worker.on_case_start = self._case_start_notice
        self.mailbox.register_fd(self.worker.rfd)
        for kind in self.kinds:                # import keyword libraries now, not inside the first case's deadline
            try:
                self.worker.runner(kind)
            except Exception as e:
                self.log.error("cannot load the %s runner: %s", kind, e)
        self.worker.warm_up()
        self.send_status()

    def _case_start_notice(self, started: dict[str, Any]) -> None:
        """In the case thread, before the case runs: the supervisor starts the case's deadline clock and names
        it from this notice (the light heartbeat at ``case.started`` is for ``status``; ``case.finished``'s
        tells the supervisor the case is over)."""
        cur = self.worker.current if self.worker is not None else None
        self._deadline_notice.send(Kind.CASE_DEADLINE, dict(started, case=(cur or {}).get("name")))

    def _fetcher(self) -> Any:
        """Test files come from the platform's file endpoint (platform mode only), cached under
        ``<storage>/file/<fileId>/``; the client shares the engine's token file with the other stages."""
        if not self.spec.setting("Platform", "url"):
            return None
        from pipeline.platform import PlatformClient
        client = PlatformClient.from_spec(self.spec)
        cache = Path(self.spec.storage_root) / "file"
        return lambda file_id: client.download_test_file(file_id, cache)

    def on_unit_run(self, env: Envelope) -> None:
        """Sent by the scheduler: run these cases (credit = 1, so this executor was idle)."""
        assert self.worker is not None
        if self.worker.busy():
            self.log.error("unit %s received while busy with %s; refusing it", env.body["unit_id"], self.last_unit)
            return
        self.last_unit = env.body["unit_id"]
        self.state = "busy"
        self.worker.start_unit(env.body)

    def on_task_stop(self, env: Envelope) -> None:
        """Sent by the supervisor when the engine stops (``task_id`` None) or a task is stopped: no further
        case of that work starts here, not even the next one of the running unit; the case running now
        finishes (or is killed by the supervisor after the grace). The unit then ends as done and the
        scheduler settles its unstarted cases with the stop reason."""
        assert self.worker is not None
        self.worker.hold(env.body.get("task_id"))
        self.log.info("no new case starts for %s: %s", env.body.get("task_id") or "any task", env.body.get("reason"))

    def on_device_probe(self, env: Envelope) -> None:
        """Sent by the scheduler while this executor's device is quarantined and its probe is due."""
        if self.worker is not None and self.worker.unit is None and self.worker.probe():
            self.log.info("device %s: probing (health ladder)", self.device_name)


    HANDLERS: ClassVar[dict[Kind, Handler]] = {Kind.UNIT_RUN: on_unit_run, Kind.TASK_STOP: on_task_stop,
                                                 Kind.DEVICE_PROBE: on_device_probe}

    def on_events(self, events: dict[Any, int]) -> None:
        assert self.worker is not None
        for kind, body in self.worker.drain():
            if kind == "case.started":         # the supervisor's deadline clock runs already (the notice);
                self.mailbox.send("scheduler", Kind.CASE_STARTED, body)
                self.heartbeat(force=True)                 # `status` shows the case now (a light heartbeat)
            elif kind == "case.finished":
                # the result travels with case.finished: the scheduler journals it with the attempt before it
                # acks, then hands it to the aggregator, so a SIGKILL right after this send loses nothing
                self.mailbox.send("scheduler", Kind.CASE_FINISHED, body)
                self.heartbeat(force=True)
            elif kind == "ready":
                self.send_status()
            elif kind == "probe":
                self.log.info("device %s probe: %s", self.device_name, "passed" if body["ok"] else body["error"])
                self.send_status(probe=body)
            elif kind == "unit.done":
                self.mailbox.send("scheduler", Kind.UNIT_DONE, body)
                if self.worker is not None:
                    self.worker.unit = None
                self.state = "idle"
                self.send_status()

    def on_tick(self) -> None:
        if time.monotonic() - self._last_status >= self.hb_interval:
            self.send_status()

    def send_status(self, probe: dict[str, Any] | None = None) -> None:
        self._last_status = time.monotonic()
        w = self.worker
        idle = w is not None and not w.busy() and w.unit is None
        body: dict[str, Any] = {"kinds": self.kinds, "device": self.device_name, "idle": idle, "last_unit": self.last_unit}
        if probe is not None:
            body["probe"] = probe
        if w is not None and w.unit is not None:
            body["unit"] = dict(w.unit, running=w.running)
        try:
            self.mailbox.send("scheduler", Kind.EXECUTOR_STATUS, body)
        except Exception as e:
            self.log.debug("status not sent: %s", e)

    def current(self) -> dict[str, Any] | None:
        cur = self.worker.current if self.worker else None
        if not cur:
            return None
        return {"case": cur.get("name"), "case_id": cur["case_id"], "task_id": cur["task_id"], "index": cur["index"],
                "run_times": cur["run_times"], "step": self.worker.step if self.worker else "",
                "deadline_s": cur["deadline_s"], "elapsed_s": time.monotonic() - cur["t0"]}

    def request_stop(self, why: str) -> None:
        if self.worker is not None:
            self.worker.stopping = True
        super().request_stop(why)

    def on_stop(self) -> None:
        if self.worker is not None:
            self.worker.close()
        if getattr(self, "_deadline_notice", None) is not None:
            self._deadline_notice.close()

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        base.update({"kinds": self.kinds, "device": self.device_name})
        return base


STAGE = Executor
