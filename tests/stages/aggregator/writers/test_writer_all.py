"""write_all: every format written, secrets nowhere on disk, no temp files, repeatable while results grow."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from pipeline.models import CaseResult
from stages.aggregator.writers import FORMATS, TaskReportMeta, write_all


def test_write_all_writes_every_format(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult],
                                       K: SimpleNamespace) -> None:
    paths = write_all(report_dir, meta, results)
    assert set(paths) == set(FORMATS)
    assert paths["summary"].name == "summary.json" and paths["results"].name == "results.json"
    assert paths["junit"].name == "junit.xml" and paths["html"].name == "report.html"
    assert paths["allure"].is_dir() and any(paths["allure"].glob("*-result.json"))
    for p in report_dir.rglob("*"):
        assert not p.name.startswith("."), f"temp file left: {p}"
        if p.is_file() and p.suffix != ".png":
            assert K.SECRET not in p.read_text(encoding="utf-8"), f"secret leaked into {p}"


def test_incremental_writes_track_growing_results(report_dir: Path, meta: TaskReportMeta,
                                                  results: list[CaseResult]) -> None:
    seen = []
    for n in (1, 4, len(results)):
        paths = write_all(report_dir, meta, results[:n])
        body = json.loads(paths["results"].read_text(encoding="utf-8"))
        summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
        seen.append((len(body["caseResultList"]), summary["stat"]["testcases"]["attempts"],
                     len(list(paths["allure"].glob("*-result.json")))))
    assert seen == [(1, 1, 1), (4, 4, 4), (8, 8, 8)]


def test_inputs_are_not_mutated(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> None:
    before = [r.to_dict() for r in results]
    write_all(report_dir, meta, results)
    assert [r.to_dict() for r in results] == before
