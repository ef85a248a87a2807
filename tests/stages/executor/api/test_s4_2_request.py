"""Reference §4.2: URL/REST/query/headers, every body type, files, sessions, proxies, verify/stream, timeout."""
from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from pipeline.models import CaseResult, Status
from stages.executor.context import RunSettings
from tests.stages.executor.api.conftest import make_ctx, step

Run = Callable[..., CaseResult]
Mk = Callable[..., dict[str, Any]]


def echo(result: CaseResult, index: int = 0) -> dict[str, Any]:
    body = result.transactionList[index]["detail"]["req_resps"][0]["response"]["body"]
    assert isinstance(body, dict)
    return body


def test_url_path_rest_query_and_headers(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/{what}", rest={"what": "echo"}, query={"size": "{{n}}", "q": "中文"},
               headers={" Cookies ": "a=1", "X-N": "{{n}}"})
    result = run_case([s], params={"n": {"type": "Int", "value": "7"}})
    assert result.status == Status.PASS, result.transactionList[0]["log"]
    got = echo(result)
    assert got["path"].startswith("/api/echo?") and got["query"] == {"size": "7", "q": "中文"}
    assert got["headers"]["cookie"] == "a=1" and got["headers"]["X-N"] == "7"


def test_old_rest_form_and_full_url_without_base(run_case: Run, base_url: str, mkstep: Mk) -> None:
    s = mkstep(f"{base_url}/api/#{{what}}", rest={"what": "echo"}, url=None)
    assert echo(run_case([s]))["path"] == "/api/echo"


def test_base_and_path_joined_with_one_slash(run_case: Run, base_url: str, mkstep: Mk) -> None:
    s = mkstep("api/echo", url=base_url + "/")
    assert echo(run_case([s]))["path"] == "/api/echo"


def test_json_body_keeps_types(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/echo", "POST", body={"type": "json", "json": '{"k": "{{n}}", "s": "x{{n}}", "t": true}'})
    got = echo(run_case([s], params={"n": {"type": "Int", "value": "5"}}))
    assert got["json"] == {"k": 5, "s": "x5", "t": True} and got["headers"]["Content-Type"] == "application/json"


def test_form_urlencoded_has_no_automatic_content_type(run_case: Run, mkstep: Mk) -> None:
    form = [{"name": "a", "value": "1", "type": "Int"}, {"name": "b", "value": "{{n}}", "type": "String"}]
    s = mkstep("/api/echo", "POST", body={"type": "form-urlencoded", "form": form})
    got = echo(run_case([s], params={"n": {"type": "String", "value": "x y"}}))
    assert got["body"] == "a=1&b=x+y" and "Content-Type" not in got["headers"]


def test_form_data_fields_and_file_rows(run_case: Run, mkstep: Mk) -> None:
    form = [{"name": "title", "value": "t1", "type": "String"}, {"name": "upload", "value": "file-1", "type": "File"}]
    s = mkstep("/api/echo", "POST", headers={"Content-Type": "application/json"},
               body={"type": "form-data", "form": form})
    got = echo(run_case([s]))
    assert got["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")   # user header removed
    assert 'name="title"\r\n\r\nt1' in got["body"]
    assert 'name="upload"; filename="upload"' in got["body"] and "hello file" in got["body"]


def test_form_data_typed_rows_as_the_original_sent_them(run_case: Run, mkstep: Mk) -> None:
    """Boolean rows read True/False, a JSONArray row repeats its field per item, a JSONObject row is JSON text."""
    form = [{"name": "b", "value": "true", "type": "Boolean"}, {"name": "arr", "value": "[1, 2]", "type": "JSONArray"},
            {"name": "obj", "value": '{"k": 1}', "type": "JSONObject"}, {"name": "i", "value": "7", "type": "Int"}]
    s = mkstep("/api/echo", "POST", body={"type": "form-data", "form": form})
    got = echo(run_case([s]))
    assert parse_qs(got["body"]) == {"b": ["True"], "arr": ["1", "2"], "obj": ['{"k": 1}'], "i": ["7"]}


@pytest.mark.parametrize("kind", ["text", "xml", "html"])
def test_raw_bodies_sent_as_utf8(run_case: Run, mkstep: Mk, kind: str) -> None:
    s = mkstep("/api/echo", "POST", body={"type": kind, "raw": "<a>中文 {{n}}</a>"})
    got = echo(run_case([s], params={"n": {"type": "Int", "value": "3"}}))
    assert got["body"] == "<a>中文 3</a>"


def test_file_body_parts_are_named_file(run_case: Run, mkstep: Mk, tmp_path: Path) -> None:
    fetched: list[str] = []

    def fetch(file_id: str) -> tuple[str, bytes]:
        fetched.append(file_id)
        return {"file-1": ("report.txt", b"hello file"), "file-2": ("x.bin", b"second")}[file_id]
    s = mkstep("/api/echo", "POST", body={"type": "file", "file": [{"id": "file-1", "name": "r.txt"}, {"id": "file-2", "name": "b.bin"}]})
    ctx = make_ctx(tmp_path, fetch_file=fetch)
    result = run_case([s, s], ctx=ctx)
    got = echo(result)
    assert 'name="file"; filename="r.txt"' in got["body"] and 'name="file"; filename="b.bin"' in got["body"]
    assert fetched == ["file-1", "file-2"]      # cached per task: the second step fetched nothing
    assert "上传文件: " in result.transactionList[0]["log"]


def test_unknown_body_type_and_bad_json_are_step_errors(run_case: Run, mkstep: Mk) -> None:
    result = run_case([mkstep("/api/echo", "POST", body={"type": "yaml"})])
    assert result.status == Status.ERROR and "不支持的请求体类型" in result.transactionList[0]["log"]
    result = run_case([mkstep("/api/echo", "POST", body={"type": "json", "json": "{bad"})])
    assert result.status == Status.ERROR and "JSON请求体格式错误" in result.transactionList[0]["log"]


def _session_steps(mkstep: Mk, use: str, save: str) -> list[dict[str, Any]]:
    login = mkstep("/api/login", "POST", body={"type": "json", "json": '{"username": "admin", "password": "x"}'},
                   controller={"useSession": "true", "saveSession": "true"},
                   relations=[{"from": "resHeader", "method": "regular", "expression": "sid=(\\w+)", "name": "sid"}])
    probe = mkstep("/api/echo", controller={"useSession": use, "saveSession": save})
    return [login, probe]


@pytest.mark.parametrize("use,save,sent", [("true", "true", True), ("true", "false", True),
                                           ("false", "true", False), ("false", "false", False)])
def test_session_combinations(run_case: Run, mkstep: Mk, use: str, save: str, sent: bool) -> None:
    result = run_case(_session_steps(mkstep, use, save))
    cookie = echo(result, 1)["headers"].get("Cookie", "")
    assert ("sid=" in cookie) is sent


def test_use_only_discards_updates_and_save_only_replaces(run_case: Run, mkstep: Mk, tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    login = mkstep("/api/login", "POST", body={"type": "json", "json": '{"username": "admin", "password": "x"}'},
                   controller={"useSession": "true"})           # cookies set here are discarded
    probe = mkstep("/api/echo", controller={"useSession": "true", "saveSession": "true"})
    result = run_case([login, probe], ctx=ctx)
    assert "Cookie" not in echo(result, 1)["headers"]
    saver = mkstep("/api/login", "POST", body={"type": "json", "json": '{"username": "alice", "password": "x"}'},
                   controller={"saveSession": "true"})           # fresh session replaces the shared one
    result = run_case([saver, probe], ctx=ctx)
    assert "sid=" in echo(result, 1)["headers"]["Cookie"]


def test_http_proxy_is_used_for_http_targets(run_case: Run, mkstep: Mk, base_url: str) -> None:
    host = base_url.removeprefix("http://")
    s = mkstep("/api/echo", url="http://liuma-target.invalid", proxies={"url": host, "username": "u@1", "password": "p:w"})
    result = run_case([s])
    got = echo(result)
    assert got["path"] == "http://liuma-target.invalid/api/echo"          # absolute form: it went through the proxy
    assert got["headers"]["Proxy-Authorization"].startswith("Basic ")
    assert "代理: " in result.transactionList[0]["log"]


def test_proxy_user_without_password_is_an_error(run_case: Run, mkstep: Mk) -> None:
    result = run_case([mkstep("/api/echo", proxies={"url": "127.0.0.1:9", "username": "u", "password": ""})])
    assert result.status == Status.ERROR and "代理" in result.transactionList[0]["log"]


def test_timeout_from_controller_and_from_settings(run_case: Run, mkstep: Mk, tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_case([mkstep("/api/slow", query={"ms": "1500"}, controller={"timeout": "0.3"})])
    assert result.status == Status.ERROR and "请求超时(0.3秒)" in result.transactionList[0]["log"]
    ctx = make_ctx(tmp_path, settings=RunSettings(default_step_timeout=0.3))
    result = run_case([mkstep("/api/slow", query={"ms": "1500"})], ctx=ctx)
    assert result.status == Status.ERROR
    ctx = make_ctx(tmp_path, deadline=time.monotonic() + 0.3)          # bounded by the case deadline
    result = run_case([mkstep("/api/slow", query={"ms": "1500"}, controller={"timeout": "30"})], ctx=ctx)
    assert result.status == Status.ERROR
    assert time.monotonic() - started < 4


def test_during_is_the_real_duration_in_ms(run_case: Run, mkstep: Mk) -> None:
    result = run_case([mkstep("/api/slow", query={"ms": "1100"})])
    assert 1050 <= result.transactionList[0]["during"] < 3000        # the original reported ~100


def test_verify_and_stream_options_logged(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/echo", controller={"requireVerify": "false", "requireStream": "true"})
    result = run_case([s])
    assert result.status == Status.PASS and "verify: false" in result.transactionList[0]["log"]
    assert "stream: true" in result.transactionList[0]["log"]


@pytest.mark.parametrize("missing", ["apiId", "apiName", "method", "url", "path"])
def test_missing_required_keys_end_the_case_even_with_error_continue(run_case: Run, mkstep: Mk, missing: str) -> None:
    bad = mkstep("/api/echo", controller={"errorContinue": "true"})
    del bad[missing]
    result = run_case([bad, mkstep("/api/echo")])
    assert result.status == Status.ERROR and len(result.transactionList) == 1
    assert missing in result.transactionList[0]["log"]


def test_request_log_lines_have_the_viewer_markers(run_case: Run, mkstep: Mk) -> None:
    s = mkstep("/api/echo", "POST", body={"type": "json", "json": '{"a": "<b>"}'}, headers={"X": "<i>"})
    log = run_case([s]).transactionList[0]["log"]
    parts = log.split("<br><br>")
    assert "【请求信息】:<br>POST " in log and '<span>请求体: {"a": "<b>"}</span>' in log and "&lt;i&gt;" in log
    assert "【响应信息】:<br>响应码: 200<br>响应头: " in log and "<br><b>响应体: {" in log
    assert json.loads(log.split("<b>响应体: ")[1].split("</b>")[0])["json"] == {"a": "<b>"}
    assert len(parts) >= 3


def test_timing_phases_of_the_exchange(run_case: Run, mkstep: Mk) -> None:
    result = run_case([mkstep("/api/slow", query={"ms": "300"})])
    assert result.status == Status.PASS
    t = result.transactionList[0]["detail"]["req_resps"][0]["response"]["timings"]
    assert set(t) == {"total_ms", "headers_ms", "body_ms", "redirects"} and t["redirects"] == []
    assert t["headers_ms"] >= 300 - 5                  # the server slept 300 ms before sending its headers
    assert t["total_ms"] >= t["headers_ms"] and t["body_ms"] >= 0
    assert result.transactionList[0]["during"] == int(t["total_ms"]) or abs(result.transactionList[0]["during"] - t["total_ms"]) < 1


class _Counting(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive; counts connections; /login sets a cookie, /echo answers the Cookie it got."""
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def do_GET(self) -> None:
        body = json.dumps({"cookie": self.headers.get("Cookie")}).encode()
        self.send_response(200)
        if self.path.startswith("/login"):
            self.send_header("Set-Cookie", "sid=abc; Path=/")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_fresh_sessions_of_a_collection_share_connections_not_cookies(run_case: Run, tmp_path: Path) -> None:
    """§4.2: without useSession/saveSession every send has a fresh session (no cookie of another send), yet
    the collection's sends reuse one keep-alive connection instead of a TCP connect each."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        ctx = make_ctx(tmp_path)
        mk = lambda path: step(base, path)  # noqa: E731
        first = run_case([mk("/login"), mk("/echo")], ctx=ctx)
        second = run_case([mk("/echo"), mk("/login"), mk("/echo")], ctx=ctx)     # the next case of the collection
        assert first.status == Status.PASS and second.status == Status.PASS, first.transactionList[0]["log"]
        assert echo(first, 1) == {"cookie": None} and echo(second, 2) == {"cookie": None}
        assert _Counting.connections == 1
    finally:
        server.shutdown()
        server.server_close()


def test_the_next_collection_reuses_the_connections_but_not_the_saved_session(run_case: Run, tmp_path: Path) -> None:
    """Between two collections of one executor (``reset_shared``) the saved session and its cookies go, the
    keep-alive connection stays: a collection is no TCP connect; closing the executor closes it."""
    from stages.executor.api.runner import ApiRunner
    from stages.executor.api.step import POOL_KEY
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Counting.connections = 0
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        ctx = make_ctx(tmp_path)
        saving = dict(step(base, "/login"), controller={"useSession": "true", "saveSession": "true"})
        using = dict(step(base, "/echo"), controller={"useSession": "true", "saveSession": "true"})
        first = run_case([saving, using], ctx=ctx)
        assert first.status == Status.PASS and echo(first, 1) == {"cookie": "sid=abc"}
        ApiRunner().reset_shared(ctx)                                    # the executor moves to another collection
        second = run_case([using], ctx=ctx)
        assert second.status == Status.PASS and echo(second) == {"cookie": None}      # no cookie of the other collection
        assert _Counting.connections == 1
        pool = ctx.shared[POOL_KEY]
        ApiRunner().close_shared(ctx)                                    # the executor stops: the pool is closed
        assert POOL_KEY not in ctx.shared and not pool.poolmanager.pools
    finally:
        server.shutdown()
        server.server_close()


def test_proxy_from_the_environment_and_no_proxy_are_honoured(run_case: Run, mkstep: Mk, base_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """requests' environment handling (kept per host by the runner) is unchanged: HTTP_PROXY routes a send
    through the proxy (the demo server answers an absolute-form request line), NO_PROXY exempts a host."""
    monkeypatch.setenv("HTTP_PROXY", base_url)
    monkeypatch.setenv("NO_PROXY", "liuma-direct.invalid")
    via = run_case([mkstep("/api/echo", url="http://liuma-env-proxied.invalid")])
    assert echo(via)["path"] == "http://liuma-env-proxied.invalid/api/echo"
    direct = run_case([mkstep("/api/echo", url="http://liuma-direct.invalid")])
    assert direct.status != Status.PASS and "请求发送失败" in direct.transactionList[0]["log"]     # not via the proxy: no such host
