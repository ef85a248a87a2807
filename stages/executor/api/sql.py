"""Pre/post SQL items (reference §4.7): one statement, one new connection per item.

Drivers are imported only when an item needs them (the original imported all four at start-up, so a missing
Oracle client stopped the whole engine); a missing driver is an error naming the pip package to install.
``query`` stores each named column as the list of its values over all rows; ``nonQuery`` executes and commits.
"""
from __future__ import annotations

import datetime
import decimal
import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["SqlError", "SqlItem", "parse_item", "run_sql", "DRIVERS"]

# tpz -> (module, pip package)
DRIVERS: dict[str, tuple[str, str]] = {
    "mysql": ("pymysql", "PyMySQL"), "pgsql": ("psycopg2", "psycopg2-binary"),
    "mssql": ("pymssql", "pymssql"), "oracle": ("oracledb", "oracledb"),
}


class SqlError(PipelineError):
    """A SQL item failed: bad item JSON, missing driver, connection or statement error."""


@dataclass(slots=True)
class SqlItem:
    db: dict[str, Any]
    sql_type: str
    names: list[str]
    text: str


def parse_item(value: dict[str, Any]) -> SqlItem:
    db = value.get("db")
    if not isinstance(db, dict) or not db:
        raise SqlError("获取数据库连接信息失败")
    names = [n.strip() for n in str(value.get("names") or "").split(",") if n.strip()]
    return SqlItem(db=db, sql_type=str(value.get("sqlType") or "query"), names=names,
                   text=str(value.get("sqlText") or ""))


def _driver(tpz: str) -> Any:
    if tpz not in DRIVERS:
        raise SqlError(f"不支持的数据库类型: {tpz!r} (支持 {', '.join(DRIVERS)})")
    module, package = DRIVERS[tpz]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise SqlError(f"数据库类型 {tpz} 需要驱动 {module}，请安装: pip install {package}") from e


def _connect(db: dict[str, Any], timeout: float) -> Any:
    tpz = str(db.get("tpz") or "").strip().lower()
    driver = _driver(tpz)
    host, user, password, name = (str(db.get(k) or "") for k in ("host", "user", "password", "db"))
    port = int(str(db.get("port") or 0) or 0) or None
    wait = max(1, int(timeout))
    if tpz == "pgsql":
        return driver.connect(host=host, port=port or 5432, user=user, password=password, dbname=name,
                              connect_timeout=wait, options=f"-c statement_timeout={wait * 1000}")
    if tpz == "mysql":
        return driver.connect(host=host, port=port or 3306, user=user, password=password, database=name,
                              connect_timeout=wait, read_timeout=wait, write_timeout=wait)
    if tpz == "mssql":
        return driver.connect(server=host, port=str(port or 1433), user=user, password=password, database=name,
                              login_timeout=wait, timeout=wait)
    dsn = driver.makedsn(host, port or 1521, service_name=name)
    return driver.connect(user=user, password=password, dsn=dsn)


def plain(value: Any) -> Any:
    """DB values → JSON/msgpack-friendly ones (Decimal → float, or str past 16 fractional digits)."""
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        digits = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        return str(value) if digits > 16 else float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (uuid.UUID,)):
        return str(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def run_sql(item: SqlItem, put: Callable[[str, Any], None], *, timeout: float) -> str:
    """Run one item; returns a log summary. Every error is a ``SqlError`` naming the database."""
    where = f"{item.db.get('tpz')}://{item.db.get('host')}:{item.db.get('port')}/{item.db.get('db')}"
    try:
        conn = _connect(item.db, timeout)
    except SqlError:
        raise
    except Exception as e:
        raise SqlError(f"连接数据库 {where} 失败: {e}") from e
    try:
        cursor = conn.cursor()
        cursor.execute(item.text)
        if item.sql_type == "nonQuery":
            conn.commit()
            return f"执行成功, 影响行数: {cursor.rowcount}"
        rows = cursor.fetchall() if cursor.description else []
        width = len(cursor.description or [])
        if len(item.names) > width:
            raise SqlError(f"变量数错误: {len(item.names)} 个变量名 {item.names}，但查询只返回 {width} 列")
        values = {name: [plain(row[i]) for row in rows] for i, name in enumerate(item.names)}
        for name, column in values.items():
            put(name, column)
        return f"查询成功, 行数: {len(rows)}, 结果: {values}"
    except SqlError:
        raise
    except Exception as e:
        raise SqlError(f"在 {where} 执行SQL失败: {type(e).__name__}: {e}") from e
    finally:
        try:
            conn.close()
        except Exception:   # closing a broken connection must not hide the real error
            pass
