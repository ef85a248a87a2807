"""Output is never fatal: a real pipe whose reader is gone (EPIPE) and a closed stream switch ``Console``
to log-only output, the dead descriptor is pointed at /dev/null, and case lines still reach the log."""
from __future__ import annotations

import io
import logging
import os

import pytest

from pipeline.console import Console
from pipeline.progress import PlainWriter


def body(case_id: str, status: int) -> dict:
    return {"task_id": "t", "collection_id": "c", "case_id": case_id, "index": 1, "status": status, "runTimes": 1,
            "name": case_id, "elapsed_ms": 1, "executor": "executor-1", "outcome": "", "reason": "why" if status else ""}


def test_a_pipe_without_reader_switches_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    r, w = os.pipe()
    os.close(r)                                         # the reader went away (`run ... | head -1`)
    out = os.fdopen(w, "w")
    console = Console(PlainWriter(out), fd=w)
    with caplog.at_level(logging.INFO, logger="pipeline.console"):
        console.case(body("a", 0))                      # EPIPE: no exception
        console.case(body("b", 1))
        console.task({"totals": {"cases": 2, "passed": 1, "failed": 1, "error": 0, "broken": 0, "skipped": 0,
                                 "flaky": 0, "attempts": 2}})
    assert not console.live and "BrokenPipeError" in console.why
    text = caplog.text
    assert "output goes to the log only" in text
    assert "FAIL   b [c/b#1]" in text and "— why" in text and "2 cases: 1 passed, 1 failed" in text
    os.write(w, b"nobody reads this")                  # the descriptor now points at /dev/null
    out.close()


def test_a_closed_stream_and_a_hangup_detach_once(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    console = Console(PlainWriter(out), fd=-1)
    out.close()
    with caplog.at_level(logging.INFO, logger="pipeline.console"):
        console.case(body("a", 0))
        console.tick(None)
        console.close()
        console.detach("terminal hung up", fds=())        # already detached: said once only
    assert not console.live and caplog.text.count("output goes to the log only") == 1
    assert "PASS   a [c/a#1]" in caplog.text
    assert console.finals == {("t", "c", "a", 1): (False, "")}
