"""The freeze policy of long-lived stages: the first call freezes (start-up), then at most once per period
and only after enough new messages; freezing collects the young cycles first and leaves survivors frozen."""
from __future__ import annotations

import gc
import weakref

from pipeline.gc_policy import FreezePolicy, freeze_young, thaw


def test_first_call_freezes_then_once_per_period_after_enough_messages() -> None:
    p = FreezePolicy(every_s=1.0, min_new=100)
    assert p.due(10.0, 0)                   # after start-up
    assert not p.due(10.5, 500)             # too soon
    assert not p.due(11.5, 50)              # not enough new messages
    assert p.due(11.5, 150)
    assert not p.due(13.0, 200)             # 50 new since the last freeze
    assert p.due(13.0, 250)


def test_thaw_only_once_no_task_is_in_flight_and_no_freeze_while_none_is() -> None:
    p = FreezePolicy(every_s=1.0, min_new=100)
    assert not p.thaw_due(0)                # nothing frozen yet
    assert p.due(10.0, 0, in_flight=0)      # start-up freezes whatever runs
    assert not p.thaw_due(2)                # a task in flight: its heap stays frozen
    assert p.thaw_due(0)
    assert not p.thaw_due(0)                # once
    assert not p.due(20.0, 500, in_flight=0)     # idle: no freeze (heartbeats only), so no thaw/freeze churn
    assert p.due(20.0, 500, in_flight=1)
    assert p.thaw_due(0)


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_freeze_young_frees_young_cycles_and_freezes_the_rest() -> None:
    gc.unfreeze()
    try:
        garbage = _Node()
        gone = weakref.ref(garbage)
        del garbage                          # a cycle: only the collector frees it
        kept = _Node()
        before = gc.get_freeze_count()
        freeze_young()
        assert gone() is None
        assert gc.get_freeze_count() > before
        assert all(o is not kept for o in gc.get_objects())      # frozen: out of every generation the collector walks
        thaw()
        assert gc.get_freeze_count() == 0 and any(o is kept for o in gc.get_objects())
    finally:
        gc.unfreeze()
