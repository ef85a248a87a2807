"""Typed values of the case language: common parameters (reference §3.3) and operationData/form values.

Never ``eval``: JSON first, then ``ast.literal_eval`` (Python literals such as ``{'a': 1}`` that the original
accepted); a value that cannot be converted is kept as the original text, as the platform expects.
"""
from __future__ import annotations

import ast
import json
from typing import Any

__all__ = ["convert_params", "convert_typed", "parse_literal", "TYPES"]

TYPES = ("String", "Int", "Float", "Number", "Boolean", "JSONObject", "JSONArray", "Bytes", "Other", "File")


def parse_literal(text: str | bytes) -> Any:
    """JSON, else a Python literal (safe, no code runs); ValueError when neither parses."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval((text.decode("utf-8", "replace") if isinstance(text, bytes) else text).strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError(f"不是合法的JSON或字面量: {text[:80]!r}") from e


def _number(value: Any) -> int | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def _strict(type_name: str, value: Any) -> Any:
    if type_name == "Int":
        return value if isinstance(value, int) and not isinstance(value, bool) else int(str(value).strip())
    if type_name == "Float":
        return float(value) if not isinstance(value, str) else float(value.strip())
    if type_name == "Number":
        return _number(value)
    if type_name == "Boolean":
        return value if isinstance(value, bool) else str(value).strip().lower() == "true"
    if type_name in ("JSONObject", "JSONArray"):
        parsed = parse_literal(value) if isinstance(value, (str, bytes)) else value
        wanted = dict if type_name == "JSONObject" else list
        if not isinstance(parsed, wanted):
            raise ValueError(f"{type_name} 需要{'对象' if wanted is dict else '数组'}")
        return parsed
    if type_name == "Bytes":
        return value.encode("utf-8") if isinstance(value, str) else value
    if type_name == "String":
        return value if isinstance(value, str) or value is None else str(value)
    return value   # Other, File, unknown: unchanged


def convert_typed(type_name: str, value: Any) -> Any:
    """Convert one typed value; any conversion error keeps the value as given."""
    try:
        return _strict(type_name or "String", value)
    except (ValueError, TypeError, OverflowError):
        return value


def convert_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """``{"name": {"type", "value"}}`` → ``{"name": converted}``; a plain value is taken as is."""
    out: dict[str, Any] = {}
    for name, spec in (params or {}).items():
        if isinstance(spec, dict) and "value" in spec:
            out[name] = convert_typed(str(spec.get("type") or "String"), spec.get("value"))
        else:
            out[name] = spec
    return out
