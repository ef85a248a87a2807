"""Values taken out of a request/response: relations (reference §4.5) and assertion actual values (§4.6)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import PipelineError
from stages.executor.common.refs import jsonpath_values

__all__ = ["ExtractError", "Exchange", "extract", "relation_value", "source_value"]


class ExtractError(PipelineError):
    """A relation or an assertion's source could not be extracted."""


@dataclass(slots=True)
class Exchange:
    """One sent request and its response, as scripts, relations and assertions see them."""

    req_headers: dict[str, Any]
    req_query: dict[str, Any]
    req_body: Any
    status: int
    res_headers: dict[str, str]
    res_data: Any                 # parsed JSON, else text
    res_bytes: bytes
    res_cookies: str              # k1=v1;k2=v2
    timings: dict[str, Any] = field(default_factory=dict)   # phases requests measures (step.timing_phases)


def source_value(ex: Exchange, source: str) -> Any:
    sources = {"resHeader": ex.res_headers, "resBody": ex.res_data, "reqHeader": ex.req_headers,
               "reqQuery": ex.req_query, "reqBody": ex.req_body, "resCode": ex.status}
    if source not in sources:
        raise ExtractError(f"不支持的提取来源: {source!r}")
    return sources[source]


def _json_safe(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def extract(data: Any, method: str, expression: str) -> Any:
    """``jsonpath``: one match → value, several → list, none → error; ``regular``: the same over findall."""
    if method == "jsonpath":
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                pass
        if not isinstance(data, (dict, list)):
            raise ExtractError(f"jsonpath表达式错误: 数据不是JSON对象或数组，无法提取 {expression}")
        try:
            found = jsonpath_values(data, expression)
        except ValueError as e:
            raise ExtractError(str(e)) from e
        if not found:
            raise ExtractError(f"jsonpath表达式错误: {expression} 没有匹配")
        return found[0] if len(found) == 1 else found
    if method == "regular":
        text = data if isinstance(data, str) else data.decode("utf-8", "replace") if isinstance(data, bytes) \
            else json.dumps(data, ensure_ascii=False) if isinstance(data, (dict, list)) else str(data)
        try:
            found = re.findall(expression, text)
        except re.error as e:
            raise ExtractError(f"正则表达式错误: {expression}: {e}") from e
        if not found:
            raise ExtractError(f"正则表达式匹配失败: {expression}")
        return _json_safe(found[0]) if len(found) == 1 else [_json_safe(f) for f in found]
    if not method:
        return data
    raise ExtractError(f"不支持的提取方式: {method!r}")


def relation_value(ex: Exchange, source: str, method: str, expression: str) -> Any:
    expr = str(expression or "").strip()
    if expr == "$":
        return ex.res_bytes
    if expr.lower() in ("cookie", "cookies"):
        return ex.res_cookies
    return extract(source_value(ex, source), str(method or ""), expr)
