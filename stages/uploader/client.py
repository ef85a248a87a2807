"""Deliver the outbox to the platform: batch result rows, upload screenshots, complete tasks — in order.

``Deliverer`` is driven by the uploader stage's ``tick(now)``; it never sleeps. Policy:
- rows are validated before they enter the outbox (``validate_platform_row``, §10): an invalid row is
  refused at once with its problems and never holds back the others of its batch;
- each accepted row is its own durable outbox item; ``tick`` coalesces the due rows of a task into one
  ``result/upload`` of at most ``batch_size`` rows, sent when the batch is full, when its oldest row waited
  ``interval`` seconds, or when the task's ``complete`` is waiting — results keep flowing during long tasks,
  which also keeps the platform's 10-minute inactivity rule from killing them;
- a retryable failure (platform away) backs the item off and pauses all deliveries for the same delay;
- a rejected multi-row batch is retried row by row at once, so one row the platform still refuses is
  isolated; an item rejected ``max_rejects`` times goes to the outbox's ``dead/`` folder;
- a screenshot file is deleted only after its upload was confirmed and acked in the outbox.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import PipelineError
from pipeline.platform_rows import validate_platform_row
from stages.uploader.outbox import Item, Outbox

__all__ = ["Deliverer", "DeliveryClient"]

log = logging.getLogger(__name__)
Validator = Callable[[dict[str, Any]], list[str]]


class DeliveryClient(Protocol):
    """What the deliverer needs from the platform client (``PlatformClient`` has these methods)."""

    def upload_results(self, task_id: str, rows: list[dict[str, Any]]) -> None: ...
    def upload_screenshot(self, path: Path) -> None: ...
    def complete_task(self, task_id: str) -> None: ...


class Deliverer:
    def __init__(self, outbox: Outbox, client: DeliveryClient, *, batch_size: int = 20, interval: float = 3.0,
                 max_rejects: int = 5, validator: Validator = validate_platform_row) -> None:
        self.outbox, self.client = outbox, client
        self.batch_size, self.interval, self.max_rejects = batch_size, interval, max_rejects
        self.validator = validator
        self._away_until = 0.0

    # -- producer side --------------------------------------------------------------------------------------

    def submit_results(self, task_id: str, rows: list[dict[str, Any]], now: float) -> list[str]:
        """Queue the valid rows durably; returns the problems of the refused ones (logged too)."""
        problems: list[str] = []
        for row in rows:
            found = self.validator(row)
            if found:
                problems.extend(found)
                log.error("uploader: task %s: row refused, the platform would reject its batch: %s",
                          task_id, "; ".join(found))
                continue
            self.outbox.put("results", task_id, {"rows": [row]}, now)
        return problems

    def submit_screenshot(self, task_id: str, path: Path, now: float) -> str:
        return self.outbox.put("screenshot", task_id, {"path": str(path)}, now)

    def submit_complete(self, task_id: str, now: float) -> str:
        """Queue the completion; it is sent after every result and screenshot of the task, once."""
        return self.outbox.put("complete", task_id, {}, now)

    def keepalive(self, task_id: str, now: float) -> bool:
        """An empty ``result/upload``: bumps the task's update time on the platform (its inactivity rule) without
        inventing a row. Skipped (False) while the platform is away or rows of the task wait (their upload does
        it); a failure is logged, never retried (the next keep-alive comes)."""
        if now < self._away_until or any(i.kind == "results" for i in self.outbox.pending(task_id)):
            return False
        try:
            self.client.upload_results(task_id, [])
        except PipelineError as e:
            log.warning("uploader: keep-alive upload for task %s failed: %s", task_id, e)
            return False
        return True

    # -- delivery -------------------------------------------------------------------------------------------

    def tick(self, now: float) -> int:
        """Send what is due; returns the number of items acknowledged."""
        if now < self._away_until:
            return 0
        delivered = 0
        due = self.outbox.due(now)
        waiting_complete = {i.task_id for i in self.outbox.pending() if i.kind == "complete"}
        for batch in self._batches(due, now, waiting_complete):
            ok = self._send(batch, now)
            if ok < 0:
                break        # platform away: stop for now
            delivered += ok
        return delivered

    def _batches(self, due: list[Item], now: float, waiting_complete: set[str]) -> list[list[Item]]:
        """Due items grouped into sends, in outbox order; result rows of a task coalesced."""
        by_task: dict[str, list[Item]] = {}
        for item in due:
            if item.kind == "results":
                by_task.setdefault(item.task_id, []).append(item)
        sends: list[list[Item]] = []
        seen: set[str] = set()
        for item in due:
            if item.kind != "results":
                sends.append([item])
            elif item.task_id not in seen:
                seen.add(item.task_id)
                sends.extend(self._chunks(by_task[item.task_id], now, item.task_id in waiting_complete))
        return sends

    def _chunks(self, items: list[Item], now: float, flush: bool) -> list[list[Item]]:
        chunks: list[list[Item]] = []
        current: list[Item] = []
        for item in items:
            if current and _rows(current) + len(item.payload["rows"]) > self.batch_size:
                chunks.append(current)
                current = []
            current.append(item)
        if current:
            ripe = (flush or _rows(current) >= self.batch_size or any(i.attempts for i in current)
                    or now - min(i.created for i in current) >= self.interval)
            if ripe:
                chunks.append(current)
        return chunks

    def _send(self, batch: list[Item], now: float) -> int:
        """Deliver one send; >= 0 items acked, -1 when the platform is away."""
        first = batch[0]
        try:
            if first.kind == "results":
                self.client.upload_results(first.task_id, [r for i in batch for r in i.payload["rows"]])
            elif first.kind == "screenshot":
                self.client.upload_screenshot(Path(first.payload["path"]))
            else:
                self.client.complete_task(first.task_id)
        except PipelineError as e:
            return self._on_error(batch, e, now)
        for item in batch:
            self.outbox.done(item.id)
            if item.kind == "screenshot":
                Path(item.payload["path"]).unlink(missing_ok=True)
        return len(batch)

    def _on_error(self, batch: list[Item], error: PipelineError, now: float) -> int:
        if getattr(error, "retryable", False):
            delays = [self.outbox.failed(i.id, str(error), now) for i in batch]
            self._away_until = now + min(delays)
            log.warning("uploader: platform unavailable, retrying in %.1fs: %s", min(delays), error)
            return -1
        if len(batch) > 1:            # isolate the row the platform refuses; the others go through
            log.warning("uploader: batch of %d rows rejected (%s); sending them one by one", len(batch), error)
            acked = 0
            for item in batch:
                ok = self._send([item], now)
                if ok < 0:
                    return -1
                acked += ok
            return acked
        item = batch[0]
        permanent = item.attempts + 1 >= self.max_rejects
        self.outbox.failed(item.id, str(error), now, permanent=permanent)
        if not permanent:
            log.warning("uploader: %s item of task %s rejected (attempt %d): %s",
                        item.kind, item.task_id, item.attempts, error)
        return 0


def _rows(items: list[Item]) -> int:
    return sum(len(i.payload["rows"]) for i in items)
