"""Hostile inputs and hard faults through the real ``bin/liuma-pipeline run`` (issue 22): each test is one
probe that used to break the engine."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.system.engine import engine_processes, results, start_run, write_config
from tests.system.suites import api_case, write_suite

pytestmark = pytest.mark.slow


def _finish(proc, timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_30_digit_integer_in_a_response_travels_as_text(tmp_path: Path, demo_url: str) -> None:
    big = "123456789012345678901234567890"
    case = api_case("big", demo_url, "/api/echo", method="POST",
                    relations=[{"from": "resBody", "method": "jsonpath", "expression": "$.json.n", "name": "n"}],
                    assertions=[{"from": "resBody", "method": "jsonpath", "expression": "$.json.n", "assertion": "equals", "expect": big}])
    case["apiList"][0]["body"] = {"type": "json", "form": [], "raw": "", "file": [], "json": '{"n": %s}' % big}
    suite = write_suite(tmp_path / "suite", {"c1": [case, api_case("next", demo_url, "/api/health")]}, max_thread=1)
    code, out, err = _finish(start_run(suite, write_config(tmp_path, api_workers=1, browsers=0)))
    rows = {r["caseId"]: r for r in results(tmp_path)}
    assert code == 0, (out, err, rows)
    assert rows["big"]["status"] == 0 and rows["next"]["status"] == 0
    assert "exit code" not in out
    assert not engine_processes(tmp_path)
