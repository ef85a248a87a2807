"""Executor stage: one process per browser, device or API worker. Announces credit (idle) to the
scheduler, runs one unit at a time (see ``host.UnitWorker``), reports each case as it starts and ends,
and delivers every result to the aggregator reliably before telling the scheduler the case is done.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

from pipeline.codec import Envelope
from pipeline.messages import (
    CaseDeadline,
    CaseFinished,
    CaseStarted,
    Current,
    DeviceProbe,
    ExecutorStatus,
    Kind,
    Probe,
    TaskStop,
    UnitDone,
    UnitRun,
)
from pipeline.secrets import spec_secrets
from pipeline.stage import Handler, Stage
from pipeline.transport import Notifier

from .admission import Admitter
from .context import RunSettings
from .host import ProbeDone, Ready, UnitWorker
from .reaper import reap_session

__all__ = ["STAGE", "Executor"]


FLUSH_LEAD_S = 1.5          # evidence of a case killed at the end of the stop grace: written this long before

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
        self._sigterm_flushed = False
        self._flush_at: float | None = None       # engine stopping: when to write the running case's evidence
        self.admitter: Admitter | None = None
        self._dropped: set[str] = set()

    def on_start(self) -> None:
        cfg = self.spec.config
        wd = {k: v for k, v in cfg["WebDriver"].items()}
        settings = RunSettings(
            enable_stderr=cfg["Platform"]["enable-stderr"], strict_templates=cfg["Pipeline"]["strict-templates"],
            faker_locale=cfg["Pipeline"]["faker-locale"], screenshot_every_step=cfg["Pipeline"]["screenshot-every-step"],
            default_step_timeout=cfg["Pipeline"]["step-timeout"], webdriver=wd, devices=dict(self.spec.devices),
            evidence_keep=cfg["Evidence"]["keep"], evidence_max_mb=cfg["Evidence"]["max-mb"],
            evidence_video=cfg["Evidence"]["video"], evidence_secrets=tuple(spec_secrets(self.spec)),
            report_dir=str(self.spec.report_dir),
            recycle_cases=int(cfg.get("Capacity", {}).get("recycle-cases", 0)),
            recycle_rss_mb=float(cfg.get("Capacity", {}).get("recycle-rss-mb", 0.0)),
            spare_browser=bool(cfg.get("Capacity", {}).get("spare", True)), capacity=dict(cfg.get("Capacity", {})))
        device = dict(self.spec.devices.get(self.device_name, {}), name=self.device_name) if self.device_name else None
        self.worker = UnitWorker(self.name, settings, Path(self.spec.storage_root), device, fetch_file=self._fetcher())
        self._deadline_notice = Notifier(self.mailbox, "supervisor")
        self.worker.on_case_start = self._case_start_notice
        self.mailbox.register_fd(self.worker.rfd)
        for kind in self.kinds:                # import keyword libraries now, not inside the first case's deadline
            try:
                self.worker.runner(kind)
            except Exception as e:  # noqa: BLE001 - a broken runner is reported by its first case
                self.log.error("cannot load the %s runner: %s", kind, e)
        self.admitter = Admitter.from_spec(self.spec, self.name)      # browsers = auto: park above capacity
        self.worker.warm_up()
        self.send_status()

    def _case_start_notice(self, started: CaseStarted) -> None:
        """In the case thread, before the case runs: the supervisor starts the case's deadline clock and names
        it from this notice (the light heartbeat at ``case.started`` is for ``status``; ``case.finished``'s
        tells the supervisor the case is over)."""
        cur = self.worker.current if self.worker is not None else None
        self._deadline_notice.send(CaseDeadline(task_id=started.task_id, case_id=started.case_id, index=started.index,
                                                run_times=started.run_times, deadline_s=started.deadline_s,
                                                unit_id=started.unit_id, collection_id=started.collection_id,
                                                started_ms=started.started_ms, case=(cur or {}).get("name")))

    def _fetcher(self) -> Any:
        """Test files come from the platform's file endpoint (platform mode only), cached under
        ``<storage>/file/<fileId>/``; the client shares the engine's token file with the other stages."""
        if not self.spec.setting("Platform", "url"):
            return None
        from pipeline.platform import PlatformClient
        client = PlatformClient.from_spec(self.spec)
        cache = Path(self.spec.storage_root) / "file"
        return lambda file_id: client.download_test_file(file_id, cache)

    def on_unit_run(self, env: Envelope[UnitRun]) -> None:
        """Sent by the scheduler: run these cases (credit = 1, so this executor was idle)."""
        assert self.worker is not None
        if self.worker.busy():
            self.log.error("unit %s received while busy with %s; refusing it", env.body.unit_id, self.last_unit)
            return
        self.last_unit = env.body.unit_id
        self.state = "busy"
        self.worker.start_unit(env.body.to_wire())

    def on_task_stop(self, env: Envelope[TaskStop]) -> None:
        """Sent by the supervisor when the engine stops (``task_id`` None) or a task is stopped: no further
        case of that work starts here, not even the next one of the running unit; the case running now
        finishes (or is killed by the supervisor after the grace). The unit then ends as done and the
        scheduler settles its unstarted cases with the stop reason."""
        assert self.worker is not None
        self.worker.hold(env.body.task_id)
        self.log.info("no new case starts for %s: %s", env.body.task_id or "any task", env.body.reason)
        if env.body.drain and self._flush_at is None:
            # the engine stops: a case still running at the end of the stop grace is SIGKILLed (no SIGTERM
            # first), so its evidence is written shortly before; a case that ends in time writes its own
            grace = float(self.spec.setting("Pipeline", "stop-grace"))
            self._flush_at = time.monotonic() + max(0.0, grace - min(FLUSH_LEAD_S, grace / 2))

    def on_device_probe(self, env: Envelope[DeviceProbe]) -> None:
        """Sent by the scheduler while this executor's device is quarantined and its probe is due."""
        if self.worker is not None and self.worker.unit is None and self.worker.probe():
            self.log.info("device %s: probing (health ladder)", self.device_name)


    HANDLERS: ClassVar[dict[Kind, Handler]] = {Kind.UNIT_RUN: on_unit_run, Kind.TASK_STOP: on_task_stop,
                                                 Kind.DEVICE_PROBE: on_device_probe}

    def on_events(self, events: dict[Any, int]) -> None:
        assert self.worker is not None
        news = False
        drained = self.worker.drain()
        ended = {_attempt(ev) for ev in drained if isinstance(ev, CaseFinished)}
        for ev in drained:
            if isinstance(ev, CaseStarted):     # the supervisor's deadline clock runs already (the notice);
                if _attempt(ev) not in ended:   # a start whose end is in this same batch tells the scheduler nothing
                    self.mailbox.send("scheduler", ev)
                news = True                                # `status` shows the case now (a light heartbeat)
            elif isinstance(ev, CaseFinished):
                # the result travels with case.finished: the scheduler journals it with the attempt before it
                # acks, then hands it to the aggregator, so a SIGKILL right after this send loses nothing
                self.mailbox.send("scheduler", ev)
                news = True                                # the supervisor stops (or moves) the deadline clock
            elif isinstance(ev, Ready):
                self.send_status()
            elif isinstance(ev, ProbeDone):
                self.log.info("device %s probe: %s", self.device_name, "passed" if ev.ok else ev.error)
                self.send_status(probe=Probe(ok=ev.ok, error=ev.error))
            elif isinstance(ev, UnitDone):
                if self._drop_for_test("unit.done"):
                    self.log.warning("unit.done of %s not sent (LIUMA_TEST_DROP_ONCE)", ev.unit_id)
                else:
                    self.mailbox.send("scheduler", ev)
                if self.worker is not None:
                    self.worker.unit = None
                self.state = "idle"
                self.send_status()
        if news:        # one light heartbeat with the state after all of them: what the last would have said
            self.heartbeat(force=True)

    def _drop_for_test(self, what: str) -> bool:
        """Tests lose one message on purpose: ``LIUMA_TEST_DROP_ONCE=<executor>:<event>`` (once per process)."""
        if os.environ.get("LIUMA_TEST_DROP_ONCE") != f"{self.name}:{what}" or what in self._dropped:
            return False
        self._dropped.add(what)
        return True

    def on_tick(self) -> None:
        if self.worker is not None:
            self.worker.idle_tick()              # a parked Grid session is given back when others wait for it
        if self._admit():
            self.send_status()                   # credit withdrawn or offered again at once
        if time.monotonic() - self._last_status >= self.hb_interval:
            self.send_status()
        if self._flush_at is not None and time.monotonic() >= self._flush_at and self.worker is not None:
            self._flush_at = None
            self.worker.flush_evidence("the engine is stopping and the case did not end within the stop grace")

    def _admit(self) -> bool:
        """Re-decide parking while idle (``browsers = auto``); True when it changed."""
        w = self.worker
        if self.admitter is None or w is None or w.busy() or w.unit is not None:
            return False
        return self.admitter.update(time.monotonic(), self._browser_pids)

    def _browser_pids(self) -> list[int]:
        from .web.session import (
            SHARED_KEY,  # WEB executors only (the admitter exists for them alone)
        )
        slot = self.worker.shared.get(SHARED_KEY) if self.worker is not None else None
        browser = getattr(slot, "browser", None)
        return list(browser.pids()) if browser is not None else []

    def send_status(self, probe: Probe | None = None) -> None:
        self._last_status = time.monotonic()
        self._admit()                            # never offer credit on a stale decision
        w = self.worker
        parked = self.admitter.parked if self.admitter is not None else ""
        idle = w is not None and not w.busy() and w.unit is None and not parked    # parked: no credit
        unit = dict(w.unit, running=w.running) if w is not None and w.unit is not None else None
        body = ExecutorStatus(kinds=self.kinds, device=self.device_name, idle=idle, last_unit=self.last_unit,
                              probe=probe, unit=unit, parked=parked or None)
        try:
            self.mailbox.send("scheduler", body)
        except Exception as e:  # noqa: BLE001 - a status is resent on the next tick
            self.log.debug("status not sent: %s", e)

    def current(self) -> Current | None:
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

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # the supervisor kills a case at its deadline (or at the end of the stop grace) by SIGTERM to the
        # executor's group, browser included, and SIGKILL after [Pipeline] kill-grace: the running attempt's
        # evidence is written now, from what its recorder holds, before the stop goes on
        # evidence is written once: a further SIGTERM arriving while it is written (the handler runs again on
        # the same thread) must not wait for the recorder's lock the first one holds
        if self.worker is not None and not self._sigterm_flushed:
            self._sigterm_flushed = True
            self.worker.flush_evidence("the executor got SIGTERM: its case passed its deadline or the engine stopped")
        super()._on_sigterm(signum, frame)

    def on_stop(self) -> None:
        if self.worker is not None:
            self.worker.close()
        reap_session()            # whatever the polite close missed (a browser still starting, a re-parented one)
        if getattr(self, "_deadline_notice", None) is not None:
            self._deadline_notice.close()

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        base.update({"kinds": self.kinds, "device": self.device_name})
        if self.admitter is not None:
            base["parked"] = self.admitter.parked
        return base


def _attempt(ev: CaseStarted | CaseFinished) -> tuple[str, str, str, int, int]:
    return ev.unit_id, ev.collection_id, ev.case_id, ev.index, ev.run_times


STAGE = Executor
