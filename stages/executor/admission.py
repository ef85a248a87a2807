"""Executor-side admission for ``browsers = auto``: a browser executor above the host's current capacity
*parks*: it reports itself not idle, so the scheduler (which only hands work to idle executors) gives it
nothing, without knowing anything about capacity. The decision is ``pipeline.capacity.admission``; this
is the shell that samples the host about once a second (the median run queue of the last 10 s, not the
1-minute load average, which parks a pool for a minute after a burst that is over) and the browser's PSS more rarely (reading smaps
costs milliseconds per process)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pipeline.capacity import Admission, HostSample, Limits, admission
from pipeline.capacity_probe import browsers_pss_mb, limits_from, measure

__all__ = ["Admitter"]

log = logging.getLogger("stages.executor")

SAMPLE_S = 1.0
PSS_S = 15.0


def measure_recent(browser_mb: float) -> HostSample:
    """The host now, its load being the run queue of the last few seconds."""
    return measure(browser_mb, recent=True)


class Admitter:
    """Parks or admits one browser executor; ``parked`` is the reason while parked, else ""."""

    def __init__(self, rank: int, pool: int, limits: Limits,
                 sampler: Callable[[float], HostSample] = measure_recent) -> None:
        self.rank, self.pool, self.limits, self.sampler = rank, pool, limits, sampler
        self.parked = ""
        self.parked_since: float | None = None
        self.browser_mb = 0.0
        self._sampled = -1e9
        self._pss_at = -1e9
        self.last: Admission | None = None

    @classmethod
    def from_spec(cls, spec: Any, name: str) -> Admitter | None:
        """Only for a WEB executor of a ``browsers = auto`` engine (a fixed pool is what it was asked to be)."""
        if spec.setting("Pipeline", "browsers") != "auto":
            return None
        web = [e.name for e in spec.executor_specs() if "WEB" in e.kinds and not e.device]
        if name not in web:
            return None
        from pipeline import host_monitor
        host_monitor.monitor()      # sampling starts now, before the browser does: the first decision has a past
        return cls(web.index(name), len(web), limits_from(spec.config))

    def update(self, now: float, browser_pids: Callable[[], list[int]]) -> bool:
        """Re-decide (at most once per SAMPLE_S); True when the parked state changed."""
        if now - self._sampled < SAMPLE_S:
            return False
        self._sampled = now
        if now - self._pss_at >= PSS_S:
            pids = browser_pids()
            if pids:
                self._pss_at = now
                self.browser_mb = browsers_pss_mb(pids) or self.browser_mb
        try:
            sample = self.sampler(self.browser_mb)
        except OSError as e:          # cannot measure: never park on a guess
            log.warning("capacity not measured: %s", e)
            return self._set("", now)
        self.last = admission(sample, self.limits, self.pool, self.rank, self.parked_since, now)
        return self._set("" if self.last.admit else self.last.reason, now)

    def _set(self, reason: str, now: float) -> bool:
        was = bool(self.parked)
        if reason and not was:
            self.parked_since = now
            log.info("parked (rank %d, capacity %d of %d): %s", self.rank, self.last.capacity if self.last else 0,
                     self.pool, reason)
        elif not reason and was:
            self.parked_since = None
            log.info("admitted again (rank %d, capacity %d of %d)", self.rank, self.last.capacity if self.last else 0,
                     self.pool)
        if reason != "holding after park" or not was:
            self.parked = reason if reason else ""
        return was != bool(reason)
