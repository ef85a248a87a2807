"""The one rule for an all-skipped run (``pipeline.models.skipped_by_accident``), table-tested."""
from __future__ import annotations

import pytest

from pipeline.models import disabled_reason, skipped_by_accident


@pytest.mark.parametrize("finals, expected", [
    ([], False),                                                        # every case left out by --tags
    ([(True, disabled_reason("")), (True, disabled_reason("later"))], False),   # all disabled on purpose
    ([(True, "engine stopping (signal SIGINT)")], True),                # stopped before dispatch
    ([(True, disabled_reason("")), (True, "skipped: dependency x did not pass")], True),
    ([(False, ""), (True, "engine stopping (signal SIGINT)")], False),  # something ran
])
def test_all_skipped_is_no_success_unless_on_purpose(finals: list[tuple[bool, str]], expected: bool) -> None:
    assert skipped_by_accident(finals) is expected
    assert skipped_by_accident(iter(finals)) is expected


def test_disabled_reasons() -> None:
    assert disabled_reason("") == "case disabled (enabled=false)"
    assert disabled_reason("env not ready") == "case disabled: env not ready"
