"""Host capacity for browsers: how many to start (``[Pipeline] browsers = auto``) and whether a browser
executor may take work now. Pure: a :class:`HostSample` (measured elsewhere, see ``capacity_probe``) and the
time go in, a decision comes out, so every threshold is unit-tested without a loaded machine.

Why: a fixed pool either wastes the host or turns host overload into product failures (renderer crashes,
WebDriver timeouts). Browsers are sized by cores (``cores-per-browser``), by available memory against the
measured PSS of our own browsers, and by free ``/dev/shm``; at run time an executor above the current
capacity *parks* (withholds its credit) instead of taking a unit while load or memory are over the limits.
The executor of rank 0 is never parked, so a suite always progresses.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Admission", "HostSample", "Limits", "admission", "capacity", "pool_size", "recent_load", "saturation", "spare_room"]


@dataclass(frozen=True, slots=True)
class HostSample:
    """One measurement of the host. ``browser_mb``: measured PSS of one of our browsers (chromedriver,
    Chromium and its helpers), 0 when none was measured yet."""

    cores: int
    load1: float
    mem_available_mb: float
    shm_free_mb: float
    browser_mb: float = 0.0
    runnable: float = -1.0    # processes runnable at that instant (``procs_running``), -1 when not measured


@dataclass(frozen=True, slots=True)
class Limits:
    """``[Capacity]``: the budget per browser and the limits above which no further unit is admitted."""

    cores_per_browser: float = 0.5     # docker-selenium budgets 1; our cases mostly wait on pages and timers
    max_load: float = 6.0              # runnable per core (recent_load); a pool of 2 per core causes 4-5
    min_free_mb: float = 512.0         # memory kept free for everything else on the host
    browser_mb: float = 350.0          # assumed PSS of a browser until one of ours is measured
    shm_per_browser_mb: float = 64.0
    max_browsers: int = 16
    hold_s: float = 3.0                # a parked executor stays parked at least this long (no flapping)


@dataclass(frozen=True, slots=True)
class Admission:
    admit: bool
    capacity: int
    reason: str            # why parked ("" when admitted)


def _per_browser(sample: HostSample, limits: Limits) -> float:
    return sample.browser_mb if sample.browser_mb > 0 else limits.browser_mb


def pool_size(sample: HostSample, limits: Limits) -> int:
    """Browsers to start for ``browsers = auto``: the smallest of what cores, memory and ``/dev/shm`` allow
    (at least 1, at most ``max_browsers``)."""
    by_cores = math.floor(max(1, sample.cores) / max(0.05, limits.cores_per_browser))
    by_mem = math.floor(max(0.0, sample.mem_available_mb - limits.min_free_mb) / _per_browser(sample, limits))
    by_shm = math.floor(sample.shm_free_mb / max(1.0, limits.shm_per_browser_mb))
    return max(1, min(by_cores, by_mem, by_shm, limits.max_browsers))


def capacity(sample: HostSample, limits: Limits, pool: int) -> tuple[int, str]:
    """How many of the ``pool`` browser executors (each already holding its browser) may run a case now,
    and the binding limit ("" when none binds)."""
    cap, why = pool, ""
    cores = max(1, sample.cores)
    load = sample.load1 / cores
    if load > limits.max_load:
        by_load = max(1, math.floor(pool * limits.max_load / load))
        if by_load < cap:
            cap, why = by_load, f"load {sample.load1:.1f} on {cores} cores > {limits.max_load:g}/core"
    short = limits.min_free_mb - sample.mem_available_mb
    if short > 0:                      # each parked browser is one fewer page set growing in memory
        by_mem = max(1, pool - math.ceil(short / _per_browser(sample, limits)))
        if by_mem < cap:
            cap, why = by_mem, f"available memory {sample.mem_available_mb:.0f} MB < {limits.min_free_mb:g} MB"
    if sample.shm_free_mb < limits.shm_per_browser_mb:
        cap, why = 1, f"/dev/shm free {sample.shm_free_mb:.0f} MB < {limits.shm_per_browser_mb:g} MB"
    return cap, why


def admission(sample: HostSample, limits: Limits, pool: int, rank: int, parked_since: float | None,
              now: float) -> Admission:
    """May the browser executor of 0-based ``rank`` among ``pool`` take a unit at ``now``? A parked one
    (``parked_since`` set) is released only after ``hold_s``, so a load average hovering at the limit does
    not flip it every second."""
    cap, why = capacity(sample, limits, pool)
    if rank < cap:
        if parked_since is not None and now - parked_since < limits.hold_s:
            return Admission(False, cap, "holding after park")
        return Admission(True, cap, "")
    return Admission(False, cap, why or f"rank {rank} above capacity {cap}")


def spare_room(sample: HostSample, limits: Limits) -> str:
    """Why no spare browser may be started now ("" when it may): one more browser must fit in the available
    memory above ``min-free-mb`` (at the measured PSS of ours) and in free ``/dev/shm``."""
    need = _per_browser(sample, limits)
    room = sample.mem_available_mb - limits.min_free_mb
    if room < need:
        return f"available memory {sample.mem_available_mb:.0f} MB leaves {room:.0f} MB above min-free-mb, < one browser ({need:.0f} MB)"
    if sample.shm_free_mb < limits.shm_per_browser_mb:
        return f"/dev/shm free {sample.shm_free_mb:.0f} MB < {limits.shm_per_browser_mb:g} MB"
    return ""


def recent_load(samples: Sequence[tuple[float, HostSample]], now: float, span: float = 10.0, least: int = 5,
                before: tuple[float, float] | None = None) -> float:
    """The median number of runnable processes over the last ``span`` seconds of ``(time, sample)`` pairs
    (oldest first). Admission reads this, not the 1-minute load average, which still carries a finished burst
    (the previous suite's browsers) for a minute and parks a pool the host could run now; the median, not the
    mean, so that the few seconds of run queue our own browsers' start-up causes (~15 runnable per core here)
    do not park the pool they belong to, while a load that lasts does.

    While the samples do not reach back ``span`` seconds or hold fewer than ``least`` measurements (a monitor
    just started: its first seconds are our own stages and browsers starting), the median so far is mostly
    our own start-up: then the smaller of it and ``before``, ``(time, runnable)`` measured before the run
    started anything (``host_monitor.record_before``), so the pool parks at its start only when the host was
    busy before it came and still is. Without a ``before`` of the last ``span`` seconds (an executor
    restarted later) the newest sample's 1-minute average stands in for it. -1 when nothing was measured in
    the last ``span`` seconds."""
    recent = [(t, s) for t, s in samples if now - span <= t <= now and s.runnable >= 0]
    if not recent:
        return -1.0
    window = sorted(s.runnable for _, s in recent)
    mid = len(window) // 2
    median = window[mid] if len(window) % 2 else (window[mid - 1] + window[mid]) / 2
    if samples[0][0] > now - span or len(window) < least:
        prior = before[1] if before is not None and now - span <= before[0] <= now else recent[-1][1].load1
        return min(median, prior)
    return median


def saturation(samples: Sequence[tuple[float, HostSample]], limits: Limits, start: float, end: float) -> str:
    """Why the host was saturated during ``[start, end]`` ("" when it was not), from ``(time, sample)`` pairs
    taken meanwhile (the last one before ``start`` when none falls inside: a short wait): the mean number of
    runnable processes per core above ``max-load``, or available memory below ``min-free-mb`` at any sample.
    Instant run-queue samples, not the 1-minute load average, which lags a burst by tens of seconds."""
    window = [s for t, s in samples if start <= t <= end] or [s for t, s in samples if t <= start][-1:]
    window = [s for s in window if s.runnable >= 0]
    if not window:
        return ""
    cores = max(1, window[0].cores)
    runnable = sum(s.runnable for s in window) / len(window)
    if runnable / cores > limits.max_load:
        return (f"load {runnable:.1f} runnable on {cores} cores > {limits.max_load:g}/core "
                f"(mean of {len(window)} samples over {max(0.0, end - start):.1f} s)")
    low = min(s.mem_available_mb for s in window)
    if low < limits.min_free_mb:
        return f"available memory {low:.0f} MB < {limits.min_free_mb:g} MB"
    return ""
