"""Outbox (resend schedule, ack, drop_peer), SeenIds (bounded de-dup) and AppendLog (torn-tail replay)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgpack
import pytest

from pipeline.journal import AppendLog, Outbox, SeenIds


def due_times(box: Outbox, start: float, until: float, step: float = 0.25) -> list[float]:
    """Times at which ``due`` yields the one tracked message, scanning a fake timeline."""
    out, t = [], start
    while t <= until:
        if list(box.due(t)):
            out.append(t)
        t += step
    return out


@pytest.mark.parametrize("first, cap, expected", [
    (1.0, 8.0, [1.0, 3.0, 7.0, 15.0, 23.0, 31.0]),        # +1 +2 +4 +8 +8 +8
    (0.5, 1.0, [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]),           # +0.5 then capped at 1
    (2.0, 2.0, [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]),
])
def test_outbox_resend_schedule_doubles_to_the_cap(first: float, cap: float, expected: list[float]) -> None:
    box = Outbox(first, cap)
    box.track("m", "peer", b"frame", "unit.done", now=0.0)
    assert due_times(box, 0.0, expected[-1]) == expected


def test_outbox_counts_tries_and_keeps_the_frame() -> None:
    box = Outbox(1.0, 8.0)
    box.track("m", "executor-1", b"F", "unit.run", now=10.0)
    assert list(box.due(10.5)) == []
    [(mid, p)] = list(box.due(11.0))
    assert (mid, p.peer, p.frame, p.kind, p.tries) == ("m", "executor-1", b"F", "unit.run", 2)


def test_ack_removes_only_known_ids_and_stops_resends() -> None:
    box = Outbox()
    for m, peer in (("a", "x"), ("b", "x"), ("c", "y")):
        box.track(m, peer, b"", "k", now=0.0)
    assert box.ack(["a", "zzz", "a"]) == 1
    assert len(box) == 2
    assert sorted(m for m, _ in box.due(100.0)) == ["b", "c"]
    assert box.ack(["b", "c"]) == 2
    assert list(box.due(1000.0)) == [] and len(box) == 0


def test_drop_peer_forgets_only_that_peer() -> None:
    box = Outbox()
    for m, peer in (("a", "executor-1"), ("b", "executor-2"), ("c", "executor-1")):
        box.track(m, peer, b"", "k", now=0.0)
    assert sorted(box.drop_peer("executor-1")) == ["a", "c"]
    assert (box.pending_for("executor-1"), box.pending_for("executor-2"), len(box)) == (0, 1, 1)
    assert box.drop_peer("nobody") == []


def test_nothing_is_dropped_however_long_the_peer_is_away() -> None:
    box = Outbox(1.0, 8.0)
    box.track("m", "p", b"", "k", now=0.0)
    assert len(due_times(box, 0.0, 3600.0, step=1.0)) > 400
    assert len(box) == 1


def test_seen_ids_first_time_only() -> None:
    seen = SeenIds()
    assert [seen.check_and_add(m) for m in ("a", "b", "a", "b", "c")] == [True, True, False, False, True]


def test_seen_ids_is_bounded_and_forgets_the_oldest() -> None:
    seen = SeenIds(limit=3)
    for m in ("a", "b", "c", "d"):
        assert seen.check_and_add(m)
    assert len(seen._ids) == 3
    assert seen.check_and_add("a") is True            # evicted, so "new" again
    assert seen.check_and_add("d") is False


RECORDS = [["planned", {"task_id": "t"}], ["result", {"caseId": "k", "index": 1, "blob": b"\x00\x01"}],
           ["at", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)], ["finished", {"expected": [[1, 2]]}]]


def test_append_log_replays_every_record(tmp_path: Path) -> None:
    log = AppendLog(tmp_path / "state" / "agg.journal")
    assert list(log.replay()) == []                    # no file yet
    for r in RECORDS:
        log.append(r)
    log.sync()
    log.close()
    assert list(AppendLog(log.path).replay()) == RECORDS


def packed_sizes() -> list[int]:
    return [len(msgpack.packb(r, use_bin_type=True, datetime=True)) for r in RECORDS]


@pytest.mark.parametrize("cut", [1, 2, 5])
def test_torn_tail_keeps_intact_records_and_stays_appendable(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "j"
    log = AppendLog(path)
    for r in RECORDS:
        log.append(r)
    log.close()
    size = path.stat().st_size
    assert size == sum(packed_sizes())
    with open(path, "r+b") as fh:                       # a crash mid-append of the last record
        fh.truncate(size - cut)
    assert list(AppendLog(path).replay()) == RECORDS[:-1]
    assert path.stat().st_size == sum(packed_sizes()[:-1])   # the torn bytes are gone
    again = AppendLog(path)
    again.open()
    again.append(["after", 1])
    again.sync()
    again.close()
    assert list(AppendLog(path).replay()) == RECORDS[:-1] + [["after", 1]]


def test_garbage_tail_is_cut_too(tmp_path: Path) -> None:
    path = tmp_path / "j"
    log = AppendLog(path)
    log.append(RECORDS[0])
    log.close()
    with open(path, "ab") as fh:
        fh.write(b"\xc1\xc1\xc1")                       # never-used msgpack byte
    assert list(AppendLog(path).replay()) == RECORDS[:1]
    assert path.stat().st_size == packed_sizes()[0]


def test_a_buffered_append_log_writes_at_sync_and_replays_the_same(tmp_path: Path) -> None:
    log = AppendLog(tmp_path / "j", flush_each=False)
    for r in RECORDS:
        log.append(r)
    assert log.path.stat().st_size == 0                # in the buffer: nothing derived from them was sent yet
    log.sync()
    assert log.path.stat().st_size == sum(packed_sizes())
    assert list(AppendLog(log.path).replay()) == RECORDS
    log.append(["after", 1])
    log.close()                                        # closing writes the buffered tail too
    assert list(AppendLog(log.path).replay()) == RECORDS + [["after", 1]]
