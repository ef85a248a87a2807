"""At-least-once delivery bookkeeping: the sender's ``Outbox`` (unacked messages, re-sent with backoff) and
the receiver's ``SeenIds`` (de-duplication by ``msg_id``), plus ``AppendLog``, an append-only on-disk
journal of msgpack records used by stages whose in-memory state would otherwise lose results.

Pure bookkeeping: no sockets, time passed in, so the policy is table-testable (STYLE rule 4).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from .codec import as_wire

__all__ = ["Pending", "Outbox", "SeenIds", "AppendLog"]


@dataclass(slots=True)
class Pending:
    peer: str
    frame: bytes
    kind: str
    due: float
    tries: int = 1


class Outbox:
    """Messages sent but not yet acknowledged. ``due(now)`` yields those whose resend time has come;
    the delay doubles per try from ``first`` up to ``cap`` seconds. Nothing is ever dropped here:
    a peer that is away for an hour gets the message when it is back."""

    def __init__(self, first: float = 1.0, cap: float = 8.0) -> None:
        self.first, self.cap = first, cap
        self._items: dict[str, Pending] = {}

    def track(self, msg_id: str, peer: str, frame: bytes, kind: str, now: float) -> None:
        self._items[msg_id] = Pending(peer, frame, kind, now + self.first)

    def ack(self, msg_ids: list[str]) -> int:
        return sum(1 for m in msg_ids if self._items.pop(m, None) is not None)

    def due(self, now: float) -> Iterator[tuple[str, Pending]]:
        for msg_id, p in list(self._items.items()):
            if p.due <= now:
                p.tries += 1
                p.due = now + min(self.cap, self.first * 2 ** (p.tries - 1))
                yield msg_id, p

    def drop_peer(self, peer: str) -> list[str]:
        """Forget messages for a peer that will never come back (e.g. an executor removed from the pool)."""
        gone = [m for m, p in self._items.items() if p.peer == peer]
        for m in gone:
            del self._items[m]
        return gone

    def __len__(self) -> int:
        return len(self._items)

    def pending_for(self, peer: str) -> int:
        return sum(1 for p in self._items.values() if p.peer == peer)


class SeenIds:
    """Bounded memory of received reliable ``msg_id``s: a re-sent message is acked again but handled once."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def check_and_add(self, msg_id: str) -> bool:
        """True the first time an id is seen."""
        if msg_id in self._ids:
            return False
        self._ids[msg_id] = None
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True


class AppendLog:
    """Append-only file of msgpack records. ``append`` writes and flushes; ``sync`` fsyncs (call it
    before acknowledging what was appended); ``replay`` yields every intact record and stops quietly at a
    torn tail left by a crash mid-write (the tail is truncated so later appends stay readable).

    ``flush_each=False`` keeps appended records in a 1 MB buffer until ``sync``: for a stage that sends
    nothing derived from a record before the record is synced (the aggregator: its acks, progress and
    forwards leave after ``before_ack``'s sync), a write syscall per record was pure cost. The scheduler
    keeps the default: it dispatches from state it journaled after the turn's sync."""

    def __init__(self, path: Path, on_error: Callable[[str], None] | None = None, *, flush_each: bool = True) -> None:
        """``on_error``: a failed write (disk full, I/O error) is handed to it as text naming the file and
        errno and the stage goes on from memory, instead of the error killing the handler (and the message)."""
        self.path = path
        self.on_error = on_error
        self.flush_each = flush_each
        self._fh: Any = None

    def _failed(self, e: OSError) -> None:
        if self.on_error is None:
            raise e
        from .storage import fault_text
        self.on_error(fault_text(e, self.path))

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab", buffering=-1 if self.flush_each else 2**20)
        except OSError as e:
            self._failed(e)

    def append(self, record: Any) -> None:
        if self._fh is None:
            self.open()
            if self._fh is None:
                return
        try:
            data = msgpack.packb(record, use_bin_type=True, datetime=True)
        except OverflowError:                   # an integer beyond 64 bits: journal it as text (codec.as_wire)
            data = msgpack.packb(as_wire(record), use_bin_type=True, datetime=True)
        try:
            self._fh.write(data)
            if self.flush_each:
                self._fh.flush()
        except OSError as e:
            self._failed(e)

    def sync(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            except OSError as e:
                self._failed(e)

    def replay(self) -> Iterator[Any]:
        if not self.path.exists():
            return
        good = 0
        with open(self.path, "rb") as fh:
            unpacker = msgpack.Unpacker(fh, raw=False, timestamp=3, strict_map_key=False)
            try:
                for record in unpacker:
                    good = unpacker.tell()
                    yield record
            except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
                pass
        if good < self.path.stat().st_size:     # torn tail from a crash mid-append
            with open(self.path, "r+b") as fh:
                fh.truncate(good)

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError as e:              # the buffered tail could not be written
                self._fh = None
                self._failed(e)
            self._fh = None
