"""The engine side of ``liuma-pipeline submit``: suites handed over through the control socket.

A submitted task is written (fsync) to ``<storage>/state/submit/queue/<taskId>.json`` before the CLI gets
its answer, then sent to the scheduler as a reliable ``task.submit`` (stable id ``submit-<taskId>``; the
scheduler journals it before acking, and ignores a duplicate). Acked -> moved to ``accepted/``; reported ->
``done/<taskId>.json`` holds the ``task.reported`` body. At start every file still in ``queue/`` is sent
again, so a submit the engine answered is never lost, whatever restarts in between. Platform and submitted
tasks then share the scheduler's one queue, ordered by task priority.

A task id already used by a submitted task gets a suffix (``t-1-2``): the same suite can be submitted again.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from .messages import TaskSubmit

__all__ = ["SubmitQueue"]

log = logging.getLogger("pipeline.submit")
MAX_CASE_LINES = 100_000          # per task kept for ``submit --wait`` followers


def _write_synced(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, ensure_ascii=False))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class SubmitQueue:
    def __init__(self, root: Path, mailbox: Any) -> None:
        self.root, self.mailbox = root, mailbox
        self.queue, self.accepted, self.done = root / "queue", root / "accepted", root / "done"
        self.cases: dict[str, list[dict[str, Any]]] = {}
        self._pending: dict[str, str] = {}            # msg_id -> task id (sent, not acked)

    def start(self) -> None:
        for d in (self.queue, self.accepted, self.done):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        chained = self.mailbox.on_ack

        def on_ack(ids: list[str]) -> None:
            self._acked(ids)
            if chained:
                chained(ids)
        self.mailbox.on_ack = on_ack
        for path in sorted(self.queue.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                body = json.loads(path.read_text("utf-8"))
            except (OSError, ValueError) as e:
                log.error("unreadable queued submission %s (%s); left in place", path, e)
                continue
            log.warning("task %s was submitted before a restart and not yet accepted; handing it over again", path.stem)
            self._send(path.stem, body)
        for path in self.accepted.glob("*.json"):
            self.cases.setdefault(path.stem, [])

    # -- control commands ----------------------------------------------------------------------------
    def submit(self, body: dict[str, Any], priority: int | None) -> dict[str, Any]:
        task = body.get("task")
        if not isinstance(task, dict) or not isinstance(task.get("taskId"), str) or not isinstance(body.get("data_dir"), str):
            return {"status": "error", "reason": "submit body needs task.taskId and data_dir", "errno": 2}
        wanted = task["taskId"]
        task_id, n = wanted, 1
        while self._known(task_id):
            n += 1
            task_id = f"{wanted}-{n}"
        body = dict(body, task=dict(task, taskId=task_id), source="submit")
        if priority is not None:
            body["task"]["priority"] = int(priority)
        _write_synced(self.queue / f"{task_id}.json", body)
        self.cases[task_id] = []
        self._send(task_id, body)
        log.info("task %s submitted (priority %s)%s", task_id, body["task"].get("priority", 0),
                 f", renamed from {wanted} (already used)" if task_id != wanted else "")
        return {"status": "ok", "task_id": task_id, "renamed_from": wanted if task_id != wanted else None}

    def describe(self, task_id: str, since: int) -> dict[str, Any]:
        """For ``submit --wait``: the state, case reports from index ``since`` and, once reported, the report."""
        done = self.done / f"{task_id}.json"
        if done.exists():
            try:
                report = json.loads(done.read_text("utf-8"))
            except (OSError, ValueError) as e:
                return {"status": "error", "reason": f"cannot read {done}: {e}", "errno": 1}
            cases = self.cases.get(task_id) or []
            return {"status": "ok", "state": "reported", "report": report, "cases": cases[since:], "next": len(cases)}
        if not ((self.queue / f"{task_id}.json").exists() or (self.accepted / f"{task_id}.json").exists()):
            return {"status": "error", "reason": f"no task {task_id!r} was submitted to this engine", "errno": 2}
        cases = self.cases.get(task_id) or []
        return {"status": "ok", "state": "running" if cases else "queued", "cases": cases[since:], "next": len(cases)}

    # -- messages ------------------------------------------------------------------------------------
    def on_case(self, body: dict[str, Any]) -> None:
        lines = self.cases.get(str(body.get("task_id")))
        if lines is not None and len(lines) < MAX_CASE_LINES:
            lines.append(body)

    def on_task(self, body: dict[str, Any]) -> None:
        task_id = str(body.get("task_id"))
        if not ((self.accepted / f"{task_id}.json").exists() or (self.queue / f"{task_id}.json").exists()):
            return                                          # not a submitted task (platform)
        _write_synced(self.done / f"{task_id}.json", body)
        (self.accepted / f"{task_id}.json").unlink(missing_ok=True)
        (self.queue / f"{task_id}.json").unlink(missing_ok=True)

    def tick(self) -> None:
        """Drop the case lines of reported tasks nobody followed for a while (bounded memory)."""
        if len(self.cases) > 1000:
            for tid in [t for t in self.cases if (self.done / f"{t}.json").exists()][:500]:
                self.cases.pop(tid, None)

    # -- internals -----------------------------------------------------------------------------------
    def _known(self, task_id: str) -> bool:
        return any((d / f"{task_id}.json").exists() for d in (self.queue, self.accepted, self.done))

    def _send(self, task_id: str, body: dict[str, Any]) -> None:
        try:
            typed = TaskSubmit.from_wire(body)
        except ValueError as e:
            log.error("queued submission %s is not a task.submit body (%s); left in place", task_id, e)
            return
        msg_id = self.mailbox.send("scheduler", typed, msg_id=f"submit-{task_id}")
        self._pending[msg_id] = task_id

    def _acked(self, ids: list[str]) -> None:
        for i in ids:
            task_id = self._pending.pop(i, None)
            if task_id is None:
                continue
            src = self.queue / f"{task_id}.json"
            if src.exists():
                os.replace(src, self.accepted / f"{task_id}.json")
