"""Device routing, table-tested on a registry of three devices (two android, one apple), and the scheduler
ending unroutable units at once."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.devices import Requirement
from pipeline.messages import Kind
from pipeline.models import Status
from stages.scheduler.routing import Router, Unroutable, registry_from_spec, unit_requirements
from tests.fakes import envelope
from tests.stages.scheduler.test_scheduler import make, runs

DEVICES = {
    "phone-a": {"platform": "android", "appium_url": "http://127.0.0.1:4801", "udid": "emulator-5554"},
    "phone-b": {"platform": "android", "appium_url": "https://farmuser:s3cr3tkey@127.0.0.1:4802/wd/hub", "udid": "R58M"},
    "ipad": {"platform": "apple", "appium_url": "http://127.0.0.1:4803", "udid": "00008101-AB"},
}


def router() -> Router:
    return Router(registry_from_spec(DEVICES), {"phone-a", "phone-b", "ipad"})


@pytest.mark.parametrize("reqs, devices", [
    ([Requirement()], {"phone-a", "phone-b", "ipad"}),
    ([Requirement(device_id="phone-b")], {"phone-b"}),
    ([Requirement(device_id="emulator-5554")], {"phone-a"}),                      # udid
    ([Requirement(device_url="127.0.0.1:4803")], {"ipad"}),
    ([Requirement(device_url="http://127.0.0.1:4802")], {"phone-b"}),               # scheme and credentials ignored
    ([Requirement(device_url="R58M")], {"phone-b"}),
    ([Requirement(system="android")], {"phone-a", "phone-b"}),
    ([Requirement(system="apple")], {"ipad"}),
    ([Requirement(device_id="phone-a", device_url="127.0.0.1:4803")], {"phone-a"}),  # deviceId beats deviceUrl
    ([Requirement(system="android"), Requirement(device_url="127.0.0.1:4802")], {"phone-b"}),
])
def test_resolve(reqs: list[Requirement], devices: set[str]) -> None:
    assert router().resolve(reqs) == devices


@pytest.mark.parametrize("reqs, message", [
    ([Requirement(device_id="pixel-9")], "no device satisfies deviceId 'pixel-9'; devices: "),
    ([Requirement(device_id="ipad", system="android")], "no device satisfies deviceId 'ipad' and deviceSystem 'android'"),
    ([Requirement(device_url="10.0.0.9:4723")], "no device satisfies deviceUrl '10.0.0.9:4723'"),
    ([Requirement(system="harmony")], "no device satisfies deviceSystem 'harmony'"),
    ([Requirement(system="android"), Requirement(system="apple")],
     "no single device satisfies deviceSystem 'android' and deviceSystem 'apple' (a collection runs on one device)"),
])
def test_unroutable_names_the_requirement_and_the_devices(reqs: list[Requirement], message: str) -> None:
    with pytest.raises(Unroutable) as e:
        router().resolve(reqs)
    assert message in str(e.value)
    assert "ipad (apple, udid 00008101-AB, 127.0.0.1:4803)" in str(e.value)
    assert "phone-b (android, udid R58M, 127.0.0.1:4802)" in str(e.value) and "s3cr3tkey" not in str(e.value)


def test_only_devices_with_an_executor_are_candidates() -> None:
    r = Router(registry_from_spec(DEVICES), {"phone-a"})
    with pytest.raises(Unroutable, match="devices: phone-a "):
        r.resolve([Requirement(system="apple")])
    r.announce("ipad")
    assert r.resolve([Requirement(system="apple")]) == {"ipad"}


def test_unit_requirements_read_app_cases_only() -> None:
    data = {"k1": {"deviceSystem": "Apple"}, "k2": {"deviceUrl": "127.0.0.1:4801"}}
    cases = [{"case_id": "k1", "case_type": "APP"}, {"case_id": "k2", "case_type": "APP"}, {"case_id": "k3", "case_type": "API"}]
    assert unit_requirements("d", cases, data.get) == [Requirement("d", "", "apple"), Requirement("d", "127.0.0.1:4801", "")]
    assert unit_requirements(None, cases[2:], data.get) == [Requirement()]
    assert unit_requirements(None, [{"case_id": "gone", "case_type": "APP"}], data.get) == [Requirement()]


# -- the scheduler ---------------------------------------------------------------------------------------
def write_task(tmp: Path, colls: list[tuple[str, str | None, list[dict[str, Any]]]]) -> dict[str, Any]:
    refs = []
    for cid, device_id, cases in colls:
        (tmp / "data" / cid).mkdir(parents=True)
        for c in cases:
            (tmp / "data" / cid / f"{c['caseId']}.json").write_text(json.dumps(c))
        refs.append({"collectionId": cid, "deviceId": device_id,
                     "testCaseList": [{"index": i, "caseId": c["caseId"], "caseType": "APP"} for i, c in enumerate(cases, 1)]})
    return {"task": {"taskId": "t1", "maxThread": 8, "testCollectionList": refs}, "data_dir": str(tmp / "data"),
            "report_dir": str(tmp / "r"), "case_names": {"u1": "绑定不存在的设备"}}


def announce(sched: Any, name: str, device: str) -> None:
    sched.on_executor_status(envelope(Kind.EXECUTOR_STATUS, {"kinds": ["APP"], "device": device, "idle": True,
                                                             "last_unit": ""}, src=name))


def test_scheduler_binds_from_the_first_dispatch_and_ends_unroutable_cases_at_once(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    sched.router.devices = registry_from_spec(DEVICES)
    sched.router.owned = {"phone-a", "phone-b", "ipad"}
    sched.on_task_submit(envelope(Kind.TASK_SUBMIT, write_task(tmp_path, [
        ("by-udid", "emulator-5554", [{"caseId": "a1"}]),
        ("by-system", None, [{"caseId": "s1", "deviceSystem": "apple"}]),
        ("by-url", None, [{"caseId": "r1", "deviceUrl": "127.0.0.1:4802"}]),
        ("nowhere", "pixel-9", [{"caseId": "u1"}, {"caseId": "u2"}])]), src="fetcher"))
    ended = {r.body["result"]["caseId"]: r.body["result"] for r in fake.of(Kind.RESULT_RECORD)}
    assert set(ended) == {"u1", "u2"}                 # at plan time, not at the task timeout
    assert all(r["status"] == Status.ERROR and r["outcome"] == "error" for r in ended.values())
    assert ended["u1"]["reason"].startswith("not run: no device satisfies deviceId 'pixel-9'; devices: ipad (apple")
    assert ended["u1"]["caseName"] == "绑定不存在的设备"
    # the wrong executors announce first: each waits for its own device
    announce(sched, "executor-2", "phone-b")
    sched.on_tick()
    assert [(s.peer, s.body["collection_id"]) for s in runs(fake)] == [("executor-2", "by-url")]
    announce(sched, "executor-3", "ipad")
    announce(sched, "executor-1", "phone-a")
    sched.on_tick()
    assert sorted((s.peer, s.body["collection_id"]) for s in runs(fake)) == [
        ("executor-1", "by-udid"), ("executor-2", "by-url"), ("executor-3", "by-system")]
