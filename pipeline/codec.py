"""Envelope <-> bytes. One ZeroMQ frame = one msgpack array ``[v, kind, msg_id, src, inc, sent_at, body]``.

The body travels as a map (``Message.to_wire``) and comes back as its typed dataclass (``messages.BODIES``),
so every handler reads attributes the type checker knows. An envelope may also carry a raw map (a test
crafting a frame); it is encoded as is.

The only module that touches msgpack: every decoding problem (not msgpack, wrong shape, wrong version,
unknown kind, missing body keys, oversize fields, trailing bytes) becomes a ``CodecError`` whose message
names the sender and kind when they could be read, so the receiving stage can dead-letter it and go on.
"""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgpack

from .errors import CodecError
from .messages import BODIES, REQUIRED, Kind, Message, body_problem

__all__ = ["VERSION", "Envelope", "as_wire", "decode", "encode", "new_id", "wrap"]

VERSION = 1
MAX_BYTES = 64 * 2**20          # results travel inline; screenshots and logs travel by path


def new_id() -> str:
    return uuid.uuid4().hex


B = TypeVar("B")


@dataclass(frozen=True, slots=True)
class Envelope(Generic[B]):
    """One message; ``body`` is the kind's ``Message`` dataclass (a raw map only in hand-made frames)."""
    kind: Kind
    body: B
    src: str = ""
    inc: int = 0
    msg_id: str = field(default_factory=new_id)
    sent_at: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.UTC))
    v: int = VERSION


INT_MIN, INT_MAX = -(2**63), 2**64 - 1      # what a msgpack integer can hold


def as_wire(value: Any) -> Any:
    """``value`` with every integer msgpack cannot hold (beyond 64 bits: a 30-digit id in a response) turned
    into its decimal text, so it travels as text instead of killing the sender."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if INT_MIN <= value <= INT_MAX else str(value)
    if isinstance(value, dict):
        return {k: as_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_wire(v) for v in value]
    return value


def wrap(body: Message, src: str = "", inc: int = 0, msg_id: str | None = None) -> Envelope[Message]:
    """The envelope of a typed body (its kind is the body's)."""
    return Envelope(kind=body.KIND, body=body, src=src, inc=inc, msg_id=msg_id or new_id())


def encode(env: Envelope[Any]) -> bytes:
    body = env.body.to_wire() if isinstance(env.body, Message) else env.body
    frame = [env.v, env.kind.value, env.msg_id, env.src, env.inc, env.sent_at, body]
    try:
        try:
            return bytes(msgpack.packb(frame, datetime=True, use_bin_type=True))
        except OverflowError:                   # rare: only then pay for the walk
            return bytes(msgpack.packb(as_wire(frame), datetime=True, use_bin_type=True))
    except (TypeError, ValueError, OverflowError) as e:
        raise CodecError(f"cannot encode {env.kind.value} from {env.src or '?'}: {e}") from e


def decode(data: bytes) -> Envelope[Message]:
    if len(data) > MAX_BYTES:
        raise CodecError(f"message of {len(data)} bytes exceeds {MAX_BYTES}")
    try:
        obj = msgpack.unpackb(data, timestamp=3, raw=False, strict_map_key=True,
                              max_str_len=MAX_BYTES, max_bin_len=MAX_BYTES,
                              max_array_len=1_000_000, max_map_len=1_000_000)
    except Exception as e:  # msgpack raises ValueError, ExtraData, FormatError, StackError, TypeError...
        raise CodecError(f"not a msgpack envelope ({type(e).__name__}: {e})") from e
    if not isinstance(obj, list) or len(obj) != 7:
        raise CodecError(f"envelope must be a 7-item array, got {type(obj).__name__}")
    v, kind, msg_id, src, inc, sent_at, body = obj
    who = f"from {src!r}" if isinstance(src, str) else "from unknown sender"
    if v != VERSION:
        raise CodecError(f"unsupported envelope version {v!r} (kind {kind!r}) {who}; this engine speaks v{VERSION}")
    try:
        k = Kind(kind)
    except ValueError:
        raise CodecError(f"unknown message kind {kind!r} {who}") from None
    if not isinstance(msg_id, str) or not msg_id or not isinstance(src, str) or not isinstance(inc, int):
        raise CodecError(f"bad envelope header for {k.value} {who}: msg_id/src/inc")
    if not isinstance(sent_at, _dt.datetime):
        raise CodecError(f"bad sent_at in {k.value} {who}: expected a msgpack Timestamp")
    if not isinstance(body, dict):
        raise CodecError(f"body of {k.value} {who} must be a map, got {type(body).__name__}")
    missing = [key for key in REQUIRED[k] if key not in body]
    if missing:
        raise CodecError(f"{k.value} {who} lacks body field(s) {', '.join(missing)}")
    problem = body_problem(k, body)
    if problem:
        raise CodecError(f"{k.value} {who}: body {problem}")
    typed = BODIES[k].of_checked(body)             # checked just above: not twice
    return Envelope(kind=k, body=typed, src=src, inc=inc, msg_id=msg_id, sent_at=sent_at, v=v)
