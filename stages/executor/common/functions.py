"""The built-in function library behind ``{{@name(args)}}`` (reference §8): the LiuMa provider, every
Faker method of the locale, and the case's custom functions.

One instance per case (Faker reseeded from the clock; custom signatures live on the instance and never leak
to other cases). Argument text is split on commas outside quotes and brackets (the original split on every
comma; the old unquoted form still parses the same), ``#{…}`` reference markers are resolved from ``refs``
and pieces are converted by the declared types (§8.1).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import PipelineError
from stages.executor.common import provider
from stages.executor.common.params import parse_literal
from stages.executor.common.refs import MARKER, resolve_marker
from stages.executor.common.script import NOT_RETURNED, ScriptError, run_script, script_names
from stages.executor.common.variables import Variables

if TYPE_CHECKING:
    import faker

__all__ = ["FunctionError", "FunctionLibrary", "split_args", "SIGNATURES"]


class FunctionError(PipelineError):
    """A function call failed: unknown name, bad argument, error inside the function."""


SIGNATURES: dict[str, list[str]] = {
    **provider.SIGNATURES,
    "bothify": ["String", "String"], "lexify": ["String", "String"], "numerify": ["String"],
    "random_int": ["Int", "Int", "Int"], "random_number": ["Int", "Boolean"],
    "pyfloat": ["Int", "Int", "Boolean"], "ean": ["Int"], "localized_ean": ["Int"],
    "file_path": ["Int", "String", "String"], "domain_name": ["Int"], "hostname": ["Int"],
    "image_url": ["Int", "Int"], "ipv4": ["Boolean", "String", "Boolean"], "uri_path": ["Int"],
    "paragraph": ["Int", "Boolean"], "paragraphs": ["Int"], "sentence": ["Int", "Boolean"],
    "sentences": ["Int"], "text": ["Int"], "texts": ["Int", "Int"], "words": ["Int"],
    "password": ["Int", "Boolean", "Boolean", "Boolean", "Boolean"],
}

_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’"}
_OPEN = {"[": "]", "{": "}", "(": ")"}


def split_args(raw: str) -> list[str]:
    """Split on top-level commas (outside quotes, brackets and ``#{…}``); pieces trimmed; ``""`` → []."""
    if raw is None or not str(raw).strip():
        return []
    pieces: list[str] = []
    current: list[str] = []
    stack: list[str] = []
    quote = ""
    text = str(raw)
    for i, ch in enumerate(text):
        if quote:
            if ch == _QUOTES[quote] and text[i - 1] != "\\":
                quote = ""
        elif ch in _QUOTES:
            quote = ch
        elif ch in _OPEN:
            stack.append(_OPEN[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
        elif ch == "," and not stack:
            pieces.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    pieces.append("".join(current).strip())
    return pieces


def _unquote(text: str) -> str:
    t = text.strip()
    for left, right in (('\\"', '\\"'), ("\\'", "\\'"), ('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’")):
        if len(t) >= 2 * len(left) and t.startswith(left) and t.endswith(right):
            return t[len(left):len(t) - len(right)]
    return t


def _stringify(value: Any) -> str:
    import json
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def convert_arg(type_name: str | None, value: Any, func: str) -> Any:
    """One argument by its declared type (§8.1); errors name the function and the argument."""
    try:
        if type_name is None:
            return _stringify(value)
        if type_name == "String":
            return _unquote(value) if isinstance(value, str) else _stringify(value)
        if type_name in ("Int", "Float"):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return int(value) if type_name == "Int" else float(value)
            text = _unquote(str(value))
            return int(text) if type_name == "Int" else float(text)
        if type_name == "Boolean":
            return value if isinstance(value, bool) else _unquote(str(value)).lower() != "false"
        if type_name in ("JSONObject", "JSONArray"):
            return parse_literal(value) if isinstance(value, (str, bytes)) else value
        return value   # Bytes, Other
    except (ValueError, TypeError) as e:
        raise FunctionError(f"函数 {func} 的参数 {value!r} 不能转换为 {type_name}: {e}") from e


class FunctionLibrary:
    """Callable functions of one case. ``call`` raises ``FunctionError`` with a clear message."""

    def __init__(self, custom: list[dict[str, Any]] | None = None, *, locale: str = "zh_CN",
                 fetch_file: Callable[[str], tuple[str, bytes]] | None = None,
                 variables: Variables | None = None, printer: Callable[[str], None] | None = None,
                 file_dir: Path | None = None) -> None:
        self.variables = variables if variables is not None else Variables()
        self.printer = printer
        self.deadline: float | None = None      # set by the runner: custom functions stop at the case deadline
        self.locale = locale
        self._faker: faker.Faker | None = None    # built on first use: ~2 ms per case otherwise (#9)
        self.provider = provider.Provider(fetch_file, file_dir)
        self.custom: dict[str, dict[str, Any]] = {}
        for spec in custom or []:
            if isinstance(spec, dict) and spec.get("name"):
                self.custom[str(spec["name"])] = spec

    @property
    def faker(self) -> faker.Faker:
        if self._faker is None:
            import faker  # here, not at module level: ~50 ms of import per executor that never calls one
            self._faker = faker.Faker(self.locale)
            self._faker.seed_instance(time.time_ns())
        return self._faker

    def signature(self, name: str) -> list[str] | None:
        if name in self.custom:
            return list((self.custom[name].get("params") or {}).get("types") or [])
        return SIGNATURES.get(name)

    def call(self, name: str, raw_args: str, refs: dict[str, Any] | None = None) -> Any:
        name = name.strip()
        pieces = [resolve_marker(p, refs) if MARKER.search(p) else p for p in split_args(raw_args)]
        types = self.signature(name)
        if types is None:
            args = [convert_arg(None, p, name) for p in pieces]
        else:
            args = [convert_arg(t, p, name) for t, p in zip(types, pieces)]
        if name in self.custom:
            return self._call_custom(name, args)
        target = self._builtin(name)
        try:
            return target(*args)
        except PipelineError:
            raise
        except Exception as e:
            raise FunctionError(f"函数 {name}({raw_args}) 执行出错: {type(e).__name__}: {e}") from e

    def _builtin(self, name: str) -> Callable[..., Any]:
        if not name.isidentifier() or name.startswith("_"):
            raise FunctionError(f"不存在的内置函数: {name}")
        target = getattr(self.provider, name, None) if name in provider.SIGNATURES else None
        if target is None and name not in ("seed", "seed_instance", "seed_locale"):
            try:
                target = getattr(self.faker, name)
            except AttributeError:
                target = None
        if not callable(target):
            raise FunctionError(f"不存在的内置函数: {name}")
        found: Callable[..., Any] = target
        return found

    def _call_custom(self, name: str, args: list[Any]) -> Any:
        spec = self.custom[name]
        param_names = list((spec.get("params") or {}).get("names") or [])
        names = script_names(self.variables, self.printer)
        names.update(dict(zip(param_names, args)))
        names.setdefault("_test", None)
        try:
            result = run_script(str(spec.get("code") or ""), names, deadline=self.deadline)
        except ScriptError as e:
            raise FunctionError(f"自定义函数 {name} 执行出错: {e}") from e
        if result.returned is NOT_RETURNED:
            raise FunctionError(f"自定义函数 {name} 没有调用 sys_return 返回结果")
        return result.returned
