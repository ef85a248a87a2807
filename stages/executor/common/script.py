"""User Python code of a case: pre/post scripts, custom functions, WEB/APP custom operations (§4.7, §8.4).

Scripts run in the executor process, which is already isolated from the other stages; each run gets fresh
globals (nothing leaks between scripts or cases, unlike the original's module globals). The deadline is
checked on every traced line/call, so a pure-Python endless loop stops; a blocking C call (``time.sleep``)
is stopped by the parent killing the executor from outside.
"""
from __future__ import annotations

import builtins
import io
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from pipeline.errors import PipelineError

__all__ = ["ScriptError", "ScriptTimeout", "ScriptResult", "NOT_RETURNED", "run_script", "script_names"]

SCRIPT_FILE = "<用户脚本>"


class ScriptError(PipelineError):
    """The user's code raised; the message names the exception and the script line."""


class ScriptTimeout(ScriptError):
    """The user's code ran past its deadline."""


class _NotReturned:
    def __repr__(self) -> str:
        return "NOT_RETURNED"

    def __bool__(self) -> bool:
        return False


NOT_RETURNED: Any = _NotReturned()


@dataclass(slots=True)
class ScriptResult:
    output: str = ""
    returned: Any = NOT_RETURNED


class _Deadline(BaseException):
    """BaseException so a user's ``except Exception`` cannot swallow the timeout."""


def _tracer(deadline: float) -> Callable[[FrameType, str, Any], Any]:
    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _Deadline()
        return trace
    return trace


def _script_line(exc: BaseException) -> str:
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == SCRIPT_FILE]
    return f" (第{lines[-1]}行)" if lines else ""


def run_script(code: str, names: dict[str, Any], *, deadline: float | None = None) -> ScriptResult:
    """Execute ``code`` with ``names`` as globals. ``print`` output is captured in ``.output`` (and also
    forwarded to a caller-supplied ``print``); ``sys_return(v)`` sets ``.returned``."""
    result = ScriptResult()
    buffer = io.StringIO()
    outer_print = names.get("print")
    outer_return = names.get("sys_return")

    def captured_print(*args: Any, sep: str | None = " ", end: str | None = "\n", **_: Any) -> None:
        text = (" " if sep is None else sep).join(str(a) for a in args) + ("\n" if end is None else end)
        buffer.write(text)
        if callable(outer_print):
            outer_print(*args, sep=sep, end=end)

    def sys_return(value: Any = None) -> None:
        result.returned = value
        if callable(outer_return):
            outer_return(value)

    scope: dict[str, Any] = {"__builtins__": builtins, "__name__": "__liuma_script__", **names,
                             "print": captured_print, "sys_return": sys_return}
    try:
        compiled = compile(code or "", SCRIPT_FILE, "exec")
    except SyntaxError as e:
        raise ScriptError(f"脚本语法错误: {e.msg} (第{e.lineno}行)") from e
    previous = sys.gettrace()
    if deadline is not None:
        sys.settrace(_tracer(deadline))
    try:
        exec(compiled, scope)
    except _Deadline:
        raise ScriptTimeout(f"脚本执行超时{_script_line_hint(buffer)}") from None
    except PipelineError:
        raise
    except Exception as e:
        raise ScriptError(f"脚本执行错误: {type(e).__name__}: {e}{_script_line(e)}") from e
    finally:
        if deadline is not None:
            sys.settrace(previous)
        result.output = buffer.getvalue()
    return result


def _script_line_hint(buffer: io.StringIO) -> str:
    out = buffer.getvalue()
    return f", 已输出: {out[-200:]!r}" if out else ""


def script_names(variables: Any, printer: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``sys_get``/``sys_put``/``print`` bound to a ``Variables`` and a console printer."""
    def sys_get(name: str) -> Any:
        return variables.get(name)

    def sys_put(name: str, value: Any, ps: bool = False) -> None:
        variables.put(name, value, ps)

    names: dict[str, Any] = {"sys_get": sys_get, "sys_put": sys_put,
                             "_test_context": variables.context, "_test_params": variables.params}
    if printer is not None:
        def forward(*args: Any, sep: str | None = " ", end: str | None = "\n", **_: Any) -> None:
            printer((" " if sep is None else sep).join(str(a) for a in args) + ("\n" if end is None else end))
        names["print"] = forward
    return names
