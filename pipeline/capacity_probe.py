"""The measuring shell around ``capacity`` (psutil, ``/dev/shm``, a Grid's ``/status``), and the resolution
of ``[Pipeline] browsers`` (a number, ``auto`` or ``grid``) to the number of browser executors to start."""
from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

import psutil

from . import host_monitor
from .capacity import HostSample, Limits, pool_size, recent_load
from .errors import ConfigError

__all__ = ["BROWSER_MODES", "browser_count", "browsers_pss_mb", "grid_slots", "limits_from", "measure", "tree_rss_mb"]

BROWSER_MODES = ("auto", "grid")
SHM = "/dev/shm"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def measure(browser_mb: float = 0.0, recent: bool = False) -> HostSample:
    """The host now; ``browser_mb`` is the caller's last PSS measurement of its browser (expensive, so rarer).
    ``recent`` (an executor's admission): ``load1`` is the run queue of the last few seconds, from the host
    monitor's samples (its thread starts on the first call, so never in the supervisor, which forks the
    launcher only while it has no thread; ``recent_load`` says how its first seconds are judged)."""
    try:
        shm_free = shutil.disk_usage(SHM).free / 2**20
    except OSError:
        shm_free = 0.0
    load = -1.0
    if recent:
        mon = host_monitor.monitor()
        samples = mon.samples() or [(time.monotonic(), mon.sample())]     # a first call decides on the host now
        load = recent_load(samples, time.monotonic(), before=host_monitor.before())
    return HostSample(cores=_cores(), load1=load if load >= 0 else os.getloadavg()[0],
                      mem_available_mb=psutil.virtual_memory().available / 2**20, shm_free_mb=shm_free, browser_mb=browser_mb)


def _tree(pids: Iterable[int]) -> list[psutil.Process]:
    """``pids`` and all their descendants, each once (gone ones skipped)."""
    out: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for p in procs:
            out.setdefault(p.pid, p)
    return list(out.values())


def browsers_pss_mb(pids: Iterable[int]) -> float:
    """PSS (proportional set size: shared pages split among their users) of ``pids`` and all their
    descendants, in MB: what one browser really costs, unlike RSS which counts shared libraries in full."""
    total = 0
    for p in _tree(pids):
        try:
            total += int(getattr(p.memory_full_info(), "pss", 0) or p.memory_info().rss)
        except psutil.Error:
            continue
    return total / 2**20


def tree_rss_mb(pids: Iterable[int]) -> float:
    """RSS of ``pids`` and their descendants in MB (cheap; the recycling limit)."""
    total = 0
    for p in _tree(pids):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def limits_from(values: dict[str, dict[str, Any]]) -> Limits:
    c = values.get("Capacity") or {}
    d = Limits()
    return Limits(cores_per_browser=float(c.get("cores-per-browser", d.cores_per_browser)),
                  max_load=float(c.get("max-load", d.max_load)), min_free_mb=float(c.get("min-free-mb", d.min_free_mb)),
                  browser_mb=float(c.get("browser-mb", d.browser_mb)),
                  shm_per_browser_mb=float(c.get("shm-per-browser-mb", d.shm_per_browser_mb)),
                  max_browsers=int(c.get("max-browsers", d.max_browsers)), hold_s=float(c.get("hold", d.hold_s)))


def grid_slots(url: str, timeout: float = 5.0) -> int:
    """Session slots of a Selenium Grid 4 (``GET <url>/status``: ``value.nodes[].slots``); raises
    ConfigError naming the URL when the Grid does not answer or is not ready."""
    status = url.rstrip("/") + "/status"
    try:
        with urllib.request.urlopen(status, timeout=timeout) as r:
            body = json.loads(r.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError) as e:
        raise ConfigError(f"browsers = grid: the Grid at {status} does not answer ({e})", section="WebDriver",
                          key="remote-url") from None
    value = body.get("value") if isinstance(body, dict) else None
    nodes = value.get("nodes") if isinstance(value, dict) else None
    if not isinstance(nodes, list):
        raise ConfigError(f"browsers = grid: {status} is not a Selenium Grid 4 status (no value.nodes)",
                          section="WebDriver", key="remote-url")
    slots = sum(len(n.get("slots") or []) for n in nodes if isinstance(n, dict) and n.get("availability", "UP") == "UP")
    if slots < 1:
        raise ConfigError(f"browsers = grid: the Grid at {status} has no node slot up", section="WebDriver", key="remote-url")
    return slots


def browser_count(values: dict[str, dict[str, Any]]) -> int:
    """Browser executors for ``[Pipeline] browsers``: the number itself, the host's capacity (``auto``) or
    the Grid's slots (``grid``, from ``[WebDriver] remote-url``)."""
    raw = values["Pipeline"]["browsers"]
    if raw == "auto":
        try:
            host_monitor.record_before()        # before the run starts anything: see capacity.recent_load
        except OSError:
            pass
        return pool_size(measure(), limits_from(values))
    if raw == "grid":
        url = str(values.get("WebDriver", {}).get("remote-url") or "")
        if not url:
            raise ConfigError("browsers = grid needs [WebDriver] remote-url (the Grid's URL)", section="WebDriver",
                              key="remote-url")
        return grid_slots(url)
    return int(raw)
