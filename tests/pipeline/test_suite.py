"""Local suite loading: derived tasks, task.json validation naming file + field, unsafe ids, zips; never a
write outside the data dir; any task.json structure gives a Task or a SuiteError."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import SuiteError
from pipeline.suite import case_path, load_suite, read_case, validate_task
from stages.scheduler.plan import build_units

API = {"caseId": "k1", "caseName": "api case", "apiList": []}     # k1/k2: the ids task_json() gives them
WEB = {"caseId": "k2", "caseName": "web case", "optList": []}
APP = {"caseId": "x", "caseName": "app case", "optList": [], "appId": "com.x"}


def tree(root: Path, files: dict[str, Any]) -> Path:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return root


def task_json(*cases: dict[str, Any], task_id: str = "t-1", **extra: Any) -> dict[str, Any]:
    """One collection "c1" holding ``cases`` (defaults: caseId k<i>, API, index i)."""
    refs = [dict({"caseId": f"k{i}", "caseType": "API", "index": i}, **c) for i, c in enumerate(cases, start=1)]
    return dict({"taskId": task_id, "testCollectionList": [{"collectionId": "c1", "testCaseList": refs}]}, **extra)


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "storage" / "data"


def test_task_derived_from_folders(tmp_path: Path, data: Path) -> None:
    src = tree(tmp_path / "suite", {"b-coll/z.json": API, "b-coll/a.json": WEB, "a-coll/m.json": APP,
                                    ".hidden/h.json": API, "empty/readme.txt": "x", "top.json": API})
    task, dest = load_suite(src, data)
    assert task.taskId.startswith("local-") and dest == data / task.taskId
    assert [(c.collectionId, [(r.caseId, r.caseType, r.index) for r in c.cases()]) for c in task.collections()] == [
        ("a-coll", [("m", "APP", 1)]), ("b-coll", [("a", "WEB", 1), ("z", "API", 2)])]
    assert task.maxThread == 2
    assert read_case(case_path(dest, "b-coll", "z")) == API
    assert not list(data.glob(".staging-*"))


def test_task_json_is_used_and_copied_without_itself(tmp_path: Path, data: Path) -> None:
    src = tree(tmp_path / "suite", {"task.json": task_json({}, {"caseType": "WEB"}, maxThread=3), "c1/k1.json": API, "c1/k2.json": WEB})
    task, dest = load_suite(src, data)
    assert (task.taskId, task.maxThread, dest) == ("t-1", 3, data / "t-1")
    assert listing(dest) == {"c1", "c1/k1.json", "c1/k2.json"}
    (dest / "c1" / "k1.json").write_text("{}")                       # a re-run of the same task replaces the copy
    load_suite(src, data)
    assert read_case(dest / "c1" / "k1.json") == API


@pytest.mark.parametrize("task, field, message", [
    ([], "", "task must be a JSON object, got list"),
    ({"testCollectionList": []}, "taskId", "missing or not a str"),
    ({"taskId": 7, "testCollectionList": []}, "taskId", "missing or not a str"),
    ({"taskId": "t"}, "testCollectionList", "missing or not a list"),
    ({"taskId": "../t", "testCollectionList": []}, "taskId", "unsafe taskId '../t'"),
    ({"taskId": "", "testCollectionList": []}, "taskId", "unsafe taskId ''"),
    (task_json({}, maxThread=0), "maxThread", "must be between 1 and 1000, got 0"),
    (task_json({}, maxThread="2"), "maxThread", "must be a number, got '2'"),
    (task_json({}, maxThread=True), "maxThread", "must be a number, got True"),
    (task_json({}, priority=1.5), "priority", "must be a number"),
    (task_json({}, timeout="1h"), "timeout", "must be a number"),
    (task_json({"caseType": "SOAP"}), "testCollectionList[0].testCaseList[0].caseType", "caseType must be one of ['API', 'APP', 'WEB'], got 'SOAP'"),
    (task_json({"caseType": ["API"]}), "testCollectionList[0].testCaseList[0].caseType", "got ['API']"),
    (task_json({"caseType": None}), "testCollectionList[0].testCaseList[0].caseType", "got None"),
    (task_json({}, {"caseId": "k1", "index": 1}), "testCollectionList[0].testCaseList[1]", "duplicate case k1 index 1 in collection c1"),
    (task_json({"index": "1"}), "testCollectionList[0].testCaseList[0].index", "index must be an int, got '1'"),
    (task_json({"index": True}), "testCollectionList[0].testCaseList[0].index", "index must be an int, got True"),
    (task_json({"caseId": ""}), "testCollectionList[0].testCaseList[0]", "case needs a string caseId"),
    (task_json({"caseId": "../../etc/passwd"}), "testCollectionList[0].testCaseList[0].caseId", "unsafe caseId '../../etc/passwd'"),
    (task_json({"caseId": ".."}), "testCollectionList[0].testCaseList[0].caseId", "unsafe caseId '..'"),
    (task_json({"caseId": "a\\b"}), "testCollectionList[0].testCaseList[0].caseId", "unsafe caseId"),
    ({"taskId": "t", "testCollectionList": [{"collectionId": "../x", "testCaseList": []}]}, "testCollectionList[0].collectionId", "unsafe collectionId '../x'"),
    ({"taskId": "t", "testCollectionList": [{"collectionId": "c"}]}, "testCollectionList[0].testCaseList", "missing or not a list"),
    ({"taskId": "t", "testCollectionList": ["c"]}, "testCollectionList[0]", "collection needs a string collectionId"),
    ({"taskId": "t", "testCollectionList": [{"collectionId": "c", "order": "1", "testCaseList": []}]}, "testCollectionList[0].order", "must be an int"),
    ({"taskId": "t", "testCollectionList": [{"collectionId": "c", "parallel": 1, "testCaseList": []}]}, "testCollectionList[0].parallel", "must be true or false"),
    ({"taskId": "t", "testCollectionList": [{"collectionId": "c", "variables": [], "testCaseList": []}]}, "testCollectionList[0].variables", "must be an object"),
    (task_json({"priority": "high"}), "testCollectionList[0].testCaseList[0].priority", "must be an int, got 'high'"),
    (task_json({"tags": "smoke"}), "testCollectionList[0].testCaseList[0].tags", "must be a list of strings"),
    (task_json({"dependencies": [1]}), "testCollectionList[0].testCaseList[0].dependencies", "must be a list of caseIds"),
    (task_json({"enabled": "no"}), "testCollectionList[0].testCaseList[0].enabled", "must be true or false"),
    (task_json({"timeout": True}), "testCollectionList[0].testCaseList[0].timeout", "must be a number"),
])
def test_task_validation_names_file_and_field(task: Any, field: str, message: str) -> None:
    with pytest.raises(SuiteError) as ei:
        validate_task(task, "/suites/s/task.json")
    assert (ei.value.file, ei.value.field) == ("/suites/s/task.json", field)
    assert message in str(ei.value) and str(ei.value).startswith("/suites/s/task.json")


def test_valid_task_keeps_platform_and_planning_fields() -> None:
    task = validate_task(task_json({"tags": ["smoke"], "priority": 2, "timeout": 1.5, "enabled": False}, reRun=True), "x")
    assert task.maxThread == 1 and task.reRun
    ref = task.collections()[0].cases()[0]
    assert (ref.tags, ref.priority, ref.timeout, ref.enabled) == (["smoke"], 2, 1.5, False)


@pytest.mark.parametrize("files, where, message", [
    ({"task.json": "{not json"}, "task.json", "invalid JSON"),
    ({"task.json": task_json({}), "c1/other.json": API}, "c1/k1.json", "case file for k1 is missing"),
    ({"c1/k1.json": "[1, 2"}, "c1/k1.json", "invalid JSON"),
    ({"c1/k1.json": "[1, 2]"}, "c1/k1.json", "a case must be a JSON object, got list"),
    ({"c1/k1.json": {"caseId": "k1"}}, "c1/k1.json", "cannot tell the case type: no apiList or optList"),
    ({"c1/notes.txt": "x"}, "", "no task.json and no <collection>/<case>.json files"),
])
def test_suite_errors_name_the_file(tmp_path: Path, data: Path, files: dict[str, Any], where: str, message: str) -> None:
    src = tree(tmp_path / "suite", files)
    with pytest.raises(SuiteError, match=message) as ei:
        load_suite(src, data)
    assert ei.value.file.endswith(str(Path("suite") / where) if where else "suite")
    assert not (data / "t-1").exists() and not list(data.glob(".staging-*"))


def test_case_file_that_is_a_directory_or_unreadable(tmp_path: Path, data: Path) -> None:
    src = tmp_path / "suite"
    (src / "c1" / "k1.json").mkdir(parents=True)
    with pytest.raises(SuiteError, match="cannot read case file: IsADirectoryError"):
        load_suite(src, data)
    with pytest.raises(SuiteError, match="case file not found"):
        read_case(tmp_path / "nope.json")


def test_missing_suite_and_non_zip_file(tmp_path: Path, data: Path) -> None:
    with pytest.raises(SuiteError, match="suite not found"):
        load_suite(tmp_path / "nope", data)
    (tmp_path / "s.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SuiteError, match="s.zip.*not a valid zip"):
        load_suite(tmp_path / "s.zip", data)
    assert listing(data) == set()


@pytest.mark.parametrize("part", ["", ".", "..", "a/b", "a\\b", "a\x00b"])
def test_case_path_refuses_unsafe_parts(tmp_path: Path, part: str) -> None:
    with pytest.raises(SuiteError, match="unsafe collectionId"):
        case_path(tmp_path, part, "k")
    with pytest.raises(SuiteError, match="unsafe caseId"):
        case_path(tmp_path, "c", part)


def zip_bytes(entries: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content if isinstance(content, (str, bytes)) else json.dumps(content))
    return buf.getvalue()


@pytest.mark.parametrize("prefix", ["", "/t-1/", "pkg/"], ids=["flat", "platform-layout", "one-folder"])
def test_zip_suite(tmp_path: Path, data: Path, prefix: str) -> None:
    z = tmp_path / "suite.zip"
    z.write_bytes(zip_bytes({f"{prefix}task.json": task_json({}), f"{prefix}c1/k1.json": API}))
    task, dest = load_suite(z, data)
    assert task.taskId == "t-1" and listing(dest) >= {"c1", "c1/k1.json"}
    assert read_case(dest / "c1" / "k1.json") == API
    assert listing(data) == {"t-1"} | {f"t-1/{p}" for p in listing(dest)}


@pytest.mark.parametrize("entry", ["../evil.json", "/../evil.json", "c1/../../evil.json", "//abs/evil.json"])
def test_zip_slip_entry_is_refused_and_nothing_is_written(tmp_path: Path, data: Path, entry: str) -> None:
    z = tmp_path / "suite.zip"
    z.write_bytes(zip_bytes({"task.json": task_json({}), "c1/k1.json": API, entry: "pwned"}))
    with pytest.raises(SuiteError, match="refused"):
        load_suite(z, data)
    assert not list(tmp_path.rglob("evil.json")) and not (tmp_path.parent / "evil.json").exists()
    assert listing(data) == set()


def test_task_id_traversal_in_zip_writes_nothing_outside(tmp_path: Path, data: Path) -> None:
    z = tmp_path / "suite.zip"
    z.write_bytes(zip_bytes({"task.json": task_json({}, task_id=".."), "c1/k1.json": API}))
    before = listing(tmp_path)
    with pytest.raises(SuiteError, match="unsafe taskId"):
        load_suite(z, data)
    assert listing(tmp_path) - before <= {"storage", "storage/data"}


# -- fuzz: any task.json structure -> Task or SuiteError, and a valid task always plans -------------------
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False),
                      st.sampled_from(["", "API", "WEB", "APP", "..", "k1", "c/1", "smoke"]))
json_any = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=6)
case_st = st.fixed_dictionaries({"caseId": st.one_of(st.sampled_from(["k1", "k2", ".."]), json_leaf)},
                                optional={"caseType": json_any, "index": json_any, "priority": json_any, "timeout": json_any,
                                          "tags": json_any, "dependencies": json_any, "enabled": json_any, "retry": json_any})
coll_st = st.fixed_dictionaries({"collectionId": st.one_of(st.sampled_from(["c1", "c2"]), json_leaf),
                                 "testCaseList": st.one_of(st.lists(case_st, max_size=3), json_any)},
                                optional={"order": json_any, "parallel": json_any, "variables": json_any, "deviceId": json_any})
task_st = st.one_of(json_any, st.fixed_dictionaries(
    {"taskId": st.one_of(st.just("t"), json_leaf), "testCollectionList": st.one_of(st.lists(coll_st, max_size=3), json_any)},
    optional={"maxThread": json_any, "priority": json_any, "timeout": json_any, "reRun": json_any}))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_st)
def test_fuzz_task_structures(raw: Any) -> None:
    try:
        task = validate_task(raw, "task.json")
    except SuiteError:
        return
    units, states, disabled = build_units(task, 300.0, [])        # the planner must cope with whatever passed
    assert sum(len(u.cases) for u in units) + len(disabled) == len(states)


@pytest.mark.parametrize("entries, file, message", [
    ({"task.json": "{bad"}, "suite.zip!task.json", "invalid JSON"),
    ({"task.json": task_json({"caseType": "X"})}, "suite.zip!task.json", "caseType must be one of"),
    ({"pkg/task.json": task_json({})}, "suite.zip!c1/k1.json", "case file for k1 is missing"),
])
def test_errors_inside_a_zip_name_the_zip_and_entry(tmp_path: Path, data: Path, entries: dict[str, Any], file: str, message: str) -> None:
    z = tmp_path / "suite.zip"
    z.write_bytes(zip_bytes(entries))
    with pytest.raises(SuiteError, match=message) as ei:
        load_suite(z, data)
    assert ei.value.file == str(tmp_path / file)
    assert listing(data) == set()


# -- issue 22: values that cannot travel, absurd nesting, cycles, id mismatches, bad step types -------------------
@pytest.mark.parametrize("task, field, message", [
    (task_json({}, maxThread=10**30), "maxThread", "must be between 1 and 1000"),
    (task_json({}, priority=10**30), "priority", "must be between"),
    (task_json({"index": 10**30}), "testCollectionList[0].testCaseList[0].index", "must be between"),
    (task_json({"priority": -10**30}), "testCollectionList[0].testCaseList[0].priority", "must be between"),
    (task_json({}, timeout=0), "timeout", "must be a positive number of seconds"),
    (task_json({}, timeout=-5), "timeout", "must be a positive number of seconds"),
    (task_json({"timeout": -1}), "testCollectionList[0].testCaseList[0].timeout", "positive number of seconds"),
    (task_json({"timeout": 0.0}), "testCollectionList[0].testCaseList[0].timeout", "positive number of seconds"),
    (task_json({"timeout": float("nan")}), "testCollectionList[0].testCaseList[0].timeout", "NaN"),
    (task_json({"timeout": float("inf")}), "testCollectionList[0].testCaseList[0].timeout", "must be between"),
    (task_json({"caseId": "a", "dependencies": ["a"]}), "dependencies", "dependency cycle: a -> a"),
    (task_json({"caseId": "a", "dependencies": ["b"]}, {"caseId": "b", "dependencies": ["a"]}), "dependencies",
     "dependency cycle: a -> b -> a"),
])
def test_out_of_range_values_and_cycles_are_refused_naming_the_field(task: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(SuiteError) as e:
        validate_task(task, "/suites/s/task.json")
    assert e.value.field == field and message in str(e.value) and "/suites/s/task.json" in str(e.value)


def test_a_chain_of_dependencies_without_a_cycle_is_fine() -> None:
    task = validate_task(task_json({"caseId": "a"}, {"caseId": "b", "dependencies": ["a"]},
                                   {"caseId": "c", "dependencies": ["a", "b", "elsewhere"]}), "t.json")
    assert [c.dependencies for c in task.collections()[0].cases()] == [[], ["a"], ["a", "b", "elsewhere"]]


def test_deeply_nested_task_json_is_a_suite_error_not_a_traceback(tmp_path: Path, data: Path) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    src = tree(tmp_path / "suite", {"task.json": '{"taskId": "t-1", "testCollectionList": [], "x": ' + deep + '}'})
    with pytest.raises(SuiteError, match="nested too deeply"):
        load_suite(src, data)
    nested: Any = []
    for _ in range(100):
        nested = [nested]
    with pytest.raises(SuiteError, match="nested deeper than 64 levels"):
        validate_task(dict(task_json({}), debugData={"x": nested}), "t.json")


def test_case_file_whose_case_id_differs_from_task_json_is_refused_naming_both(tmp_path: Path, data: Path) -> None:
    src = tree(tmp_path / "suite", {"task.json": task_json({}), "c1/k1.json": dict(API, caseId="other")})
    with pytest.raises(SuiteError) as e:
        load_suite(src, data)
    assert "c1/k1.json" in str(e.value) and "'other'" in str(e.value) and "'k1'" in str(e.value) and e.value.field == "caseId"


@pytest.mark.parametrize("case, field", [
    ({"apiList": [{"apiId": "s", "headers": "x=1"}]}, "apiList[0].headers"),
    ({"apiList": [{"apiId": "s", "assertions": {"from": "resCode"}}]}, "apiList[0].assertions"),
    ({"apiList": [{"apiId": "s", "assertions": ["resCode"]}]}, "apiList[0].assertions[0]"),
    ({"apiList": [{"apiId": "s", "controller": ["x"]}]}, "apiList[0].controller"),
    ({"apiList": ["GET /"]}, "apiList[0]"),
    ({"apiList": {"a": 1}}, "apiList"),
    ({"optList": [{"operationType": 5}]}, "optList[0].operationType"),
    ({"optList": [{"operationType": "page", "operationData": {"url": "http://x"}}]}, "optList[0].operationData.url"),
])
def test_wrong_typed_step_fields_are_errors_naming_the_field(tmp_path: Path, case: dict[str, Any], field: str) -> None:
    p = tmp_path / "k.json"
    p.write_text(json.dumps(dict({"caseId": "k"}, **case)))
    with pytest.raises(SuiteError) as e:
        read_case(p)
    assert e.value.field == field and str(p) in str(e.value) and "must be" in str(e.value)


@pytest.mark.parametrize("key", ["setupScript", "teardownScript"])
def test_collection_scripts_are_refused_not_silently_ignored(key: str) -> None:
    task = task_json({})
    task["testCollectionList"][0][key] = "print('never run')"
    with pytest.raises(SuiteError) as e:
        validate_task(task, "t.json")
    assert e.value.field == f"testCollectionList[0].{key}" and "not supported" in str(e.value)
    task["testCollectionList"][0][key] = ""
    validate_task(task, "t.json")
