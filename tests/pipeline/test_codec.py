"""Envelope codec: every kind round-trips; every malformed frame is a CodecError that says what and who."""
from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import codec
from pipeline.codec import VERSION, Envelope, decode, encode
from pipeline.errors import CodecError
from pipeline.messages import BODIES, REQUIRED, Kind, TaskSubmit
from tests.bodies import TYPED_KINDS, valid_body, wrong_bodies

UTC = dt.UTC
SENT = dt.datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)


def body_for(kind: Kind) -> dict[str, Any]:
    """A body with every field of ``kind`` (of its declared type) plus one extra of several msgpack types."""
    body = valid_body(kind, optional=True)
    body["extra"] = {"nested": ["ok", 3, 1.5, None, b"\x00bin"]}
    return body


def raw(v: Any = VERSION, kind: Any = "unit.done", msg_id: Any = "m-1", src: Any = "executor-3", inc: Any = 2,
        sent_at: Any = SENT, body: Any = None) -> bytes:
    """A frame built by hand, so each field can be wrong on its own."""
    return msgpack.packb([v, kind, msg_id, src, inc, sent_at, {"unit_id": "u"} if body is None else body],
                         datetime=True, use_bin_type=True)


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.value)
def test_every_kind_round_trips_with_its_required_fields(kind: Kind) -> None:
    env = Envelope(kind=kind, body=body_for(kind), src="executor-3", inc=4, msg_id="abc123", sent_at=SENT)
    back = decode(encode(env))
    typed = BODIES[kind].from_wire(env.body)             # the extra key is not a field: dropped
    assert back == Envelope(kind=kind, body=typed, src="executor-3", inc=4, msg_id="abc123", sent_at=SENT)
    assert decode(encode(back)) == back                  # a typed body encodes to the same map
    assert back.sent_at.tzinfo is not None and back.sent_at == SENT


def test_defaults_give_a_fresh_id_and_an_aware_timestamp() -> None:
    a, b = Envelope(Kind.STAGE_STOP, {}), Envelope(Kind.STAGE_STOP, {})
    assert a.msg_id != b.msg_id and len(a.msg_id) == 32
    assert decode(encode(a)).sent_at.tzinfo is not None


@pytest.mark.parametrize("frame, message", [
    (b"\xc1", r"not a msgpack envelope \(FormatError"),
    (b"", r"not a msgpack envelope \(ValueError: .*incomplete"),
    (b"\x92\x01", r"not a msgpack envelope .*incomplete"),
    (raw() + b"\x00", r"not a msgpack envelope \(ExtraData"),
    (msgpack.packb({"v": 1}), r"7-item array, got dict"),
    (msgpack.packb(5), r"7-item array, got int"),
    (msgpack.packb([1, "unit.done", "m", "s", 0, 1]), r"7-item array, got list"),
    (raw(v=2, kind="case.finished", src="executor-9"), r"unsupported envelope version 2 \(kind 'case.finished'\) from 'executor-9'"),
    (raw(v="1"), r"unsupported envelope version '1'"),
    (raw(kind="case.explode", src="executor-1"), r"unknown message kind 'case.explode' from 'executor-1'"),
    (raw(kind=["unit.done"]), r"unknown message kind \['unit.done'\]"),
    (raw(msg_id=""), r"bad envelope header for unit.done from 'executor-3': msg_id"),
    (raw(msg_id=5), r"bad envelope header"),
    (raw(inc="0"), r"bad envelope header"),
    (raw(src=None), r"unknown message kind|bad envelope header for unit.done from unknown sender"),
    (raw(sent_at="2024-05-01T12:00:00"), r"bad sent_at in unit.done from 'executor-3'"),
    (raw(body=["unit_id"]), r"body of unit.done from 'executor-3' must be a map, got list"),
    (raw(kind="case.finished", body={"unit_id": "u", "task_id": "t"}),
     r"case.finished from 'executor-3' lacks body field\(s\) collection_id, case_id, index, run_times, status, outcome"),
    (msgpack.packb([1, "unit.done", "m", "s", 0, SENT, {1: "x"}], datetime=True), r"not a msgpack envelope"),
], ids=["format", "empty", "truncated", "trailing", "map", "int", "six-items", "version", "version-str", "kind",
        "kind-list", "empty-id", "int-id", "str-inc", "no-src", "str-date", "list-body", "missing-fields", "int-key"])
def test_malformed_frames_give_codec_error_naming_the_problem(frame: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode(frame)


def test_oversize_frame_is_refused_before_unpacking() -> None:
    frame = raw(body={"unit_id": "u", "blob": b"x" * codec.MAX_BYTES})
    with pytest.raises(CodecError, match=rf"message of {len(frame)} bytes exceeds {codec.MAX_BYTES}"):
        decode(frame)


def test_array_with_too_many_items_is_a_codec_error() -> None:
    """A small frame can still declare a huge array (nil is one byte): msgpack's own limit applies."""
    frame = raw(body={"unit_id": "u", "many": [None] * 1_000_001})
    with pytest.raises(CodecError, match="not a msgpack envelope.*exceeds max_array_len"):
        decode(frame)


@pytest.mark.parametrize("where", ["sent_at", "body"])
def test_naive_datetime_is_refused_on_encode(where: str) -> None:
    naive = dt.datetime(2024, 5, 1, 12, 0)
    env = (Envelope(Kind.UNIT_DONE, {"unit_id": "u"}, src="executor-2", sent_at=naive) if where == "sent_at"
           else Envelope(Kind.UNIT_DONE, {"unit_id": "u", "at": naive}, src="executor-2"))
    with pytest.raises(CodecError, match="cannot encode unit.done from executor-2"):
        encode(env)


@pytest.mark.parametrize("value", [object(), {1, 2}, {"n": 2**70, "bad": object()}])
def test_unencodable_body_values_are_codec_errors(value: Any) -> None:
    with pytest.raises(CodecError, match="cannot encode unit.done from ?"):
        encode(Envelope(Kind.UNIT_DONE, {"unit_id": value}))


# -- fuzz: decode only ever raises CodecError ------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=True),
                    st.text(max_size=20), st.binary(max_size=20),
                    st.datetimes(timezones=st.just(UTC)), st.sampled_from([k.value for k in Kind] + [VERSION]))
structures = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=8), st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(
        ["unit_id", "task_id", "ids", "case_id", "index"])), inner, max_size=8)), max_leaves=8)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        decode(data)
    except CodecError:
        pass


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures)
def test_fuzz_random_msgpack_structures(obj: Any) -> None:
    try:
        decode(msgpack.packb(obj, datetime=True, use_bin_type=True))
    except CodecError:
        pass


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(scalars, st.dictionaries(st.sampled_from(["unit_id", "task_id", "ids", "x"]), scalars, max_size=4)),
                min_size=7, max_size=7), st.sampled_from(list(Kind)))
def test_fuzz_envelope_shaped_arrays(fields: list[Any], kind: Kind) -> None:
    """Seven-item arrays with a valid version and kind reach the header and body checks."""
    fields[0], fields[1] = VERSION, kind.value
    try:
        env = decode(msgpack.packb(fields, datetime=True, use_bin_type=True))
    except CodecError:
        return
    assert env.kind is kind and isinstance(env.body, BODIES[kind]) and all(hasattr(env.body, k) for k in REQUIRED[kind])


def test_integers_beyond_64_bits_travel_as_text_instead_of_failing_the_send() -> None:
    body = TaskSubmit(task={"id": 10**30, "neg": -(2**70), "ok": 2**64 - 1, "flag": True, "xs": [10**20, 1]}, data_dir="d")
    back = decode(encode(Envelope(kind=Kind.TASK_SUBMIT, body=body, src="fetcher", sent_at=SENT))).body
    assert isinstance(back, TaskSubmit) and back.task == {"id": str(10**30), "neg": str(-(2**70)), "ok": 2**64 - 1, "flag": True, "xs": [str(10**20), 1]}


# -- issue 22 #5: a well-formed but wrongly typed body is a CodecError naming kind, sender and field ---------
@pytest.mark.parametrize("kind, body, field", [
    (Kind.CONFIG_RELOAD, {"generation": 1, "changed": 5}, "field changed must be a list of a string, got int 5"),
    (Kind.CONFIG_RELOAD, {"generation": 1, "changed": ["Logging.level", 3]}, "field changed[1] must be a string"),
    (Kind.TASK_REPORTED, {"task_id": "t", "report_dir": "r", "totals": None}, "field totals must be a map, got NoneType"),
    (Kind.TASK_REPORTED, {"task_id": "t", "report_dir": "r", "totals": {"cases": 1}}, "field totals lacks field passed"),
    (Kind.STAGE_HEARTBEAT, {"pid": 1, "state": "x", "current": {"deadline_s": "soon"}}, "field current.deadline_s must be"),
    (Kind.STAGE_DIED, {"stage": "executor-1", "inc": True, "reason": "x"}, "field inc must be an int, got bool"),
])
def test_wrongly_typed_body_is_a_codec_error_naming_kind_sender_and_field(kind: Kind, body: dict[str, Any], field: str) -> None:
    with pytest.raises(CodecError) as e:
        decode(raw(kind=kind.value, src="mallory", body=body))
    assert kind.value in str(e.value) and "'mallory'" in str(e.value) and field in str(e.value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TYPED_KINDS).flatmap(lambda k: st.tuples(st.just(k), wrong_bodies(k))))
def test_fuzz_one_wrongly_typed_field_of_any_kind_is_refused_naming_it(case: Any) -> None:
    kind, (body, key) = case
    with pytest.raises(CodecError, match=rf"{kind.value} from 'fuzz': body field {key}\b"):
        decode(raw(kind=kind.value, src="fuzz", body=body))
