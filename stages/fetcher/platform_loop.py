"""Platform mode of the fetcher: WebSocket commands in, tasks fetched, prepared and submitted.

Threads: the fetcher's stage loop calls ``tick()`` (never blocks on the network); one worker thread does
every HTTP call (fetch, download, keep-alive) so a slow platform cannot starve the stage's heartbeats to
the supervisor; the ``HeartbeatChannel`` has its own thread.

What a caller may rely on:
- tasks are fetched at start, on every ``start`` push (including the synthetic one after each WebSocket
  reconnect, so pushes missed while disconnected are caught up) and every ``[Platform] fetch-interval``
  seconds as a fallback, only while fewer than ``[RunSetting] max-run`` tasks are in flight (submitted and
  not released, being prepared, or waiting to be submitted — one counter under one lock, unlike the
  original's racing fetch threads, §1.8 weakness 6);
- a fetched task is written to ``<run>/state/fetched/<taskId>.json`` before anything else, so a fetcher
  crash between fetch and submit re-prepares it on restart (the platform hands a task out only once);
- a package the platform cannot deliver right now (``PlatformUnavailable``) is retried every cycle; one that
  can never be used (``PlatformRejected``, ``SuiteError``) is reported as errors and completed (prepare.py);
- ``stop <taskId>`` / ``stopAll`` become ``task.stop`` to the scheduler, and ``task.stopped`` (reliable) tells
  the uploader which tasks they ended, so it delivers their results but no ``complete`` (the platform has
  already ended them, as the original did not complete a stopped task either);
- every task in flight gets a ``task.keepalive`` to the uploader each ``KEEPALIVE_S`` (``keepalives_due``):
  the uploader does the upload, so every call that writes to the platform's reports leaves from one stage.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError, SuiteError
from pipeline.messages import (
    Message,
    ResultRecord,
    TaskFinished,
    TaskKeepalive,
    TaskPlanned,
    TaskStop,
    TaskStopped,
)
from pipeline.platform import (
    PlatformClient,
    PlatformError,
    PlatformUnavailable,
    engine_secret,
)

from .heartbeat import Command, HeartbeatChannel
from .prepare import error_report, prepare_task

__all__ = ["KEEPALIVE_S", "PlatformLoop", "keepalives_due"]

log = logging.getLogger("stage.fetcher.platform")

# The platform discontinues a running task whose report was not updated for 10 minutes (checked every 3).
# Results stream as cases finish, which normally keeps it alive; a single case longer than that would not.
# What the protocol allows without inventing data: ``result/upload`` with an empty ``caseResultList`` (nothing
# inserted, the report's update time bumped). Re-uploading a row would insert a duplicate row (the platform
# never updates). So every in-flight task gets an empty upload when KEEPALIVE_S passed since the last one.
KEEPALIVE_S = 240.0


def keepalives_due(running: list[str], last: dict[str, float], now: float, every: float = KEEPALIVE_S) -> list[str]:
    """Tasks owed a keep-alive at ``now``; ``last`` (task -> last one) is updated, a new task's clock starts."""
    due = []
    for task_id in running:
        if now - last.setdefault(task_id, now) >= every:
            last[task_id] = now
            due.append(task_id)
    for gone in set(last) - set(running):
        del last[gone]
    return due


class PlatformLoop:
    def __init__(self, fetcher: Any) -> None:
        spec = fetcher.spec
        self.fetcher = fetcher
        self.spec = spec
        self.max_run = max(1, int(spec.setting("RunSetting", "max-run")))
        self.fetch_interval = float(spec.setting("Platform", "fetch-interval")) or 15.0
        self.hb_interval = float(spec.setting("Platform", "heartbeat-interval")) or 30.0
        self.storage = Path(spec.storage_root)
        self.fetched_dir = Path(spec.run_dir) / "state" / "fetched"
        self.client: PlatformClient | None = None
        self.channel: HeartbeatChannel | None = None
        self._ready: queue.SimpleQueue[tuple[str, dict[str, Any], str]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._preparing: dict[str, dict[str, Any]] = {}     # fetched, not yet prepared (worker thread)
        self._queued = 0                                    # prepared, waiting for tick() to submit
        self._running: list[str] = []                       # submitted, not released (tick's snapshot)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_keepalive: dict[str, float] = {}
        self.clock: Callable[[], float] = time.monotonic
        self.http_ok: bool | None = None                    # last fetch cycle reached the platform (health, metrics)
        self.http_error: str | None = "not contacted yet"

    # -- lifecycle (stage thread) ------------------------------------------------------------------
    def start(self) -> None:
        self.client = PlatformClient.from_spec(self.spec)
        self.channel = HeartbeatChannel(self.spec.setting("Platform", "url"), self.spec.setting("Engine", "engine-code"),
                                        engine_secret(self.spec), interval=self.hb_interval,
                                        max_backoff=5.0)   # back online within seconds of the platform (it shows us offline meanwhile)
        self.fetched_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.fetched_dir.glob("*.json")):      # fetched by an earlier incarnation
            try:
                raw = json.loads(path.read_text("utf-8"))
                if str(raw["taskId"]) in self.fetcher.submitted:     # handed over just before the crash
                    path.unlink(missing_ok=True)
                    continue
                self._preparing[str(raw["taskId"])] = raw
                log.warning("task %s was fetched but not handed over before a restart; preparing it again", raw["taskId"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.error("unreadable fetched task %s (%s); removed", path, e)
                path.unlink(missing_ok=True)
        self._snapshot()
        self._thread = threading.Thread(target=self._work, name="liuma-fetch", daemon=True)
        self._thread.start()
        self.channel.start()
        self._wake.set()                                            # fetch at start

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self.channel is not None:
            self.channel.stop()
        if self._thread is not None:
            self._thread.join(10)
        if self.client is not None:
            self.client.close()

    # -- stage thread ------------------------------------------------------------------------------
    def tick(self) -> None:
        if self.channel is not None:
            for command in self.channel.poll():
                self.on_command(command)
        with self._lock:
            while True:
                try:
                    kind, item, reason = self._ready.get_nowait()
                except queue.Empty:
                    break
                self._queued -= 1
                if kind == "submit":
                    self.fetcher.submit(item)
                    task_id = item["task"]["taskId"]
                else:
                    self._report_unusable(item, reason)
                    task_id = str(item.get("taskId"))
                (self.fetched_dir / f"{task_id}.json").unlink(missing_ok=True)
            self._snapshot()
        for task_id in keepalives_due(self._running, self._last_keepalive, self.clock()):
            self._send("uploader", TaskKeepalive(task_id=task_id))

    def _send(self, peer: str, body: Message) -> None:
        try:
            self.fetcher.mailbox.send(peer, body)
        except PipelineError as e:
            log.error("%s not delivered to the %s: %s", body.KIND.value, peer, e)

    def _snapshot(self) -> None:
        self._running = [tid for tid, rec in self.fetcher.submitted.items() if not rec.get("released")]

    def released(self, task_id: str) -> None:
        """A task finished: its slot is free, so look for more work now."""
        self._last_keepalive.pop(task_id, None)
        self._wake.set()

    def on_command(self, command: Command) -> None:
        if command.type == "start":
            self._wake.set()
            return
        running = [command.task_id] if command.type == "stop" and command.task_id else list(self._running)
        reason = f"stopped by the platform ({command.type}{' ' + command.task_id if command.task_id else ''})"
        log.warning("platform asked to %s; forwarding to the scheduler", command.type + (f" {command.task_id}" if command.task_id else ""))
        if running:
            self._send("uploader", TaskStopped(task_ids=running, reason=reason))
        self._send("scheduler", TaskStop(task_id=command.task_id if command.type == "stop" else None, reason=reason))

    def _report_unusable(self, raw: dict[str, Any], reason: str) -> None:
        """Report every case as an error through the aggregator (reliable messages, stable ids), so the
        uploader sends the rows and the ``complete`` that frees the platform's slot."""
        report = error_report(raw, reason, self.spec.report_dir)
        task_id = report.planned["task_id"]
        mb = self.fetcher.mailbox
        mb.send("aggregator", TaskPlanned.from_wire(report.planned), msg_id=f"unusable-planned-{task_id}")
        for i, res in enumerate(report.results):
            mb.send("aggregator", ResultRecord(result=res), msg_id=f"unusable-result-{task_id}-{i}")
        mb.send("aggregator", TaskFinished.from_wire(report.finished), msg_id=f"unusable-finished-{task_id}")
        log.error("task %s cannot run: %s; reported %d case(s) as errors", task_id, reason, len(report.results))

    # -- worker thread -----------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.fetch_interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._prepare_pending()
                self._fetch_until_full()
                self.http_ok, self.http_error = True, None
            except PlatformUnavailable as e:
                self.http_ok, self.http_error = False, str(e)
                log.warning("platform unavailable, will retry in %.0f s: %s", self.fetch_interval, e)
            except PlatformError as e:
                self.http_ok, self.http_error = True, None          # it answered, with a refusal
                log.error("platform refused a fetch: %s", e)
            except Exception:
                log.exception("fetch cycle failed")

    def health(self) -> tuple[bool, str | None]:
        """(reachable, why not): the last fetch cycle answered and the heartbeat WebSocket is connected."""
        if not self.http_ok:
            return False, self.http_error
        if self.channel is None or not self.channel.connected.is_set():
            return False, "heartbeat WebSocket not connected"
        return True, None

    def _in_flight(self) -> int:
        with self._lock:
            return len(self._running) + len(self._preparing) + self._queued

    def _fetch_until_full(self) -> None:
        assert self.client is not None
        while not self._stopping.is_set() and self._in_flight() < self.max_run:
            raw = self.client.fetch_task()
            if raw is None:
                return
            task_id = str(raw["taskId"])
            _write_private(self.fetched_dir / f"{task_id}.json", json.dumps(raw, ensure_ascii=False))
            with self._lock:
                self._preparing[task_id] = raw
            log.info("fetched task %s (%s, %d collection(s))", task_id, raw.get("taskType"),
                     len(raw.get("testCollectionList") or []))
            self._prepare(task_id, raw)

    def _prepare_pending(self) -> None:
        with self._lock:
            pending = list(self._preparing.items())
        for task_id, raw in pending:
            self._prepare(task_id, raw)

    def _prepare(self, task_id: str, raw: dict[str, Any]) -> None:
        """Prepare one task and hand it to the stage thread; ``PlatformUnavailable`` propagates (retry later)."""
        assert self.client is not None
        try:
            body = prepare_task(self.client, raw, self.storage / "data", self.spec.report_dir)
            item: tuple[str, dict[str, Any], str] = ("submit", body, "")
        except PlatformUnavailable:
            raise
        except (PlatformError, SuiteError) as e:
            item = ("error", raw, f"task package unusable: {e}")
        with self._lock:
            self._preparing.pop(task_id, None)
            self._queued += 1
            self._ready.put(item)


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
