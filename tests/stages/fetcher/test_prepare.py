"""Task preparation: debug tasks from debugData, unusable packages become error rows the platform accepts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.codec import Envelope, decode, encode
from pipeline.errors import SuiteError
from pipeline.messages import Kind, ResultRecord
from pipeline.models import CaseResult
from pipeline.platform_rows import platform_row, validate_platform_row
from stages.fetcher.prepare import error_report, prepare_task


class NoDownload:
    def download_package(self, task: Any, dest_dir: Path) -> Path:
        raise AssertionError("a debug task is never downloaded")


def debug_task(**over: Any) -> dict[str, Any]:
    return dict({"taskId": "t-dbg", "taskType": "debug", "downloadUrl": None, "maxThread": 1, "reRun": False,
                 "debugData": {"caseId": "k", "caseName": "调试", "apiList": []},
                 "testCollectionList": [{"collectionId": "tmp", "testCaseList": [
                     {"index": 1, "caseId": "k", "caseType": "API"}, {"index": 2, "caseId": "other", "caseType": "API"}]},
                     {"collectionId": "more", "testCaseList": [{"index": 1, "caseId": "z", "caseType": "API"}]}]}, **over)


def test_debug_task_runs_only_the_first_case_from_debug_data(tmp_path: Path) -> None:
    body = prepare_task(NoDownload(), debug_task(), tmp_path, "reports")
    assert [(c["collectionId"], [r["caseId"] for r in c["testCaseList"]]) for c in body["task"]["testCollectionList"]] == [("tmp", ["k"])]
    assert (tmp_path / "t-dbg" / "tmp" / "k.json").is_file() and body["case_names"] == {"k": "调试"}
    assert body["data_dir"] == str(tmp_path / "t-dbg")


@pytest.mark.parametrize("over, field", [({"debugData": None}, "debugData"), ({"testCollectionList": []}, "testCollectionList"),
                                         ({"taskId": "../x"}, "taskId")])
def test_unusable_debug_task_is_a_suite_error_naming_the_field(tmp_path: Path, over: dict[str, Any], field: str) -> None:
    with pytest.raises(SuiteError, match=field if field != "taskId" else "unsafe"):
        prepare_task(NoDownload(), debug_task(**over), tmp_path, "reports")


def test_error_report_rows_are_accepted_by_the_platform() -> None:
    raw = {"taskId": "t-1", "taskType": "run", "testCollectionList": [
        {"collectionId": "c", "testCaseList": [{"index": 1, "caseId": "a", "caseType": "WEB"}, {"index": 1, "caseId": "a", "caseType": "WEB"},
                                               {"index": 2, "caseId": "b", "caseType": "???"}, "junk"]}, {"no": "id"}]}
    rep = error_report(raw, "task package unusable: entry '../x' refused", "reports")
    assert rep.planned["task_id"] == "t-1" and rep.finished["expected"] == [["t-1", "c", "a", 1, 1], ["t-1", "c", "b", 2, 1]]
    for body in rep.results:
        row = platform_row(CaseResult.from_dict(body))
        assert validate_platform_row(row) == [] and row["status"] == 2
        assert "entry '../x' refused" in row["transactionList"][0]["log"]
    assert error_report({"taskId": "t-2", "testCollectionList": "nonsense"}, "bad", "r").results == []


class Package:
    """A downloaded package already on disk (the real download is tested with the fake platform)."""

    def download_package(self, task: Any, dest_dir: Path) -> Path:
        d = dest_dir / task["taskId"] / "c"
        d.mkdir(parents=True, exist_ok=True)
        (d / "a.json").write_text('{"caseId": "a", "caseName": "A", "apiList": []}')
        return dest_dir / task["taskId"]


@pytest.mark.parametrize("over, field", [({"maxThread": 10**30}, "maxThread"), ({"priority": 10**30}, "priority"),
                                         ({"index": 10**30}, "testCollectionList[0].testCaseList[0].index")])
def test_platform_task_with_an_integer_that_cannot_travel_is_reported_not_crashed_on(tmp_path: Path, over: dict[str, Any], field: str) -> None:
    ref = {"index": over.pop("index", 1), "caseId": "a", "caseType": "API"}
    raw = dict({"taskId": "t-big", "taskType": "run", "testCollectionList": [{"collectionId": "c", "testCaseList": [ref]}]}, **over)
    with pytest.raises(SuiteError) as e:
        prepare_task(Package(), raw, tmp_path, "reports")
    assert e.value.field == field
    rep = error_report(raw, str(e.value), "reports")
    for body in rep.results:                               # the report itself can travel
        back = decode(encode(Envelope(Kind.RESULT_RECORD, {"result": body}))).body
        assert isinstance(back, ResultRecord) and back.result["index"] == 1


def test_platform_case_file_with_another_case_id_is_refused_naming_both(tmp_path: Path) -> None:
    raw = {"taskId": "t-x", "taskType": "run", "testCollectionList": [{"collectionId": "c", "testCaseList": [
        {"index": 1, "caseId": "b", "caseType": "API"}]}]}

    class Other(Package):
        def download_package(self, task: Any, dest_dir: Path) -> Path:
            root = super().download_package(task, dest_dir)
            (root / "c" / "a.json").rename(root / "c" / "b.json")      # file b.json says caseId "a"
            return root
    with pytest.raises(SuiteError, match="says caseId 'a' but task.json lists it as 'b'"):
        prepare_task(Other(), raw, tmp_path, "reports")
