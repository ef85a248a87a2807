"""Uploader stage: delivers results, screenshots and task completion to the platform, durably.

Local mode (no ``[Platform] url``): nothing to deliver; the loop idles and heartbeats. Platform mode:
``delivery.Delivery`` drains the on-disk outbox with backoff for as long as the platform is away.
"""
from __future__ import annotations

from typing import Any, ClassVar

from pipeline.codec import Envelope
from pipeline.messages import (
    Kind,
    ResultRecord,
    TaskKeepalive,
    TaskReported,
    TaskStopped,
)
from pipeline.stage import Handler, Stage

__all__ = ["STAGE", "Uploader"]


class Uploader(Stage):
    POLL_MS = 500

    def __init__(self, name: str, inc: int, spec: Any) -> None:
        super().__init__(name, inc, spec)
        self.delivery: Any = None

    def on_start(self) -> None:
        if self.spec.setting("Platform", "url"):
            from .delivery import Delivery
            self.delivery = Delivery(self.spec, self.log)
            self.delivery.start()
        self.state = "idle" if self.delivery is None else "running"

    def on_result_record(self, env: Envelope[ResultRecord]) -> None:
        """Sent by the aggregator (platform mode) for every journaled result; re-sent after its crash."""
        if self.delivery is not None:
            self.delivery.result_record(env.body)

    def on_task_reported(self, env: Envelope[TaskReported]) -> None:
        """Sent by the aggregator when a task's results are final and journaled."""
        if self.delivery is not None:
            self.delivery.task_reported(env.body)

    def on_task_stopped(self, env: Envelope[TaskStopped]) -> None:
        """Sent by the fetcher when the platform stopped tasks: their rows are delivered, their complete never."""
        if self.delivery is not None:
            self.delivery.task_stopped(env.body)

    def on_task_keepalive(self, env: Envelope[TaskKeepalive]) -> None:
        """Sent by the fetcher for a task in flight: every upload to the platform goes from here."""
        if self.delivery is not None:
            self.delivery.keepalive(env.body.task_id)

    HANDLERS: ClassVar[dict[Kind, Handler]] = {Kind.RESULT_RECORD: on_result_record, Kind.TASK_REPORTED: on_task_reported,
                                               Kind.TASK_STOPPED: on_task_stopped, Kind.TASK_KEEPALIVE: on_task_keepalive}

    def before_ack(self) -> None:
        """Acks leave only after this: outbox items are fsynced by ``put``, the de-duplication ledger here."""
        if self.delivery is not None:
            self.delivery.flush()

    def on_stop(self) -> None:
        if self.delivery is not None:
            self.delivery.close()

    def on_tick(self) -> None:
        if self.delivery is not None:
            self.delivery.tick()

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        if self.delivery is not None:
            base.update(self.delivery.stats())
        return base


STAGE = Uploader
