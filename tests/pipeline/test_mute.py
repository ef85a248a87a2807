"""``[Flaky] mute``: parsing, validation naming the key, and expiry (pure, handed the date)."""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline.config import load_config_text
from pipeline.errors import ConfigError
from pipeline.models import CaseResult
from pipeline.mute import Mute, active_mutes, expired_mutes, muted_failures, parse_mutes


def test_parse_entries_by_comma_or_line() -> None:
    got = parse_mutes("login until 2026-12-31,\n  search   until 2027-01-15\n")
    assert got == (Mute("login", dt.date(2026, 12, 31)), Mute("search", dt.date(2027, 1, 15)))
    assert parse_mutes("") == ()


@pytest.mark.parametrize("bad", ["login", "login 2026-12-31", "login until tomorrow", "login until 2026-02-30"])
def test_a_bad_entry_is_refused_naming_section_key_and_entry(bad: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config_text(f"[Flaky]\nmute = {bad}\n")
    assert "[Flaky]" in str(e.value) and "mute" in str(e.value) and bad.split()[0] in str(e.value)


def test_mute_holds_through_its_last_day_then_expires() -> None:
    mutes = parse_mutes("a until 2026-12-31, b until 2026-06-01")
    assert set(active_mutes(mutes, dt.date(2026, 5, 1))) == {"a", "b"}
    assert set(active_mutes(mutes, dt.date(2026, 12, 31))) == {"a"}
    assert [m.case_id for m in expired_mutes(mutes, dt.date(2026, 12, 31))] == ["b"]
    assert active_mutes(mutes, dt.date(2027, 1, 1)) == {}


def test_muted_failures_lists_only_muted_cases_that_did_not_pass() -> None:
    rows = [CaseResult(caseId="a", status=1, reason="assert"), CaseResult(caseId="b", status=1),
            CaseResult(caseId="a2", status=0), CaseResult(caseId="c", status=2)]
    mutes = parse_mutes("a until 2026-12-31, a2 until 2026-12-31, c until 2026-01-01")
    got = muted_failures(rows, mutes, dt.date(2026, 7, 1))
    assert [(m["case_id"], m["until"], m["reason"]) for m in got] == [("a", "2026-12-31", "assert")]
    assert muted_failures(rows, mutes, dt.date(2027, 1, 1)) == []
