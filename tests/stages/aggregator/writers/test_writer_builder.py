"""ReportBuilder (incremental: parts rendered per attempt, files assembled by joining them) writes the same
documents as the batch writers of each format, whatever the arrival order and however often it writes."""
from __future__ import annotations

import base64
import json
import random
import re
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.models import CaseResult
from stages.aggregator.writers import TaskReportMeta, allure, html, junit, summary
from stages.aggregator.writers import results as results_mod
from stages.aggregator.writers.builder import ReportBuilder


def batch(report_dir: Path, meta: TaskReportMeta, results: list[CaseResult]) -> None:
    """The per-format batch writers, each on its own (the reference the builder must equal)."""
    from stages.aggregator.writers._common import Redactor
    from stages.aggregator.writers.attachments import link_attachments
    red = Redactor(meta.secrets)
    rows = [red.result(r) for r in results]
    clean = replace(meta, task_name=red.text(meta.task_name), secrets=())
    link_attachments(report_dir, clean, rows)
    summary.write_summary(report_dir, clean, rows)
    results_mod.write_results(report_dir, clean, rows)
    junit.write_junit(report_dir, clean, rows)
    allure.write_allure(report_dir, clean, rows)
    html.write_html(report_dir, clean, rows)


def html_data(path: Path) -> tuple[dict[str, Any], list[Any]]:
    page = path.read_text(encoding="utf-8")
    index = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    blocks = json.loads(re.search(r'id="report-details">(.*?)</script>', page, re.S).group(1))
    details = [json.loads(zlib.decompress(base64.b64decode(b))) for b in blocks]
    # executor numbering is arrival order in the builder, case order in the batch writer: compare names
    for case in index["cases"]:
        for a in case["a"]:
            a[2] = index["executors"][a[2]] if a[2] >= 0 else None
    index["executors"] = sorted(index["executors"])
    for case in index["cases"]:
        case.pop("k"), case.pop("j")
    return index, details


def documents(report_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {name: json.loads((report_dir / name).read_text(encoding="utf-8"))
                           for name in (summary.SUMMARY_FILE, results_mod.RESULTS_FILE)}
    out["summary.json"]["platform"].pop("python_version", None)
    out[junit.JUNIT_FILE] = (report_dir / junit.JUNIT_FILE).read_text(encoding="utf-8")
    out["allure"] = {p.name: (json.loads(p.read_text(encoding="utf-8")) if p.suffix == ".json" else p.read_bytes())
                     for p in sorted((report_dir / allure.ALLURE_DIR).iterdir())}
    out["html"] = html_data(report_dir / html.HTML_FILE)
    out["attachments"] = sorted(p.name for p in (report_dir / "attachments").iterdir())
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("final", [True, False])
def test_builder_equals_the_batch_writers(tmp_path: Path, meta: TaskReportMeta, results: list[CaseResult],
                                          seed: int, final: bool) -> None:
    if not final:
        meta = replace(meta, finished_at=None)
    batch(tmp_path / "batch", meta, results)
    shuffled = list(results)
    random.Random(seed).shuffle(shuffled)
    b = ReportBuilder(tmp_path / "built", replace(meta, finished_at=None))
    for n, r in enumerate(shuffled):
        assert b.add(r)
        if n % 3 == 0:
            b.write()                          # partial reports in between change nothing in the end
    assert not b.add(shuffled[0])              # same result key: ignored
    b.write(meta.finished_at)
    expected, got = documents(tmp_path / "batch"), documents(tmp_path / "built")
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == expected[name], name


def test_empty_task_writes_every_format(tmp_path: Path, meta: TaskReportMeta) -> None:
    batch(tmp_path / "batch", meta, [])
    paths = ReportBuilder(tmp_path / "built", meta).write(meta.finished_at)
    assert set(paths) == {"summary", "results", "junit", "allure", "html", "jsonl"}
    assert paths["jsonl"].read_bytes() == b""          # no attempt: an empty file, still listed
    batch_docs = {n: json.loads((tmp_path / "batch" / n).read_text()) for n in ("summary.json", "results.json")}
    built_docs = {n: json.loads((tmp_path / "built" / n).read_text()) for n in ("summary.json", "results.json")}
    for d in (batch_docs, built_docs):
        d["summary.json"]["platform"].pop("python_version")
    assert built_docs == batch_docs
    assert (tmp_path / "built" / "junit.xml").read_text() == (tmp_path / "batch" / "junit.xml").read_text()


def test_a_written_builder_is_freed_a_slice_at_a_time(tmp_path: Path, meta: TaskReportMeta, results: list[CaseResult]) -> None:
    b = ReportBuilder(tmp_path, replace(meta, finished_at=None))
    for r in results:
        b.add(r)
    b.write(meta.finished_at)
    b.close()
    n = len(b.cases)
    assert n > 2 and not b.shed(1) and len(b.cases) == n - 1
    assert b.shed(len(results)) and not b.cases and not b.keys and not b.containers
