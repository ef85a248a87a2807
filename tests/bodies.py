"""Message bodies built from the dataclasses in ``pipeline.messages``: ``valid_body`` (one value per field of
the declared type) and the Hypothesis strategy ``wrong_bodies`` (one field, required or optional, given a value
of another type), so codec tests and the real-process fuzz cover every kind without hand-made bodies."""
from __future__ import annotations

import typing
from typing import Any

from hypothesis import strategies as st

from pipeline.messages import BODIES, Kind, _alternatives, _matches, _spec

__all__ = ["TYPED_KINDS", "sample", "valid_body", "wrong_bodies"]

_SAMPLES: dict[Any, Any] = {str: "s", int: 7, float: 1.5, bool: True, dict: {"k": [1, 2]}, list: ["x", 1], type(None): None,
                            Any: "any"}
_INT = st.integers(-2**63, 2**63 - 1)
_ANY = st.one_of(st.none(), st.booleans(), _INT, st.floats(allow_nan=True), st.text(max_size=8),
                 st.lists(_INT, max_size=3), st.dictionaries(st.text(max_size=4), _INT, max_size=3))


TYPED_KINDS = [k for k in Kind if _spec(BODIES[k])]   # stage.stop has no field to get wrong


def sample(t: Any) -> Any:
    alt = next((a for a in _alternatives(t) if a is not type(None)), type(None))
    origin = typing.get_origin(alt)
    if origin is list:
        (item,) = typing.get_args(alt) or (Any,)
        return [sample(item)]
    if origin is dict:
        return dict(_SAMPLES[dict])
    if isinstance(alt, type) and typing.is_typeddict(alt):
        return {k: sample(v) for k, v, required in _spec(alt) if required}
    return _SAMPLES[alt]


def valid_body(kind: Kind, optional: bool = False) -> dict[str, Any]:
    return {k: sample(t) for k, t, required in _spec(BODIES[kind]) if required or optional}


@st.composite
def wrong_bodies(draw: Any, kind: Kind) -> tuple[dict[str, Any], str]:
    """A valid body of ``kind`` with one field replaced by a value of the wrong type; returns (body, field)."""
    fields = {k: t for k, t, _ in _spec(BODIES[kind])}
    body = valid_body(kind, optional=True)
    key = draw(st.sampled_from(sorted(fields)))
    value = draw(_ANY.filter(lambda v: _matches(v, fields[key]) is not None))
    body[key] = value
    return body, key
