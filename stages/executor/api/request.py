"""Collect, render and build the HTTP request of one API step (reference §3.4, §4.2, §4.4).

``collect`` validates the step (a missing required key ends the case whatever ``errorContinue`` says);
``prepare`` renders in the reference order and returns the keyword arguments for ``requests``.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from pipeline.errors import PipelineError
from stages.executor.api.render import render_request_parts
from stages.executor.common.params import convert_typed

__all__ = ["StepDataError", "RequestError", "Collected", "Prepared", "collect", "prepare", "truthy"]

METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")
BODY_TYPES = ("json", "form-data", "form-urlencoded", "text", "xml", "html", "file")


class StepDataError(PipelineError):
    """The step JSON is unusable (missing required key): ends the case as error (§4.1-4)."""


class RequestError(PipelineError):
    """The request cannot be built (bad JSON body, bad proxy, unknown body type)."""


def truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


@dataclass(slots=True)
class Collected:
    """The step's request data as written (unrendered)."""

    method: str
    url: str | None
    path: str
    headers: dict[str, Any]
    query: dict[str, Any]
    rest: dict[str, Any]
    proxies: dict[str, Any]
    body: dict[str, Any]
    controller: dict[str, Any]


@dataclass(slots=True)
class Prepared:
    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, Any]
    body_type: str
    body: Any                                  # json object, form dict, raw text/bytes, or None
    files: list[tuple[str, tuple[str, bytes]]] = field(default_factory=list)
    proxies: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    verify: bool = True
    stream: bool = False

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"headers": self.headers, "params": self.query or None, "proxies": self.proxies or None,
                               "timeout": self.timeout, "verify": self.verify, "stream": self.stream}
        if self.body_type == "json" and self.body not in (None, "", {}, []):
            out["json"] = self.body
        elif self.body_type == "form-urlencoded" and self.body:
            out["data"] = urlencode(self.body)
        elif self.body_type == "form-data":
            out["data"] = {k: _form_field(v) for k, v in (self.body or {}).items()} or None
        elif self.body_type in ("text", "xml", "html") and self.body not in (None, ""):
            out["data"] = self.body if isinstance(self.body, bytes) else str(self.body).encode("utf-8")
        if self.files:
            out["files"] = self.files
        return out

    def sent_body(self) -> Any:
        """What relations/scripts see as ``reqBody``."""
        return self.body


def collect(step: dict[str, Any]) -> Collected:
    for key in ("apiId", "apiName", "method"):
        if not step.get(key):
            raise StepDataError(f"接口步骤缺少必填字段 {key}")
    for key in ("url", "path"):
        if key not in step:
            raise StepDataError(f"接口步骤[{step.get('apiName')}]缺少字段 {key}")
    method = str(step["method"]).strip().upper()
    if method not in METHODS:
        raise StepDataError(f"接口步骤[{step.get('apiName')}]的请求方法不支持: {step['method']}")
    headers: dict[str, Any] = {}
    for name, value in (step.get("headers") or {}).items():
        key = str(name).strip()
        headers["cookie" if key.lower() in ("cookie", "cookies") else key] = value
    return Collected(method=method, url=step.get("url"), path=str(step.get("path") or ""), headers=headers,
                     query=dict(step.get("query") or {}), rest=dict(step.get("rest") or {}),
                     proxies=dict(step.get("proxies") or {}), body=dict(step.get("body") or {}),
                     controller=dict(step.get("controller") or {}))


def join_url(base: str | None, path: str) -> str:
    if not base:
        return path
    return base.rstrip("/") + "/" + path.lstrip("/") if path else base


def apply_rest(path: str, rest: dict[str, Any]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(2)
        return str(rest[name]) if name in rest else match.group(0)
    return re.sub(r"(#?)\{([^{}]+)\}", sub, path)


def build_proxies(spec: dict[str, Any]) -> dict[str, str]:
    url = str(spec.get("url") or "").strip()
    if not url:
        return {}
    if "://" not in url:
        url = "http://" + url
    user, password = str(spec.get("username") or ""), str(spec.get("password") or "")
    if bool(user) != bool(password):
        raise RequestError("代理的用户名和密码必须同时填写")
    scheme, rest = url.split("://", 1)
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
    return {scheme.lower(): f"{scheme}://{auth}{rest}"}


Render = Callable[..., Any]
Fetch = Callable[[str], tuple[str, bytes]]


def _timeout(controller: dict[str, Any], default: float, remaining: float) -> float:
    raw = controller.get("timeout")
    try:
        value = float(raw) if raw not in (None, "", "0") else default
    except (TypeError, ValueError):
        raise RequestError(f"超时时间不是数字: {raw!r}") from None
    if value <= 0:
        value = default
    if remaining <= 0:
        raise RequestError("用例已超时，不再发送请求")
    return max(0.05, min(value, remaining))


Files = list[tuple[str, tuple[str, bytes]]]


def _body_parts(c: Collected, render: Render, fetch: Fetch, types: dict[str, str]) -> tuple[str, Any, Files]:
    """Body as data (unrendered templates stay for step 4) and files (fetched now, step 2)."""
    kind = str(c.body.get("type") or "json").strip().lower()
    if kind not in BODY_TYPES:
        raise RequestError(f"不支持的请求体类型: {kind}")
    files: Files = []
    if kind == "json":
        text = c.body.get("json")
        if text in (None, "") or (isinstance(text, str) and not text.strip()):
            return kind, None, files
        if not isinstance(text, str):
            return kind, copy.deepcopy(text), files
        try:
            return kind, json.loads(text), files
        except ValueError:
            try:       # templates outside JSON strings ({"n": {{n}}}): render the text first
                return kind, json.loads(str(render(text))), files
            except ValueError as e:
                raise RequestError(f"JSON请求体格式错误: {e}") from e
    if kind in ("text", "xml", "html"):
        return kind, c.body.get("raw"), files
    if kind == "file":
        for item in c.body.get("file") or []:
            name, content = fetch(str(render(str(item.get("id")))))
            files.append(("file", (str(item.get("name") or name), content)))
        return kind, None, files
    form: dict[str, Any] = {}
    for row in c.body.get("form") or []:
        if not isinstance(row, dict) or not row.get("name"):
            continue
        if row.get("type") == "File":
            if kind == "form-data":
                _, content = fetch(str(render(str(row.get("value")))))
                files.append((str(row["name"]), (str(row["name"]), content)))
            continue
        form[str(row["name"])] = row.get("value")
        types[str(row["name"])] = str(row.get("type") or "String")
    return kind, form, files


def prepare(c: Collected, render: Render, fetch: Fetch, *, default_timeout: float, remaining: float) -> tuple[Prepared, dict[str, Any]]:
    """Render in the order of §4.4; returns the request and the final ``#{…}`` reference values."""
    rest = render(c.rest)
    path = apply_rest(str(render(c.path)), rest if isinstance(rest, dict) else {})        # 1. path
    proxies = build_proxies(render(c.proxies))                                               # 2. options
    types: dict[str, str] = {}
    kind, body, files = _body_parts(c, render, fetch, types)
    ctl = c.controller
    timeout = _timeout(ctl, default_timeout, remaining)
    verify = not (str(render(ctl.get("requireVerify", ""))).strip().lower() == "false")
    stream = truthy(render(ctl.get("requireStream", "")))
    url = join_url(c.url, path)
    refs: dict[str, Any] = {"_request_url": url, "_request_path": path,                      # 3. helper data
                            "_request_header": copy.deepcopy(c.headers), "_request_query": copy.deepcopy(c.query)}
    if kind in ("text", "xml", "html"):
        parts = {"headers": copy.deepcopy(c.headers), "query": copy.deepcopy(c.query), "body": body}
    else:
        parts = {"headers": copy.deepcopy(c.headers), "query": copy.deepcopy(c.query), "body": copy.deepcopy(body)}
    refs["_request_body"] = copy.deepcopy(parts["body"])
    parts = render_request_parts(parts, refs, lambda v, r: render(v, refs=r))                # 4. leaves
    headers = {str(k): _header_text(v) for k, v in (parts["headers"] or {}).items()}
    body = parts["body"]
    if kind in ("form-urlencoded", "form-data") and isinstance(body, dict):
        body = {k: convert_typed(types.get(k, "String"), v) for k, v in body.items()}
    if files:
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    query = parts["query"] or {}
    return Prepared(method=c.method, url=url, headers=headers, query=query, body_type=kind, body=body,
                    files=files, proxies=proxies, timeout=timeout, verify=verify, stream=stream), refs


def _form_field(value: Any) -> Any:
    """A form-data field as the original sent it: Boolean rows as ``True``/``False``, a JSONArray row as one
    field per item (the HTTP library repeats the name); a JSONObject row is sent as JSON text (the original sent
    its keys as repeated fields, docs/case-language.md)."""
    if isinstance(value, (str, bytes, list)):
        return value
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _header_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme.lower()
