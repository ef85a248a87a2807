"""AppRunner end to end against a real Appium 3 server (127.0.0.1) with the fake driver and our XML app."""
from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pipeline.errors import InfrastructureError
from pipeline.models import CaseResult, Status
from stages.executor.app import actions as app_actions
from stages.executor.app import gestures
from stages.executor.app.runner import NO_DEVICE, AppRunner
from stages.executor.app.session import SESSION_KEY, AppSession
from stages.executor.context import RunContext
from tests.appium_server import AppiumServer, appium_server  # noqa: F401  (module-scoped fixture)
from tests.stages.executor.app.appcases import by_id, case, el, fake_device, make_ctx, op

pytestmark = pytest.mark.appium


class Harness:
    """Runs cases on one fake device, keeping the unit's ``shared`` dict (so the session is reused)."""

    def __init__(self, server: AppiumServer, tmp: Path, platform: str = "android") -> None:
        self.runner = AppRunner()
        self.tmp = tmp
        self.device = fake_device(server.url, platform)
        self.shared: dict[str, Any] = {}
        self.variables: dict[str, Any] = {}
        self.platform = platform

    def ctx(self) -> RunContext:
        ctx = make_ctx(self.tmp, self.device, self.shared)
        ctx.variables = self.variables
        return ctx

    def run(self, ops: list[dict[str, Any]], **extra: Any) -> CaseResult:
        system = "android" if self.platform == "android" else "apple"
        return self.runner.run(case(ops, system=system, **extra), self.ctx()).result

    @property
    def session(self) -> AppSession:
        return self.shared[SESSION_KEY]  # type: ignore[no-any-return]

    def close(self) -> None:
        self.runner.close_shared(self.ctx())


@pytest.fixture()
def android(appium_server: AppiumServer, tmp_path: Path) -> Iterator[Harness]:  # noqa: F811
    h = Harness(appium_server, tmp_path)
    yield h
    h.close()


@pytest.fixture()
def ios(appium_server: AppiumServer, tmp_path: Path) -> Iterator[Harness]:  # noqa: F811
    h = Harness(appium_server, tmp_path, platform="apple")
    yield h
    h.close()


def statuses(result: CaseResult) -> list[int]:
    return [t["status"] for t in result.transactionList]


def logs(result: CaseResult) -> str:
    return "\n".join(t["log"] for t in result.transactionList)


def test_input_click_and_text_assertions_pass(android: Harness) -> None:
    result = android.run([
        op("view", "输入", {"element": by_id("username")}, {"text": "alice"}),
        op("view", "输入", {"element": el("//MockInputField[@id='password']")}, {"text": "secret"}),
        op("view", "单击", {"element": el("//MockButton[@id='loginBtn']")}),
        op("assertion", "断言元素文本", {"element": by_id("username")},
           {"assertion": "equals", "expect": "alice", "continue": ("Boolean", "false")}),
        op("assertion", "断言元素属性", {"element": by_id("loginBtn")},
           {"attribute": "clicks", "assertion": "equals", "expect": "1", "continue": ("Boolean", "false")}),
        op("assertion", "断言元素存在", {"element": by_id("menu")},
           {"assertion": "isTrue", "expect": ("Boolean", "true")}),
    ])
    assert statuses(result) == [0] * 6, logs(result)
    assert result.status == Status.PASS and result.caseType == "APP"
    assert {t["stepType"] for t in result.transactionList} == {"android"}
    assert result.transactionList[0]["content"] == "\n element: 页面 / element"
    driver = android.session.driver          # the effects really happened on the device session
    assert driver.find_element("id", "password").text == "secret"
    assert driver.find_element("id", "loginBtn").get_attribute("clicks") == "1"
    # the fake driver has no app management: noted at command level, the case still passes
    first, last = result.transactionList[0]["log"], result.transactionList[-1]["log"]
    assert "会话已创建" in first and "启动应用 com.example.shop/.ui.MainActivity: 当前驱动不支持该命令" in first
    assert "关闭应用 com.example.shop: 当前驱动不支持该命令" in last


def test_failed_assertion_saves_screenshot_and_stops_the_case(android: Harness) -> None:
    result = android.run([
        op("view", "输入", {"element": by_id("username")}, {"text": "alice"}),
        op("assertion", "断言元素文本", {"element": by_id("username")},
           {"assertion": "equals", "expect": "bob", "continue": ("Boolean", "false")}),
        op("view", "单击", {"element": by_id("loginBtn")}),
    ])
    assert statuses(result) == [0, 1] and result.status == Status.FAIL
    shots = result.transactionList[1]["screenShotList"]
    assert len(shots) == 1 and "断言失败" in result.transactionList[1]["log"]
    png = android.tmp / "image" / "task-1" / f"{shots[0]}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert android.session.driver.find_element("id", "loginBtn").get_attribute("clicks") == ""   # never clicked


def test_screenshot_operation_attaches_the_device_png(android: Harness) -> None:
    result = android.run([op("system", "屏幕截图", data={"name": "home"})])
    assert statuses(result) == [0]
    (shot,) = result.transactionList[0]["screenShotList"]
    with Image.open(io.BytesIO((android.tmp / "image" / "task-1" / f"{shot}.png").read_bytes())) as img:
        assert img.size == (400, 852)         # the fake driver's bundled screen


def test_relations_window_size_positions_and_page_source(android: Harness) -> None:
    result = android.run([
        op("relation", "提取屏幕尺寸", data={"save_name": "size"}),
        op("relation", "提取屏幕宽度", data={"save_name": "w"}),
        op("relation", "提取屏幕高度", data={"save_name": "h"}),
        op("relation", "提取元素位置", {"element": by_id("loginBtn")}, {"save_name": "centre"}),
        op("relation", "提取元素Y坐标", {"element": by_id("loginBtn")}, {"save_name": "y"}),
        op("assertion", "断言元素位置", {"element": by_id("loginBtn")}, {"assertion": "equals", "expect": "(195, 234)"}),
        op("assertion", "断言元素X坐标", {"element": by_id("loginBtn")},
           {"assertion": "equalsNumber", "expect": ("Int", "195")}),
        op("assertion", "自定义", data={"assertion": "contains", "expect": 'id="loginBtn"'},
           code="sys_return(device.page_source)", trans="断言页面源码"),
        op("view", "输入", {"element": by_id("username")}, {"text": "{{w}}x{{h}}"}),
    ])
    assert statuses(result) == [0] * 9, logs(result)
    assert android.variables["size"] == (390, 844)
    assert (android.variables["w"], android.variables["h"]) == (390, 844)
    assert android.variables["centre"] == (195, 234) and android.variables["y"] == 234
    assert android.session.driver.find_element("id", "username").text == "390x844"


def test_condition_skips_the_branch_not_taken(android: Harness) -> None:
    result = android.run([
        op("condition", "判断元素存在", {"element": by_id("nope")},
           {"assertion": "isTrue", "expect": ("Boolean", "true"), "true": ("Int", "1"), "false": ("Int", "1")}),
        op("view", "单击", {"element": by_id("loginBtn")}, op_id="then"),
        op("view", "输入", {"element": by_id("username")}, {"text": "else-branch"}, op_id="else"),
    ])
    assert statuses(result) == [0, 3, 0]
    driver = android.session.driver
    assert driver.find_element("id", "loginBtn").get_attribute("clicks") == ""
    assert driver.find_element("id", "username").text == "else-branch"


def test_missing_element_is_a_step_error_with_screenshot(android: Harness) -> None:
    result = android.run([
        op("view", "输入", {"element": el("//MockInputField[@id='nope']")}, {"text": "x"}),
        op("view", "单击", {"element": by_id("loginBtn")}),
    ])
    assert statuses(result) == [2] and result.status == Status.ERROR
    tx = result.transactionList[0]
    assert "NoSuchElementException" in tx["log"] and len(tx["screenShotList"]) == 1


def test_click_waits_for_the_element_and_passes_when_it_never_appears(android: Harness,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_actions, "CLICK_WAIT", 0.4)
    t0 = time.monotonic()
    result = android.run([op("view", "单击", {"element": by_id("nope")})])
    assert statuses(result) == [0] and "未执行单击" in result.transactionList[0]["log"]
    assert time.monotonic() - t0 >= 0.4


def test_wait_for_element_errors_name_the_reason(android: Harness) -> None:
    result = android.run([
        op("view", "等待元素出现", {"element": by_id("loginBtn")}, {"second": ("Int", "1")}),
        op("view", "等待元素消失", {"element": by_id("loginBtn")}, {"second": ("Int", "0")}),
    ])
    assert statuses(result) == [0, 2] and "element exists" in result.transactionList[1]["log"]


def test_gestures_reach_the_driver_as_exact_w3c_actions(android: Harness) -> None:
    result = android.run([
        op("view", "坐标单击", data={"x": ("Number", "0.5"), "y": ("Number", "0.5")}),
        op("view", "长按", {"element": by_id("loginBtn")}, {"second": ("Float", "2")}),
        op("view", "双击", {"element": by_id("item1")}),
        op("view", "坐标滑动", data={"fx": ("Number", "10"), "fy": ("Number", "700"), "tx": ("Number", "10"),
                                   "ty": ("Number", "100"), "duration": ("Float", "0.5")}),
        op("system", "左滑"),
        op("view", "放大", {"element": by_id("menu")}),
        op("view", "缩小", {"element": by_id("menu")}),
        op("view", "拖动到元素", {"startElement": by_id("item1"), "endElement": by_id("item2")}),
        op("view", "元素内滑动", {"element": by_id("menu")}, {"direction": "up"}),
    ])
    assert statuses(result) == [0] * 9, logs(result)
    log = android.session.driver.get_log("actions")
    assert log[0] == [{"type": "pointer", "id": "finger1", "parameters": {"pointerType": "touch"}, "actions": [
        {"type": "pointerMove", "duration": 0, "x": 195, "y": 422, "origin": "viewport"},
        {"type": "pointerDown", "button": 0}, {"type": "pause", "duration": 100}, {"type": "pointerUp", "button": 0}]}]
    assert log[1] == gestures.long_press(195, 234, 2000)
    assert log[2] == gestures.double_tap(195, 425)
    assert log[3] == gestures.swipe(10, 700, 10, 100, 500)
    assert log[4] == gestures.swipe(351, 422, 39, 422)
    assert log[5] == gestures.pinch(195, 550, 195, outward=True)
    assert [f["actions"][0]["x"] for f in log[6]] == [0, 390] and [f["actions"][2]["x"] for f in log[6]] == [176, 214]
    assert log[7] == gestures.drag(195, 425, 195, 475)
    assert log[8] == gestures.swipe(195, 640, 195, 460)
    assert len(log) == 9


def test_ios_alerts(ios: Harness) -> None:
    result = ios.run([
        op("view", "单击", {"element": {"by": "PROP", "expression": '[{"propName": "id", "propValue": "helpBtn"}]'}},
           system="apple"),
        op("view", "等待弹框出现", data={"second": ("Int", "2")}, system="apple"),
        op("assertion", "断言弹框存在", data={"assertion": "isTrue", "expect": ("Boolean", "true")}, system="apple"),
        op("assertion", "断言弹框文本", data={"assertion": "equals", "expect": "Need help?"}, system="apple"),
        op("relation", "提取弹框文本", data={"save_name": "alertText"}, system="apple"),
        op("view", "弹框确认", system="apple"),
        op("condition", "判断弹框存在", data={"assertion": "isTrue", "expect": ("Boolean", "true"),
                                          "true": ("Int", "1"), "false": ("Int", "0")}, system="apple"),
        op("view", "弹框取消", system="apple"),
    ], deviceSystem="apple")
    assert statuses(result) == [0, 0, 0, 0, 0, 0, 0, 3], logs(result)
    assert {t["stepType"] for t in result.transactionList} == {"ios"}
    assert ios.variables["alertText"] == "Need help?"


def test_android_only_operation_is_undefined_on_ios(ios: Harness) -> None:
    result = ios.run([op("system", "系统返回", system="apple")], deviceSystem="apple")
    assert statuses(result) == [2] and "未定义操作" in result.transactionList[0]["log"]


def test_session_is_reused_and_recreated_after_it_was_lost(android: Harness) -> None:
    ops = [op("view", "输入", {"element": by_id("username")}, {"text": "a"})]
    assert android.run(ops).status == Status.PASS
    first_id = android.session.driver.session_id
    assert android.run(ops).status == Status.PASS
    assert android.session.driver.session_id == first_id and android.session.starts == 1
    android.session.driver.quit()                       # the server ends the session behind our back
    result = android.run(ops)
    assert result.status == Status.PASS
    assert android.session.starts == 2 and android.session.driver.session_id != first_id
    assert "健康检查失败" in result.transactionList[0]["log"] and "已重建会话" in result.transactionList[0]["log"]


def test_warm_up_opens_the_session_before_the_first_case(android: Harness) -> None:
    assert android.runner.warm_up(android.ctx()) > 0
    assert android.session.starts == 1 and android.runner.warm_up(android.ctx()) == android.session.start_seconds
    result = android.run([op("view", "输入", {"element": by_id("username")}, {"text": "a"})])
    first = result.transactionList[0]["log"]
    assert result.status == Status.PASS and android.session.starts == 1        # the case reused it
    assert "会话已预热" in first and "会话已创建" not in first
    again = android.run([op("view", "输入", {"element": by_id("username")}, {"text": "b"})])
    assert "会话已" not in again.transactionList[0]["log"]                       # noted once
    assert AppRunner().warm_up(make_ctx(android.tmp, None)) == 0.0            # no device: nothing to warm


def test_warm_up_on_an_unreachable_server_raises_and_the_first_case_is_broken(tmp_path: Path) -> None:
    from tests.appium_server import free_port
    runner = AppRunner()
    shared: dict[str, Any] = {}
    device = fake_device(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(InfrastructureError, match="无法创建Appium会话"):
        runner.warm_up(make_ctx(tmp_path, device, shared))
    with pytest.raises(InfrastructureError, match="无法创建Appium会话"):
        runner.run(case([]), make_ctx(tmp_path, device, shared))


def test_without_a_device_the_case_errors(tmp_path: Path) -> None:
    result = AppRunner().run(case([op("view", "单击", {"element": by_id("loginBtn")})]), make_ctx(tmp_path, None)).result
    assert result.status == Status.ERROR and len(result.transactionList) == 1
    assert result.transactionList[0]["name"] == "未知" and NO_DEVICE in result.transactionList[0]["log"]


def test_case_for_another_platform_errors(android: Harness) -> None:
    result = android.run([], deviceSystem="apple")
    assert result.status == Status.ERROR and "apple" in result.transactionList[0]["log"]
    assert SESSION_KEY not in android.shared          # no session was opened for it


def test_unreachable_server_is_infrastructure(tmp_path: Path) -> None:
    from tests.appium_server import free_port
    ctx = make_ctx(tmp_path, fake_device(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(InfrastructureError, match="无法创建Appium会话"):
        AppRunner().run(case([]), ctx)


def test_killed_server_makes_the_case_broken(tmp_path: Path) -> None:
    """Killed between cases: the health check cannot recreate the session. Killed during a case: the
    failing step is not a product failure either."""
    runner = AppRunner()
    with AppiumServer() as server:
        assert server.proc is not None
        pid = server.proc.pid
        shared: dict[str, Any] = {}
        ops = [op("view", "输入", {"element": by_id("username")}, {"text": "a"}, trans="first"),
               op("view", "单击", {"element": by_id("loginBtn")}, trans="kill-here")]
        ctx = make_ctx(tmp_path, fake_device(server.url), shared)
        ctx.on_step = lambda name: server.stop() if name == "kill-here" else None
        with pytest.raises(InfrastructureError, match="会话已丢失"):
            runner.run(case(ops), ctx)
        with pytest.raises(InfrastructureError, match="无法创建Appium会话"):
            runner.run(case(ops[:1]), make_ctx(tmp_path, fake_device(server.url), shared))
        runner.close_shared(make_ctx(tmp_path, None, shared))   # quitting a dead session must not raise
        assert SESSION_KEY not in shared
    with pytest.raises(ProcessLookupError):               # the server's whole process group is gone
        os.killpg(pid, 0)


def test_screenshot_on_a_lost_session_is_broken_not_passed(tmp_path: Path) -> None:
    """屏幕截图 is the step the session dies under: the attempt is broken, not a pass with a missing image."""
    runner = AppRunner()
    with AppiumServer() as server:
        shared: dict[str, Any] = {}
        ops = [op("view", "输入", {"element": by_id("username")}, {"text": "a"}),
               op("system", "屏幕截图", data={"name": "home"}, trans="shot")]
        ctx = make_ctx(tmp_path, fake_device(server.url), shared)
        ctx.on_step = lambda name: server.stop() if name == "shot" else None
        with pytest.raises(InfrastructureError, match="会话已丢失"):
            runner.run(case(ops), ctx)
        runner.close_shared(make_ctx(tmp_path, None, shared))


def test_scroll_to_element_swipes_until_found_or_gives_up(android: Harness) -> None:
    result = android.run([
        op("view", "滑动到元素出现", {"element": by_id("item2")}, {"direction": "up"}),
        op("view", "滑动到元素出现", {"element": by_id("nope")}, {"direction": "down"}),
    ])
    assert statuses(result) == [0, 2]
    assert "滑动0次" in result.transactionList[0]["log"] and "滑动10次后元素仍未出现" in result.transactionList[1]["log"]
    log = android.session.driver.get_log("actions")
    assert log == [gestures.swipe(195, 269, 195, 572)] * 10      # finger moves down, inside the middle 60 %


def test_for_loop_and_coordinate_operations(android: Harness) -> None:
    result = android.run([
        op("looper", "For循环", data={"steps": ("Int", "1"), "indexName": "i", "times": ("Int", "3")}, trans="For循环"),
        op("view", "单击", {"element": by_id("loginBtn")}),
        op("view", "坐标双击", data={"x": ("Number", "20"), "y": ("Number", "0.25")}),
        op("view", "坐标长按", data={"x": ("Number", "20"), "y": ("Number", "30"), "second": ("Float", "0.5")}),
        op("system", "强制等待", data={"second": ("Int", "0")}),
    ])
    assert result.status == Status.PASS, logs(result)
    assert android.session.driver.find_element("id", "loginBtn").get_attribute("clicks") == "3"
    assert android.session.driver.get_log("actions") == [gestures.double_tap(20, 211), gestures.long_press(20, 30, 500)]


def test_status_check_sends_url_credentials_as_basic_auth_and_never_shows_them(tmp_path: Path) -> None:
    """A farm URL ``http://user:key@host/wd/hub``: ``/status`` goes to ``host/wd/hub/status`` with the
    credentials as Basic auth; a refusal names the server without them."""
    import base64
    import http.server
    import threading

    from pipeline.devices import Device
    seen: list[tuple[str, str]] = []

    class Farm(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization", "")))
            ready = self.headers.get("Authorization") == "Basic " + base64.b64encode(b"farm user:k3y").decode()
            body = b'{"value": {"ready": %s, "message": "auth?"}}' % (b"true" if ready else b"false")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Farm)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        port = srv.server_address[1]
        AppSession(Device("farm", "android", f"http://farm%20user:k3y@127.0.0.1:{port}/wd/hub")).server_ready()
        assert seen[-1][0] == "/wd/hub/status"
        with pytest.raises(InfrastructureError) as e:
            AppSession(Device("farm", "android", f"http://farm%20user:wrong@127.0.0.1:{port}/wd/hub")).server_ready()
        assert "未就绪" in str(e.value) and f"127.0.0.1:{port}/status" in str(e.value) and "wrong" not in str(e.value)
    finally:
        srv.shutdown()
        srv.server_close()
