"""Platform mode of the uploader: what the aggregator forwards becomes durable outbox items, delivered by
the ``Deliverer`` (client.py) in order, with retries, for as long as the platform is away.

Contract with the stage loop (``stages/uploader/__init__.py``):
- ``result_record(body)`` / ``task_reported(body)`` queue work; ``flush()`` makes the bookkeeping durable
  and is called from ``before_ack``, so the uploader acks a forward only once it is safely on disk (outbox
  items are fsynced by ``Outbox.put`` itself); a crash before that means the aggregator re-forwards;
- the aggregator re-forwards after its own crash until acked, so results are de-duplicated by result key
  (taskId, collectionId, caseId, index, runTimes): the keys already queued are kept in ``<outbox>/queued``
  (appended, fsynced in ``flush``) and rebuilt from the pending items too, so a crash between the outbox
  write and the key file still never queues a row twice;
- each result's screenshots (``<storage>/image/<taskId>/<id>.png``) are queued after its row;
- ``task.reported`` queues ``complete`` once per task (the outbox keeps a ledger); the deliverer sends it
  after every row and screenshot of the task. A task the platform stopped (``task.stopped`` from the
  fetcher, kept in ``<outbox>/stopped``) gets its rows but no ``complete``: the platform has already ended it;
  a ``complete`` queued before the notice arrived is withdrawn;
- ``keepalive(task_id)`` (``task.keepalive`` from the fetcher) sends an empty result upload for a task in
  flight, here where every other upload goes, unless rows of the task are on their way anyway.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from pipeline.messages import ResultRecord, TaskReported, TaskStopped
from pipeline.models import CaseResult
from pipeline.platform import PlatformClient
from pipeline.platform_rows import platform_row

from .client import Deliverer
from .outbox import Outbox

__all__ = ["Delivery", "result_key"]

KEYS_FILE = "queued"
STOPPED_FILE = "stopped"
_STOPPED_KEEP = 1000
_KEYS_KEEP = 200_000          # compact the key file beyond this many lines (old tasks are long delivered)


def result_key(task_id: str, row: dict[str, Any]) -> str:
    return "|".join(str(x) for x in (task_id, row.get("collectionId"), row.get("caseId"), row.get("index"), row.get("runTimes")))


class Delivery:
    def __init__(self, spec: Any, log: logging.Logger | None = None) -> None:
        self.spec = spec
        self.log = log or logging.getLogger("stage.uploader")
        self.storage = Path(spec.storage_root)
        self.root = self.storage / "outbox"
        self.outbox: Outbox | None = None
        self.deliverer: Deliverer | None = None
        self.client: PlatformClient | None = None
        self.queued: set[str] = set()
        self._keys: Any = None
        self.stopped: list[str] = []          # tasks the platform stopped (newest last), kept in STOPPED_FILE
        self._stopped_fh: Any = None
        self._dirty = False
        self.delivered = 0
        self.refused = 0

    def start(self) -> None:
        now = time.monotonic()
        self.outbox = Outbox(self.root, first=1.0, cap=30.0)     # a platform back after an outage is used within 30 s
        self.outbox.open(now)
        # Deliveries run on the stage thread: one call must never outlast the supervisor's hang detector
        # (a platform that accepts connections but never answers would get the uploader killed as hung).
        hb_timeout = float(self.spec.setting("Pipeline", "heartbeat-timeout"))
        self.client = PlatformClient.from_spec(self.spec, max_timeout=max(1.0, hb_timeout / 3))
        self.deliverer = Deliverer(self.outbox, self.client, batch_size=max(1, int(self.spec.setting("Upload", "batch-size"))),
                                   interval=float(self.spec.setting("Upload", "interval")))
        path = self.root / KEYS_FILE
        if path.exists():
            self.queued = set(path.read_text("utf-8").split("\n")) - {""}
        for item in self.outbox.pending():
            if item.kind == "results":
                self.queued.update(result_key(item.task_id, r) for r in item.payload["rows"])
        if len(self.queued) > _KEYS_KEEP:
            self._compact(path)
        self._keys = open(path, "a", encoding="utf-8")  # noqa: SIM115 - appended for the stage's life, closed in close()
        self._open_stopped()

    def _open_stopped(self) -> None:
        """Load the stopped-task ledger (and marker files of builds before ``task.stopped``), rewrite it compact."""
        stopped = self.root / STOPPED_FILE
        self.stopped = stopped.read_text("utf-8").split() if stopped.exists() else []
        legacy = self.storage / "state" / "stopped"       # marker files of builds before task.stopped
        self.stopped += sorted(p.name for p in legacy.iterdir() if p.name not in self.stopped) if legacy.is_dir() else []
        self.stopped = self.stopped[-_STOPPED_KEEP:]
        tmp = stopped.with_name(f".{stopped.name}.tmp")                  # rewritten compact, appended from here on
        tmp.write_text("".join(f"{t}\n" for t in self.stopped), "utf-8")
        os.replace(tmp, stopped)
        self._stopped_fh = open(stopped, "a", encoding="utf-8")  # noqa: SIM115 - as the key file

    def _compact(self, path: Path) -> None:
        keep = sorted(self.queued)[-_KEYS_KEEP // 2:]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\n".join(keep) + "\n", "utf-8")
        os.replace(tmp, path)
        self.queued = set(keep)

    # -- producer side (handlers) ----------------------------------------------------------------------
    def result_record(self, body: ResultRecord) -> None:
        """Queue one forwarded result (its row, then its screenshots) unless it was queued before."""
        assert self.deliverer is not None
        res = CaseResult.from_dict(body.result)
        row = platform_row(res)
        key = result_key(res.taskId, row)
        if key in self.queued:
            return
        now = time.monotonic()
        problems = self.deliverer.submit_results(res.taskId, [row], now)
        self.refused += bool(problems)
        assert self.outbox is not None
        queued_shots = {i.payload["path"] for i in self.outbox.pending(res.taskId) if i.kind == "screenshot"}
        for step in row["transactionList"]:
            for shot in step.get("screenShotList") or []:
                path = self._screenshot(res.taskId, shot)
                if path is None or str(path) in queued_shots:
                    continue
                queued_shots.add(str(path))
                self.deliverer.submit_screenshot(res.taskId, path, now)
        self.queued.add(key)
        self._keys.write(key + "\n")
        self._dirty = True

    def _screenshot(self, task_id: str, shot: str) -> Path | None:
        name = shot if shot.endswith(".png") else f"{shot}.png"
        if "/" in name or "\\" in name or name.startswith("."):
            self.log.error("task %s: screenshot id %r is not a plain name; not uploaded", task_id, shot)
            return None
        path = self.storage / "image" / task_id / name
        if not path.is_file():
            self.log.warning("task %s: screenshot %s is referenced by a result but not on disk; not uploaded", task_id, path)
            return None
        return path

    def task_reported(self, body: TaskReported) -> None:
        """Queue the task's ``complete`` (once; sent after everything else of the task)."""
        assert self.deliverer is not None
        task_id = body.task_id
        if task_id in self.stopped:
            self.log.info("task %s was stopped by the platform: results delivered, no complete", task_id)
            return
        self.deliverer.submit_complete(task_id, time.monotonic())

    def task_stopped(self, body: TaskStopped) -> None:
        """The platform stopped these tasks (``task.stopped``): never complete them; withdraw a queued complete."""
        assert self.outbox is not None
        for task_id in body.task_ids:
            if task_id not in self.stopped:
                self.stopped.append(task_id)
                self._stopped_fh.write(task_id + "\n")
                self._dirty = True
            for item in self.outbox.pending(task_id):
                if item.kind == "complete":
                    self.outbox.withdraw(item.id)
                    self.log.info("task %s: complete withdrawn, %s", task_id, body.reason)
        del self.stopped[:-_STOPPED_KEEP]

    def keepalive(self, task_id: str) -> bool:
        """``task.keepalive`` for a task in flight: an empty result upload, unless the task was stopped."""
        assert self.deliverer is not None
        return task_id not in self.stopped and self.deliverer.keepalive(task_id, time.monotonic())

    def flush(self) -> None:
        """Make the queued-key and stopped-task ledgers durable (called before acks leave)."""
        if self._dirty:
            for fh in (self._keys, self._stopped_fh):
                if fh is not None:
                    fh.flush()
                    os.fsync(fh.fileno())
            self._dirty = False

    # -- delivery ----------------------------------------------------------------------------------------
    def tick(self) -> None:
        if self.deliverer is not None:
            self.delivered += self.deliverer.tick(time.monotonic())

    def close(self) -> None:
        self.flush()
        for fh in (self._keys, self._stopped_fh):
            if fh is not None:
                fh.close()
        self._keys = self._stopped_fh = None
        if self.client is not None:
            self.client.close()

    def stats(self) -> dict[str, Any]:
        pending = self.outbox.pending() if self.outbox is not None else []
        return {"pending_uploads": len(pending), "delivered": self.delivered, "refused_rows": self.refused,
                "dead_uploads": len(self.outbox.dead()) if self.outbox is not None else 0}
