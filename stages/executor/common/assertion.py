"""The LiuMa comparator catalog (reference §4.6), shared by API assertions/conditions/loops and WEB/APP
assertions, conditions and While loops.

``compare(id, actual, expect)`` returns ``(True, message)`` or ``(False, "实际值(…)与预期值(…) <名称>，条件为否：…")``
for a mismatch, and raises ``ComparisonError`` for a comparison that cannot be made (type errors, unknown id):
callers record that as a step *error*, not a failure. Every id and alias of the platform is accepted; the
Chinese aliases that the platform stores with a leading space are accepted with and without it.

Deliberate differences from the original (docs/case-language.md): ``equals`` stringifies both sides,
``notEqual`` is the negation of ``equals``, ``listLenLessThan`` is a strict "<", and ``[a, b]`` list text
keeps unquoted items instead of chopping their first and last characters.
"""
from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from pipeline.errors import PipelineError

__all__ = ["ComparisonError", "Comparator", "COMPARATORS", "ALIASES", "compare", "resolve", "known_comparators"]


class ComparisonError(PipelineError):
    """A comparison could not be made (wrong types, bad expect text, unknown comparator): a step error."""


Check = Callable[[Any, Any], bool]


@dataclass(frozen=True, slots=True)
class Comparator:
    id: str
    name: str            # Chinese display name used in messages
    check: Check
    aliases: tuple[str, ...] = ()


# -- conversions --------------------------------------------------------------------------------------------

def _number(value: Any, side: str) -> int | float:
    if isinstance(value, bool):
        raise ComparisonError(f"{side}({value!r})是布尔值，不能按数值比较")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (str, bytes)):
        text = value.decode() if isinstance(value, bytes) else value
        try:
            return int(text.strip())
        except ValueError:
            try:
                number = float(text.strip())
            except ValueError:
                raise ComparisonError(f"{side}({text!r})不是数值") from None
            if math.isnan(number):
                raise ComparisonError(f"{side}({text!r})不是数值")
            return number
    raise ComparisonError(f"{side}({value!r})的类型{type(value).__name__}不能转换为数值")


def _list_item(text: str) -> Any:
    item = text.strip()
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return item[1:-1]
    try:
        return _number(item, "列表项")
    except ComparisonError:
        return item


def _to_list(value: Any, side: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and value.strip().startswith("[") and value.strip().endswith("]"):
        text = value.strip()
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return parsed
        except ValueError:
            pass
        inner = text[1:-1].strip()
        return [_list_item(piece) for piece in inner.split(",")] if inner else []
    raise ComparisonError(f"{side}({value!r})不是列表")


def _to_dict(value: Any, side: str) -> dict[Any, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(value.strip())
            except (ValueError, SyntaxError):
                continue
            if isinstance(parsed, dict):
                return parsed
    raise ComparisonError(f"{side}({value!r})不是对象")


def _items(expect: Any) -> list[Any]:
    """Expect items for contains-style checks: a ``[…]`` text is a list, any other text its characters."""
    if isinstance(expect, (list, tuple)):
        return list(expect)
    if isinstance(expect, str) and expect.strip().startswith("[") and expect.strip().endswith("]"):
        return _to_list(expect, "预期值")
    if isinstance(expect, str):
        return list(expect)
    return [expect]


def _in(item: Any, container: Any) -> bool:
    if isinstance(container, str):
        return str(item) in container
    if isinstance(container, dict):
        return item in container or str(item) in {str(k) for k in container}
    if isinstance(container, (list, tuple, set)):
        return item in container or str(item) in {str(v) for v in container}
    raise ComparisonError(f"实际值({container!r})的类型{type(container).__name__}不支持包含判断")


def _length(value: Any) -> int:
    if value is None:
        raise ComparisonError("实际值为None，没有长度")
    try:
        return len(value)
    except TypeError:
        raise ComparisonError(f"实际值({value!r})的类型{type(value).__name__}没有长度") from None


def _text(value: Any, side: str) -> str:
    if not isinstance(value, str):
        raise ComparisonError(f"{side}({value!r})不是字符串")
    if not value:
        raise ComparisonError(f"{side}为空字符串")
    return value


def _truth(value: Any, wanted: bool) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == ("true" if wanted else "false")
    return value is wanted


def _ordered(op: Callable[[Any, Any], bool]) -> Check:
    return lambda a, e: op(_number(a, "实际值"), _number(e, "预期值"))


def _pair(expect: Any) -> tuple[int | float, int | float]:
    items = _to_list(expect, "预期值")
    if len(items) != 2:
        raise ComparisonError(f"预期值({expect!r})应为两个数值的列表 [a, b]")
    return _number(items[0], "预期值"), _number(items[1], "预期值")


def _between(a: Any, e: Any) -> bool:
    low, high = _pair(e)
    return low <= _number(a, "实际值") <= high


def _close(a: Any, e: Any) -> bool:
    value, tolerance = _pair(e)
    return abs(_number(a, "实际值") - value) <= tolerance


def _starts(a: Any, e: Any) -> bool:
    if isinstance(a, (list, tuple)):
        return bool(a) and str(a[0]) == str(e)
    return str(a).startswith(str(e))


def _ends(a: Any, e: Any) -> bool:
    if isinstance(a, (list, tuple)):
        return bool(a) and str(a[-1]) == str(e)
    return str(a).endswith(str(e))


def _contains(a: Any, e: Any) -> bool:
    if isinstance(a, (list, tuple, dict, set)):
        return _in(e, a)
    return str(e) in str(a)


def _list_len(a: Any) -> int:
    return len(_to_list(a, "实际值"))


def _is_none(a: Any, e: Any) -> bool:
    return a is None or (isinstance(a, str) and a.strip().lower() in ("none", "null"))


_CATALOG: tuple[Comparator, ...] = (
    Comparator("equals", "相等", lambda a, e: str(a) == str(e), ("equal", "相等", "字符相等")),
    Comparator("equalsList", "数组相等", lambda a, e: _to_list(a, "实际值") == _to_list(e, "预期值"), ("数组相等",)),
    Comparator("equalsDict", "对象相等", lambda a, e: _to_dict(a, "实际值") == _to_dict(e, "预期值"), ("对象相等",)),
    Comparator("equalsNumber", "数值相等", _ordered(lambda a, e: a == e), ("数字相等", "数值相等")),
    Comparator("equalIgnoreCase", "相等(忽略大小写)", lambda a, e: str(a).lower() == str(e).lower(), ("相等(忽略大小写)",)),
    Comparator("notEqual", "不等于", lambda a, e: str(a) != str(e), ("does not equal", "不等于")),
    Comparator("contains", "包含", _contains, ("包含",)),
    Comparator("notContains", "不包含", lambda a, e: not any(_in(i, a) for i in _items(e)), ("does no contains", "不包含")),
    Comparator("containsOnly", "仅包含", lambda a, e: all(i in _items(e) or str(i) in map(str, _items(e))
                                                       for i in (a if not isinstance(a, dict) else a.keys())),
               ("仅包含",)),
    Comparator("isNone", "为None", _is_none, ("none/null",)),
    Comparator("notEmpty", "不为空", lambda a, e: _length(a) != 0, ("is not empty", "不为空")),
    Comparator("empty", "为空", lambda a, e: _length(a) == 0, ("is empty", "为空")),
    Comparator("isTrue", "为真", lambda a, e: _truth(a, True), ("true",)),
    Comparator("isFalse", "为假", lambda a, e: _truth(a, False), ("false",)),
    Comparator("isStrType", "字符串", lambda a, e: type(a) is str, ("字符串",)),
    Comparator("isIntType", "整数", lambda a, e: type(a) is int, ("整数",)),
    Comparator("isFloatType", "浮点数", lambda a, e: type(a) is float, ("浮点数",)),
    Comparator("isInt", "仅含数字", lambda a, e: _text(a, "实际值").isdigit(), ("is a number", "仅含数字")),
    Comparator("isLetter", "仅含字母", lambda a, e: _text(a, "实际值").isalpha(), ("仅含字母",)),
    Comparator("isLower", "小写", lambda a, e: _text(a, "实际值") == a.lower(), ("小写",)),
    Comparator("isUpper", "大写", lambda a, e: _text(a, "实际值") == a.upper(), ("大写",)),
    Comparator("startWith", "开头是", _starts, ("开头是",)),
    Comparator("endWith", "结尾是", _ends, ("结尾是",)),
    Comparator("isIn", "被包含", lambda a, e: a in _items(e) or str(a) in map(str, _items(e)),
               ("has item", "包含对象", "被包含")),
    Comparator("isNotIn", "不被包含", lambda a, e: not (a in _items(e) or str(a) in map(str, _items(e))), ("不被包含",)),
    Comparator("isZero", "为0", lambda a, e: _number(a, "实际值") == 0, ("为0",)),
    Comparator("isNotZero", "非0", lambda a, e: _number(a, "实际值") != 0, ("非0",)),
    Comparator("isPositive", "正数", lambda a, e: _native_number(a) > 0, ("正数",)),
    Comparator("isNegative", "负数", lambda a, e: _native_number(a) < 0, ("负数",)),
    Comparator("isGreaterThan", "大于", _ordered(lambda a, e: a > e), (" 大于",)),
    Comparator("isGreaterThanOrEqualTo", "大于等于", _ordered(lambda a, e: a >= e),
               (">=", "greater than or equal", " 大于等于")),
    Comparator("isLessThan", "小于", _ordered(lambda a, e: a < e), (" 小于",)),
    Comparator("isLessThanOrEqualTo", "小于等于", _ordered(lambda a, e: a <= e),
               ("<=", "less than or equal", " 小于等于")),
    Comparator("isBetween", "在...之间", _between, (" 在...之间",)),
    Comparator("isCloseTo", "接近于", _close, (" 接近于",)),
    Comparator("listLenEqual", "列表长度相等", lambda a, e: _list_len(a) == _number(e, "预期值"), ("列表长度相等",)),
    Comparator("listLenGreaterThan", "列表长度大于", lambda a, e: _list_len(a) > _number(e, "预期值"), ("列表长度大于",)),
    Comparator("listLenLessThan", "列表长度小于", lambda a, e: _list_len(a) < _number(e, "预期值"), ("列表长度小于",)),
)


def _native_number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ComparisonError(f"实际值({value!r})不是数值类型")
    return value


COMPARATORS: dict[str, Comparator] = {c.id: c for c in _CATALOG}
ALIASES: dict[str, str] = {}
for _c in _CATALOG:
    for _alias in _c.aliases:
        ALIASES[_alias] = _c.id
        ALIASES[_alias.strip()] = _c.id
_FOLDED = {name.lower(): cid for name, cid in [*((i, i) for i in COMPARATORS), *ALIASES.items()]}


def known_comparators() -> list[str]:
    """Every accepted name: the ids in catalog order, then the aliases (with and without leading space)."""
    return [*COMPARATORS, *(a for a in ALIASES if a not in COMPARATORS)]


def resolve(assertion: str) -> Comparator:
    """The comparator for an id or alias (exact, then trimmed, then case-insensitive)."""
    name = assertion if isinstance(assertion, str) else str(assertion)
    cid = name if name in COMPARATORS else ALIASES.get(name) or ALIASES.get(name.strip())
    if cid is None:
        cid = name.strip() if name.strip() in COMPARATORS else _FOLDED.get(name.strip().lower())
    if cid is None:
        raise ComparisonError(f"不支持的断言方式: {assertion!r}")
    return COMPARATORS[cid]


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (dict, list)) else \
        json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 500 else text[:500] + "…"


def compare(assertion: str, actual: Any, expect: Any) -> tuple[bool, str]:
    """Evaluate one comparison; ``ComparisonError`` when it cannot be made."""
    comparator = resolve(assertion)
    try:
        ok = bool(comparator.check(actual, expect))
    except ComparisonError:
        raise
    except (TypeError, ValueError, AttributeError) as e:
        raise ComparisonError(f"断言[{comparator.id}]无法比较实际值({_show(actual)})与预期值({_show(expect)}): {e}") from e
    head = f"实际值({_show(actual)})与预期值({_show(expect)}) {comparator.name}"
    if ok:
        return True, f"{head}，条件为真"
    return False, f"{head}，条件为否：期望 {comparator.id}({_show(expect)})，实际为 {_show(actual)}"
