"""Reference §4.9 (log format, markers, escaping) and §7.2-7.3 (transactions, status derivation)."""
from __future__ import annotations

import re

from pipeline.models import Status
from stages.executor.common.steplog import CaseRecorder, log_line, request_block, response_block

LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} - (Debug|Error) - .*")


def test_log_line_format() -> None:
    assert LINE.fullmatch(log_line("Debug", "msg"))


def test_request_and_response_markers_and_escaping() -> None:
    block = request_block("POST", "http://h/p?<x>", {"timeout": 5, "json": {"a": "<b>"}, "headers": {"H": "<i>"},
                                                      "params": {"q": "1"}})
    assert block.startswith("【请求信息】:<br>POST http://h/p?&lt;x&gt;<br>请求头: {\"H\": \"&lt;i&gt;\"}<br>查询参数: ")
    assert '<span>请求体: {"a": "<b>"}</span><br>' in block     # body raw: the viewer escapes it
    assert block.index("请求体") < block.index("timeout: 5")
    resp = response_block(200, {"X": "<s>"}, "<html>")
    assert resp == '【响应信息】:<br>响应码: 200<br>响应头: {"X": "&lt;s&gt;"}<br><b>响应体: <html></b>'
    assert "文件内容暂不展示, 长度3" in response_block(200, {"Content-Length": "3"}, None)


def test_statuses_and_case_status() -> None:
    rec = CaseRecorder("API", "case-1")
    rec.begin("s1", "one", "/a", None, "request-GET")
    rec.debug("ok")
    rec.begin("s2", "two", "/b", "desc", "request-GET")
    rec.fail("断言失败")
    rec.begin("s3", "three", "/c", None, "request-GET")
    rec.skip("skipped")
    rec.console("printed <b>\nline2\n")
    result = rec.finish({"caseId": "case-1", "caseName": "n", "caseDesc": "d"})
    steps = result.transactionList
    assert [s["status"] for s in steps] == [Status.PASS, Status.FAIL, Status.SKIP]
    assert result.status == Status.FAIL and result.caseDesc == "d" and result.startTime <= result.endTime
    assert steps[2]["log"].split("<br><br>")[-1].endswith("控制台输出:<br> printed &lt;b&gt;<br>line2")
    assert all(LINE.fullmatch(part) for part in steps[1]["log"].split("<br><br>"))


def test_error_beats_fail_and_ui_separator() -> None:
    rec = CaseRecorder("WEB", "c")
    rec.begin("s1", "one", "", None, "browser")
    rec.fail("f")
    rec.error("e")
    rec.debug("after")
    result = rec.finish({"caseId": "c"})
    assert result.status == Status.ERROR and result.transactionList[0]["status"] == Status.ERROR
    assert result.transactionList[0]["log"].count("<br>") == 2 and "<br><br>" not in result.transactionList[0]["log"]


def test_synthetic_step_when_case_fails_before_first_step() -> None:
    rec = CaseRecorder("APP", "case-9")
    rec.error("device lost")
    result = rec.finish({"caseId": "case-9"})
    [step] = result.transactionList
    assert (step["id"], step["name"], step["content"], step["status"]) == ("case-9", "未知", "未知", Status.ERROR)
    assert result.status == Status.ERROR and result.caseName == "未知" and "device lost" in step["log"]
