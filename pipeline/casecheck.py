"""Shape checks for what a task or case file may hold before anything runs on it (issue 22):

- ``check_depth``: JSON nested deeper than ``MAX_DEPTH`` is refused (the planner and runners recurse);
- ``check_steps``: every step field the runners read has the type the reference (§3.4-3.6) gives it, so a
  wrong type is an error naming the file and the field instead of a raw ``TypeError`` from deep inside;
- ``check_case_id``: a case file names the case task.json names (else its result would be filed under the
  file's id and the task's case reported missing);
- ``find_cycle``: a dependency cycle (``a -> b -> a``, ``a -> a``) would make both cases wait forever.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import SuiteError

__all__ = ["MAX_DEPTH", "check_depth", "check_steps", "check_case_id", "find_cycle"]

MAX_DEPTH = 64

_OBJ, _LIST, _STR = (dict, "an object"), (list, "a list"), (str, "a string")
# field -> (type, what to say); absent or null is always allowed (the runners apply the defaults).
_API_STEP: dict[str, tuple[type, str]] = {
    "apiId": _STR, "apiName": _STR, "url": _STR, "path": _STR, "method": _STR, "protocol": _STR,
    "headers": _OBJ, "proxies": _OBJ, "body": _OBJ, "query": _OBJ, "rest": _OBJ,
    "assertions": _LIST, "relations": _LIST, "controller": _OBJ}
_UI_STEP: dict[str, tuple[type, str]] = {
    "operationType": _STR, "operationName": _STR, "operationTrans": _STR, "operationCode": _STR,
    "operationElement": _OBJ, "operationData": _OBJ}
_CASE: dict[str, tuple[type, str]] = {"caseName": _STR, "functions": _LIST, "params": _OBJ, "apiList": _LIST,
                                       "optList": _LIST, "driverSetting": _OBJ}


def check_depth(value: Any, source: str, limit: int = MAX_DEPTH) -> None:
    """Iterative (a recursive walk would itself overflow on the input it guards against)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            raise SuiteError(f"JSON nested deeper than {limit} levels", file=source)
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def _typed(obj: Mapping[str, Any], fields: Mapping[str, tuple[type, str]], source: str, where: str) -> None:
    for key, (typ, what) in fields.items():
        v = obj.get(key)
        if v is not None and not isinstance(v, typ):
            raise SuiteError(f"must be {what}, got {type(v).__name__} {_short(v)}", file=source,
                             field=f"{where}.{key}" if where else key)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def check_steps(case: dict[str, Any], source: str) -> None:
    _typed(case, _CASE, source, "")
    for list_key, fields in (("apiList", _API_STEP), ("optList", _UI_STEP)):
        for i, step in enumerate(case.get(list_key) or []):
            where = f"{list_key}[{i}]"
            if not isinstance(step, dict):
                raise SuiteError(f"a step must be an object, got {type(step).__name__}", file=source, field=where)
            _typed(step, fields, source, where)
            for sub in ("assertions", "relations"):
                for j, item in enumerate(step.get(sub) or []):
                    if not isinstance(item, dict):
                        raise SuiteError(f"must be an object, got {type(item).__name__}", file=source, field=f"{where}.{sub}[{j}]")
            for sub in ("operationElement", "operationData"):
                for name, item in (step.get(sub) or {}).items():
                    if not isinstance(item, dict):
                        raise SuiteError(f"must be an object, got {type(item).__name__} {_short(item)}", file=source,
                                         field=f"{where}.{sub}.{name}")


def check_case_id(case: dict[str, Any], expected: str, source: str) -> None:
    got = case.get("caseId")
    if got is not None and str(got) != expected:
        raise SuiteError(f"the case file says caseId {got!r} but task.json lists it as {expected!r}", file=source, field="caseId")


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle as ``[a, b, ..., a]``, or None. Iterative DFS (three colours)."""
    colour: dict[str, int] = {}
    for root in edges:
        if colour.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(edges.get(root, ())))]
        colour[root] = 1
        path.append(root)
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)  # type: ignore[call-overload]
            if nxt is None:
                stack.pop()
                path.pop()
                colour[node] = 2
                continue
            if colour.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if not colour.get(nxt) and nxt in edges:
                colour[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(edges.get(nxt, ()))))
    return None
