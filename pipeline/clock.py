"""Where the framework reads the time: one ``Clock`` handed to the supervisor, its watchers and processes,
every stage and its mailbox, so the supervision core runs under ``tests.fakes.FakeClock`` without sleeping.

``monotonic()`` is for every interval and deadline; ``wall()`` (seconds since the epoch) only for what is
compared with an envelope's ``sent_at`` or shown to a person.
"""
from __future__ import annotations

import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def wall(self) -> float: ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``time.time``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


SYSTEM_CLOCK: Clock = SystemClock()
