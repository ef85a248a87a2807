"""``results.jsonl``: every attempt as it arrives, one compact JSON object a line, appended and never rewritten.

A line is the attempt's platform row, the one ``results.json``'s ``caseResultList`` holds (``platform_row``:
``collectionId``, ``caseId``, ``index``, ``runTimes``, ``status``, times, steps), written for every attempt,
also one the platform checks reject (``results.rejected.json`` lists those). It is the report a reader can
follow while a large task runs, at a cost per attempt that does not grow with the task: lines are buffered
and written (unbuffered ``os.write``) when the report thread's batch ends. A crash leaves whole lines and at
most one torn last line, which :func:`read_lines` skips; a restarted aggregator (``resume``) cuts that torn
tail and appends only the attempts the file does not hold yet, a new task starts the file afresh.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["JSONL_FILE", "ResultLines", "read_lines"]

JSONL_FILE = "results.jsonl"
LineKey = tuple[str, str, int, int]
_FLUSH_AT = 1 << 20         # bytes buffered before a write even inside a batch


def _key(row: dict[str, Any]) -> LineKey:
    return (str(row.get("collectionId")), str(row.get("caseId")), int(row.get("index") or 0), int(row.get("runTimes") or 0))


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Each complete line's object; a last line without its newline (a torn write) is skipped."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.endswith(b"\n"):
                yield json.loads(line)


class ResultLines:
    """One task's ``results.jsonl``: ``add(row, raw)`` per attempt, ``flush()`` at the end of a batch."""

    def __init__(self, report_dir: Path, *, resume: bool = False) -> None:
        self.path = Path(report_dir) / JSONL_FILE
        self.seen: set[LineKey] = set()
        self._buf: list[bytes] = []
        self._size = 0
        self._fd: int | None = None
        self._resume = resume
        if resume:
            self._learn()

    def add(self, row: dict[str, Any], raw: bytes) -> None:
        """Queue the attempt's line (``raw``: ``row`` serialised), unless the file already holds it."""
        key = _key(row)
        if key in self.seen:
            return
        self.seen.add(key)
        self._buf.append(raw + b"\n")
        self._size += len(raw) + 1
        if self._size >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Append the queued lines (one write of whole lines: a crash tears at most the last one)."""
        if not self._buf:
            return
        fd = self._open()
        data, self._buf, self._size = b"".join(self._buf), [], 0
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def written(self) -> Path:
        """The file with every queued line on it, made (empty) when no attempt came: every report lists it."""
        self.flush()
        self._open()
        return self.path

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            self._fd = os.open(self.path, flags if self._resume else flags | os.O_TRUNC, 0o644)
        return self._fd

    def _learn(self) -> None:
        """After a restart: learn the attempts already on file and cut a torn last line (before any append)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        end = raw.rfind(b"\n") + 1
        for line in raw[:end].splitlines():
            try:
                self.seen.add(_key(json.loads(line)))
            except (ValueError, TypeError, AttributeError):
                continue                # a line the reader skips too: written again below if it is ours
        if end < len(raw):
            os.truncate(self.path, end)
