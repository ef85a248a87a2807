"""New files (an attempt's Allure result and its text attachment) written on a thread of their own.

Creating a file is kernel work (~0.1 ms on a shared ext4 disk, two per attempt) during which the GIL is
free: done on the report thread it was a third of that thread's time, in series with the rendering. Here it
overlaps the rendering (and ingest), on the other core when there is one. ``drain`` waits for every file put
so far, stops the thread and returns the writes that failed: a builder drains before every report it
writes, so no thread outlives a write and a report never names a file that is not on disk yet.
"""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from stages.aggregator.pace import Pace
from stages.aggregator.writers._common import write_new

__all__ = ["FileQueue"]


class FileQueue:
    """``put(path, data)`` from one owner thread; ``drain()`` from the same thread."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[tuple[str | Path, bytes | str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._errors: list[OSError] = []
        self._pace = Pace(0.0001)   # one file's creation (50-600 µs of CPU on this project's VMs)

    def put(self, path: str | Path, data: bytes | str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="report-files", daemon=True)
            self._thread.start()
        self._q.put((path, data))

    def behind_s(self) -> float:
        """Seconds of writing queued (files waiting, at the recent cost of one)."""
        return self._q.qsize() * self._pace.seconds if self._thread is not None else 0.0

    def _run(self) -> None:
        self._pace.pause()
        while (item := self._q.get()) is not None:
            t0 = time.perf_counter()
            waited = self._q.qsize() > 0
            try:
                write_new(*item)
            except OSError as e:            # kept for drain(): the owner reports it as a storage fault
                self._errors.append(e)
            except Exception as e:          # noqa: BLE001 - bad data must not stop the files queued after it
                self._errors.append(OSError(f"cannot write {item[0]}: {type(e).__name__}: {e}"))
            self._pace.done(t0, waited)

    def drain(self) -> list[OSError]:
        """Wait until every file put so far is written; the failed writes (cleared)."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join()
            self._thread = None
        errors, self._errors = self._errors, []
        return errors
