"""Fetcher stage: where tasks come from. Local mode: the suite the CLI prepared (validated, copied into
``data/<taskId>/``) is submitted once. Platform mode: see ``platform_loop`` (token, WebSocket commands,
periodic fetch, package download). Submissions are reliable messages with a stable id, and the fetcher
remembers on disk which task it handed over, so a restarted fetcher never submits a task twice.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from pipeline.codec import Envelope
from pipeline.messages import Kind, TaskReleased, TaskStop, TaskSubmit
from pipeline.stage import Handler, Stage

__all__ = ["Fetcher", "STAGE"]


class Fetcher(Stage):
    POLL_MS = 200

    def __init__(self, name: str, inc: int, spec: Any) -> None:
        super().__init__(name, inc, spec)
        self.state_path = Path(spec.run_dir) / "state" / "fetcher.json"
        self.submitted: dict[str, dict[str, Any]] = {}     # task_id -> {"msg_id", "acked", "released"}
        self.platform: Any = None

    def on_start(self) -> None:
        if self.state_path.exists():
            self.submitted = json.loads(self.state_path.read_text())
        self.mailbox.on_ack = self._acked
        if self.spec.suite:
            self._submit_local(Path(self.spec.suite))
        if self.spec.setting("Platform", "url"):
            from .platform_loop import PlatformLoop  # imported only in platform mode
            self.platform = PlatformLoop(self)
            self.platform.start()

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(self.submitted))
            fh.flush()
            os.fsync(fh.fileno())            # survives power loss, not only a process crash
        tmp.replace(self.state_path)

    def _submit_local(self, prepared: Path) -> None:
        body = json.loads(prepared.read_text())
        self.submit(body)

    def submit(self, body: dict[str, Any]) -> None:
        """Hand one task to the scheduler (idempotent per taskId across fetcher restarts)."""
        task_id = body["task"]["taskId"]
        rec = self.submitted.get(task_id)
        if rec and rec.get("acked"):
            return
        msg_id = rec["msg_id"] if rec else f"submit-{task_id}"
        self.submitted[task_id] = {"msg_id": msg_id, "acked": False, "released": False}
        self._save()
        self.mailbox.send("scheduler", TaskSubmit.from_wire(body), msg_id=msg_id)
        self.log.info("task %s submitted to the scheduler", task_id)

    def _acked(self, ids: list[str]) -> None:
        changed = False
        for rec in self.submitted.values():
            if rec["msg_id"] in ids and not rec["acked"]:
                rec["acked"] = changed = True
        if changed:
            self._save()

    def on_task_released(self, env: Envelope[TaskReleased]) -> None:
        """Sent by the scheduler when a task is finished: its slot is free (platform mode fetches more)."""
        rec = self.submitted.get(env.body.task_id)
        if rec is not None:
            rec["released"] = True
            self._save()
        if self.platform is not None:
            self.platform.released(env.body.task_id)

    def on_task_stop(self, env: Envelope[TaskStop]) -> None:
        """Sent by the supervisor (CLI ``stop``) to forward a stop to the scheduler."""
        self.mailbox.send("scheduler", env.body)

    HANDLERS: ClassVar[dict[Kind, Handler]] = {Kind.TASK_RELEASED: on_task_released, Kind.TASK_STOP: on_task_stop}

    def on_tick(self) -> None:
        if self.platform is not None:
            self.platform.tick()

    def running_tasks(self) -> int:
        return sum(1 for r in self.submitted.values() if not r.get("released"))

    def on_stop(self) -> None:
        if self.platform is not None:
            self.platform.stop()

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        base["tasks_in_flight"] = self.running_tasks()
        if self.platform is not None:
            base["platform_up"], base["platform_error"] = self.platform.health()
        return base


STAGE = Fetcher
