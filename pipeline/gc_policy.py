"""When a long-lived stage moves its heap out of the cyclic garbage collector's reach.

CPython's full (generation-2) collection walks every tracked object: the aggregator holding 50,000 results
and their rendered report parts spent 0.7 s in one, with ingest and acks stopped. Nearly all of that heap
is live for the whole task, so the stage collects the young generations and then ``gc.freeze()``s what
survived (moved to a permanent generation the collector never scans) every ``every_s`` seconds once at
least ``min_new`` messages were handled since the last time. A full collection then only ever walks what
is younger than a few seconds. The cost is that a reference cycle that becomes garbage after it was frozen
is only freed by reference counting (i.e. not at all): results and report parts are acyclic, and once no task
is in flight (every one reported and dropped) the stage ``thaw()``s, giving the collector everything back;
not before, as a thaw under a running task would hand the next full collection the whole heap again.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass

__all__ = ["FreezePolicy", "freeze_young", "thaw"]


@dataclass
class FreezePolicy:
    """Pure: ``due(now, handled, in_flight)`` says whether to freeze now (``now``: monotonic seconds, ``handled``:
    messages handled so far, ``in_flight``: tasks the stage holds state for; a stage with nothing new, or with no
    task, keeps its heap as it is); ``thaw_due(in_flight)`` whether to unfreeze: once, when no task is in flight
    after a freeze."""

    every_s: float = 1.0
    min_new: int = 100
    last: float | None = None
    handled: int = 0
    frozen: bool = False

    def due(self, now: float, handled: int, in_flight: int = 1) -> bool:
        if self.last is None:
            self.last, self.handled, self.frozen = now, handled, True
            return True                # after start-up: modules, config, the replayed journal
        if now - self.last < self.every_s or handled - self.handled < self.min_new or in_flight == 0:
            return False
        self.last, self.handled, self.frozen = now, handled, True
        return True

    def thaw_due(self, in_flight: int) -> bool:
        if not self.frozen or in_flight > 0:
            return False
        self.frozen = False
        return True


def freeze_young() -> None:
    """Collect generations 0 and 1 (young garbage cycles), then freeze everything that is left."""
    gc.collect(1)
    gc.freeze()


def thaw() -> None:
    """Give every frozen object back to the collector (the oldest generation): what the dropped tasks left in
    cycles is freed by the next full collection."""
    gc.unfreeze()
