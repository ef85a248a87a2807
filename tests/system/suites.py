"""Builders for small LiuMa suites on disk (task.json + <collection>/<case>.json) used by system tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def api_case(case_id: str, url: str, path: str, *, name: str | None = None, method: str = "GET",
             assertions: list[dict[str, Any]] | None = None, controller: dict[str, Any] | None = None,
             relations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"comment": None, "caseId": case_id, "caseName": name or case_id, "functions": [], "params": {},
            "apiList": [{"apiId": f"{case_id}-step", "apiName": f"{case_id} step", "apiDesc": None, "url": url, "path": path,
                         "method": method, "protocol": "HTTP", "headers": {}, "proxies": {},
                         "body": {"type": "json", "form": [], "raw": "", "file": [], "json": ""}, "query": {}, "rest": {},
                         "assertions": assertions or [], "relations": relations or [], "controller": controller or {}}]}


def write_suite(root: Path, collections: dict[str, list[dict[str, Any]]], *, task_id: str = "t-1",
                max_thread: int = 4, rerun: bool = False, extra: dict[str, dict[str, Any]] | None = None) -> Path:
    """collections: {collectionId: [case json, ...]}; ``extra`` adds planning fields per caseId."""
    root.mkdir(parents=True, exist_ok=True)
    colls = []
    for cid, cases in collections.items():
        (root / cid).mkdir(exist_ok=True)
        refs = []
        for i, case in enumerate(cases, start=1):
            (root / cid / f"{case['caseId']}.json").write_text(json.dumps(case, ensure_ascii=False))
            ctype = "API" if "apiList" in case else "WEB"
            refs.append(dict({"index": i, "caseId": case["caseId"], "caseType": ctype}, **(extra or {}).get(case["caseId"], {})))
        colls.append({"collectionId": cid, "deviceId": None, "testCaseList": refs})
    (root / "task.json").write_text(json.dumps({"taskId": task_id, "taskType": "run", "maxThread": max_thread,
                                                "reRun": rerun, "testCollectionList": colls, "downloadUrl": None, "debugData": None}))
    return root
