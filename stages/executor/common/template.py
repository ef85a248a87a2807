"""``{{…}}`` templates (reference §4.3), rendered deep over str/dict/list values.

A string that is exactly one placeholder becomes the value itself (numbers, booleans, dicts, lists, bytes
keep their type); a placeholder embedded in text is inserted as text (dicts/lists as JSON). Nested
placeholders resolve inside-out; text inserted by a placeholder is never rendered again. With ``strict``
an unresolvable placeholder raises ``TemplateError`` naming it and the step; without, the literal text is
kept and ``不存在的公共参数、关联变量或内置函数: <expr>`` goes to the console, as in the original.
"""
from __future__ import annotations

import json
import re
from typing import Any, Union

from pipeline.errors import PipelineError
from stages.executor.common.functions import FunctionLibrary
from stages.executor.common.refs import jsonpath_values
from stages.executor.common.variables import Variables

__all__ = ["TemplateError", "Renderer", "to_text"]

Node = Union[str, "list[Node]"]     # a placeholder is a list of child nodes
_PATH_START = re.compile(r"[.\[]")


class TemplateError(PipelineError):
    """A placeholder could not be resolved; the message names the placeholder and the step."""


def to_text(value: Any) -> str:
    """How a value reads when embedded in text: booleans and null in their JSON spelling (``true``/``null``),
    as the original, which rendered on the JSON text of the data."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _parse(text: str) -> list[Node]:
    """Text → nodes; an unmatched ``{{`` or ``}}`` stays literal."""
    stack: list[list[Node]] = [[]]
    i = 0
    while i < len(text):
        pair = text[i:i + 2]
        if pair == "{{":
            stack.append([])
            i += 2
            continue
        if pair == "}}" and len(stack) > 1:
            node = stack.pop()
            stack[-1].append(node)
            i += 2
            continue
        stack[-1].append(text[i])
        i += 1
    while len(stack) > 1:                       # unclosed: flatten back to literal text
        node = stack.pop()
        stack[-1].append("{{")
        stack[-1].extend(node)
    return stack[0]


def _literal(nodes: list[Node]) -> str:
    return "".join(n if isinstance(n, str) else "{{" + _literal(n) + "}}" for n in nodes)


class Renderer:
    """Resolves variables (context, then params) and ``@function`` calls of one case."""

    def __init__(self, variables: Variables, functions: FunctionLibrary, *, strict: bool = True) -> None:
        self.variables = variables
        self.functions = functions
        self.strict = strict

    def render(self, value: Any, *, step: str = "", refs: dict[str, Any] | None = None) -> Any:
        if isinstance(value, str):
            return self._render_text(value, step, refs) if "{{" in value else value
        if isinstance(value, dict):
            return {to_text(self.render(k, step=step, refs=refs)) if isinstance(k, str) else k:
                    self.render(v, step=step, refs=refs) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, step=step, refs=refs) for v in value]
        return value

    def _render_text(self, text: str, step: str, refs: dict[str, Any] | None) -> Any:
        nodes = _parse(text)
        if len(nodes) == 1 and isinstance(nodes[0], list):
            return self._placeholder(nodes[0], step, refs)
        return "".join(n if isinstance(n, str) else to_text(self._placeholder(n, step, refs)) for n in nodes)

    def _placeholder(self, children: list[Node], step: str, refs: dict[str, Any] | None) -> Any:
        inner = "".join(c if isinstance(c, str) else to_text(self._placeholder(c, step, refs)) for c in children)
        expr = inner.strip()
        try:
            return self.resolve(expr, refs)
        except (PipelineError, KeyError, ValueError, TypeError, IndexError) as e:
            where = f"步骤[{step}]" if step else "模板"
            reason = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            if self.strict:
                raise TemplateError(f"{where}无法解析 {{{{{expr}}}}}: {reason}") from e
            if self.functions.printer is not None:
                self.functions.printer(f"不存在的公共参数、关联变量或内置函数: {expr}\n")
            return "{{" + _literal(children) + "}}"

    def resolve(self, expr: str, refs: dict[str, Any] | None = None) -> Any:
        """One placeholder's expression (already trimmed)."""
        if not expr:
            raise KeyError("空的占位符")
        if expr.startswith("@"):
            return self._call(expr[1:], refs)
        if expr.startswith("$") and not expr.startswith("$."):
            name = expr[1:]
            if name in self.variables.params:
                return self.variables.params[name]
            raise KeyError(f"不存在的公共参数: {name}")
        if expr in self.variables:
            return self.variables.get(expr)
        match = _PATH_START.search(expr)
        if not match or match.start() == 0:
            return self.variables.get(expr)
        base = self.variables.get(expr[:match.start()])
        path = "$" + expr[match.start():]
        if not isinstance(base, (dict, list)):
            raise KeyError(f"变量 {expr[:match.start()]} 不是对象或数组，不能取 {path}")
        found = jsonpath_values(base, path)
        if not found:
            raise KeyError(f"变量 {expr[:match.start()]} 中没有 {path}")
        return found[0] if len(found) == 1 else found

    def _call(self, text: str, refs: dict[str, Any] | None) -> Any:
        if "(" in text:
            if not text.rstrip().endswith(")"):
                raise ValueError(f"函数调用缺少右括号: @{text}")
            name, args = text.split("(", 1)
            return self.functions.call(name, args.rstrip()[:-1], refs)
        return self.functions.call(text, "", refs)
