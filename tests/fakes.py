"""Test doubles shared by unit tests: a recording mailbox and a manual clock.

``FakeMailbox`` stands in for ``pipeline.transport.Mailbox`` in stage tests that drive handlers directly:
it records every send (peer, kind, body as it travels, msg_id, the typed body) and never touches a socket.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.codec import Envelope, new_id
from pipeline.journal import Outbox
from pipeline.messages import BODIES, Kind, Message

__all__ = ["FakeClock", "FakeMailbox", "Sent", "envelope"]


@dataclass(frozen=True)
class Sent:
    peer: str
    kind: Kind
    body: dict[str, Any]            # the wire map (what the receiver decodes)
    msg_id: str
    typed: Message | None = None


@dataclass
class FakeMailbox:
    """Records sends in order; ``of(kind)`` filters them; ``clear()`` forgets them."""

    name: str = "fake"
    sent: list[Sent] = field(default_factory=list)
    outbox: Outbox = field(default_factory=Outbox)
    dead_lettered: int = 0
    sent_to: dict[str, int] = field(default_factory=dict)
    received: int = 0

    def send(self, peer: str, body: Message, *, msg_id: str | None = None) -> str:
        mid = msg_id or new_id()
        self.sent.append(Sent(peer, body.KIND, body.to_wire(), mid, body))
        return mid

    def of(self, kind: Kind, peer: str | None = None) -> list[Sent]:
        return [s for s in self.sent if s.kind is kind and (peer is None or s.peer == peer)]

    def clear(self) -> None:
        self.sent.clear()

    # the parts of Mailbox a Stage's tick() touches, as no-ops
    def flush_acks(self) -> None: ...
    def resend_due(self) -> int:
        return 0

    def close(self) -> None: ...


@dataclass
class FakeClock:
    """Monotonic time that only moves when told to."""

    now: float = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def envelope(kind: Kind, body: dict[str, Any], src: str = "test", inc: int = 0) -> Envelope[Message]:
    """An envelope as a stage's handler receives it after decoding (the map checked and typed as the codec does)."""
    return Envelope(kind=kind, body=BODIES[kind].from_wire(body), src=src, inc=inc)
