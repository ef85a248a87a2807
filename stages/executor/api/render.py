"""Render order of one API step's headers, query and body (reference §4.4, step 4).

Leaves are rendered one by one, in place, so ``#{…}`` markers in function arguments see the request as
rendered so far: headers → query → body, except that headers referring to the query or body go last and a
query referring to the body comes after it. Inside one object, leaves without ``#{`` go first; leaves with
markers come after the leaves they name, and a leaf naming the whole object comes last.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["render_request_parts", "part_order"]

Path = tuple[Any, ...]
_MARKER = re.compile(r"#\{([^{}]+)\}")
_PART_REF = {"headers": "_request_header", "query": "_request_query", "body": "_request_body"}


def _leaves(value: Any, path: Path = ()) -> list[Path]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path] if isinstance(value, str) and "{{" in value else []


def _get(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def _set(container: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    target = _get(container, path[:-1])
    target[path[-1]] = new
    return container


def _dotted(path: Path) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".").lower()


def _names(text: str, ref: str) -> tuple[bool, set[str]]:
    """(refers to the whole object, dotted leaf paths it names) for markers of one part."""
    whole, named = False, set()
    for marker in _MARKER.findall(text):
        m = marker.strip().lower()
        if m == ref:
            whole = True
        elif m.startswith(ref + "."):
            named.add(m[len(ref) + 1:])
        elif ref == "_request_body" and not m.startswith("_request_"):
            named.add(m[2:] if m.startswith("$.") else m.lstrip("$."))
    return whole, named


def _leaf_order(value: Any, ref: str) -> list[Path]:
    leaves = _leaves(value)
    plain = [p for p in leaves if "#{" not in _get(value, p)]
    marked = [p for p in leaves if "#{" in _get(value, p)]
    info = {p: _names(_get(value, p), ref) for p in marked}
    ordered: list[Path] = []
    pending = list(marked)
    while pending:
        for p in pending:
            whole, named = info[p]
            others = [q for q in pending if q != p]
            blocked = (whole and others) or any(_dotted(q) == n or _dotted(q).startswith(n + ".") or
                                                _dotted(q).startswith(n + "[") for q in others for n in named)
            if not blocked:
                break
        else:
            p = pending[0]          # a cycle: keep the written order
        pending.remove(p)
        ordered.append(p)
    return plain + ordered


def _mentions(value: Any, refs: tuple[str, ...]) -> bool:
    return any(any(m.strip().lower().startswith(r) for r in refs)
               for p in _leaves(value) for m in _MARKER.findall(_get(value, p)))


def part_order(headers: Any, query: Any, body: Any) -> list[str]:
    order = ["headers", "query", "body"]
    if _mentions(query, ("_request_body",)) or (
            isinstance(query, dict) and any(not m.strip().lower().startswith("_request_")
                                            for p in _leaves(query) for m in _MARKER.findall(_get(query, p)))):
        order = ["headers", "body", "query"]
    if _mentions(headers, ("_request_query", "_request_body")):
        order.remove("headers")
        order.append("headers")
    return order


def render_request_parts(parts: dict[str, Any], refs: dict[str, Any],
                         render: Callable[[Any, dict[str, Any]], Any]) -> dict[str, Any]:
    """Render ``parts`` (headers, query, body) in place order; ``refs`` is updated as leaves resolve."""
    for name in part_order(parts.get("headers"), parts.get("query"), parts.get("body")):
        value = parts.get(name)
        ref = _PART_REF[name]
        for path in _leaf_order(value, ref):
            value = _set(value, path, render(_get(value, path), refs))
            parts[name] = value
            refs[ref] = value
    return parts
