"""The LiuMa comparator catalog (reference §4.6), shared by API assertions/conditions/loops and WEB/APP
assertions, conditions and While loops.

``compare(id, actual, expect)`` returns ``(True, message)`` or ``(False, "实际值(…)与预期值(…) <名称>，条件为否：…")``
for a mismatch, and raises ``ComparisonError`` for a comparison that cannot be made (type errors, unknown id):
callers record that as a step *error*, not a failure. Every id and alias of the platform is accepted; the
Chinese aliases that the platform stores with a leading space are accepted with and without it.

Outcomes match the original 1.4.1 cell by cell wherever it passes or fails (tests/conformance/
test_comparator_grid.py runs both). Deliberate differences (docs/case-language.md): ``equals`` stringifies
both sides, ``notEqual`` is the negation of ``equals``, ``listLenLessThan`` is a strict "<", ``[a, b]`` list
text keeps unquoted items, JSON dict text is read as JSON; and where the original raised a type error,
numbers and non-text expects are searched as text.
"""
from __future__ import annotations

import ast
import json
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
# The original converted loosely and let the comparison decide: numeric text becomes a number, `[…]` text a
# list, `{…}` text a dict, empty/None becomes None, anything else stays as it is and simply compares unequal.
# Passing suites depend on those pass/fail outcomes, so they are kept; only where the original raised (type
# errors it never meant) is a value here turned into a clear ComparisonError or, where documented, compared.

_NUMERIC_TEXT = re.compile(r"-?[0-9]*\.?[0-9]*")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number)


def _loose_number(value: Any, side: str) -> Any:
    """Numeric text -> int/float; None/empty -> None; other text stays text; other types cannot convert."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        if not value:
            return None
        if _NUMERIC_TEXT.fullmatch(value):
            try:
                return float(value) if "." in value else int(value)
            except ValueError:
                raise ComparisonError(f"{side}({value!r})不是数值") from None
        return value
    if value is None or (isinstance(value, (list, tuple, dict)) and not value):
        return None
    raise ComparisonError(f"{side}({_show(value)})的类型{type(value).__name__}不能转换为数值")


def _number(value: Any, side: str) -> Any:
    """A number, from a number or numeric text (``-?digits.digits``, as the original read it)."""
    converted = _loose_number(value, side)
    if not _is_number(converted):
        raise ComparisonError(f"{side}({_show(value)})不是数值")
    return converted


def _list_item(text: str) -> Any:
    item = text.strip()
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return item[1:-1]
    if item and _NUMERIC_TEXT.fullmatch(item):
        try:
            return float(item) if "." in item else int(item)
        except ValueError:
            pass
    return item


def _parse_list(text: str) -> list[Any]:
    try:
        parsed = json.loads(text)
        if isinstance(parsed, list):
            return parsed
    except ValueError:
        pass
    inner = text[1:-1].strip()
    return [_list_item(piece) for piece in inner.split(",")] if inner else []


def _loose_list(value: Any, side: str) -> Any:
    """A list, a number, None (empty) or the text itself; `[…]` text is parsed."""
    if isinstance(value, (list, tuple)):
        return list(value) if value or isinstance(value, list) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if value is None or (isinstance(value, (str, dict)) and not value):
        return None
    if isinstance(value, str):
        return _parse_list(value) if value.startswith("[") and value.endswith("]") else value
    raise ComparisonError(f"{side}({_show(value)})的类型{type(value).__name__}不能转换为列表")


def _loose_dict(value: Any, side: str) -> Any:
    """A dict, a number, None (empty) or the text itself; `{…}` text is parsed (JSON, then a Python literal)."""
    if isinstance(value, dict) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    if value is None or (isinstance(value, (str, list, tuple)) and not value):
        return None
    if isinstance(value, str):
        if not (value.startswith("{") and value.endswith("}")):
            return value
        for parse in (json.loads, ast.literal_eval):
            try:
                return parse(value)
            except (ValueError, SyntaxError):
                continue
        raise ComparisonError(f"{side}({value!r})不是对象")
    raise ComparisonError(f"{side}({_show(value)})的类型{type(value).__name__}不能转换为对象")


def _items(expect: Any) -> list[Any]:
    """Expect items of notContains/containsOnly/isIn/isNotIn: a list, `[…]` text parsed, other text its characters."""
    items = _loose_list(expect, "预期值")
    if isinstance(items, list):
        if not items:
            raise ComparisonError("预期值为空列表")
        return items
    if isinstance(items, str):
        return list(items)
    raise ComparisonError(f"预期值({_show(expect)})不是列表或字符串")


def _member(item: Any, container: Any) -> bool:
    """``item in container``: exact for lists and dict keys; text inside text. Numbers (which the original
    could not search) are searched as text (docs/case-language.md)."""
    if isinstance(container, str):
        return (item if isinstance(item, str) else _text_of(item)) in container
    if isinstance(container, (list, tuple, set)):
        return item in container
    if isinstance(container, dict):
        try:
            return item in container
        except TypeError:
            raise ComparisonError(f"预期项({_show(item)})不能作为对象的键") from None
    if _is_number(container) and not isinstance(container, bool):
        return _text_of(item) in _text_of(container)
    raise ComparisonError(f"实际值({_show(container)})的类型{type(container).__name__}不支持包含判断")


def _text_of(value: Any) -> str:
    """The text form the original searched: Python's str() of the value, "" for None."""
    return "" if value is None else str(value)


def _length(value: Any) -> int:
    if value is None:
        raise ComparisonError("实际值为None，没有长度")
    if isinstance(value, (bool, int, float)):
        raise ComparisonError(f"实际值({value!r})的类型{type(value).__name__}没有长度")
    try:
        return len(value)
    except TypeError:
        raise ComparisonError(f"实际值({_show(value)})的类型{type(value).__name__}没有长度") from None


def _text(value: Any, side: str) -> str:
    if not isinstance(value, str):
        raise ComparisonError(f"{side}({_show(value)})不是字符串")
    if not value:
        raise ComparisonError(f"{side}为空字符串")
    return value


def _ordered(op: Callable[[Any, Any], bool]) -> Check:
    return lambda a, e: op(_number(a, "实际值"), _number(e, "预期值"))


def _pair(expect: Any) -> tuple[Any, Any]:
    items = _loose_list(expect, "预期值")
    if not isinstance(items, list) or len(items) != 2:
        raise ComparisonError(f"预期值({_show(expect)})应为两个数值的列表 [a, b]")
    if not all(_is_number(i) for i in items):
        raise ComparisonError(f"预期值({_show(expect)})的两项都应为数值")
    return items[0], items[1]


def _between(a: Any, e: Any) -> bool:
    low, high = _pair(e)
    if low > high:
        raise ComparisonError(f"预期值({_show(e)})的下限大于上限")
    return bool(low <= _number(a, "实际值") <= high)


def _close(a: Any, e: Any) -> bool:
    value, tolerance = _pair(e)
    if tolerance < 0:
        raise ComparisonError(f"预期值({_show(e)})的误差为负数")
    return bool(abs(_number(a, "实际值") - value) <= tolerance)


def _edge(a: Any, e: Any, last: bool) -> bool:
    """startWith/endWith: text of text (a number's text too, documented); first/last item of a list or dict."""
    if e is None or a is None or isinstance(a, bool):
        raise ComparisonError(f"实际值({_show(a)})或预期值({_show(e)})不能做开头/结尾判断")
    if isinstance(a, (list, tuple, dict)):
        if not a:
            raise ComparisonError("实际值为空，没有开头/结尾")
        seq = list(a)
        return bool((seq[-1] if last else seq[0]) == e)
    text, fix = _text_of(a), _text_of(e)
    if not fix:
        raise ComparisonError("预期值为空字符串")
    return text.endswith(fix) if last else text.startswith(fix)


def _contains(a: Any, e: Any) -> bool:
    """The original searched the actual's text form: `["alice", "bob"]` contains "ali"; None is ""."""
    if isinstance(a, bool) or e is None:
        raise ComparisonError(f"实际值({_show(a)})与预期值({_show(e)})不支持包含判断")
    if isinstance(a, (int, float)):
        return _text_of(e) in str(a)
    return _text_of(e) in ("" if not a else a if isinstance(a, str) else str(a))


def _contains_only(a: Any, e: Any) -> bool:
    """Every item of the actual is an expect item AND every expect item is in the actual."""
    items = _items(e)
    if isinstance(a, (list, tuple, str, dict)):
        members = list(a)
    elif _is_number(a) and not isinstance(a, bool):
        members = list(_text_of(a))
    else:
        raise ComparisonError(f"实际值({_show(a)})的类型{type(a).__name__}不支持仅包含判断")
    return all(m in items for m in members) and all(_member(i, a) for i in items)


def _list_len(a: Any) -> int:
    value = _loose_list(a, "实际值")
    if not isinstance(value, list):
        raise ComparisonError(f"实际值({_show(a)})不是列表格式")
    return len(value)


def _len_cmp(op: Callable[[Any, Any], bool]) -> Check:
    return lambda a, e: op(_list_len(a), _number(e, "预期值"))


def _is_none(a: Any, e: Any) -> bool:
    return a is None or _text_of(a).lower() in ("none", "null")


def _truth(value: Any, wanted: bool) -> bool:
    return str(value).lower() == ("true" if wanted else "false")


def _ignore_case(a: Any, e: Any) -> bool:
    return str(a).lower() == _text_of(e).lower()


def _native_number(value: Any) -> Any:
    if not _is_number(value):
        raise ComparisonError(f"实际值({_show(value)})不是数值类型")
    return value


_CATALOG: tuple[Comparator, ...] = (
    Comparator("equals", "相等", lambda a, e: str(a) == str(e), ("equal", "相等", "字符相等")),
    Comparator("equalsList", "数组相等", lambda a, e: _loose_list(a, "实际值") == _loose_list(e, "预期值"), ("数组相等",)),
    Comparator("equalsDict", "对象相等", lambda a, e: _loose_dict(a, "实际值") == _loose_dict(e, "预期值"), ("对象相等",)),
    Comparator("equalsNumber", "数值相等", lambda a, e: _loose_number(a, "实际值") == _loose_number(e, "预期值"),
               ("数字相等", "数值相等")),
    Comparator("equalIgnoreCase", "相等(忽略大小写)", _ignore_case, ("相等(忽略大小写)",)),
    Comparator("notEqual", "不等于", lambda a, e: str(a) != str(e), ("does not equal", "不等于")),
    Comparator("contains", "包含", _contains, ("包含",)),
    Comparator("notContains", "不包含", lambda a, e: not any(_member(i, a) for i in _items(e)), ("does no contains", "不包含")),
    Comparator("containsOnly", "仅包含", _contains_only, ("仅包含",)),
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
    Comparator("startWith", "开头是", lambda a, e: _edge(a, e, last=False), ("开头是",)),
    Comparator("endWith", "结尾是", lambda a, e: _edge(a, e, last=True), ("结尾是",)),
    Comparator("isIn", "被包含", lambda a, e: a in _items(e), ("has item", "包含对象", "被包含")),
    Comparator("isNotIn", "不被包含", lambda a, e: a not in _items(e), ("不被包含",)),
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
    Comparator("listLenEqual", "列表长度相等", lambda a, e: _list_len(a) == _loose_number(e, "预期值"), ("列表长度相等",)),
    Comparator("listLenGreaterThan", "列表长度大于", _len_cmp(lambda a, e: a > e), ("列表长度大于",)),
    Comparator("listLenLessThan", "列表长度小于", _len_cmp(lambda a, e: a < e), ("列表长度小于",)),
)


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
