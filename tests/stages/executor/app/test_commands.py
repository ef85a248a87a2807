"""APP operations the fake driver cannot execute, checked at the level of the exact Appium commands sent.

A tiny W3C server on 127.0.0.1 records every request (method, path, JSON body) and answers like a device
driver would (a session, one element, a 1080x2400 window, an alert text); the tests run real cases through
``AppRunner`` with UiAutomator2 / XCUITest capabilities and compare the recorded endpoints and payloads.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import CaseResult, Status
from stages.executor.app.runner import AppRunner
from tests.stages.executor.app.appcases import case, make_ctx, op

ELEMENT = {"element-6066-11e4-a52e-4f735466cecf": "el-1", "ELEMENT": "el-1"}
EXECUTE = "/session/s-1/execute/sync"


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take(self) -> list[tuple[str, str, Any]]:
        with self.lock:
            out, self.requests = self.requests, []
        return out


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length) or b"null") if length else None
        with self.server.lock:
            self.server.requests.append((self.command, self.path, body))
        value: Any = None
        if self.command == "POST" and self.path == "/session":
            value = {"sessionId": "s-1", "capabilities": body["capabilities"]["alwaysMatch"]}
        elif self.path.endswith("/element"):
            value = ELEMENT
        elif self.path.endswith("/elements"):
            value = [ELEMENT]
        elif self.path.endswith("/window/rect"):
            value = {"x": 0, "y": 0, "width": 1080, "height": 2400}
        elif self.path.endswith("/rect"):
            value = {"x": 100, "y": 200, "width": 300, "height": 100}
        elif self.path.endswith("/alert/text"):
            value = "允许访问位置?"
        data = json.dumps({"value": value}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def device(url: str, platform: str) -> dict[str, Any]:
    if platform == "android":
        return {"name": "pixel", "platform": "android", "appium_url": url, "udid": "emulator-5554",
                "system_port": "8201", "chromedriver_port": "9516", "capabilities": '{"noReset": true}'}
    return {"name": "iphone", "platform": "apple", "appium_url": url, "udid": "0000-IPHONE", "wda_local_port": "8101"}


def run(recorder: Recorder, tmp: Path, platform: str, ops: list[dict[str, Any]],
        **extra: Any) -> tuple[CaseResult, list[tuple[str, str, Any]]]:
    """One case on a fresh session; returns the result and the requests after the session start."""
    runner, shared = AppRunner(), dict[str, Any]()
    system = "android" if platform == "android" else "apple"
    recorder.take()
    ctx = make_ctx(tmp, device(recorder.url, platform), shared)
    try:
        result = runner.run(case(ops, system=system, **extra), ctx).result
    finally:
        runner.close_shared(ctx)
    return result, recorder.take()


def executes(requests: list[tuple[str, str, Any]]) -> list[tuple[str, Any]]:
    return [(body["script"], body["args"][0] if body["args"] else None)
            for method, path, body in requests if path == EXECUTE]


def finds(requests: list[tuple[str, str, Any]]) -> list[tuple[str, str]]:
    return [(body["using"], body["value"]) for method, path, body in requests
            if method == "POST" and path.endswith(("/element", "/elements"))]


def test_android_session_capabilities_app_lifecycle_and_keys(recorder: Recorder, tmp_path: Path) -> None:
    result, requests = run(recorder, tmp_path, "android", [
        op("system", "系统首页"), op("system", "系统返回"), op("system", "系统按键", data={"keycode": "volume_up"}),
        op("system", "系统按键", data={"keycode": "66"}), op("system", "亮屏"), op("system", "息屏"),
        op("system", "启动应用", data={"appId": "com.other"}), op("system", "关闭应用", data={"appId": "com.other"}),
        op("system", "隐式等待", data={"second": ("Int", "3")}),
    ])
    assert result.status == Status.PASS, [t["log"] for t in result.transactionList]
    method, path, body = requests[0]
    assert (method, path) == ("POST", "/session")
    assert body["capabilities"]["alwaysMatch"] == {
        "platformName": "Android", "appium:automationName": "UiAutomator2", "appium:newCommandTimeout": 300,
        "appium:udid": "emulator-5554", "appium:systemPort": 8201, "appium:chromedriverPort": 9516,
        "appium:noReset": True}
    assert executes(requests) == [
        ("mobile: startActivity", {"intent": "com.example.shop/.ui.MainActivity"}),
        ("mobile: pressKey", {"keycode": 3}), ("mobile: pressKey", {"keycode": 4}),
        ("mobile: pressKey", {"keycode": 24}), ("mobile: pressKey", {"keycode": 66}),
        ("mobile: pressKey", {"keycode": 224}), ("mobile: pressKey", {"keycode": 223}),
        ("mobile: activateApp", {"appId": "com.other", "bundleId": "com.other"}),
        ("mobile: terminateApp", {"appId": "com.other", "bundleId": "com.other"}),
        ("mobile: terminateApp", {"appId": "com.example.shop", "bundleId": "com.example.shop"}),
    ]
    assert ("POST", "/session/s-1/timeouts", {"implicit": 3000}) in requests
    assert requests[-1][:2] == ("DELETE", "/session/s-1")     # close_shared ends the session


def test_android_uiautomator_selectors_and_gestures(recorder: Recorder, tmp_path: Path) -> None:
    login = {"by": "PROP", "expression": json.dumps(
        [{"propName": "text", "propValue": "登录"}, {"propName": "clickable", "propValue": "true"}], ensure_ascii=False)}
    result, requests = run(recorder, tmp_path, "android", [
        op("view", "单击", {"element": login}),
        op("view", "输入", {"element": {"by": "PROP", "expression": '[{"propName":"resourceId","propValue":"a:id/u"}]'}},
           {"text": "admin"}),
        op("view", "坐标拖动", data={"fx": ("Number", "0.5"), "fy": ("Number", "0.9"), "tx": ("Number", "0.5"),
                                   "ty": ("Number", "0.1")}),
        op("view", "拖动到坐标", {"element": login}, {"x": ("Number", "10"), "y": ("Number", "20")}),
        op("view", "坐标滑动", data={"fx": "1", "fy": "2", "tx": "3", "ty": "4", "duration": ("Float", "800")}),
    ])
    assert result.status == Status.PASS, [t["log"] for t in result.transactionList]
    selector = 'new UiSelector().text("登录").clickable(true)'
    assert finds(requests) == [("-android uiautomator", selector), ("-android uiautomator", selector),
                               ("id", "a:id/u"), ("-android uiautomator", selector)]
    assert ("POST", "/session/s-1/element/el-1/click", {}) in requests
    assert any(p == "/session/s-1/element/el-1/value" and b["text"] == "admin" for _, p, b in requests)
    gestures = [b["actions"][0]["actions"] for m, p, b in requests if p == "/session/s-1/actions"]
    assert gestures[0][0] == {"type": "pointerMove", "duration": 0, "x": 540, "y": 2160, "origin": "viewport"}
    assert gestures[0][3] == {"type": "pointerMove", "duration": 500, "x": 540, "y": 240, "origin": "viewport"}
    assert (gestures[1][0]["x"], gestures[1][0]["y"], gestures[1][3]["x"], gestures[1][3]["y"]) == (250, 250, 10, 20)
    assert gestures[2][2]["duration"] == 800        # > 10: milliseconds


def test_ios_predicates_class_chains_buttons_and_alerts(recorder: Recorder, tmp_path: Path) -> None:
    result, requests = run(recorder, tmp_path, "apple", [
        op("view", "单击", {"element": {"by": "PRED", "expression": "label == '登录'"}}, system="apple"),
        op("view", "单击", {"element": {"by": "CLASS", "expression": "**/XCUIElementTypeButton[`label == 'OK'`]"}},
           system="apple"),
        op("view", "清空", {"element": {"by": "PROP", "expression":
                                        '[{"propName":"className","propValue":"XCUIElementTypeTextField"},'
                                        '{"propName":"value","propValue":"old"}]'}}, system="apple"),
        op("system", "系统首页", system="apple"), op("system", "系统按键", data={"keycode": "volume_down"}, system="apple"),
        op("system", "亮屏", system="apple"), op("system", "息屏", system="apple"),
        op("view", "弹框点击", data={"name": "允许"}, system="apple"),
        op("assertion", "断言弹框文本", data={"assertion": "contains", "expect": "位置"}, system="apple"),
    ], activity=None, deviceSystem="apple")
    assert result.status == Status.PASS, [t["log"] for t in result.transactionList]
    assert requests[0][2]["capabilities"]["alwaysMatch"] == {
        "platformName": "iOS", "appium:automationName": "XCUITest", "appium:newCommandTimeout": 300,
        "appium:udid": "0000-IPHONE", "appium:wdaLocalPort": 8101}
    assert finds(requests) == [
        ("-ios predicate string", "label == '登录'"), ("-ios predicate string", "label == '登录'"),
        ("-ios class chain", "**/XCUIElementTypeButton[`label == 'OK'`]"),
        ("-ios class chain", "**/XCUIElementTypeButton[`label == 'OK'`]"),
        ("-ios predicate string", "type == 'XCUIElementTypeTextField' AND value == 'old'")]
    assert ("POST", "/session/s-1/element/el-1/clear", {}) in requests
    assert executes(requests) == [
        ("mobile: activateApp", {"appId": "com.example.shop", "bundleId": "com.example.shop"}),
        ("mobile: pressButton", {"name": "home"}), ("mobile: pressButton", {"name": "volumeDown"}),
        ("mobile: unlock", {}), ("mobile: lock", {}),
        ("mobile: alert", {"action": "accept", "buttonLabel": "允许"}),
        ("mobile: terminateApp", {"appId": "com.example.shop", "bundleId": "com.example.shop"}),
    ]
    assert ("GET", "/session/s-1/alert/text", None) in requests


def test_unknown_key_name_is_a_step_error(recorder: Recorder, tmp_path: Path) -> None:
    result, requests = run(recorder, tmp_path, "android", [op("system", "系统按键", data={"keycode": "teleport"})])
    assert result.status == Status.ERROR and "不支持的Android按键 'teleport'" in result.transactionList[0]["log"]
    assert not [s for s, _ in executes(requests) if s == "mobile: pressKey"]
