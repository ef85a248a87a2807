"""Reference §4.7/§8.4: user scripts get fresh globals, captured print, sys_return, and a deadline."""
from __future__ import annotations

import time

import pytest

from stages.executor.common.script import NOT_RETURNED, ScriptError, ScriptTimeout, run_script, script_names
from stages.executor.common.variables import Variables


def test_output_and_return() -> None:
    result = run_script("print('a', 1)\nsys_return({'k': 2})", {})
    assert result.output == "a 1\n" and result.returned == {"k": 2}
    assert run_script("x = 1", {}).returned is NOT_RETURNED


def test_names_and_isolation() -> None:
    v = Variables({"a": 1}, {"p": 2})
    printed: list[str] = []
    run_script("sys_put('b', sys_get('a') + sys_get('p'))\nsys_put('q', 3, True)\nprint('hi')\nleak = 1",
               script_names(v, printed.append))
    assert v.context == {"a": 1, "b": 3} and v.params["q"] == 3 and printed == ["hi\n"]
    with pytest.raises(ScriptError, match="NameError"):
        run_script("print(leak)", {})


def test_errors_name_exception_and_line() -> None:
    with pytest.raises(ScriptError, match=r"ZeroDivisionError.*第2行"):
        run_script("x = 1\ny = 1 / 0", {})
    with pytest.raises(ScriptError, match="语法错误"):
        run_script("def (", {})


def test_deadline_stops_endless_loop_even_with_bare_except() -> None:
    started = time.monotonic()
    with pytest.raises(ScriptTimeout):
        run_script("while True:\n    try:\n        pass\n    except Exception:\n        pass", {}, deadline=time.monotonic() + 0.3)
    assert time.monotonic() - started < 3
