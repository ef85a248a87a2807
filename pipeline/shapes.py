"""Checking a decoded map against a body's annotations (``messages``' dataclasses and their nested
``TypedDict``s), so the codec refuses a wrongly typed message naming the field instead of a handler
crashing on it. Types understood: str, int, float (an int is one), bool (not an int), None, Any,
``list[...]``, ``dict[...]`` (any map), a ``TypedDict`` (checked inside), and unions of these.
"""
from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from typing import Any

__all__ = ["alternatives", "fields_of", "matches", "problem", "spec"]

_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def fields_of(cls: type) -> tuple[tuple[str, bool], ...]:
    """(name, required) of each field of a body, in order."""
    if cls not in _FIELDS:
        _FIELDS[cls] = tuple((f.name, f.default is MISSING and f.default_factory is MISSING) for f in fields(cls))
    return _FIELDS[cls]


def spec(cls: type) -> list[tuple[str, Any, bool]]:
    """(key, type, required) of a body dataclass or a TypedDict."""
    hints = _hints(cls)
    if typing.is_typeddict(cls):
        req: frozenset[str] = cls.__required_keys__     # type: ignore[attr-defined]
        return [(k, t, k in req) for k, t in hints.items()]
    return [(name, hints[name], required) for name, required in fields_of(cls)]


def problem(body: Mapping[str, Any], cls: type) -> str | None:
    """None when ``body`` has ``cls``'s fields with their types; else what is wrong, naming the field."""
    check = _BODY.get(cls)
    if check is None:
        check = _BODY[cls] = _compile_body(cls)
    return check(body)


Check = Callable[[Any], "str | None"]
_BODY: dict[type, Check] = {}
_TYPE: dict[Any, Check] = {}


def _compile_body(cls: type) -> Check:
    """``problem`` for one class, its field specs resolved once: the codec checks every message, and walking
    the annotations with ``typing`` on each one cost ~0.2 ms per message."""
    fields_ = [(key, _checker(t), required) for key, t, required in spec(cls)]

    def check(body: Mapping[str, Any]) -> str | None:
        for key, chk, required in fields_:
            if key not in body:
                if required:
                    return f"lacks field {key}"
                continue
            why = chk(body[key])
            if why:
                return _at(key, why)
        return None
    return check


def _checker(t: Any) -> Check:
    """``matches(value, t)`` as a function of the value alone, built once per type (same answers and texts)."""
    chk = _TYPE.get(t)
    if chk is None:
        chk = _TYPE[t] = _build(t)
    return chk


def _build(t: Any) -> Check:
    alts = alternatives(t)
    if alts and alts[0] is Any:
        return lambda value: None
    simple = [a for a in alts if a in (str, int, bool, float, type(None), None)]
    if len(simple) == len(alts):            # the common case: scalars and None, no nesting
        types_ = tuple(type(None) if a is None else a for a in alts)
        allow_bool, floats = bool in types_, float in types_
        numeric = (int, float) if floats else ()

        def scalar(value: Any) -> str | None:
            if isinstance(value, bool):
                if allow_bool:
                    return None
            elif isinstance(value, types_) or (floats and isinstance(value, numeric)):
                return None
            return _matches(value, t)       # the slow path only to word the problem
        return scalar
    return lambda value: _matches(value, t)


def _matches(value: Any, t: Any) -> str | None:
    """The walk over ``t``'s alternatives behind :func:`matches` (nested types through their own checkers)."""
    nested = ""
    for alt in alternatives(t):
        origin = typing.get_origin(alt)
        if alt is Any:
            return None
        if alt is type(None) or alt is None:
            if value is None:
                return None
        elif origin is list:
            if isinstance(value, list):
                (item,) = typing.get_args(alt) or (Any,)
                chk = _checker(item)
                for i, v in enumerate(value):
                    why = chk(v)
                    if why:
                        return f"[{i}] {why}"
                return None
        elif origin is dict or alt is dict:
            if isinstance(value, dict):
                return None
        elif isinstance(alt, type) and typing.is_typeddict(alt):
            if isinstance(value, dict):
                why = problem(value, alt)
                if why is None:
                    return None
                nested = why
        elif alt is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return None
        elif isinstance(value, alt) and not (isinstance(value, bool) and alt is not bool):
            return None
    return nested or f"must be {_names(t)}, got {type(value).__name__} {_short(value)}"


def alternatives(t: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(t)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(t)
    return (t,)


def matches(value: Any, t: Any) -> str | None:
    """None when ``value`` is of type ``t``; else what is wrong (bool is not an int here, an int is a float)."""
    return _checker(t)(value)


def _at(key: str, why: str) -> str:
    """Prefix a nested problem with the field it is in: ``field totals.passed ...``, ``field changed[1] ...``."""
    if why.startswith("field "):
        return f"field {key}.{why[6:]}"
    if why.startswith("lacks field "):
        return f"field {key} {why}"
    return f"field {key}{why}" if why.startswith("[") else f"field {key} {why}"


def _names(t: Any) -> str:
    out = []
    for alt in alternatives(t):
        origin = typing.get_origin(alt)
        if origin is list:
            (item,) = typing.get_args(alt) or (Any,)
            out.append(f"a list of {_names(item)}")
        elif origin is dict or alt is dict or (isinstance(alt, type) and typing.is_typeddict(alt)):
            out.append("a map")
        elif alt is float:
            out.append("an int or a float")
        else:
            out.append({str: "a string", int: "an int", bool: "a bool", list: "a list", type(None): "null",
                        Any: "anything"}.get(alt, getattr(alt, "__name__", str(alt))))
    return " or ".join(out)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
