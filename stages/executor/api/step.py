"""One API step's guarded block (reference §4.1 step 5): pre items, render, send, assertions, relations,
post items; an assertion failure is raised only after relations and post items ran."""
from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.utils

from pipeline.errors import PipelineError
from pipeline.models import AssertData
from stages.executor.api import sql
from stages.executor.api.extract import Exchange, ExtractError, extract, relation_value, source_value
from stages.executor.api.request import Collected, Prepared, RequestError, prepare, truthy
from stages.executor.common.assertion import compare
from stages.executor.common.script import run_script, script_names
from stages.executor.common.steplog import CaseRecorder, escape, request_block, response_block
from stages.executor.common.template import Renderer
from stages.executor.common.variables import Variables

__all__ = ["AssertionFailed", "StepEnv", "run_block"]

SESSION_KEY = "api.session"
POOL_KEY = "api.pool"           # ctx.shared: the collection's HTTP connection pool (see _new_session)


class AssertionFailed(PipelineError):
    """An assertion was false: the step fails (status 1) rather than errors."""


@dataclass(slots=True)
class StepEnv:
    """What the guarded block of one step uses; built once per case."""

    recorder: CaseRecorder
    variables: Variables
    renderer: Renderer
    fetch: Callable[[str], tuple[str, bytes]]
    shared: dict[str, Any]
    default_timeout: float
    remaining: Callable[[], float]
    step_name: str = ""
    exchange: Exchange | None = field(default=None)


def _render(env: StepEnv) -> Callable[..., Any]:
    return lambda value, refs=None: env.renderer.render(value, step=env.step_name, refs=refs)


# -- pre/post items ---------------------------------------------------------------------------------------

def _script_names(env: StepEnv, request: Prepared | None) -> dict[str, Any]:
    ex = env.exchange
    names = script_names(env.variables)
    names.update({
        "res_request": None if request is None else {"method": request.method, "url": request.url,
                                                     "headers": request.headers, "query": request.query,
                                                     "body": request.body},
        "res_code": ex.status if ex else None, "res_header": ex.res_headers if ex else None,
        "res_data": ex.res_data if ex else None, "res_cookies": ex.res_cookies if ex else None,
        "res_bytes": ex.res_bytes if ex else None,
    })
    return names


def run_items(env: StepEnv, items: list[dict[str, Any]], stage: str, request: Prepared | None) -> None:
    for item in items or []:
        if not isinstance(item, dict):
            continue
        name, value = str(item.get("name") or ""), item.get("value")
        label = f"{stage}[{item.get('desc') or name}]"
        if name in ("preScript", "postScript"):
            deadline = time.monotonic() + max(0.0, env.remaining())
            result = run_script(str(value or ""), _script_names(env, request), deadline=deadline)
            env.recorder.debug(f"{label}执行成功")
            env.recorder.console(result.output)
            continue
        spec = _sql_spec(env, value)
        if spec is None:
            continue
        summary = sql.run_sql(sql.parse_item(spec), env.variables.put, timeout=min(env.default_timeout, env.remaining()))
        env.recorder.debug(f"{label} SQL: {escape(str(spec.get('sqlText')))}<br>{escape(summary)}")


def _sql_spec(env: StepEnv, value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        if not value.strip() or value.strip() == "{}":
            return None
        try:
            parsed = json.loads(value)
        except ValueError:
            try:
                parsed = json.loads(str(_render(env)(value)))
            except ValueError as e:
                raise sql.SqlError(f"SQL配置不是合法的JSON: {e}") from e
    else:
        parsed = value
    if not parsed:
        return None
    if not isinstance(parsed, dict):
        raise sql.SqlError("SQL配置必须是JSON对象")
    rendered = _render(env)(parsed)
    return rendered if isinstance(rendered, dict) else None


# -- send -------------------------------------------------------------------------------------------------

def _new_session(env: StepEnv) -> requests.Session:
    """A session with its own cookie jar (the §4.2 semantics) over the collection's one connection pool:
    keep-alive connections are reused between the steps and cases of a collection instead of a TCP connect
    per request (a fresh ``requests.Session`` has a fresh pool). Cookies never travel through the pool."""
    pool = env.shared.get(POOL_KEY)
    if pool is None:
        pool = env.shared[POOL_KEY] = requests.adapters.HTTPAdapter()
    s = _Session()
    s.mount("https://", pool)
    s.mount("http://", pool)
    return s


class _Session(requests.Session):
    """requests reads the whole environment twice per send to find proxies (``trust_env``); an executor's
    environment does not change while it runs, so the answer per (scheme, host, ``no_proxy``) is kept and the
    same settings are merged as requests would (CA bundle variables included)."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        if not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        proxies = {} if proxies is None else proxies
        parts = urlsplit(str(url))
        for k, v in _environ_proxies(parts.scheme, parts.netloc, proxies.get("no_proxy")).items():
            proxies.setdefault(k, v)
        if verify is True or verify is None:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        self.trust_env = False                # the environment part is done above
        try:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        finally:
            self.trust_env = True


@functools.lru_cache(maxsize=256)
def _environ_proxies(scheme: str, netloc: str, no_proxy: str | None) -> dict[str, str]:
    return dict(requests.utils.get_environ_proxies(f"{scheme}://{netloc}/", no_proxy=no_proxy))


def _session(env: StepEnv, controller: dict[str, Any]) -> tuple[requests.Session, Callable[[], None]]:
    """The session for this send and what to do afterwards (§4.2 session table). A session that is done
    with is dropped, not closed: closing it would close the collection's pool (``close_shared`` does)."""
    use, save = truthy(controller.get("useSession")), truthy(controller.get("saveSession"))
    shared = env.shared.get(SESSION_KEY)
    if use and save:
        if shared is None:
            shared = env.shared[SESSION_KEY] = _new_session(env)
        return shared, lambda: None
    fresh = _new_session(env)
    if use:
        if shared is not None:
            fresh.cookies.update(shared.cookies.copy())
        return fresh, lambda: None
    if save:
        def replace() -> None:
            env.shared[SESSION_KEY] = fresh
        return fresh, replace
    return fresh, lambda: None


def send(env: StepEnv, request: Prepared, controller: dict[str, Any]) -> Exchange:
    kwargs = request.kwargs()
    env.recorder.debug(request_block(request.method, request.url, _loggable(kwargs)))
    session, after = _session(env, controller)
    started = time.perf_counter()
    try:
        response = session.request(request.method, request.url, allow_redirects=True, **kwargs)
        content = response.content
    except requests.RequestException as e:
        env.recorder.set_during((time.perf_counter() - started) * 1000)
        after()
        what = f"请求超时({request.timeout:g}秒)" if isinstance(e, requests.Timeout) else "请求发送失败"
        raise RequestError(f"{what}: {type(e).__name__}: {e}") from e
    total_ms = (time.perf_counter() - started) * 1000
    env.recorder.set_during(total_ms)
    after()
    headers = dict(response.headers)
    try:
        data: Any = response.json()
    except ValueError:
        data = response.text
    is_file = any(k.lower() == "content-disposition" for k in headers)
    env.recorder.debug(response_block(response.status_code, headers, None if is_file else response.text))
    sent = response.request
    return Exchange(req_headers=dict(sent.headers), req_query=request.query, req_body=request.sent_body(),
                    status=response.status_code, res_headers=headers, res_data=data, res_bytes=content,
                    res_cookies=";".join(f"{k}={v}" for k, v in response.cookies.items()),
                    timings=timing_phases(response, total_ms))


def timing_phases(response: requests.Response, total_ms: float) -> dict[str, Any]:
    """The phases requests can tell apart (it measures no DNS/connect/TLS split): per hop, request sent to
    response headers parsed (``Response.elapsed``); then the final body read; the total as ``during``."""
    hops = [*response.history, response]
    out: dict[str, Any] = {"total_ms": round(total_ms, 3),
                           "headers_ms": round(response.elapsed.total_seconds() * 1000, 3),
                           "redirects": [{"url": h.url, "status": h.status_code,
                                          "headers_ms": round(h.elapsed.total_seconds() * 1000, 3)} for h in hops[:-1]]}
    spent = sum(h.elapsed.total_seconds() * 1000 for h in hops)
    out["body_ms"] = round(max(0.0, total_ms - spent), 3)      # the last body read (and the client's own time)
    return out


def _loggable(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in kwargs.items() if k not in ("files",)}
    if kwargs.get("files"):
        out["files"] = [f"{field_name}: {name} ({len(content)} bytes)" for field_name, (name, content) in kwargs["files"]]
    return out


# -- assertions and relations -----------------------------------------------------------------------------

def assert_all(env: StepEnv, assertions: list[dict[str, Any]] | None) -> bool:
    """Evaluate in order, stop at the first false one; no assertions → status code equals 200."""
    ex = env.exchange
    assert ex is not None
    checks = assertions or [{"from": "resCode", "method": "", "expression": "", "assertion": "equals", "expect": "200"}]
    checks = _render(env)(checks)
    validators: list[dict[str, Any]] = env.recorder.detail.setdefault("validators", [])
    for check in checks:
        source, expression = str(check.get("from") or ""), str(check.get("expression") or "")
        label = source if source == "resCode" else f"{source}:{expression}"
        try:
            actual = ex.status if source == "resCode" else extract(source_value(ex, source), str(check.get("method") or ""), expression)
        except ExtractError as e:
            ok, message, actual = False, f"接口响应失败或提取实际值失败: {e}", None
        else:
            ok, message = compare(str(check.get("assertion")), actual, check.get("expect"))
        validators.append(AssertData(type=str(check.get("assertion")), actual=_safe(actual), expected=check.get("expect"),
                                     result=ok, message=message, check=label).to_dict())
        if not ok:
            env.recorder.fail(f"断言失败[{escape(label)}]: {escape(message)}")
            return False
        env.recorder.debug(f"断言成功[{escape(label)}]: {escape(message)}")
    return True


def _safe(value: Any) -> Any:
    return f"<{len(value)} bytes>" if isinstance(value, bytes) else value


def relate(env: StepEnv, relations: list[dict[str, Any]] | None) -> None:
    ex = env.exchange
    assert ex is not None
    exported: dict[str, Any] = env.recorder.detail.setdefault("export_vars", {})
    for rel in _render(env)(relations or []):
        name = str(rel.get("name") or "").strip()
        if not name:
            raise ExtractError("关联参数缺少变量名")
        value = relation_value(ex, str(rel.get("from") or ""), str(rel.get("method") or ""), str(rel.get("expression") or ""))
        env.variables.put(name, value)
        exported[name] = _safe(value)
        env.recorder.debug(f"关联参数 {escape(name)} = {escape(json.dumps(_safe(value), ensure_ascii=False, default=str))}")


def run_block(env: StepEnv, step: dict[str, Any], collected: Collected) -> None:
    """Pre → render → send → assertions → relations → post; raise ``AssertionFailed`` last."""
    controller = collected.controller
    env.exchange = None
    run_items(env, controller.get("pre") or [], "前置", None)
    request, _refs = prepare(collected, _render(env), env.fetch, default_timeout=env.default_timeout,
                             remaining=env.remaining())
    env.recorder.detail["req_resps"] = [{"request": {"method": request.method, "url": request.url,
                                                     "headers": request.headers, "query": request.query,
                                                     "body": _safe(request.body)}}]
    env.exchange = send(env, request, controller)
    ex = env.exchange
    env.recorder.detail["req_resps"][0]["response"] = {"status_code": ex.status, "headers": ex.res_headers,
                                                       "body": _safe(ex.res_data), "timings": ex.timings}
    passed = assert_all(env, step.get("assertions"))
    relate(env, step.get("relations"))
    run_items(env, controller.get("post") or [], "后置", request)
    if not passed:
        raise AssertionFailed("断言失败")
