"""Load a local suite: a directory laid out like an extracted LiuMa package (``task.json`` + 
``<collectionId>/<caseId>.json``) or a ``.zip`` of one, validated before anything runs.

Without ``task.json`` the task is derived: each sub-directory is a collection (sorted by name), each JSON
file in it a case (sorted by name), indexes 1..n. Every problem is a ``SuiteError`` naming file and field.
"""
from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from .errors import SuiteError
from .models import CaseType, Task
from .package import safe_extract

__all__ = ["load_suite", "validate_task", "read_case", "case_path"]

CASE_TYPES = {t.value for t in CaseType}
MAX_CASE_BYTES = 16 * 2**20


def case_path(data_dir: Path, collection_id: str, case_id: str) -> Path:
    """Where the platform's package keeps a case: ``<data_dir>/<collectionId>/<caseId>.json``."""
    for part, label in ((collection_id, "collectionId"), (case_id, "caseId")):
        if not part or "/" in part or "\\" in part or part in (".", "..") or "\x00" in part:
            raise SuiteError(f"unsafe {label} {part!r} (must be a plain file name)", field=label)
    return data_dir / collection_id / f"{case_id}.json"


def read_case(path: Path) -> dict[str, Any]:
    """Read and minimally validate one case file (the runners validate the rest)."""
    try:
        if path.stat().st_size > MAX_CASE_BYTES:
            raise SuiteError(f"case file is larger than {MAX_CASE_BYTES} bytes", file=str(path))
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError("case file not found", file=str(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SuiteError(f"invalid JSON: {e}", file=str(path)) from None
    if not isinstance(data, dict):
        raise SuiteError(f"a case must be a JSON object, got {type(data).__name__}", file=str(path))
    return data


def validate_task(raw: Any, source: str) -> Task:
    """Check the task object's shape (reference §3.1) and return it as a ``Task``."""
    if not isinstance(raw, dict):
        raise SuiteError(f"task must be a JSON object, got {type(raw).__name__}", file=source)
    for key, typ in (("taskId", str), ("testCollectionList", list)):
        if not isinstance(raw.get(key), typ):
            raise SuiteError(f"missing or not a {typ.__name__}", file=source, field=key)
    for key, typ in (("maxThread", int), ("priority", int), ("timeout", (int, float))):
        if raw.get(key) is not None and (not isinstance(raw[key], typ) or isinstance(raw[key], bool)):
            raise SuiteError(f"must be a number, got {raw[key]!r}", file=source, field=key)
    if raw.get("maxThread") is None:
        raw = dict(raw, maxThread=1)
    if raw["maxThread"] < 1:
        raise SuiteError(f"must be >= 1, got {raw['maxThread']}", file=source, field="maxThread")
    seen: set[tuple[str, str, int]] = set()
    for i, coll in enumerate(raw["testCollectionList"]):
        where = f"testCollectionList[{i}]"
        if not isinstance(coll, dict) or not isinstance(coll.get("collectionId"), str) or not coll["collectionId"]:
            raise SuiteError("collection needs a string collectionId", file=source, field=where)
        cases = coll.get("testCaseList")
        if not isinstance(cases, list):
            raise SuiteError("missing or not a list", file=source, field=f"{where}.testCaseList")
        for j, case in enumerate(cases):
            cw = f"{where}.testCaseList[{j}]"
            if not isinstance(case, dict) or not isinstance(case.get("caseId"), str) or not case["caseId"]:
                raise SuiteError("case needs a string caseId", file=source, field=cw)
            if case.get("caseType") not in CASE_TYPES:
                raise SuiteError(f"caseType must be one of {sorted(CASE_TYPES)}, got {case.get('caseType')!r}", file=source, field=f"{cw}.caseType")
            if not isinstance(case.get("index", 1), int) or isinstance(case.get("index"), bool):
                raise SuiteError(f"index must be an int, got {case.get('index')!r}", file=source, field=f"{cw}.index")
            key = (coll["collectionId"], case["caseId"], case.get("index", 1))
            if key in seen:
                raise SuiteError(f"duplicate case {case['caseId']} index {key[2]} in collection {key[0]}", file=source, field=cw)
            seen.add(key)
    return Task.from_dict(raw)


def _derive_task(root: Path) -> dict[str, Any]:
    collections = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cases = []
        for i, f in enumerate(sorted(d.glob("*.json")), start=1):
            data = read_case(f)
            cases.append({"index": i, "caseId": f.stem, "caseType": _guess_type(data, f)})
        if cases:
            collections.append({"collectionId": d.name, "testCaseList": cases})
    if not collections:
        raise SuiteError("no task.json and no <collection>/<case>.json files", file=str(root))
    return {"taskId": f"local-{uuid.uuid4()}", "taskType": "run", "maxThread": max(1, len(collections)),
            "reRun": False, "testCollectionList": collections, "downloadUrl": None, "debugData": None}


def _guess_type(data: dict[str, Any], f: Path) -> str:
    if "apiList" in data:
        return "API"
    if "optList" in data:
        return "APP" if ("appId" in data or "deviceSystem" in data) else "WEB"
    raise SuiteError("cannot tell the case type: no apiList or optList", file=str(f))


def load_suite(source: str | Path, data_root: Path) -> tuple[Task, Path]:
    """Validate ``source`` and copy/extract it into ``data_root/<taskId>/``; return the task and that folder.

    Copying keeps the run independent of later edits to the suite and gives the janitor one folder to expire.
    """
    src = Path(source)
    if not src.exists():
        raise SuiteError("suite not found", file=str(src))
    staging = data_root / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        if src.is_file():
            safe_extract(src, staging)
            inner = [p for p in staging.iterdir()]
            root = inner[0] if len(inner) == 1 and inner[0].is_dir() and not (staging / "task.json").exists() else staging
        elif src.is_dir():
            root = src
        else:
            raise SuiteError("suite must be a directory or a .zip", file=str(src))
        task_file = root / "task.json"
        if task_file.exists():
            try:
                raw = json.loads(task_file.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise SuiteError(f"invalid JSON: {e}", file=str(task_file)) from None
            task = validate_task(raw, str(task_file))
        else:
            task = validate_task(_derive_task(root), str(root))
        dest = data_root / task.taskId
        case_path(data_root, task.taskId, "x")   # taskId must be a safe folder name too
        if dest.exists():
            shutil.rmtree(dest)
        if root is src:
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("task.json"))
        else:
            shutil.move(str(root), str(dest))
        for coll in task.collections():
            for ref in coll.cases():
                p = case_path(dest, coll.collectionId, ref.caseId)
                if not p.is_file():
                    raise SuiteError(f"case file for {ref.caseId} is missing", file=str(p))
        return task, dest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
