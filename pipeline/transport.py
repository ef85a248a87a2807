"""ZeroMQ plumbing: one ``Mailbox`` per stage process = a PULL inbox bound at the stage's own endpoint and a
PUSH socket per peer it talks to (created lazily, connected to the peer's inbox).

The only module that touches zmq (STYLE rule 7). Reliability lives here too, because bare PUSH/PULL loses
whatever sits in a dead peer's pipe: kinds in ``messages.RELIABLE`` are tracked in an ``Outbox`` until the
receiver's ``msg.ack`` arrives and re-sent otherwise; the receiver acks every copy and hands each ``msg_id``
to the stage once. Undecodable frames are dead-lettered (logged with what could be read) and skipped.

Corking (``cork``/``uncork``, what ``Stage.tick`` does around each loop turn): the frames of a turn are held
per peer and pushed as one multipart ZeroMQ message when the turn ends. Every frame is still a whole envelope
with its own ``msg_id``, tracked, acked and de-duplicated one by one, so delivery is exactly as above; what
is saved is a ZeroMQ send, an I/O-thread wake-up and a receiver poll per frame, which at a few thousand cases
a second was most of the engine's CPU. The receiver takes single frames and multipart messages alike.
"""
from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from .clock import SYSTEM_CLOCK, Clock
from .codec import Envelope, decode, encode, wrap
from .errors import CodecError, SendError
from .journal import Outbox, SeenIds
from .messages import RELIABLE, Ack, Message

__all__ = ["Mailbox", "Notifier", "ipc_endpoint", "ControlServer", "control_request"]

log = logging.getLogger("pipeline.transport")
dead_letters = logging.getLogger("pipeline.deadletter")

HWM = 10_000           # per pipe; credits keep real queues short, this only bounds a runaway sender
BATCH_FRAMES = 500     # a corked turn's frames to one peer: at most this many per multipart message ...
BATCH_BYTES = 8 * 2**20   # ... and about this many bytes (a frame larger than that goes alone)
LINGER_MS = 500        # close() waits at most this long for unsent frames (reliable ones are re-sent anyway)


def ipc_endpoint(run_dir: Path, name: str) -> str:
    return f"ipc://{run_dir / (name + '.sock')}"


class Mailbox:
    """``send(peer, body)`` and ``recv(timeout)`` for one stage instance (``name``, incarnation ``inc``).

    ``resolve(name) -> endpoint`` maps peer names to endpoints (the topology). ``curve`` optionally holds
    callables that configure a server/client socket for CURVE on tcp endpoints.
    """

    def __init__(self, name: str, inc: int, resolve: Callable[[str], str],
                 *, resend_first: float = 1.0, resend_cap: float = 8.0,
                 curve_server: Callable[[Any], None] | None = None,
                 curve_client: Callable[[Any], None] | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.name, self.inc, self.resolve, self.clock = name, inc, resolve, clock
        self.outbox = Outbox(resend_first, resend_cap)
        self.seen = SeenIds()
        self.curve_server, self.curve_client = curve_server, curve_client
        self.ctx: zmq.Context[Any] | None = None
        self.inbox: zmq.Socket[Any] | None = None
        self.peers: dict[str, zmq.Socket[Any]] = {}
        self.poller = zmq.Poller()
        self.dead_lettered = 0
        self.on_ack: Callable[[list[str]], None] | None = None
        self._to_ack: dict[str, list[str]] = {}
        self.sent_to: dict[str, int] = {}        # frames pushed per peer (re-sends and acks included): status/bench
        self.received = 0
        self.pushes = 0                          # ZeroMQ messages sent (a corked turn's frames to a peer: one)
        self._corked: dict[str, list[tuple[bytes, bool, str]]] | None = None   # peer -> (frame, reliable, kind)
        self._parts: collections.deque[bytes] = collections.deque()            # received frames not handed out yet

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Create sockets (after fork: a fresh context per process) and bind the inbox."""
        self.ctx = zmq.Context()
        self.inbox = self.ctx.socket(zmq.PULL)
        self.inbox.setsockopt(zmq.RCVHWM, HWM)
        self.inbox.setsockopt(zmq.LINGER, 0)
        endpoint = self.resolve(self.name)
        if endpoint.startswith("tcp://") and self.curve_server:
            self.curve_server(self.inbox)
        try:
            self.inbox.bind(endpoint)
        except zmq.ZMQError as e:
            raise SendError(f"{self.name}: cannot bind inbox {endpoint}: {e}") from e
        if endpoint.startswith("ipc://"):
            os.chmod(endpoint[len("ipc://"):], 0o600)
        self.poller.register(self.inbox, zmq.POLLIN)

    def close(self) -> None:
        if self._corked is not None:
            self.uncork()
        for s in self.peers.values():
            s.close(LINGER_MS)
        if self.inbox is not None:
            self.inbox.close(0)
        if self.ctx is not None:
            from .curve import stop_authenticator  # the ZAP thread holds a socket: term() would block on it
            stop_authenticator(self.ctx)
            self.ctx.term()
        self.peers.clear()
        self.ctx = self.inbox = None

    def _peer(self, peer: str) -> zmq.Socket[Any]:
        sock = self.peers.get(peer)
        if sock is None:
            assert self.ctx is not None, "Mailbox.start() first"
            sock = self.ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, HWM)
            sock.setsockopt(zmq.LINGER, LINGER_MS)
            sock.setsockopt(zmq.RECONNECT_IVL, 50)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
            endpoint = self.resolve(peer)
            if endpoint.startswith("tcp://") and self.curve_client:
                self.curve_client(sock)
            sock.connect(endpoint)
            self.peers[peer] = sock
        return sock

    # -- sending -----------------------------------------------------------------------------------
    def send(self, peer: str, body: Message, *, msg_id: str | None = None) -> str:
        """Send one message (its kind is the body's); reliable kinds are tracked until acked. Returns the msg_id.
        A full or unreachable peer raises ``SendError`` for unreliable kinds only (reliable ones retry)."""
        env = wrap(body, self.name, self.inc, msg_id)
        kind = env.kind
        frame = encode(env)
        if kind in RELIABLE:
            self.outbox.track(env.msg_id, peer, frame, kind.value, self.clock.monotonic())
        self._push(peer, frame, reliable=kind in RELIABLE, what=kind.value)
        return env.msg_id

    def _push(self, peer: str, frame: bytes, *, reliable: bool, what: str) -> None:
        self.sent_to[peer] = self.sent_to.get(peer, 0) + 1
        if self._corked is not None:
            self._corked.setdefault(peer, []).append((frame, reliable, what))
            return
        self.pushes += 1
        try:
            self._peer(peer).send(frame, zmq.NOBLOCK)
        except zmq.ZMQError as e:
            if not reliable:
                raise SendError(f"{self.name} -> {peer}: {what} not sent: {e}") from e
            log.debug("%s -> %s: %s queued for resend (%s)", self.name, peer, what, e)

    def cork(self) -> None:
        """Hold every frame sent from now on until ``uncork`` (one loop turn)."""
        if self._corked is None:
            self._corked = {}

    def uncork(self) -> None:
        """Push what was held, per peer in the order sent, as few multipart messages as ``BATCH_*`` allow.
        A full or gone peer: reliable frames are re-sent from the outbox as always, the others are dropped
        (logged; while corked, ``send`` could not raise for them)."""
        held, self._corked = self._corked, None
        for peer, frames in (held or {}).items():
            start = 0
            while start < len(frames):
                end, size = start, 0
                while end < len(frames) and end - start < BATCH_FRAMES and (end == start or size + len(frames[end][0]) <= BATCH_BYTES):
                    size += len(frames[end][0])
                    end += 1
                self._push_parts(peer, frames[start:end])
                start = end

    def _push_parts(self, peer: str, frames: list[tuple[bytes, bool, str]]) -> None:
        self.pushes += 1
        try:
            self._peer(peer).send_multipart([f for f, _, _ in frames], zmq.NOBLOCK)
        except zmq.ZMQError as e:
            lost = [what for _, reliable, what in frames if not reliable]
            log.debug("%s -> %s: %d frames not sent (%s); %d unreliable dropped (%s), the rest queued for resend",
                      self.name, peer, len(frames), e, len(lost), ", ".join(sorted(set(lost))))

    def resend_due(self) -> int:
        """Re-send reliable messages whose ack is late. Call every loop turn; cheap when nothing is due."""
        n = 0
        for msg_id, p in self.outbox.due(self.clock.monotonic()):
            if p.tries in (3, 10, 30):
                log.warning("%s: %s %s to %s still unacknowledged after %d tries", self.name, p.kind, msg_id, p.peer, p.tries)
            self._push(p.peer, p.frame, reliable=True, what=p.kind)
            n += 1
        return n

    # -- receiving ---------------------------------------------------------------------------------
    def register_fd(self, fd: int) -> None:
        """Wake ``poll`` when ``fd`` is readable (e.g. a pipe from the executor's case thread)."""
        self.poller.register(fd, zmq.POLLIN)

    def poll(self, timeout_ms: int) -> dict[Any, int]:
        """Wait for input; at once when frames of a multipart message already received are still to be handed out."""
        return dict(self.poller.poll(0 if self._parts else timeout_ms))

    def recv_nowait(self) -> Envelope[Message] | None:
        """One envelope for the stage, or None when the inbox is empty. Acks and duplicates are handled here."""
        assert self.inbox is not None
        while True:
            if self._parts:
                frame = self._parts.popleft()
            else:
                try:
                    parts = self.inbox.recv_multipart(zmq.NOBLOCK)       # one frame, or a corked turn's frames
                except zmq.Again:
                    return None
                frame = parts[0]
                self._parts.extend(parts[1:])
            env = self._accept(frame)
            if env is not None:
                return env

    def _accept(self, frame: bytes) -> Envelope[Message] | None:
        self.received += 1
        try:
            env = decode(frame)
        except CodecError as e:
            self.dead_lettered += 1
            dead_letters.warning("%s dead-lettered a message (%d bytes): %s", self.name, len(frame), e)
            return None
        if isinstance(env.body, Ack):
            ids = list(env.body.ids)
            self.outbox.ack(ids)
            if self.on_ack:
                self.on_ack(ids)
            return None
        if env.kind in RELIABLE:
            first = self.seen.check_and_add(env.msg_id)
            self._to_ack.setdefault(env.src, []).append(env.msg_id)
            if not first:
                return None
        return env

    def flush_acks(self) -> None:
        """Acknowledge every reliable message received so far. Stages call this only after handling (and,
        where it matters, persisting) them: a crash before this point means the sender re-sends."""
        for peer, ids in self._to_ack.items():
            try:
                self.send(peer, Ack(ids=ids))
            except SendError as e:
                log.debug("%s: ack to %s not sent (%s); the sender will re-send and be acked again", self.name, peer, e)
        self._to_ack.clear()


class Notifier:
    """A send-only PUSH socket to one peer for a thread other than the stage loop's (ZeroMQ sockets belong to
    one thread): the executor's case thread tells the supervisor a case's deadline *before* the case runs,
    so a case that then starves the loop (holds the GIL) is still killed on time and named. Best effort:
    unreliable, never blocks, never raises. Created lazily in the thread that sends."""

    def __init__(self, mailbox: Mailbox, peer: str) -> None:
        self.mailbox, self.peer = mailbox, peer
        self.sock: zmq.Socket[Any] | None = None
        self.closed = False                 # after close() nothing is opened again (ctx.term() waits for every socket)

    def send(self, body: Message) -> None:
        mb = self.mailbox
        kind = body.KIND
        try:
            if self.closed:
                return
            if self.sock is None:
                assert mb.ctx is not None
                self.sock = mb.ctx.socket(zmq.PUSH)
                self.sock.setsockopt(zmq.LINGER, 0)
                endpoint = mb.resolve(self.peer)
                if endpoint.startswith("tcp://") and mb.curve_client:
                    mb.curve_client(self.sock)
                self.sock.connect(endpoint)
            self.sock.send(encode(wrap(body, mb.name, mb.inc)), zmq.NOBLOCK)
        except Exception as e:              # the heartbeat path still reports the case, later
            log.debug("%s -> %s: %s not sent: %s", mb.name, self.peer, kind.value, e)

    def close(self) -> None:
        self.closed = True
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None


class ControlServer:
    """REP socket for the CLI (``status``, ``stop``, ``reload``): one JSON request, one JSON reply with
    circus' shape ``{"status": "ok" | "error", "reason": ..., ...}``."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.ctx: zmq.Context[Any] | None = None
        self.sock: zmq.Socket[Any] | None = None

    def start(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.endpoint)
        if self.endpoint.startswith("ipc://"):
            os.chmod(self.endpoint[len("ipc://"):], 0o600)

    def serve_pending(self, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        assert self.sock is not None
        while True:
            try:
                raw = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                import json
                req = json.loads(raw)
                reply = handle(req) if isinstance(req, dict) else {"status": "error", "reason": "request must be a JSON object"}
            except Exception as e:
                reply = {"status": "error", "reason": f"{type(e).__name__}: {e}"}
            import json
            self.sock.send(json.dumps(reply, default=str).encode())

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close(0)
        if self.ctx is not None:
            self.ctx.term()
        self.sock = self.ctx = None


def control_request(endpoint: str, request: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """Send one control request; raises ``TransportError`` when nobody answers in time."""
    import json

    from .errors import TransportError
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(json.dumps(request).encode())
        if not sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            raise TransportError(f"no answer from the engine at {endpoint} within {timeout_s} s (is it running?)")
        return json.loads(sock.recv())  # type: ignore[no-any-return]
    finally:
        sock.close(0)
        ctx.term()
