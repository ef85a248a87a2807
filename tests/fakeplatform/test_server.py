"""The fake must reproduce the platform's quirks (§2, §10), or the client tests prove nothing."""
from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.fakeplatform import ENGINE_CODE, ENGINE_SECRET, FakePlatform

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 8


@pytest.fixture(scope="module")
def platform() -> Iterator[FakePlatform]:
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET, token_ttl=60) as p:
        yield p


@pytest.fixture(scope="module")
def token(platform: FakePlatform) -> str:
    r = requests.post(platform.base_url + "/openapi/engine/token/apply",
                      json={"engineCode": ENGINE_CODE, "engineSecret": ENGINE_SECRET, "timestamp": 1})
    assert r.headers["Content-Type"] == "text/plain;charset=UTF-8"
    return str(r.json()["data"])


def post(platform: FakePlatform, path: str, body: Any, token: str | None) -> requests.Response:
    return requests.post(platform.base_url + path, json=body, headers={"token": token} if token else {}, timeout=5)


def test_token_apply_json_when_asked_and_errors(platform: FakePlatform) -> None:
    url = platform.base_url + "/openapi/engine/token/apply"
    ok = requests.post(url, json={"engineCode": ENGINE_CODE, "engineSecret": ENGINE_SECRET},
                       headers={"Accept": "application/json"})
    assert ok.headers["Content-Type"].startswith("application/json") and ok.json()["status"] == 0
    assert requests.post(url, json={"engineCode": ENGINE_CODE, "engineSecret": "x"}).json()["status"] == 2050
    assert requests.post(url, json={"engineCode": "nobody", "engineSecret": "x"}).status_code == 500


@pytest.mark.parametrize("header, status", [(None, 2020), ("a.b.c", 2040), ("garbage", 2040)])
def test_token_errors(platform: FakePlatform, header: str | None, status: int) -> None:
    r = post(platform, "/openapi/engine/task/fetch", {"engineCode": ENGINE_CODE}, header)
    assert r.status_code == 200 and r.json()["status"] == status and r.json()["data"] is None


def test_expiry_and_unknown_path(platform: FakePlatform, token: str) -> None:
    assert post(platform, "/openapi/engine/nope", {}, None).status_code == 500
    assert post(platform, "/openapi/engine/task/fetch", {}, token).json()["status"] == 0
    platform.expire_tokens()
    assert post(platform, "/openapi/engine/task/fetch", {}, token).json()["status"] == 2030


def test_enqueue_builds_the_platform_zip(platform: FakePlatform) -> None:
    task = platform.enqueue({"testCollectionList": [
        {"collectionId": "c1", "deviceId": None, "testCaseList": [
            {"index": 1, "caseId": "k1", "caseType": "API"}, {"index": 2, "caseId": "k1", "caseType": "API"}]}]},
        {"k1": {"caseId": "k1", "caseName": "中文", "comment": None}}, push_start=False)
    with platform.state.lock:
        data = platform.state.tasks[task["taskId"]].package
    assert data is not None
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    tid = task["taskId"]
    assert names == [f"/{tid}/", f"/{tid}/c1/", f"/{tid}/c1/k1.json"]
    text = zipfile.ZipFile(io.BytesIO(data)).read(f"/{tid}/c1/k1.json").decode("utf-8")
    assert "中文" in text and '"comment": null' in text and "\n    " in text
    assert task["downloadUrl"] == f"/openapi/task/file/download/{tid}"


def test_download_needs_token_and_errors_are_envelopes(platform: FakePlatform) -> None:
    task = platform.enqueue({"testCollectionList": []}, push_start=False)
    r = requests.get(platform.base_url + task["downloadUrl"])
    assert r.json()["status"] == 2020
    r = requests.get(platform.base_url + "/openapi/download/test/file/missing")
    assert r.json() == {"status": 1000, "message": "失败", "data": "文件不存在"}


def test_one_bad_row_rejects_the_whole_batch(platform: FakePlatform, token: str) -> None:
    token = requests.post(platform.base_url + "/openapi/engine/token/apply",
                          json={"engineCode": ENGINE_CODE, "engineSecret": ENGINE_SECRET}).json()["data"]
    good = {"status": 0, "startTime": 1, "endTime": 2, "caseType": "API", "caseId": "a",
            "transactionList": [{"content": "/x", "screenShotList": []}]}
    bad_rows = [dict(good, endTime=None), dict(good, transactionList=[]),
                dict(good, caseType="WEB", transactionList=[{"content": ""}]),
                dict(good, transactionList=[{"content": "/" * 201}])]
    for bad in bad_rows:
        r = post(platform, "/openapi/engine/result/upload", {"taskId": "t", "caseResultList": [good, bad]}, token)
        assert r.status_code == 500
    assert "t" not in platform.state.results
    assert post(platform, "/openapi/engine/result/upload", {"taskId": "t", "caseResultList": [good]}, token).json()["status"] == 0
    assert platform.state.results["t"] == [good]


@pytest.mark.parametrize("name, data, status", [
    ("20240116_4e1f6a2c-b43a-11ee.png", PNG, 0),
    ("shot.png", PNG, 1000),
    ("20240116_x_y.png", PNG, 1000),
    ("20240116_abc.png", b"GIF89a", 1000),
])
def test_screenshot_rules(platform: FakePlatform, name: str, data: bytes, status: int) -> None:
    token = requests.post(platform.base_url + "/openapi/engine/token/apply",
                          json={"engineCode": ENGINE_CODE, "engineSecret": ENGINE_SECRET}).json()["data"]
    body = {"fileName": name, "engineCode": ENGINE_CODE, "timestamp": 1,
            "base64String": base64.b64encode(data).decode()}
    assert post(platform, "/openapi/engine/screenshot/upload", body, token).json()["status"] == status


def test_injection_and_recording(platform: FakePlatform) -> None:
    platform.inject("/openapi/engine/task/complete", http=502, body=b"bad gateway", content_type="text/plain")
    r = post(platform, "/openapi/engine/task/complete", {"taskId": "t"}, None)
    assert r.status_code == 502 and r.text == "bad gateway"
    rec = platform.state.calls("/openapi/engine/task/complete")[-1]
    assert rec.body == {"taskId": "t"} and rec.method == "POST"
    assert json.dumps(rec.body)


from tests.fakeplatform import fake_platform  # noqa: E402,F401 - the fixture other test modules import


def test_fixture_starts_and_pushes_start_on_enqueue(fake_platform: FakePlatform) -> None:  # noqa: F811
    assert requests.post(fake_platform.base_url + "/openapi/engine/task/fetch", json={}).json()["status"] == 2020
    assert fake_platform.enqueue({"testCollectionList": []}) and not fake_platform.session_open()
