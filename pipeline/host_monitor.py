"""A background sampler of the host (run queue, available memory) every half second, kept for ten minutes,
so that a WebDriver timeout can be judged on what the host did *during* the wait (``capacity.saturation``):
one per process, started on first use; a sample costs two small ``/proc`` reads."""
from __future__ import annotations

import os
import threading
import time
from collections import deque

import psutil

from .capacity import HostSample

__all__ = ["BEFORE_ENV", "HostMonitor", "before", "monitor", "record_before", "runnable_now"]

PERIOD_S = 0.5
KEEP = 1200          # ten minutes at PERIOD_S
BEFORE_ENV = "LIUMA_HOST_RUNNABLE"     # "<monotonic time> <runnable>": the host before the run started anything


def runnable_now() -> float:
    """Runnable processes right now (``procs_running`` of /proc/stat), less the one reading it."""
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("procs_running"):
                return max(0.0, float(line.split()[1]) - 1)
    raise OSError("/proc/stat has no procs_running")


def record_before(reads: int = 5, gap: float = 0.02) -> float:
    """Measure the run queue before this run starts any process of its own (the median of a few reads, an
    instant is noisy) and leave it in the environment, which every stage inherits: an executor's first
    admission decisions compare it with what its young monitor sees, which is mostly its own pool starting."""
    values = []
    for i in range(reads):
        if i:
            time.sleep(gap)
        values.append(runnable_now())
    value = sorted(values)[len(values) // 2]
    os.environ[BEFORE_ENV] = f"{time.monotonic():.3f} {value:g}"
    return value


def before() -> tuple[float, float] | None:
    """``record_before``'s ``(monotonic time, runnable)``, None when not recorded or unreadable."""
    try:
        t, v = os.environ[BEFORE_ENV].split()
        return float(t), float(v)
    except (KeyError, ValueError):
        return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class HostMonitor:
    """``samples()``: ``(monotonic time, HostSample)`` pairs, oldest first."""

    def __init__(self, period: float = PERIOD_S) -> None:
        self.period = period
        self._samples: deque[tuple[float, HostSample]] = deque(maxlen=KEEP)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="host-monitor", daemon=True)
        self._thread.start()

    def sample(self) -> HostSample:
        return HostSample(cores=_cores(), load1=os.getloadavg()[0], mem_available_mb=psutil.virtual_memory().available / 2**20,
                          shm_free_mb=-1.0, runnable=runnable_now())

    def _run(self) -> None:
        while True:
            try:
                s = self.sample()
            except Exception:  # noqa: BLE001 - an unreadable sample is skipped, the sampler lives on
                time.sleep(self.period * 4)
                continue
            with self._lock:
                self._samples.append((time.monotonic(), s))
            time.sleep(self.period)

    def samples(self) -> list[tuple[float, HostSample]]:
        with self._lock:
            return list(self._samples)


_monitor: HostMonitor | None = None
_monitor_lock = threading.Lock()


def monitor() -> HostMonitor:
    """The process's monitor (started on the first call)."""
    global _monitor
    with _monitor_lock:
        if _monitor is None:
            _monitor = HostMonitor()
        return _monitor
