"""FileQueue (an attempt's new Allure files written on their own thread): everything put is on disk when
``drain`` returns, no thread outlives it, and a failed write comes back to the owner with its file named;
through the builder, such a failure surfaces from ``write`` after the other formats are written."""
from __future__ import annotations

import json
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.models import CaseResult
from stages.aggregator.writers import TaskReportMeta, allure
from stages.aggregator.writers.builder import ReportBuilder
from stages.aggregator.writers.filequeue import FileQueue


def _file_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "report-files"]


def test_drain_waits_for_every_file_and_stops_the_thread(tmp_path: Path) -> None:
    before = set(_file_threads())              # other tests' builders that were never written may hold one
    q = FileQueue()
    for n in range(300):
        q.put(tmp_path / f"{n}.json", b'{"n":%d}' % n if n % 2 else f"text {n} 中文")
    assert len(set(_file_threads()) - before) == 1
    assert q.drain() == []
    assert set(_file_threads()) - before == set()
    assert sorted(int(p.stem) for p in tmp_path.iterdir()) == list(range(300))
    assert (tmp_path / "3.json").read_bytes() == b'{"n":3}'
    assert (tmp_path / "4.json").read_text(encoding="utf-8") == "text 4 中文"
    assert q.drain() == []                     # nothing put: nothing to wait for


def test_a_failed_write_is_returned_naming_the_file_and_the_rest_are_written(tmp_path: Path) -> None:
    q = FileQueue()
    q.put(tmp_path / "a.json", b"a")
    q.put(tmp_path / "gone" / "b.json", b"b")      # its directory does not exist
    q.put(tmp_path / "c.json", b"c")
    errors = q.drain()
    assert len(errors) == 1 and isinstance(errors[0], FileNotFoundError)
    assert errors[0].filename == str(tmp_path / "gone" / "b.json")
    assert (tmp_path / "a.json").read_bytes() == b"a" and (tmp_path / "c.json").read_bytes() == b"c"
    assert q.drain() == []                         # reported once


def test_builder_writes_each_attempts_allure_files_before_any_report(tmp_path: Path, meta: TaskReportMeta,
                                                                     results: list[CaseResult]) -> None:
    before = set(_file_threads())                  # other tests' builders that were never written may hold one
    b = ReportBuilder(tmp_path / "r", replace(meta, finished_at=None))
    for r in results:
        b.add(r)
    b.write(meta.finished_at)
    assert set(_file_threads()) - before == set()
    out = tmp_path / "r" / allure.ALLURE_DIR
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in out.glob("*-result.json")]
    assert len(docs) == len(results)
    for doc in docs:                               # every attachment a result names is there
        for a in doc["attachments"]:
            assert (out / a["source"]).is_file(), a


def test_builder_reports_a_failed_allure_file_after_writing_the_other_formats(tmp_path: Path, meta: TaskReportMeta,
                                                                               results: list[CaseResult]) -> None:
    b = ReportBuilder(tmp_path / "r", replace(meta, finished_at=None))
    b.add(results[0])
    b.write()
    shutil.rmtree(tmp_path / "r" / allure.ALLURE_DIR)   # the next attempt's Allure files cannot be created
    b.add(results[1])
    with pytest.raises(FileNotFoundError) as e:
        b.write(meta.finished_at)
    assert allure.ALLURE_DIR in str(e.value.filename)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    assert summary["stat"]["testcases"]["attempts"] == 2      # the other formats have both attempts
