"""``results.jsonl``: one line per attempt as it arrives, the same attempts and statuses as the final
``results.json`` and ``summary.json``; a torn last line is skipped by readers and cut by a restarted writer."""
from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.models import CaseResult
from stages.aggregator.writers import TaskReportMeta
from stages.aggregator.writers.builder import ReportBuilder
from stages.aggregator.writers.jsonl import JSONL_FILE, ResultLines, read_lines


def attempts(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((r["collectionId"], r["caseId"], r["index"], r["runTimes"], r["status"]) for r in rows)


def test_lines_hold_the_attempts_and_statuses_of_the_final_reports(tmp_path: Path, meta: TaskReportMeta,
                                                                  results: list[CaseResult]) -> None:
    b = ReportBuilder(tmp_path, replace(meta, finished_at=None))
    shuffled = list(results)
    random.Random(3).shuffle(shuffled)
    for n, r in enumerate(shuffled):
        b.add(r)
        if n == 2:
            b.flush_lines()                                  # a batch ends: its lines are on disk already
            assert len(list(read_lines(tmp_path / JSONL_FILE))) == 3
    b.add(shuffled[0])                                       # a re-sent attempt: no second line
    b.write(meta.finished_at)
    b.close()
    lines = list(read_lines(tmp_path / JSONL_FILE))
    assert len(lines) == len(results)
    final = json.loads((tmp_path / "results.json").read_text())["caseResultList"]
    assert attempts(lines) == attempts(final)
    last: dict[tuple[str, str, int], int] = {}
    for x in lines:
        k = (x["collectionId"], x["caseId"], x["index"])
        last[k] = max(last.get(k, 0), x["runTimes"])
    details = json.loads((tmp_path / "summary.json").read_text())["details"]
    assert {(d["collection_id"], d["case_id"], d["index"]): d["attempt"] for d in details} == last


def row(case: str, run_times: int = 1, status: int = 0) -> dict[str, Any]:
    return {"collectionId": "c1", "caseId": case, "index": 1, "runTimes": run_times, "status": status}


def put(lines: ResultLines, *rows: dict[str, Any]) -> None:
    for r in rows:
        lines.add(r, json.dumps(r, separators=(",", ":")).encode())
    lines.flush()


def test_a_torn_last_line_is_skipped_and_a_restart_cuts_it_and_appends_only_what_is_missing(tmp_path: Path) -> None:
    first = ResultLines(tmp_path)
    put(first, row("a"), row("b", status=1))
    first.close()
    path = tmp_path / JSONL_FILE
    with open(path, "ab") as fh:
        fh.write(b'{"collectionId":"c1","caseId":"b","ind')                  # the crash came mid-write
    assert [x["caseId"] for x in read_lines(path)] == ["a", "b"]
    again = ResultLines(tmp_path, resume=True)                               # the replay re-adds every attempt
    put(again, row("a"), row("b", status=1), row("b", 2), row("c"))
    again.close()
    assert path.read_bytes().count(b"\n") == 4 and path.read_bytes().endswith(b"\n")
    assert [(x["caseId"], x["runTimes"]) for x in read_lines(path)] == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    fresh = ResultLines(tmp_path)                                            # a new task in the same place starts anew
    put(fresh, row("z"))
    fresh.close()
    assert [x["caseId"] for x in read_lines(path)] == ["z"]
