"""The LiuMa provider functions (reference §8.2). ``arithmetic`` evaluates arithmetic only (the original used
``eval``, i.e. arbitrary code); test files come from the host's per-task cache instead of a download per call."""
from __future__ import annotations

import ast
import base64
import calendar
import json
import operator
import re
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["Provider", "SIGNATURES", "safe_arithmetic"]

SIGNATURES: dict[str, list[str]] = {
    "loadfile": ["String"], "savefile": ["String"], "b64encode_str": ["String"], "b64encode_bytes": ["Bytes"],
    "b64encode_file": ["String"], "b64decode_toStr": ["String"], "b64decode_toBytes": ["String"],
    "arithmetic": ["String"], "current_time": ["String"],
    **{f"{u}_shift": ["Float", "String"] for u in ("year", "month", "week", "date", "hour", "minute", "second")},
    "lenof": ["JSONArray"], "indexof": ["JSONArray", "Int"], "keyof": ["JSONObject", "String"],
    "pinyin": ["String"], "substing": ["String", "Int", "Int"], "extract": ["Other"],
    "replace": ["String", "String", "String"], "map_dumps": ["JSONObject"], "array_dumps": ["JSONArray"],
}

_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}


def safe_arithmetic(expression: str) -> int | float:
    """Numbers, + - * / // % ** and parentheses; anything else is rejected (no code runs)."""
    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 1000:
                raise ValueError("指数过大")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.operand))
        raise ValueError(f"不支持的算术表达式: {ast.dump(node)[:60]}")
    return walk(ast.parse(str(expression).strip(), mode="eval"))  # type: ignore[no-any-return]


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.month - 1 + months
    year, month = moment.year + total // 12, total % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _format(moment: datetime, fmt: str) -> str | int:
    return int(moment.timestamp() * 1000) if str(fmt).strip().lower() == "none" else moment.strftime(fmt)


class Provider:
    """Bound to one case: the test-file fetcher and the folder ``savefile`` writes to."""

    def __init__(self, fetch_file: Callable[[str], tuple[str, bytes]] | None, file_dir: Path | None) -> None:
        self._fetch = fetch_file
        self._file_dir = file_dir

    def _file(self, uuid: str) -> tuple[str, bytes]:
        if self._fetch is None:
            raise RuntimeError(f"没有可用的测试文件来源，无法获取文件 {uuid}")
        return self._fetch(str(uuid).strip())

    def loadfile(self, uuid: str) -> bytes:
        return self._file(uuid)[1]

    def savefile(self, uuid: str) -> str:
        name, content = self._file(uuid)
        base = self._file_dir or Path(tempfile.gettempdir()) / "liuma-files"
        safe_name = Path(name).name or "file"
        target = base / re.sub(r"[^\w.-]", "_", str(uuid)) / safe_name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return str(target)

    def b64encode_str(self, s: str) -> str:
        return base64.b64encode(str(s).encode("utf-8")).decode()

    def b64encode_bytes(self, s: Any) -> str:
        return base64.b64encode(s if isinstance(s, bytes) else str(s).encode("utf-8")).decode()

    def b64encode_file(self, uuid: str) -> str:
        return base64.b64encode(self.loadfile(uuid)).decode()

    def b64decode_toStr(self, s: str) -> str:
        return base64.b64decode(s).decode("utf-8")

    def b64decode_toBytes(self, s: str) -> bytes:
        return base64.b64decode(s)

    def arithmetic(self, expression: str) -> int | float:
        return safe_arithmetic(expression)

    def current_time(self, s: str = "%Y-%m-%d") -> str | int:
        return _format(datetime.now(), s)

    def _shift(self, delta: timedelta | int, s: str) -> str | int:
        now = datetime.now()
        return _format(now + delta if isinstance(delta, timedelta) else _add_months(now, delta), s)

    def year_shift(self, shift: float, s: str = "%Y-%m-%d") -> str | int:
        return self._shift(round(shift * 12), s)

    def month_shift(self, shift: float, s: str = "%Y-%m-%d") -> str | int:
        return self._shift(round(shift), s)

    def week_shift(self, shift: float, s: str = "%Y-%m-%d") -> str | int:
        return self._shift(timedelta(weeks=shift), s)

    def date_shift(self, shift: float, s: str = "%Y-%m-%d") -> str | int:
        return self._shift(timedelta(days=shift), s)

    def hour_shift(self, shift: float, s: str = "%Y-%m-%d %H:%M:%S") -> str | int:
        return self._shift(timedelta(hours=shift), s)

    def minute_shift(self, shift: float, s: str = "%Y-%m-%d %H:%M:%S") -> str | int:
        return self._shift(timedelta(minutes=shift), s)

    def second_shift(self, shift: float, s: str = "%Y-%m-%d %H:%M:%S") -> str | int:
        return self._shift(timedelta(seconds=shift), s)

    def lenof(self, array: Any) -> int:
        return len(array)

    def indexof(self, array: Any, index: int) -> Any:
        return array[index]

    def keyof(self, map: Any, key: str) -> Any:  # noqa: A002 - the platform's parameter name
        return map[key]

    def pinyin(self, cname: str) -> str:
        return "".join(_lazy_pinyin()(str(cname)))

    def substing(self, s: str, start: int = 0, end: int = -1) -> str:
        return str(s)[start:end]

    def extract(self, data: Any) -> Any:
        return data

    def replace(self, s: str, old: str, new: str) -> str:
        return str(s).replace(old, new)

    def map_dumps(self, tar: Any) -> str:
        return json.dumps(tar, ensure_ascii=False)

    def array_dumps(self, tar: Any) -> str:
        return json.dumps(tar, ensure_ascii=False)


def _lazy_pinyin() -> Callable[..., list[str]]:
    """pypinyin costs ~0.23 s to import (its dictionaries): load it only when a case calls pinyin() (#9)."""
    from pypinyin import lazy_pinyin
    return lazy_pinyin
