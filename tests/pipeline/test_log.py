"""setup_logging with format = json: every line a JSON object with the fixed keys, secrets redacted
(message and exception text), LIFECYCLE lines carrying their event and stage; text stays the default."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pipeline.log import JSON_KEYS, LIFECYCLE_FORMAT, fields, setup_logging

SECRET = "9b1c2d3e4f5a46b7889900aabbccddee"


@pytest.fixture(autouse=True)
def restore_root() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_have_fixed_keys_fields_and_redaction(tmp_path: Path) -> None:
    setup_logging(tmp_path, "scheduler", secrets=[SECRET], fmt="json")
    log = logging.getLogger("stage.scheduler")
    log.info("task %s planned with token %s", "t-1", SECRET, extra=fields(task="t-1", event="task.planned"))
    log.warning(LIFECYCLE_FORMAT, "restart", "executor-2", "restarts=1")
    try:
        raise ValueError(f"bad secret {SECRET}")
    except ValueError:
        log.exception("handler failed", extra=fields(task="t-1", case="c-9", attempt=2))
    lines = [json.loads(x) for x in (tmp_path / "scheduler.log").read_text().splitlines()]
    assert all(list(x)[:len(JSON_KEYS)] == list(JSON_KEYS) for x in lines)
    planned, restart, failed = lines
    assert planned["task"] == "t-1" and planned["event"] == "task.planned" and planned["stage"] == "scheduler"
    assert planned["message"] == "task t-1 planned with token ******" and planned["level"] == "info"
    assert planned["time"].endswith("+00:00") and planned["case"] is None and planned["attempt"] is None
    assert restart["event"] == "restart" and restart["stage"] == "executor-2" and restart["level"] == "warning"
    assert (failed["case"], failed["attempt"]) == ("c-9", 2) and "ValueError: bad secret ******" in failed["message"]
    assert SECRET not in (tmp_path / "scheduler.log").read_text()


def test_text_format_is_unchanged_by_default(tmp_path: Path) -> None:
    setup_logging(tmp_path, "fetcher", secrets=[SECRET])
    logging.getLogger("stage.fetcher").info("token %s", SECRET, extra=fields(task="t-1"))
    text = (tmp_path / "fetcher.log").read_text()
    assert "INFO stage.fetcher: token ******" in text and not text.startswith("{")
