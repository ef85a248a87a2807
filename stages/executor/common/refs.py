"""``#{…}`` reference markers inside function arguments (reference §4.3): the request of the current API
step as rendered so far. ``refs`` keys: ``_request_url``, ``_request_path``, ``_request_header``,
``_request_query``, ``_request_body``. Names are case-insensitive; an unresolvable marker leaves the text."""
from __future__ import annotations

import functools
import json
import re
from typing import Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as jsonpath_parse

__all__ = ["MARKER", "resolve_marker", "lookup", "jsonpath_values"]

MARKER = re.compile(r"#\{([^{}]+)\}")
_WHOLE = ("_request_url", "_request_path", "_request_header", "_request_query", "_request_body")


def jsonpath_values(data: Any, expression: str) -> list[Any]:
    """All matches of a JSONPath; ValueError for an invalid expression."""
    return [m.value for m in _compiled(expression).find(data)]


@functools.lru_cache(maxsize=4096)
def _compiled(expression: str) -> Any:
    """Parsing costs ~1 ms per expression (ply); cases repeat theirs, so parse each once (#9)."""
    try:
        return jsonpath_parse(expression)
    except (JsonPathLexerError, JsonPathParserError, Exception) as e:
        raise ValueError(f"jsonpath表达式错误: {expression}: {e}") from e


def _ci_get(mapping: Any, key: str) -> Any:
    if not isinstance(mapping, dict):
        raise KeyError(key)
    if key in mapping:
        return mapping[key]
    for k, v in mapping.items():
        if str(k).lower() == key.lower():
            return v
    raise KeyError(key)


def lookup(name: str, refs: dict[str, Any]) -> Any:
    """The value a marker names; KeyError when it names nothing."""
    text = name.strip()
    low = text.lower()
    if low in _WHOLE:
        return refs[low]
    for whole in ("_request_header", "_request_query", "_request_body"):
        if low.startswith(whole + "."):
            rest = text[len(whole) + 1:]
            source = refs.get(whole)
            if whole == "_request_header":
                return _ci_get(source, rest)
            return _path(source, "$." + rest)
    body = refs.get("_request_body")
    return _path(body, text if text.startswith("$") else "$." + text)


def _path(source: Any, expression: str) -> Any:
    if isinstance(source, str):
        try:
            source = json.loads(source)
        except ValueError:
            raise KeyError(expression) from None
    if not isinstance(source, (dict, list)):
        raise KeyError(expression)
    try:
        found = jsonpath_values(source, expression)
    except ValueError:
        raise KeyError(expression) from None
    if not found:
        raise KeyError(expression)
    return found[0] if len(found) == 1 else found


def resolve_marker(piece: str, refs: dict[str, Any] | None) -> Any:
    """A piece that is exactly one marker keeps the value's type; embedded markers become text."""
    if not refs:
        return piece
    whole = MARKER.fullmatch(piece.strip())
    if whole:
        try:
            return lookup(whole.group(1), refs)
        except KeyError:
            return piece

    def text(match: re.Match[str]) -> str:
        try:
            value = lookup(match.group(1), refs)
        except KeyError:
            return match.group(0)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return MARKER.sub(text, piece)
