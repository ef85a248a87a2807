"""When a long-lived stage moves its heap out of the cyclic garbage collector's reach.

CPython's full (generation-2) collection walks every tracked object: the aggregator holding 50,000 results
and their rendered report parts spent 0.7 s in one, with ingest and acks stopped. Nearly all of that heap
is live for the whole task, so the stage collects the young generations and then ``gc.freeze()``s what
survived (moved to a permanent generation the collector never scans) every ``every_s`` seconds once at
least ``min_new`` messages were handled since the last time. A full collection then only ever walks what
is younger than a few seconds. The cost is that a reference cycle that becomes garbage after it was frozen
is only freed by reference counting (i.e. not at all): results and report parts are acyclic, and
``gc.unfreeze()`` before a task's state is dropped would give the collector everything back.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass

__all__ = ["FreezePolicy", "freeze_young"]


@dataclass
class FreezePolicy:
    """Pure: ``due(now, handled)`` says whether to freeze now (``now``: monotonic seconds, ``handled``: messages
    handled so far; a stage with nothing new keeps its heap as it is)."""

    every_s: float = 1.0
    min_new: int = 100
    last: float | None = None
    handled: int = 0

    def due(self, now: float, handled: int) -> bool:
        if self.last is None:
            self.last, self.handled = now, handled
            return True                # after start-up: modules, config, the replayed journal
        if now - self.last < self.every_s or handled - self.handled < self.min_new:
            return False
        self.last, self.handled = now, handled
        return True


def freeze_young() -> None:
    """Collect generations 0 and 1 (young garbage cycles), then freeze everything that is left."""
    gc.collect(1)
    gc.freeze()
