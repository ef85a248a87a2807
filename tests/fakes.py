"""Test doubles shared by unit tests: a recording mailbox, a manual clock and a process that spawns nothing.

``FakeMailbox`` stands in for ``pipeline.transport.Mailbox`` in stage tests that drive handlers directly:
it records every send (peer, kind, body as it travels, msg_id, the typed body) and never touches a socket.
``FakeProcess`` is a ``ProcessHandle`` whose exit the test decides and whose signals are recorded (the supervision
unit tests).
"""
from __future__ import annotations

import datetime as _dt
import itertools
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.codec import Envelope, new_id
from pipeline.journal import Outbox
from pipeline.messages import BODIES, Kind, Message
from pipeline.process import ProcessHandle

__all__ = ["FakeClock", "FakeControl", "FakeMailbox", "FakeProcess", "Sent", "envelope"]


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
    pushes: int = 0

    def send(self, peer: str, body: Message, *, msg_id: str | None = None) -> str:
        mid = msg_id or new_id()
        self.sent.append(Sent(peer, body.KIND, body.to_wire(), mid, body))
        return mid

    def of(self, kind: Kind, peer: str | None = None) -> list[Sent]:
        return [s for s in self.sent if s.kind is kind and (peer is None or s.peer == peer)]

    def clear(self) -> None:
        self.sent.clear()

    inbox: list[Envelope] = field(default_factory=list)

    def deliver(self, *envs: Envelope) -> None:
        """Queue messages for the next ``poll`` / ``recv_nowait`` (a whole tick's worth of events)."""
        self.inbox.extend(envs)

    def poll(self, timeout_ms: int = 0) -> dict[Any, int]:
        return {}

    def recv_nowait(self) -> Envelope | None:
        return self.inbox.pop(0) if self.inbox else None

    # the parts of Mailbox a Stage's tick() touches, as no-ops
    def flush_acks(self) -> None: ...
    def cork(self) -> None: ...          # sends are recorded at once: a turn's batching is the real Mailbox's
    def uncork(self) -> None: ...
    def resend_due(self) -> int:
        return 0

    def close(self) -> None: ...


@dataclass
class FakeClock:
    """A ``pipeline.clock.Clock`` that only moves when told to; ``wall()`` moves with it (from ``epoch``)."""

    now: float = 1000.0
    epoch: float = 1_700_000_000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.epoch + self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def envelope(kind: Kind, body: dict[str, Any], src: str = "test", inc: int = 0,
             clock: FakeClock | None = None) -> Envelope[Message]:
    """An envelope as a stage's handler receives it after decoding (the map checked and typed as the codec does);
    ``clock``: sent at its ``wall()``."""
    typed = BODIES[kind].from_wire(body)
    if clock is None:
        return Envelope(kind=kind, body=typed, src=src, inc=inc)
    return Envelope(kind=kind, body=typed, src=src, inc=inc, sent_at=_dt.datetime.fromtimestamp(clock.wall(), _dt.UTC))


_PIDS = itertools.count(900_000)


class FakeProcess(ProcessHandle):
    """A stage process that never starts: ``spawn`` hands out a made-up pid, ``poll`` answers what
    ``exit(code)`` set, signals to the group are recorded (SIGKILL also ends it, as the kernel would)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: str | None = None, **kw: Any) -> None:
        super().__init__(argv, env, log_path, cwd, **kw)
        self.fake_pid = 0
        self.code: int | None = None
        self.signals: list[int] = []

    def spawn(self) -> int:
        self.fake_pid, self.code, self.term_sent_at = next(_PIDS), None, None
        self.started_at = self.clock.monotonic()
        return self.fake_pid

    @property
    def pid(self) -> int:
        return self.fake_pid

    def poll(self) -> int | None:
        return self.code

    def exit(self, code: int) -> None:
        self.code = code

    def signal_group(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGKILL and self.code is None:
            self.code = -signal.SIGKILL



@dataclass
class FakeControl:
    """The supervisor's control socket without a socket: ``ask(req)`` is answered by the next tick."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)

    def ask(self, req: dict[str, Any]) -> None:
        self.requests.append(req)

    def serve_pending(self, handle: Any) -> None:
        while self.requests:
            self.replies.append(handle(self.requests.pop(0)))

    def start(self) -> None: ...
    def close(self) -> None: ...
