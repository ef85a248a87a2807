"""[Evidence] settings, a task's override and the pure keep policy (pipeline.evidence)."""
from __future__ import annotations

import pytest

from pipeline.config import load_config_text
from pipeline.errors import ConfigError, SuiteError
from pipeline.evidence import KEEP_MODES, bundle_dir, keep_bundle, may_record
from pipeline.suite import validate_task

TASK = {"taskId": "t1", "testCollectionList": []}


def test_defaults_and_values() -> None:
    cfg = load_config_text("")
    assert cfg.get("Evidence", "keep") == "failure" and cfg.get("Evidence", "max-mb") == 25.0
    assert cfg.get("Evidence", "video") is True
    cfg = load_config_text("[Evidence]\nkeep = First-Retry\nmax-mb = 2.5\n")
    assert cfg.get("Evidence", "keep") == "first-retry" and cfg.get("Evidence", "max-mb") == 2.5


@pytest.mark.parametrize("text, key, message", [
    ("[Evidence]\nkeep = sometimes\n", "keep", "expected one of failure, first-retry, always, never"),
    ("[Evidence]\nmax-mb = -1\n", "max-mb", "must be >= 0"),
    ("[Evidence]\nmax-mb = lots\n", "max-mb", "bad value 'lots'"),
    ("[Evidence]\nvideo = maybe\n", "video", "expected true/false"),
    ("[Evidence]\naudio = yes\n", "audio", "unknown key (known: keep, max-mb, video)"),
])
def test_bad_settings_name_section_and_key(text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config_text(text, "cfg.ini")
    assert message in str(e.value) and "[Evidence]" in str(e.value) and key in str(e.value)


def test_task_override_is_validated_and_normalised() -> None:
    assert validate_task(dict(TASK, evidence="ALWAYS"), "task.json").evidence == "always"
    assert validate_task(dict(TASK), "task.json").evidence == ""
    with pytest.raises(SuiteError) as e:
        validate_task(dict(TASK, evidence="on-failure"), "task.json")
    assert "task.json" in str(e.value) and "evidence" in str(e.value) and "first-retry" in str(e.value)


@pytest.mark.parametrize("mode, outcome, attempt, kept", [
    ("failure", "failed", 1, True), ("failure", "error", 2, True), ("failure", "broken", 1, True),
    ("failure", "passed", 1, False), ("failure", "flaky", 2, False), ("failure", "skipped", 1, False),
    ("first-retry", "failed", 1, False), ("first-retry", "failed", 2, True), ("first-retry", "flaky", 2, True),
    ("first-retry", "failed", 3, False),
    ("always", "passed", 1, True), ("always", "failed", 3, True),
    ("never", "failed", 1, False), ("never", "passed", 2, False),
])
def test_keep_policy(mode: str, outcome: str, attempt: int, kept: bool) -> None:
    assert keep_bundle(mode, outcome, attempt) is kept
    if kept:                                   # whatever is kept must have been recorded
        assert may_record(mode, attempt)


def test_record_only_what_can_be_kept() -> None:
    assert [m for m in KEEP_MODES if may_record(m, 1)] == ["failure", "always"]
    assert [m for m in KEEP_MODES if may_record(m, 2)] == ["failure", "first-retry", "always"]


def test_bundle_dir_is_per_case_occurrence_and_attempt() -> None:
    assert bundle_dir("col", "case-1", 1, 2) == "attachments/case-1@col.1/2"
    assert bundle_dir("col", "case-1", 2, 2) != bundle_dir("col", "case-1", 1, 2)
    assert "/" not in bundle_dir("a b", "c/../d", 1, 1).split("/", 1)[1].rsplit("/", 1)[0]
