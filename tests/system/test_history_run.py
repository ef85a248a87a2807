"""The run history end to end through ``bin/liuma-pipeline run``: real stage processes, a real HTTP server
whose endpoint sleeps. A second run's ETA (estimated from the first run's history) against the wall time it
really took; a corrupt database; ``[Flaky] mute`` in the exit code and the recap; ``history`` reading it."""
from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.system.engine import BIN, ROOT, engine_processes, start_run, write_config
from tests.system.suites import api_case, write_suite

pytestmark = pytest.mark.slow


def slow(case_id: str, url: str, ms: int) -> dict[str, Any]:
    case = api_case(case_id, url, "/api/slow")
    case["apiList"][0]["query"] = {"ms": str(ms)}
    return case


def timed_lines(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[list[tuple[float, str]], str]:
    """Every stdout line with the monotonic time it arrived; then stderr."""
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None

    def read() -> None:
        for line in proc.stdout:          # type: ignore[union-attr]
            lines.append((time.monotonic(), line.rstrip("\n")))
    t = threading.Thread(target=read, daemon=True)
    t.start()
    proc.wait(timeout=timeout)
    t.join(10)
    return lines, proc.stderr.read() if proc.stderr else ""


def test_second_run_eta_is_within_20_percent_of_its_wall_time(tmp_path: Path, demo_url: str) -> None:
    colls = {"long": [slow("L1", demo_url, 2500), slow("L2", demo_url, 2500)],
             "mid": [slow("M1", demo_url, 1500), slow("M2", demo_url, 1500)],
             **{f"s{i}": [slow(f"S{i}", demo_url, 400)] for i in range(8)}}
    suite = write_suite(tmp_path / "suite", colls, max_thread=4)
    config = write_config(tmp_path, api_workers=2, browsers=0)
    first, _ = timed_lines(start_run(suite, config, "--progress", "plain"))
    assert any(line.startswith("12 cases: 12 passed") for _, line in first), first
    lines, err = timed_lines(start_run(suite, config, "--progress", "plain"))
    assert any(line.startswith("12 cases: 12 passed") for _, line in lines), (lines, err)
    eta = [(t, float(m[1])) for t, line in lines if (m := re.match(r"ETA \S+ \(([\d.]+) s left, estimated from the run history\)", line))]
    assert len(eta) == 1, lines
    t_eta, left = eta[0]
    t_end = next(t for t, line in lines if line.startswith("12 cases:"))
    actual = t_end - t_eta
    print(f"ETA {left:.2f} s, actual {actual:.2f} s ({(left - actual) / actual * 100:+.0f} %)")
    assert abs(left - actual) <= 0.2 * actual, (left, actual)
    log = (tmp_path / "storage" / "log" / "scheduler.log").read_text()
    assert "estimated work" in log and "(12 cases timed before)" in log
    # the CLI reads what the aggregator wrote
    out = subprocess.run([str(BIN), "history", "L1", "--config", str(config), "--json"], cwd=str(ROOT),
                         capture_output=True, text=True, timeout=30, check=False)
    data = json.loads(out.stdout)
    assert out.returncode == 0 and len(data["attempts"]) == 2 and data["flake"]["runs"] == 2
    assert all(a["outcome"] == "passed" and a["duration_s"] >= 2.5 and a["executor"] for a in data["attempts"])
    overview = subprocess.run([str(BIN), "history", "--config", str(config)], cwd=str(ROOT), capture_output=True,
                              text=True, timeout=30, check=False)
    slowest = overview.stdout.splitlines()[1:3]
    assert overview.returncode == 0 and {line.split()[2] for line in slowest} == {"L1", "L2"}, overview.stdout
    assert not engine_processes(tmp_path)


def test_corrupt_history_the_run_goes_on_and_says_so_once(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health"), api_case("b", demo_url, "/api/text")]})
    config = write_config(tmp_path, api_workers=1, browsers=0)
    db = tmp_path / "storage" / "history.sqlite"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\x00garbage, not SQLite\x00" * 500)
    lines, err = timed_lines(start_run(suite, config, "--progress", "plain"))
    text = "\n".join(line for _, line in lines)
    assert "2 cases: 2 passed" in text, (text, err)
    assert text.count("RUN HISTORY OFF") == 1 and str(db) in text
    agg_log = (tmp_path / "storage" / "log" / "aggregator.log").read_text()
    assert agg_log.count("going on without history") == 1
    assert not engine_processes(tmp_path)


def test_a_muted_case_runs_is_reported_and_stays_out_of_the_exit_code_until_its_mute_expires(tmp_path: Path, demo_url: str) -> None:
    failing = api_case("wobbly", demo_url, "/api/items", assertions=[
        {"from": "resBody", "method": "jsonpath", "expression": "$.data[0].name", "assertion": "equals", "expect": "nope"}])
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("ok", demo_url, "/api/health"), failing]})
    today = dt.date.today()
    for until, code, loud in ((today, 0, "MUTED (1 known-flaky case(s)"), (today - dt.timedelta(days=1), 1, "MUTE EXPIRED: wobbly")):
        config = write_config(tmp_path, f"[Flaky]\nmute = wobbly until {until.isoformat()}\n", api_workers=1, browsers=0)
        proc = start_run(suite, config, "--progress", "plain")
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == code, (out, err)
        assert "FAIL   wobbly [c1/wobbly#2]" in out and "2 cases: 1 passed, 1 failed" in out    # still run and reported
        assert loud in out, out
        if code == 0:
            assert f"wobbly [c1/wobbly#2] muted until {until.isoformat()}" in out
        results = json.loads((tmp_path / "reports" / "t-1" / "results.json").read_text())
        rows = results if isinstance(results, list) else results.get("caseResultList") or results.get("results") or []
        assert any(r.get("caseId") == "wobbly" and r.get("status") == 1 for r in rows) or "wobbly" in json.dumps(results)
    assert not engine_processes(tmp_path)
