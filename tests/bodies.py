"""Message bodies built from ``pipeline.messages.BODIES``: ``valid_body`` (one value per field of the
declared type) and the Hypothesis strategy ``wrong_bodies`` (one field, required or optional, given a value
of another type), so codec tests and the real-process fuzz cover every kind without hand-made bodies."""
from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from pipeline.messages import BODIES, Body, Kind, ListOf

__all__ = ["valid_body", "wrong_bodies", "sample", "TYPED_KINDS"]

_SAMPLES: dict[Any, Any] = {str: "s", int: 7, float: 1.5, bool: True, dict: {"k": [1, 2]}, list: ["x", 1], type(None): None}
_INT = st.integers(-2**63, 2**63 - 1)
_ANY = st.one_of(st.none(), st.booleans(), _INT, st.floats(allow_nan=True), st.text(max_size=8),
                 st.lists(_INT, max_size=3), st.dictionaries(st.text(max_size=4), _INT, max_size=3))


TYPED_KINDS = [k for k in Kind if BODIES[k].required or BODIES[k].optional]   # stage.stop has no field to get wrong


def sample(types: tuple[Any, ...]) -> Any:
    t = types[0]
    if isinstance(t, ListOf):
        return [sample(t.item)]
    if isinstance(t, Body):
        return {k: sample(v) for k, v in t.required.items()}
    return _SAMPLES[t]


def valid_body(kind: Kind, optional: bool = False) -> dict[str, Any]:
    spec = BODIES[kind]
    body = {k: sample(v) for k, v in spec.required.items()}
    if optional:
        body.update({k: sample(v) for k, v in spec.optional.items()})
    return body


def _fits(value: Any, types: tuple[Any, ...]) -> bool:
    from pipeline.messages import _matches
    return _matches(value, types) is None


@st.composite
def wrong_bodies(draw: Any, kind: Kind) -> tuple[dict[str, Any], str]:
    """A valid body of ``kind`` with one field replaced by a value of the wrong type; returns (body, field)."""
    spec = BODIES[kind]
    fields = {**spec.optional, **spec.required}
    body = valid_body(kind, optional=True)
    key = draw(st.sampled_from(sorted(fields)))
    value = draw(_ANY.filter(lambda v: not _fits(v, fields[key])))
    body[key] = value
    return body, key
