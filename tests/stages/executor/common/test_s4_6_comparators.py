"""Reference §4.6: every comparator id and alias, the documented traps, and the error/failure split."""
from __future__ import annotations

from typing import Any

import pytest

from stages.executor.common.assertion import ALIASES, COMPARATORS, ComparisonError, compare, known_comparators

# (id, actual, expect, expected result) — one passing and one failing row per id at least
CASES: list[tuple[str, Any, Any, bool]] = [
    ("equals", 200, "200", True), ("equals", 200, "201", False), ("equals", 5, 5, True),
    ("equalsList", [1, 2, "a"], '[1, 2, "a"]', True), ("equalsList", "[1, 'a']", [1, "a"], True),
    ("equalsList", [2, 1], "[1, 2]", False), ("equalsList", ["x", "y"], "[x, y]", True),
    ("equalsDict", {"a": 1}, "{'a': 1}", True), ("equalsDict", '{"a": 1}', {"a": 2}, False),
    ("equalsNumber", "1.0", 1, True), ("equalsNumber", 0, "0", True), ("equalsNumber", 2, "3", False),
    ("equalIgnoreCase", "AbC", "aBc", True), ("equalIgnoreCase", "abc", "abd", False),
    ("notEqual", 200, "201", True), ("notEqual", 200, "200", False),
    ("contains", "hello world", "wor", True), ("contains", [1, 2, 3], "2", True), ("contains", 12345, "34", True),
    ("contains", ["alice", "bob"], "ali", True), ("contains", {"sid": "abc"}, "abc", True),   # the text form
    ("contains", None, "None", False),
    ("contains", "hello", "xyz", False),
    ("notContains", "hello", "[xyz, abc]", True), ("notContains", "hello", "ol", False),   # trap: 'l' in hello
    ("notContains", "hello", "[ol]", True),
    ("containsOnly", "aab", "ab", True), ("containsOnly", [1, 2], "[2, 1]", True), ("containsOnly", "abc", "ab", False),
    ("containsOnly", [1, 2], "[1, 2, 3]", False),   # both directions: every expect item must be present too
    ("isNone", None, "", True), ("isNone", "null", "", True), ("isNone", "NONE", "", True), ("isNone", "x", "", False),
    ("notEmpty", "a", "", True), ("notEmpty", [], "", False), ("empty", "", "", True), ("empty", {"a": 1}, "", False),
    ("isTrue", True, "", True), ("isTrue", "true", "", True), ("isTrue", 1, "", False), ("isTrue", "yes", "", False),
    ("isFalse", False, "", True), ("isFalse", "False", "", True), ("isFalse", 0, "", False),
    ("isStrType", "1", "", True), ("isStrType", 1, "", False), ("isIntType", 1, "", True), ("isIntType", True, "", False),
    ("isFloatType", 1.5, "", True), ("isFloatType", 1, "", False),
    ("isInt", "12345", "", True), ("isInt", "12a", "", False),
    ("isLetter", "abc", "", True), ("isLetter", "ab1", "", False), ("isLower", "abc", "", True), ("isLower", "aBc", "", False),
    ("isUpper", "ABC", "", True), ("isUpper", "AbC", "", False),
    ("startWith", "hello", "he", True), ("startWith", "hello", "lo", False), ("startWith", ["a", "b"], "a", True),
    ("startWith", [1, 2], "1", False),   # first item compared as it is, as in the original
    ("endWith", "hello", "lo", True), ("endWith", "hello", "he", False),
    ("isIn", "a", "abc", True), ("isIn", "ab", "abc", False),   # trap: characters of expect
    ("isIn", "ab", '["ab", "cd"]', True), ("isIn", 2, "[1, 2]", True),
    ("isIn", 0, "200", False),   # exact item equality: 0 is not the character "0"
    ("isNotIn", "z", "abc", True), ("isNotIn", "a", "abc", False), ("isNotIn", 0, "[1, 2]", True),
    ("notContains", [1, 2, 3], "200", True),   # the characters "2", "0" are not the numbers 2, 0
    ("isZero", "0", "", True), ("isZero", 0.0, "", True), ("isZero", 1, "", False),
    ("isNotZero", "2", "", True), ("isNotZero", 0, "", False),
    ("isPositive", 3, "", True), ("isPositive", -1, "", False), ("isNegative", -2.5, "", True), ("isNegative", 0, "", False),
    ("isGreaterThan", "10", "9", True), ("isGreaterThan", 9, "9", False),   # numeric, not text ordering
    ("isGreaterThanOrEqualTo", 9, "9", True), ("isGreaterThanOrEqualTo", 8, "9", False),
    ("isLessThan", "9", "10", True), ("isLessThan", 10, "10", False),
    ("isLessThanOrEqualTo", 10, "10", True), ("isLessThanOrEqualTo", 11, "10", False),
    ("isBetween", 5, "[1, 10]", True), ("isBetween", 11, "[1, 10]", False), ("isBetween", 10, "[1, 10]", True),
    ("isCloseTo", 10.05, "[10, 0.1]", True), ("isCloseTo", 10.5, "[10, 0.1]", False),
    ("listLenEqual", [1, 2, 3], "3", True), ("listLenEqual", "[1, 2]", "3", False),
    ("listLenGreaterThan", [1, 2, 3], "2", True), ("listLenGreaterThan", [1, 2], "2", False),
    ("listLenLessThan", [1], "2", True), ("listLenLessThan", [1, 2], "2", False),   # strict <, not the original's <=
]


@pytest.mark.parametrize("cid,actual,expect,wanted", CASES)
def test_comparator(cid: str, actual: Any, expect: Any, wanted: bool) -> None:
    ok, message = compare(cid, actual, expect)
    assert ok is wanted, message


def test_every_id_has_a_pass_and_a_fail_row() -> None:
    for cid in COMPARATORS:
        results = {w for c, _, _, w in CASES if c == cid}
        assert results == {True, False} or cid in ("isNone",) and True in results, cid


ALIAS_ROWS = [
    ("equal", "a", "a"), ("相等", "a", "a"), ("字符相等", "a", "a"), ("数组相等", [1], "[1]"), ("对象相等", {"a": 1}, '{"a": 1}'),
    ("数字相等", "2", 2), ("数值相等", "2.0", "2"), ("相等(忽略大小写)", "A", "a"), ("does not equal", 1, "2"), ("不等于", 1, "2"),
    ("包含", "abc", "b"), ("does no contains", "abc", "x"), ("不包含", "abc", "x"), ("仅包含", "aa", "a"),
    ("none/null", None, ""), ("is not empty", "x", ""), ("不为空", "x", ""), ("is empty", "", ""), ("为空", [], ""),
    ("true", True, ""), ("false", False, ""), ("字符串", "s", ""), ("整数", 1, ""), ("浮点数", 1.0, ""),
    ("is a number", "12", ""), ("仅含数字", "12", ""), ("仅含字母", "ab", ""), ("小写", "ab", ""), ("大写", "AB", ""),
    ("开头是", "abc", "a"), ("结尾是", "abc", "c"), ("has item", "a", "abc"), ("包含对象", "a", "abc"), ("被包含", "a", "abc"),
    ("不被包含", "z", "abc"), ("为0", 0, ""), ("非0", 1, ""), ("正数", 1, ""), ("负数", -1, ""),
    (" 大于", 2, "1"), ("大于", 2, "1"), (">=", 1, "1"), ("greater than or equal", 1, "1"), (" 大于等于", 1, "1"),
    ("大于等于", 1, "1"), (" 小于", 1, "2"), ("小于", 1, "2"), ("<=", 2, "2"), ("less than or equal", 2, "2"),
    (" 小于等于", 2, "2"), ("小于等于", 2, "2"), (" 在...之间", 2, "[1, 3]"), ("在...之间", 2, "[1, 3]"),
    (" 接近于", 1.0, "[1, 0.5]"), ("接近于", 1.0, "[1, 0.5]"), ("列表长度相等", [1], "1"), ("列表长度大于", [1, 2], "1"),
    ("列表长度小于", [], "1"),
]


@pytest.mark.parametrize("alias,actual,expect", ALIAS_ROWS)
def test_alias_passes(alias: str, actual: Any, expect: Any) -> None:
    assert compare(alias, actual, expect)[0] is True


def test_aliases_table_is_fully_covered() -> None:
    covered = {a for a, _, _ in ALIAS_ROWS}
    assert set(ALIASES) <= covered, set(ALIASES) - covered
    assert set(known_comparators()) >= set(COMPARATORS) | set(ALIASES)


def test_mismatch_message_format() -> None:
    ok, message = compare("contains", "百度一下", "流马")
    assert not ok
    assert message.startswith("实际值(百度一下)与预期值(流马) 包含，条件为否：")


@pytest.mark.parametrize("cid,actual,expect", [
    ("isGreaterThan", "abc", "1"), ("isLessThan", 1, "x"), ("equalsNumber", [1], 1), ("notEmpty", None, ""),
    ("empty", 5, ""), ("isInt", 123, ""), ("isPositive", "3", ""), ("equalsList", True, "[1]"),
    ("equalsDict", "{bad}", "{}"), ("isBetween", 1, "[1]"), ("isGreaterThan", True, "0"), ("isBetween", 1, "[3, 1]"),
])
def test_type_errors_raise_comparison_error(cid: str, actual: Any, expect: Any) -> None:
    with pytest.raises(ComparisonError):
        compare(cid, actual, expect)


@pytest.mark.parametrize("cid,actual,expect", [
    ("equalsNumber", "one", 1), ("equalsNumber", " 5 ", "5"), ("equalsList", "abc", "[1]"), ("equalsList", 200, "200"),
    ("equalsDict", "[1]", "{}"), ("equalsDict", 200, "{'a': 1}"), ("listLenEqual", [], "x"),
])
def test_conversion_failures_are_plain_failures(cid: str, actual: Any, expect: Any) -> None:
    """As in the original: a value that does not convert is compared as it is and simply differs."""
    assert compare(cid, actual, expect)[0] is False


def test_unknown_comparator_is_an_error_naming_it() -> None:
    with pytest.raises(ComparisonError, match="noSuchThing"):
        compare("noSuchThing", 1, 1)


def test_ids_are_also_matched_case_insensitively_and_trimmed() -> None:
    assert compare(" Equals ", 1, "1")[0]
