"""One suite with every outcome a report must show, API and WEB, run for real against the demo server:
passed, failed (retried, never passed), error (transport), broken (case timeout), skipped (disabled and
dependency), flaky (a pre-script that fails only on the first attempt), WEB passed with a screenshot of a
Chinese page, WEB failed with its failure screenshot."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.system.suites import api_case, write_suite

TASK_ID = "mixed-1"


def web_case(case_id: str, name: str, url: str, page: str, title_expect: str, *, shot: bool = False) -> dict[str, Any]:
    ops: list[dict[str, Any]] = [
        {"operationType": "browser", "operationId": f"{case_id}-open", "operationName": "打开网页", "operationDesc": None,
         "operationTrans": "打开网页", "operationCode": None, "operationElement": {},
         "operationData": {"domain": {"type": "String", "value": url}, "path": {"type": "String", "value": page}}},
        {"operationType": "assertion", "operationId": f"{case_id}-title", "operationName": "断言页面标题",
         "operationDesc": None, "operationTrans": "断言页面标题", "operationCode": None, "operationElement": {},
         "operationData": {"assertion": {"type": "String", "value": "contains"},
                           "expect": {"type": "String", "value": title_expect},
                           "continue": {"type": "Boolean", "value": "false"}}},
    ]
    if shot:
        ops.append({"operationType": "browser", "operationId": f"{case_id}-shot", "operationName": "屏幕截图",
                    "operationDesc": None, "operationTrans": "屏幕截图", "operationCode": None, "operationElement": {},
                    "operationData": {"name": {"type": "String", "value": "首页"}}})
    return {"comment": None, "caseId": case_id, "caseName": name, "functions": [], "params": {}, "startDriver": True,
            "closeDriver": True, "driverSetting": {}, "optList": ops}


def write_mixed_suite(root: Path, url: str, marker_dir: Path) -> Path:
    """The suite on disk; ``marker_dir`` holds the flaky case's first-attempt marker (must be empty)."""
    marker = marker_dir / "flaky.once"
    flaky_pre = ("import os\n"
                 f"p = {str(marker)!r}\n"
                 "if not os.path.exists(p):\n"
                 "    open(p, 'w').close()\n"
                 "    raise RuntimeError('first attempt fails on purpose')\n")
    status_ok = [{"from": "resCode", "method": "", "expression": "", "assertion": "equals", "expect": "200"}]
    collections = {
        "接口-api": [
            api_case("items", url, "/api/items?size=12", name="商品列表", assertions=[
                *status_ok, {"from": "resBody", "method": "jsonpath", "expression": "$.data[0].name",
                             "assertion": "equals", "expect": "item1"}]),
            api_case("wrong-name", url, "/api/items", name="名称不符", assertions=[
                {"from": "resBody", "method": "jsonpath", "expression": "$.data[0].name", "assertion": "equals",
                 "expect": "nope"}]),
            api_case("refused", "http://127.0.0.1:9", "/api/health", name="连接被拒绝"),
            api_case("hang", url, "/api/health", name="超时接口",
                     controller={"pre": [{"name": "preScript", "value": "import time\ntime.sleep(60)", "index": 1}]}),
            api_case("flaky", url, "/api/health", name="偶发失败", assertions=status_ok,
                     controller={"pre": [{"name": "preScript", "value": flaky_pre, "index": 1}]}),
            api_case("disabled", url, "/api/health", name="已停用"),
        ],
        "页面-web": [
            web_case("zh-page", "中文页面", url, "/zh.html", "流马", shot=True),
            web_case("wrong-title", "标题不符", url, "/index.html", "不存在的标题"),
        ],
        "依赖-dep": [api_case("needs-refused", url, "/api/health", name="依赖失败用例")],
    }
    extra = {"hang": {"timeout": 2}, "disabled": {"enabled": False, "skipReason": "disabled in the suite"},
             "needs-refused": {"dependencies": ["refused"]}}
    return write_suite(root, collections, task_id=TASK_ID, extra=extra, rerun=True)
