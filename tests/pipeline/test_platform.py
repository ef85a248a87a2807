from __future__ import annotations

import io
import json
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from pipeline.errors import SuiteError
from pipeline.platform import (
    FileTokenStore,
    MemoryTokenStore,
    PlatformClient,
    PlatformRejected,
    PlatformUnavailable,
)
from pipeline.secrets import encrypt
from tests.fakeplatform import ENGINE_CODE, ENGINE_SECRET, PNG, FakePlatform, module_platform, wait_until  # noqa: F401 (fixture)

CASE = {"caseId": "k-1", "caseName": "登录", "comment": None, "functions": [], "params": {}}


@pytest.fixture
def client(platform: FakePlatform) -> Iterator[PlatformClient]:
    c = PlatformClient(platform.base_url, ENGINE_CODE, ENGINE_SECRET, timeout=5,
                       headers={"content-type": "application/json;charset=utf-8", "token": "******",
                                "X-Extra": "yes"})
    yield c
    c.close()


def task_with(case_ids: list[str], collection: str = "c-1") -> dict[str, Any]:
    return {"testCollectionList": [{"collectionId": collection, "deviceId": None, "testCaseList": [
        {"index": i + 1, "caseId": cid, "caseType": "API"} for i, cid in enumerate(case_ids)]}]}


def row(case_id: str = "k-1", **over: Any) -> dict[str, Any]:
    r = {"status": 0, "startTime": 1705392000123, "endTime": 1705392001456, "collectionId": "c-1",
         "caseId": case_id, "caseType": "API", "caseName": "x", "caseDesc": None, "index": 1, "runTimes": 1,
         "transactionList": [{"id": "a", "name": "n", "content": "/api/x", "description": None, "log": "",
                              "during": 5, "status": 0, "screenShotList": []}]}
    r.update(over)
    return r


def test_token_applied_lazily_then_reused(platform: FakePlatform, client: PlatformClient) -> None:
    before = len(platform.state.calls("/openapi/engine/token/apply"))
    assert client.fetch_task() is None
    assert client.fetch_task() is None
    applies = platform.state.calls("/openapi/engine/token/apply")[before:]
    assert len(applies) == 1                       # the "******" placeholder was never sent
    assert applies[0].body["engineSecret"] == ENGINE_SECRET and isinstance(applies[0].body["timestamp"], int)
    fetch = platform.state.calls("/openapi/engine/task/fetch")[-1]
    assert fetch.body == {"engineCode": ENGINE_CODE, "timestamp": fetch.body["timestamp"]}
    assert fetch.headers["token"] != "******" and fetch.headers["x-extra"] == "yes"
    assert fetch.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("spoil", ["expire_tokens", "invalidate_tokens"])
def test_token_refreshed_once_on_2030_and_2040(platform: FakePlatform, client: PlatformClient, spoil: str) -> None:
    client.fetch_task()
    old = client._tokens.load()
    getattr(platform, spoil)()
    before = len(platform.state.calls("/openapi/engine/token/apply"))
    assert client.fetch_task() is None
    assert len(platform.state.calls("/openapi/engine/token/apply")) == before + 1
    assert client._tokens.load() != old


def test_empty_token_2020_also_refreshes(platform: FakePlatform, client: PlatformClient) -> None:
    client.fetch_task()
    platform.inject("/openapi/engine/task/fetch", status=2020)
    assert client.fetch_task() is None
    fetches = platform.state.calls("/openapi/engine/task/fetch")
    assert fetches[-1].headers["token"] == client._tokens.load()


def test_persistent_token_error_is_raised_not_looped(platform: FakePlatform, client: PlatformClient) -> None:
    platform.inject("/openapi/engine/task/fetch", status=2030, times=2)
    with pytest.raises(PlatformRejected, match="task/fetch: status 2030"):
        client.fetch_task()


def test_wrong_secret_and_unknown_code(platform: FakePlatform) -> None:
    bad = PlatformClient(platform.base_url, ENGINE_CODE, "wrong", timeout=5)
    with pytest.raises(PlatformRejected, match="token/apply: status 2050.*wrong engine code or secret"):
        bad.fetch_task()
    unknown = PlatformClient(platform.base_url, "f" * 32, ENGINE_SECRET, timeout=5)
    with pytest.raises(PlatformRejected, match="token/apply: HTTP 500") as info:
        unknown.apply_token()
    assert info.value.http_status == 500


def test_encrypted_secret_and_file_token_store(platform: FakePlatform, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("LIUMA_SECRET_KEY", key.decode())
    token_file = tmp_path / "state" / "token"
    c = PlatformClient(platform.base_url, ENGINE_CODE, encrypt(ENGINE_SECRET), timeout=5,
                       token_store=FileTokenStore(token_file, key))
    assert c.fetch_task() is None
    assert platform.state.calls("/openapi/engine/token/apply")[-1].body["engineSecret"] == ENGINE_SECRET
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().startswith("enc:")
    sent = platform.state.calls("/openapi/engine/task/fetch")[-1].headers["token"]
    assert FileTokenStore(token_file, key).load() == sent
    # a second process sharing the state file reuses the token instead of applying again
    before = len(platform.state.calls("/openapi/engine/token/apply"))
    PlatformClient(platform.base_url, ENGINE_CODE, ENGINE_SECRET, token_store=FileTokenStore(token_file, key)).fetch_task()
    assert len(platform.state.calls("/openapi/engine/token/apply")) == before


def test_fetch_download_and_extract(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    sent = platform.enqueue(task_with(["k-1", "k-1"]), {"k-1": CASE}, push_start=False)
    task = client.fetch_task()
    assert task is not None and task["taskId"] == sent["taskId"]
    folder = client.download_package(task, tmp_path / "data")
    assert folder == tmp_path / "data" / task["taskId"]
    assert json.loads((folder / "c-1" / "k-1.json").read_text("utf-8")) == CASE
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [task["taskId"]]   # no staging left
    dl = platform.state.calls(sent["downloadUrl"])[-1]
    assert dl.method == "GET" and dl.headers["token"]


def test_download_error_envelope_is_a_clear_error(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    sent = platform.enqueue(task_with(["k-1"]), {"k-1": CASE}, push_start=False)
    task = client.fetch_task()
    assert task is not None
    client.complete_task(task["taskId"])            # the platform deletes the zip on complete
    with pytest.raises(PlatformRejected, match=f"task {sent['taskId']}: platform answered status 1000.*文件不存在"):
        client.download_package(task, tmp_path / "data")
    assert not (tmp_path / "data" / sent["taskId"]).exists()


def test_download_refreshes_an_expired_token(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    platform.enqueue(task_with(["k-1"]), {"k-1": CASE}, push_start=False)
    task = client.fetch_task()
    assert task is not None
    platform.expire_tokens()
    folder = client.download_package(task, tmp_path)
    assert (folder / "c-1" / "k-1.json").is_file()


def test_zip_with_path_escape_is_refused(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("/t/../../../escaped.txt", b"pwned")
    platform.enqueue({"taskId": "t-evil", **task_with(["k-1"])}, package=buf.getvalue(), push_start=False)
    task = client.fetch_task()
    assert task is not None and task["taskId"] == "t-evil"
    with pytest.raises(SuiteError, match="package of task t-evil.*'..' path component"):
        client.download_package(task, tmp_path / "data")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_zip_for_another_task_is_refused(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    other = platform.enqueue(task_with(["k-1"]), {"k-1": CASE}, push_start=False)
    with platform.state.lock:
        wrong = platform.state.tasks[other["taskId"]].package
    platform.enqueue({"taskId": "t-mine", **task_with(["k-1"])}, package=wrong, push_start=False)
    client.fetch_task()
    task = client.fetch_task()
    assert task is not None and task["taskId"] == "t-mine"
    with pytest.raises(SuiteError, match="instead of one folder named after the task"):
        client.download_package(task, tmp_path)


def test_debug_task_without_download_url(client: PlatformClient, tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="task t-9.*downloadUrl"):
        client.download_package({"taskId": "t-9", "taskType": "debug", "downloadUrl": None}, tmp_path)


def test_test_file_download_is_cached(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    platform.add_test_file("f-1", "数据 1.csv", b"a,b\n1,2\n")
    assert client.download_test_file("f-1", tmp_path) == ("数据 1.csv", b"a,b\n1,2\n")
    calls = len(platform.state.calls("/openapi/download/test/file/f-1"))
    assert client.download_test_file("f-1", tmp_path) == ("数据 1.csv", b"a,b\n1,2\n")
    assert len(platform.state.calls("/openapi/download/test/file/f-1")) == calls
    with pytest.raises(PlatformRejected, match="test file nope.*1000.*文件不存在"):
        client.download_test_file("nope", tmp_path)
    assert not (tmp_path / "nope").exists()


def test_upload_results_screenshot_complete(platform: FakePlatform, client: PlatformClient, tmp_path: Path) -> None:
    client.upload_results("t-up", [row("k-1"), row("k-2")])
    assert [r["caseId"] for r in platform.state.results["t-up"]] == ["k-1", "k-2"]
    body = platform.state.calls("/openapi/engine/result/upload")[-1].body
    assert set(body) == {"engineCode", "timestamp", "taskId", "caseResultList"}
    shot = tmp_path / "20240116_4e1f6a2c-b43a-11ee-9c2d-0242ac120002.png"
    shot.write_bytes(PNG)
    client.upload_screenshot(shot)
    assert platform.state.screenshots[shot.name] == PNG
    client.complete_task("t-up")
    assert platform.state.completions["t-up"] == 1


def test_bad_row_batch_gets_http_500(platform: FakePlatform, client: PlatformClient) -> None:
    with pytest.raises(PlatformRejected, match="result/upload: HTTP 500") as info:
        client.upload_results("t-bad", [row("k-1"), row("k-2", startTime=None)])
    assert not info.value.retryable
    assert "t-bad" not in platform.state.results


def test_screenshot_checks(client: PlatformClient, tmp_path: Path) -> None:
    bad_name = tmp_path / "shot.png"
    bad_name.write_bytes(PNG)
    with pytest.raises(PlatformRejected, match="not named"):
        client.upload_screenshot(bad_name)
    partial = tmp_path / "20240116_0000.png"
    partial.write_bytes(PNG[:-12])
    with pytest.raises(PlatformUnavailable, match="incomplete"):
        client.upload_screenshot(partial)


def test_outage_and_503_raise_unavailable(platform: FakePlatform, client: PlatformClient) -> None:
    client.fetch_task()
    platform.outage(0.5, mode="503")
    with pytest.raises(PlatformUnavailable, match="HTTP 503"):
        client.fetch_task()
    platform.outage(0.0, mode="503")
    platform.outage(1.0, mode="refused")
    with pytest.raises(PlatformUnavailable, match="task/fetch: ConnectionError"):
        client.fetch_task()
    assert wait_until(lambda: _fetch_ok(client), timeout=5)


def _fetch_ok(client: PlatformClient) -> bool:
    try:
        client.fetch_task()
        return True
    except PlatformUnavailable:
        return False


def test_timeout_is_unavailable(platform: FakePlatform) -> None:
    slow = PlatformClient(platform.base_url, ENGINE_CODE, ENGINE_SECRET, timeout=0.2,
                          token_store=MemoryTokenStore())
    slow.apply_token()
    platform.delay = 0.5
    try:
        with pytest.raises(PlatformUnavailable, match="task/fetch: .*Timeout"):
            slow.fetch_task()
    finally:
        platform.delay = 0.0


def test_shared_token_store_encrypts_even_without_a_configured_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.platform import shared_token_store
    monkeypatch.delenv("LIUMA_SECRET_KEY", raising=False)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "token").write_text("old-plain-token")            # an older engine's file still loads
    assert shared_token_store(tmp_path).load() == "old-plain-token"
    shared_token_store(tmp_path).save("tok-123456")
    token_file, key_file = tmp_path / "state" / "token", tmp_path / "state" / "token.key"
    assert token_file.read_text().startswith("enc:") and "tok-123456" not in token_file.read_text()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert shared_token_store(tmp_path).load() == "tok-123456"                # another stage, same key file
