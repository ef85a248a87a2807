"""Turning a task object from the platform into something the scheduler can run — or, when that is
impossible, into the error report the platform still needs (pure file work; the client is passed in).

- ``taskType == "debug"``: like the original, only the first case of the first collection runs, and its case
  JSON is the in-message ``debugData``; it is written to ``<data>/<taskId>/<collectionId>/<caseId>.json``
  so executors read it like any packaged case.
- other types: the zip at ``downloadUrl`` is downloaded and safely extracted to ``<data>/<taskId>/``.
- either way the task object is validated (``pipeline.suite.validate_task``) and every case file must exist.

A task that cannot be used (``PlatformRejected``: the platform answered with an error instead of the zip;
``SuiteError``: a hostile or broken package, a bad task object) is *reported*, not dropped: ``error_report``
builds one error result per case naming the reason, so the platform gets rows and a ``complete`` and frees
the engine's slot instead of waiting for its 10-minute inactivity timeout (§1.7).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

from pipeline.casecheck import check_case_id
from pipeline.errors import SuiteError
from pipeline.models import CaseType, Outcome, Status, engine_result
from pipeline.suite import case_path, read_case, validate_task

__all__ = ["PackageSource", "prepare_task", "error_report", "ErrorReport"]

_CASE_TYPES = {t.value for t in CaseType}


class PackageSource(Protocol):
    """What preparation needs from ``pipeline.platform.PlatformClient``."""

    def download_package(self, task: Any, dest_dir: Path) -> Path: ...


def prepare_task(client: PackageSource, raw: dict[str, Any], data_root: Path, report_dir: str) -> dict[str, Any]:
    """The ``task.submit`` body for ``raw``; raises ``SuiteError``/``PlatformError`` when it cannot run."""
    task_id = raw.get("taskId")
    source = f"task {task_id} from the platform"
    if not isinstance(task_id, str):
        raise SuiteError("task object without a string taskId", file=source, field="taskId")
    case_path(data_root, task_id, "x")                     # the taskId is a folder name: it must be a plain one
    if raw.get("taskType") == "debug":
        raw = _debug_task(raw, data_root, source)
        data_dir = data_root / task_id
    else:
        data_dir = client.download_package(raw, data_root)
    task = validate_task(raw, source)
    names: dict[str, str] = {}
    for coll in task.collections():
        for ref in coll.cases():
            path = case_path(data_dir, coll.collectionId, ref.caseId)
            if not path.is_file():
                raise SuiteError(f"the package has no file for case {ref.caseId}", file=str(path))
            try:
                case = read_case(path)
            except SuiteError:
                names[ref.caseId] = ref.caseId               # the executor reports the unreadable file as the case's error
                continue
            if raw.get("taskType") != "debug":               # a debug case is written by us from debugData
                check_case_id(case, ref.caseId, str(path))
            names[ref.caseId] = str(case.get("caseName") or ref.caseId)
    return {"task": task.to_dict(), "data_dir": str(data_dir), "report_dir": report_dir,
            "name": f"{task.taskType} {task_id}", "case_names": names}


def _debug_task(raw: dict[str, Any], data_root: Path, source: str) -> dict[str, Any]:
    """The first case of the first collection, its JSON taken from ``debugData``."""
    case = raw.get("debugData")
    if not isinstance(case, dict):
        raise SuiteError("debug task without debugData (the platform failed to build the test data)",
                         file=source, field="debugData")
    colls = raw.get("testCollectionList")
    if not isinstance(colls, list) or not colls or not isinstance(colls[0], dict) \
            or not isinstance(colls[0].get("testCaseList"), list) or not colls[0]["testCaseList"]:
        raise SuiteError("debug task without a case in testCollectionList[0]", file=source, field="testCollectionList")
    first = dict(colls[0], testCaseList=[colls[0]["testCaseList"][0]])
    ref = first["testCaseList"][0]
    if not isinstance(ref, dict) or not isinstance(ref.get("caseId"), str) or not isinstance(first.get("collectionId"), str):
        raise SuiteError("debug case needs a string caseId and collectionId", file=source, field="testCollectionList[0]")
    path = case_path(data_root / raw["taskId"], first["collectionId"], ref["caseId"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(case, ensure_ascii=False), encoding="utf-8")
    return dict(raw, testCollectionList=[first])


class ErrorReport:
    """The three reliable messages that report an unusable task through the aggregator:
    ``planned`` (task.planned), ``results`` (result.record bodies), ``finished`` (task.finished)."""

    def __init__(self, planned: dict[str, Any], results: list[dict[str, Any]], finished: dict[str, Any]) -> None:
        self.planned, self.results, self.finished = planned, results, finished


def error_report(raw: dict[str, Any], reason: str, report_dir: str) -> ErrorReport:
    """Every case the task object names, as an error carrying ``reason`` (one synthetic ``未知`` step, the
    shape the platform accepts, §7.3/§10). A task object too broken to name its cases yields no rows; it is
    still planned and finished so the platform gets its ``complete``."""
    task_id = str(raw.get("taskId"))
    results: list[dict[str, Any]] = []
    seen: set[tuple[str, str, int]] = set()
    for coll in raw.get("testCollectionList") or []:
        if not isinstance(coll, dict) or not isinstance(coll.get("collectionId"), str):
            continue
        for ref in coll.get("testCaseList") or []:
            if not isinstance(ref, dict) or not isinstance(ref.get("caseId"), str):
                continue
            index = ref.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or abs(index) > 2**31:   # 10**30 cannot travel
                index = 1
            key = (coll["collectionId"], ref["caseId"], index)
            if key in seen:
                continue
            seen.add(key)
            case_type = str(ref.get("caseType")) if ref.get("caseType") in _CASE_TYPES else CaseType.API.value
            results.append(engine_result(task_id=task_id, collection_id=key[0], case_id=key[1], case_type=case_type,
                                         index=index, run_times=1, status=Status.ERROR, outcome=Outcome.ERROR,
                                         reason=reason, executor="fetcher").to_dict())
    planned = {"task_id": task_id, "report_dir": report_dir, "name": f"{raw.get('taskType')} {task_id}",
               "cases": len(results), "started_at": time.time()}
    expected = [[task_id, r["collectionId"], r["caseId"], r["index"], 1] for r in results]
    return ErrorReport(planned, results, {"task_id": task_id, "expected": expected, "stopped": ""})
