"""The run loop every stage shares: receive, dispatch from a ``{Kind: handler}`` table, ack, re-send,
heartbeat. ``tick()`` is one turn (tests call it directly); ``run_forever()`` wraps it.

A handler that raises is logged with the message's kind and sender and the message is dead-lettered:
one bad message never kills a stage (the message is still acked, so it is not re-sent forever).
"""
from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any, ClassVar

from .clock import SYSTEM_CLOCK, Clock
from .codec import Envelope
from .curve import mailbox_options
from .messages import ConfigReload, Current, Kind, Message, StageHeartbeat
from .metrics import local_snapshot
from .orphans import SUPERVISOR_ENV, parent_gone
from .profiling import mark
from .topology import RunSpec, endpoint_resolver
from .transport import Mailbox

__all__ = ["Stage", "Handler"]

Handler = Callable[[Any, Envelope[Any]], None]     # (stage, envelope whose body is the kind's Message)
log = logging.getLogger("pipeline.stage")
dead_letters = logging.getLogger("pipeline.deadletter")


class Stage:
    """Base class. Subclasses set ``HANDLERS`` (built at class level, STYLE rule 2) and may override
    ``on_start``, ``on_tick``, ``before_ack`` and ``on_stop``. ``__init__`` opens nothing."""

    HANDLERS: ClassVar[dict[Kind, Handler]] = {}
    POLL_MS: ClassVar[int] = 200

    def __init__(self, name: str, inc: int, spec: RunSpec, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.name, self.inc, self.spec, self.clock = name, inc, spec, clock
        self.mailbox = Mailbox(name, inc, endpoint_resolver(spec), clock=clock, **mailbox_options(spec))   # CURVE on tcp
        self.stopping = False
        self.state = "starting"
        self.hb_interval = float(spec.setting("Pipeline", "heartbeat-interval"))
        self._last_hb = 0.0
        self.log = logging.getLogger(f"stage.{name}")
        self._supervisor = int(os.environ.get(SUPERVISOR_ENV) or 0)     # 0 in tests that drive a stage in-process
        self.storage_faults: list[str] = []      # failed report/journal writes (file + errno), for the supervisor

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.mailbox.start()
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)     # the supervisor decides; Ctrl-C goes to it
        self.on_start()
        self.state = "running"
        self.heartbeat(force=True)
        mark("ready")

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.request_stop("SIGTERM")

    def request_stop(self, why: str) -> None:
        if not self.stopping:
            self.log.info("%s stopping (%s)", self.name, why)
            mark("stop asked")
        self.stopping = True

    def run_forever(self) -> None:
        self.start()
        try:
            while not self.stopping:
                self.tick()
            self.drain_before_exit()
        finally:
            self.on_stop()
            self.mailbox.close()

    def drain_before_exit(self) -> None:
        """Give unacked reliable messages a short chance to be acknowledged before exiting."""
        end = self.clock.monotonic() + 2.0
        while len(self.mailbox.outbox) and self.clock.monotonic() < end:
            self.tick(timeout_ms=50)

    # -- one turn --------------------------------------------------------------------------------
    def tick(self, timeout_ms: int | None = None) -> None:
        events = self.mailbox.poll(self.POLL_MS if timeout_ms is None else timeout_ms)
        self.mailbox.cork()             # the turn's frames leave together, per peer, when it ends (transport.py)
        try:
            self._turn(events)
        finally:
            self.mailbox.uncork()

    def _turn(self, events: dict[Any, int]) -> None:
        self.on_events(events)
        handled = 0
        while True:
            env = self.mailbox.recv_nowait()
            if env is None:
                break
            self.dispatch(env)
            handled += 1
            if handled >= 500:          # keep heartbeats and resends flowing under a flood
                break
        self.before_ack()
        self.mailbox.flush_acks()
        self.mailbox.resend_due()
        self.on_tick()
        self.heartbeat()
        if parent_gone(self._supervisor) and not self.stopping:
            self.log.error("%s: the supervisor (pid %d) is gone; stopping", self.name, self._supervisor)
            self.request_stop("supervisor gone")

    def dispatch(self, env: Envelope[Message]) -> None:
        handler = self.HANDLERS.get(env.kind)
        if env.kind is Kind.STAGE_STOP:
            self.request_stop(f"asked by {env.src}")
            return
        if handler is None and env.kind is not Kind.CONFIG_RELOAD:
            dead_letters.warning("%s: no handler for %s from %s (inc %d); dropped", self.name, env.kind.value, env.src, env.inc)
            return
        try:
            if handler is None:
                assert isinstance(env.body, ConfigReload)
                self.reload_config(env.body)
            else:
                handler(self, env)
        except Exception as e:  # a stage never dies of one bad message
            dead_letters.exception("%s: handler for %s from %s failed: %s", self.name, env.kind.value, env.src, e)

    def heartbeat(self, force: bool = False, *, full: bool = False) -> None:
        """Every ``hb_interval`` with the stage's stats; a forced one (state news: a case ended) sooner than
        that carries no stats (the supervisor keeps the last ones): building, encoding and merging the stats
        and metric snapshots once per case was a good part of what a case cost the supervisor."""
        now = self.clock.monotonic()
        if not force and now - self._last_hb < self.hb_interval:
            return
        light = force and not full and now - self._last_hb < self.hb_interval
        if not light:
            self._last_hb = now
        try:
            self.mailbox.send("supervisor", StageHeartbeat(pid=os.getpid(), state=self.state, current=self.current(),
                                                           stats=None if light else self.stats()))
        except Exception as e:
            log.debug("%s: heartbeat not sent: %s", self.name, e)

    def reload_config(self, body: ConfigReload) -> None:
        """``config.reload`` from the supervisor: it has validated the new file and rewritten settings.json;
        re-read it, apply what every stage shares (log level, heartbeat interval), then ``on_reload``.
        A settings.json that cannot be read keeps the old spec (logged), never kills the stage."""
        old = self.spec
        try:
            self.spec = RunSpec.load(old.run_dir)
        except (OSError, ValueError, TypeError) as e:
            self.log.error("config reload %s: cannot read settings.json, keeping the old settings: %s", body.generation, e)
            return
        level = str(self.spec.setting("Logging", "level")).upper()
        logging.getLogger().setLevel(getattr(logging, level, logging.INFO))
        self.hb_interval = float(self.spec.setting("Pipeline", "heartbeat-interval"))
        try:
            self.on_reload(old)
        except Exception as e:                      # a stage never dies of a reload
            self.log.exception("config reload %s: on_reload failed: %s", body.generation, e)
        self.log.info("config reload %s applied (changed: %s)", body.generation, ", ".join(body.changed) or "nothing")

    # -- hooks -----------------------------------------------------------------------------------
    def on_reload(self, old: RunSpec) -> None:
        """Apply settings a subclass caches (``self.spec`` is already the new one)."""
    def on_start(self) -> None: ...
    def on_tick(self) -> None: ...
    def before_ack(self) -> None: ...
    def on_stop(self) -> None: ...
    def on_events(self, events: dict[Any, int]) -> None: ...

    def current(self) -> Current | None:
        return None

    def storage_fault(self, text: str) -> None:
        """A write that failed (``pipeline.storage.fault_text``): logged once, reported in every heartbeat."""
        if text not in self.storage_faults:
            self.storage_faults.append(text)
            self.log.error("storage fault: %s", text)
            self.heartbeat(force=True, full=True)

    def stats(self) -> dict[str, Any]:
        base = {"outbox": len(self.mailbox.outbox), "dead_lettered": self.mailbox.dead_lettered,
                "sent_to": dict(self.mailbox.sent_to), "pushes": self.mailbox.pushes, "received": self.mailbox.received,
                "storage_faults": list(self.storage_faults)}
        observed = local_snapshot()          # histograms for the supervisor's metrics (pipeline/metrics.py)
        if observed:
            base["observed"] = observed
        return base
