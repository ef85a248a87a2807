"""Every WEB ``browser`` and ``page`` operation (§5.4) in real headless Chromium against the demo site; each
test checks the operation's effect in the page, not merely that no exception was raised."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.stages.executor.web.conftest import Web, logs, op, statuses

pytestmark = pytest.mark.browser

EL = "element"


def text(web: Web, element_id: str) -> str:
    return str(web.driver.find_element(By.ID, element_id).text)


def test_open_url_refresh_back_forward(web: Web) -> None:
    r = web.run(web.open(), op("page", "单击", {EL: ("LINK", "Go to page 2")}), op("browser", "后退"),
                op("browser", "前进"), op("browser", "刷新"))
    assert statuses(r) == [0] * 5 and web.driver.title == "Page Two"
    assert web.driver.timeouts.implicit_wait == 2      # 打开网页 sets a 2 s implicit wait
    r = web.run(op("browser", "打开网页", domain="", path="relative/only"))
    assert r.status == 2 and "绝对地址" in logs(r)


def test_window_size_position_max_min_full(web: Web) -> None:
    web.run(web.open(), op("browser", "设置窗口大小", width=("Int", "900"), height=("Int", "700")),
            op("browser", "设置窗口位置", x=("Int", "30"), y=("Int", "40")))
    rect = web.driver.get_window_rect()
    assert (rect["width"], rect["height"], rect["x"], rect["y"]) == (900, 700, 30, 40)
    web.run(op("browser", "最大化窗口"), start=False)
    assert web.driver.get_window_size() == {"width": 800, "height": 600}     # headless screen is 800x600
    web.run(op("browser", "最小化窗口"), start=False)
    assert web.driver.execute_script("return document.visibilityState") == "hidden"
    web.run(op("browser", "全屏窗口"), start=False)
    assert web.driver.execute_script("return document.visibilityState") == "visible"


def test_new_window_switch_close(web: Web) -> None:
    r = web.run(web.open(), op("relation", "提取当前窗口句柄", save_name="main"),
                op("browser", "单击跳转新窗口", {EL: ("ID", "new-window-link")}),
                op("assertion", "断言页面标题", assertion="equals", expect="Page Two"),
                op("browser", "返回并关闭当前窗口", window="{{main}}"),
                op("assertion", "断言页面标题", assertion="equals", expect="LiuMa Demo"))
    assert statuses(r) == [0] * 6 and len(web.driver.window_handles) == 1
    r = web.run(op("browser", "单击跳转新窗口", {EL: ("ID", "new-window-link")}),
                op("browser", "切换窗口", window="{{main}}"), op("browser", "关闭窗口"), start=False)
    assert statuses(r) == [0, 0, 0] and len(web.driver.window_handles) == 1
    web.driver.switch_to.window(web.driver.window_handles[0])
    assert web.driver.title == "Page Two"


def test_waits(web: Web) -> None:
    t0 = time.monotonic()
    r = web.run(web.open(), op("browser", "强制等待", second=("Int", "1")), op("browser", "隐式等待", second=("Int", "0")))
    assert time.monotonic() - t0 >= 1 and web.driver.timeouts.implicit_wait == 0 and r.status == 0
    r = web.run(op("page", "单击", {EL: ("ID", "delay-btn")}),
                op("page", "等待元素出现", {EL: ("ID", "delayed")}, second=("Int", "5")),
                op("page", "单击", {EL: ("ID", "vanish-btn")}),
                op("page", "等待元素消失", {EL: ("ID", "vanishing")}, second=("Int", "5")), start=False)
    assert statuses(r) == [0] * 4 and text(web, "delayed") == "I came late"
    r = web.run(op("page", "等待元素出现", {EL: ("ID", "never")}, second=("Int", "1")), start=False)
    assert r.status == 2 and "等待元素出现超时" in logs(r)


def test_cookies(web: Web) -> None:
    r = web.run(web.open(), op("browser", "添加cookie", name="k1", value="v1"), op("browser", "添加cookie", name="k2", value="v2"),
                op("browser", "删除cookie", name="k1"))
    assert r.status == 0 and {c["name"] for c in web.driver.get_cookies()} == {"k2"}
    web.run(op("browser", "删除cookies"), start=False)
    assert web.driver.get_cookies() == []


def test_execute_scripts(web: Web) -> None:
    r = web.run(web.open(), op("browser", "执行脚本", script="document.title = arguments[0] + arguments[1]",
                               arg=("JSONArray", '["A", 1]')),
                op("browser", "执行异步脚本", script="var cb = arguments[arguments.length - 1]; "
                   "setTimeout(function(){ document.getElementById('greeting').textContent = arguments.length; cb(); }, 50)",
                   arg=("JSONArray", "[]")))
    assert r.status == 0 and web.driver.title == "A1"


def test_screenshot_operation(web: Web) -> None:
    r = web.run(web.open(), op("browser", "屏幕截图", name="home"))
    shots = r.transactionList[1]["screenShotList"]
    assert len(shots) == 1
    path = web.ctx.image_dir / f"{shots[0]}.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_input_clear_click_submit(web: Web) -> None:
    r = web.run(web.open(), op("page", "输入", {EL: ("NAME", "username")}, text="abc"),
                op("page", "清空", {EL: ("ID", "username")}), op("page", "输入", {EL: ("CSS", "#username")}, text="流马"),
                op("page", "单击", {EL: ("XPATH", "//button[text()='Greet']")}))
    assert r.status == 0 and text(web, "greeting") == "Hello, 流马"
    web.run(op("page", "提交", {EL: ("ID", "username")}), start=False)
    assert web.driver.title == "Form Received" and "username=%E6%B5%81%E9%A9%AC" in text(web, "query")


def test_frames(web: Web) -> None:
    r = web.run(web.open(), op("page", "切换frame", {"frame": ("ID", "frame1")}),
                op("page", "输入", {EL: ("ID", "frame-input")}, text="in frame"),
                op("page", "切换frame", {"frame": ("NAME", "inner")}),
                op("relation", "提取元素文本", {EL: ("ID", "inner-text")}, save_name="inner"),
                op("page", "返回父级frame"),
                op("relation", "提取元素文本", {EL: ("ID", "frame-text")}, save_name="outer"),
                op("page", "返回默认frame"),
                op("relation", "提取页面标题", save_name="top"))
    assert r.status == 0
    assert {k: web.ctx.variables[k] for k in ("inner", "outer", "top")} == {
        "inner": "inside inner", "outer": "inside frame1", "top": "LiuMa Demo"}


def test_alerts(web: Web) -> None:
    r = web.run(web.open(), op("page", "单击", {EL: ("ID", "confirm-btn")}), op("page", "弹出框确认"))
    assert r.status == 0 and text(web, "dialog-result") == "confirmed"
    web.run(op("page", "单击", {EL: ("ID", "confirm-btn")}), op("page", "弹出框取消"), start=False)
    assert text(web, "dialog-result") == "cancelled"
    web.run(op("page", "单击", {EL: ("ID", "prompt-btn")}), op("page", "弹出框输入", text="liuma"),
            op("page", "弹出框确认"), start=False)
    assert text(web, "dialog-result") == "prompt:liuma"
    r = web.run(op("page", "单击", {EL: ("ID", "alert-btn")}), op("page", "弹出框确认"), start=False)
    assert r.status == 0 and text(web, "title") == "LiuMa Demo"


def test_mouse_actions(web: Web) -> None:
    web.run(web.open(), op("page", "双击", {EL: ("ID", "dbl-btn")}))
    assert text(web, "click-result") == "double clicked"
    web.run(op("page", "右键点击", {EL: ("ID", "ctx-btn")}), start=False)
    assert text(web, "click-result") == "context menu"
    web.run(op("page", "单击保持", {EL: ("ID", "hold-btn")}), start=False)
    assert text(web, "click-result") == "held"
    web.run(op("page", "释放点击保持状态", {EL: ("ID", "hold-btn")}), start=False)
    assert text(web, "click-result") == "released"
    web.run(op("page", "鼠标移动到元素", {EL: ("ID", "hover-zone")}), start=False)
    assert text(web, "hover-result") == "hovered" and web.driver.find_element(By.ID, "hover-tip").is_displayed()


def test_mouse_offsets_and_click(web: Web) -> None:
    web.run(web.open(), op("browser", "执行脚本", script="document.getElementById('pad').scrollIntoView({block: 'center'})"),
            op("page", "鼠标元素内偏移", {EL: ("ID", "pad")}, x=("Int", "-50"), y=("Int", "-20")))
    x, y = (int(v) for v in text(web, "pad-result").split(","))
    assert abs(x - 50) <= 1 and abs(y - 20) <= 1        # W3C offsets are from the element's centre (200x80)
    web.run(op("page", "鼠标移动到坐标", x=("Int", "10"), y=("Int", "5")), op("page", "鼠标单击"), start=False)
    assert text(web, "pad-result") == f"{x + 10},{y + 5} clicked"


def test_drag_and_drop(web: Web) -> None:
    web.run(web.open(), op("page", "拖拽", {"startElement": ("ID", "drag-src"), "endElement": ("ID", "drop-target")}))
    assert text(web, "drop-result") == "dropped"
    web.run(op("page", "偏移拖拽", {EL: ("ID", "drag-src")}, x=("Int", "300"), y=("Int", "0")), start=False)
    assert (text(web, "drop-result"), text(web, "drag-offset")) == ("missed", "300,0")


def test_keys(web: Web) -> None:
    r = web.run(web.open(), op("page", "按下键位", {EL: ("ID", "keys")}, value="SHIFT"))
    assert r.status == 0 and text(web, "key-down") == "down:Shift"
    web.run(op("page", "释放键位", {EL: ("ID", "keys")}, value="SHIFT"), start=False)
    assert text(web, "key-result") == "up:Shift"
    r = web.run(op("page", "按下键位", {EL: ("ID", "keys")}, value="enter"), start=False)
    assert r.status == 2 and "未知键位" in logs(r)


def test_file_upload(web: Web, tmp_path: Path) -> None:
    f = tmp_path / "report.txt"
    f.write_text("x")
    web.run(web.open(), op("page", "输入", {EL: ("ID", "upload")}, text=str(f)))
    assert text(web, "upload-name") == "report.txt"


def test_missing_element_param_is_step_error(web: Web) -> None:
    r = web.run(web.open(), op("page", "单击"))
    assert r.status == 2 and "缺少元素参数 element" in logs(r)


def test_a_fractional_pixel_offset_is_a_step_error_naming_it(web: Web) -> None:
    r = web.run(web.open(), op("page", "鼠标移动到坐标", x=("Float", "10.5"), y=("Int", "5")))
    assert r.status == 2 and "数据参数 x 必须是整数, 实际为 10.5" in logs(r)
    r = web.run(web.open(), op("page", "鼠标移动到坐标", x=("Float", "10.0"), y=("Int", "5")))
    assert r.status == 0, logs(r)
