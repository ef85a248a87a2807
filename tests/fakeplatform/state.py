"""The fake platform's state: tokens, the task queue, packages, test files, and a record of every call.

Behaviour mirrors LiuMa platform 1.4.1 as described in liuma-engine.md §2, §3.2 and §10. Everything is
guarded by one lock because the HTTP and WebSocket handlers run in threads.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Recorded", "TaskEntry", "PlatformState", "build_package", "validate_row", "SCREENSHOT_NAME"]

# ResponseCode.java: fixed message per code; the detail goes in ``data`` (§10).
MESSAGES = {0: "成功", 1000: "失败", 1002: "参数校验失败", 2020: "token为空", 2030: "token已过期",
            2040: "token无效", 2050: "引擎code或secret错误", 3010: "上传失败", 5000: "未知错误"}
SCREENSHOT_NAME = re.compile(r"^\d{8}_[0-9A-Za-z-]+\.png$")


@dataclass
class Recorded:
    """One HTTP request as the platform received it (body parsed as JSON when possible)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class TaskEntry:
    task: dict[str, Any]
    package: bytes | None
    state: str = "prepared"          # prepared -> running -> completed | discontinue
    updated: float = field(default_factory=time.monotonic)


def envelope(status: int, data: Any = None) -> dict[str, Any]:
    return {"status": status, "message": MESSAGES.get(status, "失败"), "data": data}


def build_package(task: Mapping[str, Any], cases: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Zip exactly like ``CaseJsonCreateService`` + ``ZipUtils``: directory entries, a leading slash on
    every name, one pretty-printed UTF-8 JSON file per distinct case of a collection (§3.2)."""
    task_id = task["taskId"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"/{task_id}/", b"")
        for collection in task["testCollectionList"]:
            cid = collection["collectionId"]
            zf.writestr(f"/{task_id}/{cid}/", b"")
            seen: set[str] = set()
            for ref in collection["testCaseList"]:
                if ref["caseId"] in seen:
                    continue
                seen.add(ref["caseId"])
                text = json.dumps(cases[ref["caseId"]], ensure_ascii=False, indent=4)
                zf.writestr(f"/{task_id}/{cid}/{ref['caseId']}.json", text.encode("utf-8"))
    return buf.getvalue()


def validate_row(row: Any) -> str | None:
    """The conditions under which the platform's insert throws and the whole batch gets HTTP 500 (§10)."""
    if not isinstance(row, dict):
        return "row is not an object"
    for key in ("startTime", "endTime", "status", "caseType"):
        if row.get(key) is None:
            return f"{key} is null"
    transactions = row.get("transactionList")
    if not transactions:
        return "transactionList is empty"
    for t in transactions:
        if row["caseType"] in ("WEB", "APP") and t.get("screenShotList") is None:
            return "screenShotList is null"
        if row["caseType"] == "API" and (t.get("content") is None or len(str(t["content"])) > 200):
            return "content is null or longer than 200"
    return None


class Tokens:
    """JWT-shaped HS256 tokens ``header.payload.signature`` with an ``exp`` claim."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.key = b"fake-platform-secret"
        self.not_before = 0.0          # tokens issued before this instant count as expired

    def issue(self, engine_code: str) -> str:
        header = _b64({"alg": "HS256", "typ": "JWT"})
        payload = _b64({"engineCode": engine_code, "iat": time.time(), "exp": time.time() + self.ttl})
        return f"{header}.{payload}.{self._sign(header, payload)}"

    def check(self, token: str | None) -> int:
        """0 if valid, else the platform's code: 2020 empty, 2040 invalid, 2030 expired."""
        if not token:
            return 2020
        parts = token.split(".")
        if len(parts) != 3 or not hmac.compare_digest(parts[2], self._sign(parts[0], parts[1])):
            return 2040
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=="))
        except ValueError:
            return 2040
        if claims["exp"] < time.time() or claims["iat"] < self.not_before:
            return 2030
        return 0

    def _sign(self, header: str, payload: str) -> str:
        digest = hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


class PlatformState:
    """Data shared by the HTTP and WebSocket sides; tests read the public attributes under ``lock``."""

    def __init__(self, engine_code: str, engine_secret: str, token_ttl: float) -> None:
        self.lock = threading.RLock()
        self.engine_code = engine_code
        self.engine_secret = engine_secret
        self.tokens = Tokens(token_ttl)
        self.tasks: dict[str, TaskEntry] = {}
        self.test_files: dict[str, tuple[str, bytes]] = {}
        self.requests: list[Recorded] = []
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.rejected_batches: list[tuple[str, dict[str, Any]]] = []
        self.screenshots: dict[str, bytes] = {}
        self.completions: Counter[str] = Counter()
        self.engine_status = "offline"
        self.ws_frames: list[str] = []

    def record(self, rec: Recorded) -> None:
        with self.lock:
            self.requests.append(rec)

    def calls(self, path: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def add_task(self, task: dict[str, Any], package: bytes | None) -> None:
        with self.lock:
            self.tasks[task["taskId"]] = TaskEntry(task, package)

    def claim_task(self) -> dict[str, Any] | None:
        """Oldest prepared task; fetch sets task running and the report's update time (§2.3)."""
        with self.lock:
            for entry in self.tasks.values():
                if entry.state == "prepared":
                    entry.state, entry.updated = "running", time.monotonic()
                    self.engine_status = "running"
                    return entry.task
            return None

    def touch(self, task_id: str) -> None:
        with self.lock:
            if task_id in self.tasks:
                self.tasks[task_id].updated = time.monotonic()

    def complete(self, task_id: str) -> None:
        with self.lock:
            self.completions[task_id] += 1
            entry = self.tasks.get(task_id)
            if entry is not None:
                entry.state, entry.package = "completed", None   # the zip is deleted on complete
            self.engine_status = "online"

    def timed_out(self, timeout: float) -> list[str]:
        """Running tasks without a result upload for ``timeout`` seconds become ``discontinue``."""
        now = time.monotonic()
        with self.lock:
            victims = [tid for tid, e in self.tasks.items() if e.state == "running" and now - e.updated > timeout]
            for tid in victims:
                self.tasks[tid].state = "discontinue"
            return victims
