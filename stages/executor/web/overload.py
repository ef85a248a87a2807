"""Is a failed browser start the host's or the Grid's fault (the case is *broken*, retried with a fresh
browser) or the case's (a bad ``driverSetting``, a missing binary: a case error)? Pure on the facts;
``host_saturated`` is the one measurement, taken only when a start failed.

- remote (Selenium Grid): any failure to get a session is infrastructure: the Grid is down, its session
  queue timed out, its node failed to start Chromium;
- local: the messages of a start that a busy host breaks (Chromium crashed or was too slow to open its
  DevTools port, chromedriver unreachable or timing out), or any failure while the host is saturated,
  except those naming a configuration problem (missing binary, invalid argument) that no retry fixes.
"""
from __future__ import annotations

from pipeline.capacity import Limits, capacity
from pipeline.capacity_probe import measure

__all__ = ["CONFIG_START_MARKERS", "TRANSIENT_START_MARKERS", "host_saturated", "start_failure_is_infrastructure"]

# what no retry can fix, busy host or not: the configuration names something that is not there or not valid
CONFIG_START_MARKERS = ("no chrome binary", "cannot find", "no such file", "not found", "invalid argument",
                        "unrecognized", "permission denied", "is not executable")

TRANSIENT_START_MARKERS = (
    "devtoolsactiveport", "chrome not reachable", "timed out", "timeout", "connection refused", "max retries exceeded",
    "unable to connect", "crashed", "disconnected", "cannot connect", "connection reset", "remote end closed",
)


def start_failure_is_infrastructure(mode: str, message: str, transport_error: bool, saturated: bool) -> bool:
    """``transport_error``: the failure was an OSError/urllib3 error talking to the driver, not an answer."""
    low = message.lower()
    if mode == "remote":
        return True
    if any(m in low for m in CONFIG_START_MARKERS):
        return False
    return transport_error or saturated or any(m in low for m in TRANSIENT_START_MARKERS)


def host_saturated(limits: Limits | None = None) -> bool:
    """True when the host is over any capacity limit right now (load, memory, /dev/shm)."""
    try:
        _, why = capacity(measure(), limits or Limits(), pool=2)
    except OSError:
        return False
    return bool(why)
