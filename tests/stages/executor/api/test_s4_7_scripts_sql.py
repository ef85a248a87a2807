"""Reference §4.7: pre/post scripts (names, console capture, errors) and SQL against a real PostgreSQL."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pipeline.models import CaseResult, Status
from stages.executor.api.sql import DRIVERS, SqlError, SqlItem, run_sql

Run = Callable[..., CaseResult]
Mk = Callable[..., dict[str, Any]]


def script(name: str, code: str) -> dict[str, Any]:
    return {"name": name, "value": code, "index": 1, "edit": False, "desc": None}


def test_pre_and_post_script_names(run_case: Run, mkstep: Mk) -> None:
    pre = script("preScript", "assert res_code is None and res_data is None and res_request is None\n"
                              "sys_put('who', 'alice')\nsys_put('tmp', 1, True)\nprint('pre <ran>')")
    post = script("postScript", "sys_put('code', res_code)\nsys_put('status', res_data['status'])\n"
                                "sys_put('url', res_request['url'])\nsys_put('blen', len(res_bytes))\n"
                                "sys_put('ctype', res_header['Content-Type'])\nsys_put('tmp_seen', sys_get('tmp'))")
    result = run_case([mkstep("/api/health", query={"w": "{{who}}"}, controller={"pre": [pre], "post": [post]})])
    assert result.status == Status.PASS, result.transactionList[0]["log"]
    out = result.inOut["export_vars"]
    assert out["code"] == 200 and out["status"] == "ok" and out["url"].endswith("/api/health")
    assert out["blen"] > 0 and out["ctype"].startswith("application/json") and out["tmp_seen"] == 1
    assert "tmp" not in out and result.inOut["config_vars"]["tmp"] == 1
    assert "控制台输出:<br> pre &lt;ran&gt;" in result.transactionList[0]["log"]


def test_script_error_is_a_step_error_naming_the_line(run_case: Run, mkstep: Mk) -> None:
    result = run_case([mkstep("/api/health", controller={"post": [script("postScript", "x = 1\nraise ValueError('boom')")]})])
    assert result.status == Status.ERROR and "ValueError: boom (第2行)" in result.transactionList[0]["log"]


@pytest.mark.postgres
def test_sql_query_nonquery_and_errors(run_case: Run, mkstep: Mk, postgres: dict[str, Any]) -> None:
    def item(name: str, sql_type: str, text: str, names: str = "") -> dict[str, Any]:
        return {"name": name, "index": 1, "edit": False,
                "value": json.dumps({"db": postgres, "sqlType": sql_type, "names": names, "sqlText": text})}
    setup = [item("preSql", "nonQuery", "drop table if exists users; create table users (id int, name text, score numeric(6,2))"),
             item("preSql", "nonQuery", "insert into users values (1, 'admin', 1.50), (2, 'alice', 2.00)")]
    query = [item("postSql", "query", "select id, name, score from users where id <= {{maxid}} order by id", "ids, names, scores"),
             item("postSql", "query", "select id from users where id > 99", "none_ids"),
             {"name": "postSql", "value": "{}"}]
    result = run_case([mkstep("/api/health", controller={"pre": setup, "post": query})],
                      params={"maxid": {"type": "Int", "value": "2"}})
    assert result.status == Status.PASS, result.transactionList[0]["log"]
    out = result.inOut["export_vars"]
    assert out["ids"] == [1, 2] and out["names"] == ["admin", "alice"] and out["scores"] == [1.5, 2.0]
    assert out["none_ids"] == []
    bad = run_case([mkstep("/api/health", controller={"post": [item("postSql", "query", "select 1", "a, b")]})])
    assert bad.status == Status.ERROR and "变量数错误" in bad.transactionList[0]["log"]
    broken = run_case([mkstep("/api/health", controller={"post": [item("postSql", "query", "select * from nope", "a")]})])
    assert broken.status == Status.ERROR and "执行SQL失败" in broken.transactionList[0]["log"]


def test_sql_without_connection_info(run_case: Run, mkstep: Mk) -> None:
    value = json.dumps({"db": {}, "sqlType": "query", "names": "a", "sqlText": "select 1"})
    result = run_case([mkstep("/api/health", controller={"pre": [{"name": "preSql", "value": value}]})])
    assert result.status == Status.ERROR and "获取数据库连接信息失败" in result.transactionList[0]["log"]


def test_missing_driver_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DRIVERS, "mssql", ("liuma_no_such_driver", "pymssql"))
    item = SqlItem(db={"tpz": "mssql", "host": "127.0.0.1"}, sql_type="query", names=[], text="select 1")
    with pytest.raises(SqlError, match="pip install pymssql"):
        run_sql(item, lambda n, v: None, timeout=1)
    with pytest.raises(SqlError, match="不支持的数据库类型"):
        run_sql(SqlItem(db={"tpz": "db2"}, sql_type="query", names=[], text=""), lambda n, v: None, timeout=1)
