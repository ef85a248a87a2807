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

from .casecheck import check_case_id, check_depth, check_steps, find_cycle
from .errors import SuiteError
from .evidence import check_keep
from .models import CaseType, Task
from .package import safe_extract
from .storage import follow_umask

__all__ = ["load_suite", "validate_task", "read_case", "case_path"]

CASE_TYPES = {t.value for t in CaseType}
MAX_CASE_BYTES = 16 * 2**20


def case_path(data_dir: Path, collection_id: str, case_id: str) -> Path:
    """Where the platform's package keeps a case: ``<data_dir>/<collectionId>/<caseId>.json``."""
    for part, label in ((collection_id, "collectionId"), (case_id, "caseId")):
        if _unsafe(part):
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
    except (OSError, RecursionError) as e:       # a directory named x.json, no permission, absurd nesting
        raise SuiteError(f"cannot read case file: {type(e).__name__}: {e}", file=str(path)) from None
    if not isinstance(data, dict):
        raise SuiteError(f"a case must be a JSON object, got {type(data).__name__}", file=str(path))
    check_depth(data, str(path))
    check_steps(data, str(path))
    return data


def _unsafe(name: str) -> bool:
    return not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name


# Planning fields of the seed (optional): name -> (accepted types, what to say). The scheduler sorts and
# compares them, so a wrong type must stop here instead of crashing the planner.
_NUM = ((int, float), "a number")
_CASE_FIELDS: dict[str, tuple[tuple[type, ...] | type, str]] = {
    "priority": (int, "an int"), "timeout": _NUM, "retry": (int, "an int"), "tags": (list, "a list of strings"),
    "dependencies": (list, "a list of caseIds"), "enabled": (bool, "true or false"), "skipReason": (str, "a string")}
_COLLECTION_FIELDS: dict[str, tuple[tuple[type, ...] | type, str]] = {
    "order": (int, "an int"), "parallel": (bool, "true or false"), "variables": (dict, "an object"),
    "deviceId": (str, "a string"), "setupScript": (str, "a string"), "teardownScript": (str, "a string")}


# Numbers travel in msgpack messages and feed sleeps and sorts: bounded here so 10**30 or NaN stops with the
# file and field instead of crashing the fetcher in a loop. Timeouts are seconds and must be > 0.
MAX_INT = 2**31 - 1
MAX_THREAD = 1000
MAX_TIMEOUT_S = 7 * 86400
_RANGES: dict[str, tuple[float, float]] = {"maxThread": (1, MAX_THREAD), "priority": (-MAX_INT, MAX_INT),
                                           "index": (-MAX_INT, MAX_INT), "order": (-MAX_INT, MAX_INT),
                                           "retry": (0, 100), "timeout": (0, MAX_TIMEOUT_S)}


def _check_range(key: str, v: Any, source: str, where: str) -> None:
    lo, hi = _RANGES[key]
    name = f"{where}.{key}" if where else key
    if isinstance(v, float) and v != v:
        raise SuiteError("must be a number, got NaN", file=source, field=name)
    if key == "timeout" and not v > 0:
        raise SuiteError(f"must be a positive number of seconds, got {v!r}", file=source, field=name)
    if not lo <= v <= hi:
        raise SuiteError(f"must be between {lo:g} and {hi:g}, got {_short(v)}", file=source, field=name)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"


def _check_fields(obj: dict[str, Any], fields: dict[str, tuple[tuple[type, ...] | type, str]], source: str, where: str) -> None:
    for key, (typ, what) in fields.items():
        v = obj.get(key)
        if v is None:
            continue
        bad = not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool)
        if not bad and isinstance(v, list):
            bad = not all(isinstance(x, str) for x in v)
        if bad:
            raise SuiteError(f"must be {what}, got {_short(v)}", file=source, field=f"{where}.{key}")
        if key in _RANGES:
            _check_range(key, v, source, where)


def validate_task(raw: Any, source: str) -> Task:
    """Check the task object's shape (reference §3.1) and return it as a ``Task``."""
    if not isinstance(raw, dict):
        raise SuiteError(f"task must be a JSON object, got {type(raw).__name__}", file=source)
    check_depth(raw, source)
    for key, typ in (("taskId", str), ("testCollectionList", list)):
        if not isinstance(raw.get(key), typ):
            raise SuiteError(f"missing or not a {typ.__name__}", file=source, field=key)
    if _unsafe(raw["taskId"]):
        raise SuiteError(f"unsafe taskId {raw['taskId']!r} (must be a plain folder name)", file=source, field="taskId")
    for key, number in (("maxThread", int), ("priority", int), ("timeout", (int, float))):
        if raw.get(key) is not None and (not isinstance(raw[key], number) or isinstance(raw[key], bool)):
            raise SuiteError(f"must be a number, got {_short(raw[key])}", file=source, field=key)
        if raw.get(key) is not None:
            _check_range(key, raw[key], source, "")
    if raw.get("evidence") not in (None, ""):
        try:
            raw = dict(raw, evidence=check_keep(raw["evidence"]))
        except ValueError as e:
            raise SuiteError(str(e), file=source, field="evidence") from None
    if raw.get("maxThread") is None:
        raw = dict(raw, maxThread=1)
    seen: set[tuple[str, str, int]] = set()
    deps: dict[str, list[str]] = {}
    for i, coll in enumerate(raw["testCollectionList"]):
        where = f"testCollectionList[{i}]"
        if not isinstance(coll, dict) or not isinstance(coll.get("collectionId"), str) or not coll["collectionId"]:
            raise SuiteError("collection needs a string collectionId", file=source, field=where)
        if _unsafe(coll["collectionId"]):
            raise SuiteError(f"unsafe collectionId {coll['collectionId']!r} (must be a plain folder name)",
                             file=source, field=f"{where}.collectionId")
        _check_fields(coll, _COLLECTION_FIELDS, source, where)
        for key in ("setupScript", "teardownScript"):
            if coll.get(key):                    # refused rather than accepted and silently never run
                raise SuiteError(f"{key} is not supported by this engine (collection scripts are not run); put the code "
                                 "in the first case's pre-script / the last case's post-script instead",
                                 file=source, field=f"{where}.{key}")
        cases = coll.get("testCaseList")
        if not isinstance(cases, list):
            raise SuiteError("missing or not a list", file=source, field=f"{where}.testCaseList")
        for j, case in enumerate(cases):
            cw = f"{where}.testCaseList[{j}]"
            if not isinstance(case, dict) or not isinstance(case.get("caseId"), str) or not case["caseId"]:
                raise SuiteError("case needs a string caseId", file=source, field=cw)
            if _unsafe(case["caseId"]):
                raise SuiteError(f"unsafe caseId {case['caseId']!r} (must be a plain file name)", file=source, field=f"{cw}.caseId")
            if not isinstance(case.get("caseType"), str) or case["caseType"] not in CASE_TYPES:
                raise SuiteError(f"caseType must be one of {sorted(CASE_TYPES)}, got {case.get('caseType')!r}", file=source, field=f"{cw}.caseType")
            if not isinstance(case.get("index", 1), int) or isinstance(case.get("index"), bool):
                raise SuiteError(f"index must be an int, got {_short(case.get('index'))}", file=source, field=f"{cw}.index")
            _check_range("index", case.get("index", 1), source, cw)
            _check_fields(case, _CASE_FIELDS, source, cw)
            case_key = (coll["collectionId"], case["caseId"], case.get("index", 1))
            if case_key in seen:
                raise SuiteError(f"duplicate case {case['caseId']} index {case_key[2]} in collection {case_key[0]}", file=source, field=cw)
            seen.add(case_key)
            deps.setdefault(case["caseId"], []).extend(case.get("dependencies") or ())
    cycle = find_cycle(deps)
    if cycle:
        raise SuiteError(f"dependency cycle: {' -> '.join(cycle)} (these cases would wait for each other forever)",
                         file=source, field="dependencies")
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


def load_suite(source: str | Path, data_root: Path, names: dict[str, str] | None = None) -> tuple[Task, Path]:
    """Validate ``source`` and copy/extract it into ``data_root/<taskId>/``; return the task and that folder.

    Copying keeps the run independent of later edits to the suite and gives the janitor one folder to expire.
    ``names`` gets ``caseId -> caseName`` of every case file read while validating (all of them when the
    suite has a task.json), so a caller that wants the names does not read and parse each file again.
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
        def shown(p: Path) -> str:              # a file inside a zip is named "<zip>!<entry>", not by its temp copy
            return str(p) if root is src else f"{src}!{p.relative_to(root)}"
        task_file = root / "task.json"
        if task_file.exists():
            try:
                raw = json.loads(task_file.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise SuiteError(f"invalid JSON: {e}", file=shown(task_file)) from None
            except RecursionError:
                raise SuiteError("JSON nested too deeply to read", file=shown(task_file)) from None
            task = validate_task(raw, shown(task_file))
        else:
            task = validate_task(_derive_task(root), str(root))
        for coll in task.collections():          # before anything is copied: the error names the suite's file
            for ref in coll.cases():
                p = case_path(root, coll.collectionId, ref.caseId)
                if not p.is_file():
                    raise SuiteError(f"case file for {ref.caseId} is missing", file=shown(p))
                if not task_file.exists():
                    continue                     # derived: the file name is the caseId
                try:
                    data = read_case(p)
                    check_case_id(data, ref.caseId, shown(p))
                except SuiteError as e:
                    raise SuiteError(e.message, file=shown(p), field=e.field) from None
                if names is not None:
                    names[ref.caseId] = str(data.get("caseName") or ref.caseId)
        dest = data_root / task.taskId            # validate_task made taskId a plain folder name
        if dest.exists():
            shutil.rmtree(dest)
        if root is src:
            # contents only (copyfile): the source's times, modes and xattrs are not the copy's (follow_umask
            # sets the modes); copy2's copystat was four more system calls per file of a 50,000-case suite
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("task.json"), copy_function=shutil.copyfile)
            follow_umask(dest)                   # the copy is as private as everything else the engine writes
        else:
            shutil.move(str(root), str(dest))
        return task, dest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
