"""Reference §8: provider functions, Faker passthrough, argument parsing and custom functions."""
from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import pytest

from stages.executor.common.functions import FunctionError, FunctionLibrary, split_args
from stages.executor.common.variables import Variables

FILES = {"f1": ("a.txt", b"file-content")}


@pytest.fixture()
def lib(tmp_path: Path) -> FunctionLibrary:
    return FunctionLibrary([
        {"name": "md5", "code": "import hashlib\nsys_return(hashlib.md5(s.encode('utf-8')).hexdigest())",
         "params": {"names": ["s"], "types": ["String"]}},
        {"name": "add", "code": "sys_put('sum', a + b)\nsys_return(a + b)", "params": {"names": ["a", "b"], "types": ["Int", "Int"]}},
        {"name": "noreturn", "code": "x = 1", "params": {"names": [], "types": []}},
        {"name": "spin", "code": "while True:\n    pass", "params": {"names": [], "types": []}},
    ], fetch_file=FILES.__getitem__, variables=Variables({}, {}), file_dir=tmp_path)


@pytest.mark.parametrize("raw,wanted", [
    ("", []), ("a, b ,c", ["a", "b", "c"]), ('"a,b", c', ['"a,b"', "c"]), ("[1, 2], {'k': 1}", ["[1, 2]", "{'k': 1}"]),
    ("#{_request_body.a}, x", ["#{_request_body.a}", "x"]),
])
def test_split_args(raw: str, wanted: list[str]) -> None:
    assert split_args(raw) == wanted


@pytest.mark.parametrize("name,args,wanted", [
    ("b64encode_str", "中文", base64.b64encode("中文".encode()).decode()), ("b64decode_toStr", "YWJj", "abc"),
    ("b64decode_toBytes", "YWJj", b"abc"), ("arithmetic", "(1 + 2) * 3 / 2", 4.5), ("lenof", "[1, 2, 3]", 3),
    ("indexof", "[1, 2, 3], 1", 2), ("keyof", '{"a": 5}, a', 5), ("keyof", '{"a": 5}, "a"', 5), ("pinyin", "中文", "zhongwen"),
    ("substing", "abcdef, 1, 3", "bc"), ("substing", "abcdef", "abcde"), ("replace", "a-b-c, -, +", "a+b+c"),
    ("map_dumps", "{'a': 1}", '{"a": 1}'), ("array_dumps", "[1, '中']", '[1, "中"]'), ("extract", "x", "x"),
    ("loadfile", "f1", b"file-content"), ("b64encode_file", "f1", base64.b64encode(b"file-content").decode()),
    ("md5", "123456", "e10adc3949ba59abbe56e057f20f883e"), ("md5", "“123456”", "e10adc3949ba59abbe56e057f20f883e"),
    ("add", "2, 3", 5),
])
def test_functions(lib: FunctionLibrary, name: str, args: str, wanted: Any) -> None:
    assert lib.call(name, args) == wanted


def test_time_functions(lib: FunctionLibrary) -> None:
    assert lib.call("current_time", "") == time.strftime("%Y-%m-%d")
    assert abs(lib.call("current_time", "none") - time.time() * 1000) < 5000
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lib.call("hour_shift", "-1"))
    for unit in ("year", "month", "week", "date", "minute", "second"):
        assert lib.call(f"{unit}_shift", "1, none") > time.time() * 1000
    assert lib.call("date_shift", "1") > lib.call("date_shift", "-1")


def test_savefile_writes_under_file_dir(lib: FunctionLibrary, tmp_path: Path) -> None:
    path = Path(lib.call("savefile", "f1"))
    assert path.read_bytes() == b"file-content" and tmp_path in path.parents and path.name == "a.txt"


def test_faker_methods_are_callable_with_declared_types(lib: FunctionLibrary) -> None:
    assert re.fullmatch(r"1\d{10}", lib.call("phone_number", ""))
    value = lib.call("random_int", "5, 7")
    assert isinstance(value, int) and 5 <= value <= 7
    assert len(lib.call("password", "12, false")) == 12


def test_custom_function_side_effects_and_errors(lib: FunctionLibrary) -> None:
    lib.call("add", "1, 1")
    assert lib.variables.get("sum") == 2
    with pytest.raises(FunctionError, match="sys_return"):
        lib.call("noreturn", "")
    lib.deadline = time.monotonic() + 0.2
    with pytest.raises(FunctionError, match="超时"):
        lib.call("spin", "")


@pytest.mark.parametrize("name,args", [("no_such_function", ""), ("_private", ""), ("arithmetic", "__import__('os')"),
                                       ("lenof", "not json"), ("seed_instance", "1")])
def test_bad_calls_raise_function_error(lib: FunctionLibrary, name: str, args: str) -> None:
    with pytest.raises(FunctionError):
        lib.call(name, args)


def test_custom_signatures_do_not_leak_between_instances() -> None:
    a = FunctionLibrary([{"name": "lenof", "code": "sys_return('mine')", "params": {"names": [], "types": []}}])
    b = FunctionLibrary()
    assert a.call("lenof", "[1]") == "mine" and b.call("lenof", "[1]") == 1
