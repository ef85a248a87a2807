"""Platform mode end to end: ``bin/liuma-pipeline start --foreground`` against the fake LiuMa platform.

One engine (and one fake platform) serves the module's tests in order, as a real engine serves a platform:
a task with API and WEB cases, an outage in the middle of a run, an expired token, ``stop``/``stopAll``
over the WebSocket, a hostile zip, a debug task, then ``liuma-pipeline stop``. The tcp + CURVE test runs
its own engine. Every wait is bounded; every process the engine started is checked to be gone at the end.
"""
from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import zmq

from tests.fakeplatform import ENGINE_CODE, ENGINE_SECRET, FakePlatform
from tests.system.engine import BIN, ROOT, alive, wait_for, write_config
from tests.system.suites import api_case, write_suite

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CASE_KEYS = {"status", "startTime", "endTime", "collectionId", "caseId", "caseType", "caseName", "caseDesc",
             "index", "runTimes", "transactionList"}
STEP_KEYS = {"id", "name", "content", "description", "log", "during", "status", "screenShotList"}
SHOT_NAME = re.compile(r"^\d{8}_[0-9A-Za-z-]+\.png$")
RESULTS, COMPLETE = "/openapi/engine/result/upload", "/openapi/engine/task/complete"


def web_op(op_name: str, **data: Any) -> dict[str, Any]:
    return {"operationType": "browser" if op_name != "断言页面标题" else "assertion", "operationId": f"op-{uuid.uuid4().hex[:6]}",
            "operationName": op_name, "operationDesc": None, "operationTrans": op_name, "operationCode": None,
            "operationElement": {}, "operationData": {k: {"type": "String", "value": v} for k, v in data.items()}}


def web_case(case_id: str, *ops: dict[str, Any]) -> dict[str, Any]:
    return {"caseId": case_id, "caseName": case_id, "comment": None, "functions": [], "params": {},
            "startDriver": True, "closeDriver": False, "driverSetting": {}, "optList": list(ops)}


def task_of(collections: dict[str, list[dict[str, Any]]], **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(task object without taskId, {caseId: case json}) for ``FakePlatform.enqueue``."""
    colls, cases = [], {}
    for cid, items in collections.items():
        refs = [{"index": i, "caseId": c["caseId"], "caseType": "API" if "apiList" in c else "WEB"}
                for i, c in enumerate(items, start=1)]
        colls.append({"collectionId": cid, "deviceId": None, "testCaseList": refs})
        cases.update({c["caseId"]: c for c in items})
    return dict({"maxThread": 2, "testCollectionList": colls}, **extra), cases


class Engine:
    """A started engine in platform mode and what the tests need to look at it."""

    def __init__(self, tmp: Path, platform: FakePlatform) -> None:
        self.tmp, self.platform = tmp, platform
        key = subprocess.run([str(BIN), "encrypt-secret", "--key-file", str(tmp / "secret.key"), ENGINE_SECRET],
                             capture_output=True, text=True, cwd=str(ROOT), check=True).stdout.strip()
        assert key.startswith("enc:")
        self.config = write_config(tmp, f"""
[Platform]
url = {platform.base_url}
fetch-interval = 1
heartbeat-interval = 1
timeout = 5
[Engine]
engine-code = {ENGINE_CODE}
engine-secret = {key}
[RunSetting]
max-run = 2
[Retry]
max-attempts = 1
[Upload]
interval = 0.3
""", api_workers=1, browsers=1, case_timeout=60)
        self.proc = subprocess.Popen([str(BIN), "start", "--foreground", "--config", str(self.config)], cwd=str(ROOT),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={k: v for k, v in os.environ.items() if k != "LIUMA_SECRET_KEY"})
        self.seen: set[int] = set()

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.tmp / "run" / "status.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return {}

    def running_case(self, case_id: str) -> dict[str, Any] | None:
        for s in self.status().get("stages", []):
            if (s.get("current") or {}).get("case_id") == case_id:
                return s  # type: ignore[no-any-return]
        return None

    def running_step(self, case_id: str) -> str | None:
        stage = self.running_case(case_id)
        return (stage.get("current") or {}).get("step") if stage else None

    def descendants(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self.seen.update(p.pid for p in found)
        return found

    def browsers(self) -> list[psutil.Process]:
        out = []
        for p in self.descendants():
            try:
                if "chrom" in p.name():
                    out.append(p)
            except psutil.NoSuchProcess:
                pass
        return out

    def stop(self) -> int:
        self.descendants()
        subprocess.run([str(BIN), "stop", "--config", str(self.config)], capture_output=True, text=True, cwd=str(ROOT), timeout=30)
        try:
            return self.proc.wait(timeout=45)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def log(self, stage: str) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.tmp / "storage" / "log").glob(f"{stage}*.log*"))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET) as platform:
        eng = Engine(tmp_path_factory.mktemp("platform"), platform)
        try:
            assert wait_for(lambda: platform.session_open() or eng.proc.poll() is not None, 30, "the engine's WebSocket")
            assert eng.proc.poll() is None, eng.proc.stderr.read() if eng.proc.stderr else ""
            yield eng
        finally:
            if eng.proc.poll() is None:
                eng.stop()


def rows_of(platform: FakePlatform, task_id: str) -> list[dict[str, Any]]:
    with platform.state.lock:
        return list(platform.state.results.get(task_id, []))


def completed(platform: FakePlatform, task_id: str) -> int:
    with platform.state.lock:
        return platform.state.completions[task_id]


def request_index(platform: FakePlatform, path: str, task_id: str | None = None) -> list[int]:
    with platform.state.lock:
        return [i for i, r in enumerate(platform.state.requests)
                if r.path == path and (task_id is None or (isinstance(r.body, dict) and r.body.get("taskId") == task_id))]


def test_api_and_web_task_runs_end_to_end(engine: Engine, demo_url: str) -> None:
    p = engine.platform
    task, cases = task_of({
        "c-api": [api_case("ok-1", demo_url, "/api/health", name="健康检查"),
                  api_case("bad-1", demo_url, "/api/items", assertions=[
                      {"from": "resBody", "method": "jsonpath", "expression": "$.data[0].name", "assertion": "equals", "expect": "nope"}])],
        "c-web": [web_case("web-1", web_op("打开网页", domain=demo_url, path="/index.html"), web_op("屏幕截图", name="home"),
                           web_op("断言页面标题", assertion="equals", expect="not the title"))],
    })
    sent = p.enqueue(task, cases)
    tid = sent["taskId"]
    assert wait_for(lambda: completed(p, tid), 120, "task/complete")
    rows = rows_of(p, tid)
    assert sorted((r["caseId"], r["status"]) for r in rows) == [("bad-1", 1), ("ok-1", 0), ("web-1", 1)]
    for r in rows:
        assert set(r) == CASE_KEYS, r.keys()
        for key in ("status", "startTime", "endTime", "index", "runTimes"):
            assert type(r[key]) is int, (key, r[key])
        assert r["endTime"] >= r["startTime"] > 1_600_000_000_000 and r["runTimes"] == 1
        assert isinstance(r["caseName"], str) and r["caseType"] in ("API", "WEB")
        for step in r["transactionList"]:
            assert set(step) == STEP_KEYS and type(step["during"]) is int and isinstance(step["screenShotList"], list)
    assert next(r for r in rows if r["caseId"] == "ok-1")["caseName"] == "健康检查"
    web = next(r for r in rows if r["caseId"] == "web-1")
    shots = [s for step in web["transactionList"] for s in step["screenShotList"]]
    assert len(shots) >= 2, web                      # the 屏幕截图 op and the failing assertion's screenshot
    assert wait_for(lambda: all(f"{s}.png" in p.state.screenshots for s in shots), 10, "screenshots")
    assert all(SHOT_NAME.match(f"{s}.png") for s in shots)
    assert all(data.startswith(b"\x89PNG") for data in p.state.screenshots.values())
    time.sleep(1.0)
    assert completed(p, tid) == 1
    last_result, done = max(request_index(p, RESULTS, tid)), request_index(p, COMPLETE, tid)
    shot_uploads = request_index(p, "/openapi/engine/screenshot/upload")
    assert len(done) == 1 and done[0] > last_result and done[0] > max(shot_uploads)
    assert not p.state.rejected_batches
    token = engine.tmp / "storage" / "state" / "token"
    assert token.stat().st_mode & 0o777 == 0o600 and token.read_text().startswith("enc:")   # shared, encrypted


def test_platform_outage_mid_run_loses_and_duplicates_nothing(engine: Engine, demo_url: str) -> None:
    """15 s outage (port closed, WebSockets dropped). A 60 s outage takes the same code path: results wait
    in the outbox, retries back off (capped at 30 s), the WebSocket reconnects and re-fetches."""
    p = engine.platform
    cases = {f"o{i}": [api_case(f"o{i}-{j}", demo_url, "/api/slow?ms=700") for j in range(4)] for i in range(2)}
    task, case_json = task_of(cases)
    tid = p.enqueue(task, case_json)["taskId"]
    assert wait_for(lambda: rows_of(p, tid), 30, "the first uploaded result")
    connects = p.ws_connects
    p.outage(15)
    during = len(rows_of(p, tid))
    assert during < 8
    assert wait_for(lambda: completed(p, tid), 120, "task/complete after the outage")
    rows = rows_of(p, tid)
    keys = [(r["collectionId"], r["caseId"], r["index"], r["runTimes"]) for r in rows]
    assert len(keys) == len(set(keys)) == 8 and all(r["status"] == 0 for r in rows)
    assert wait_for(lambda: p.ws_connects > connects, 30, "the heartbeat reconnected")
    time.sleep(1.0)
    assert completed(p, tid) == 1 and not p.state.rejected_batches


def test_expired_token_is_refreshed_and_work_continues(engine: Engine, demo_url: str) -> None:
    p = engine.platform
    applies = len(p.state.calls("/openapi/engine/token/apply"))
    p.expire_tokens()
    task, cases = task_of({"t": [api_case("tok-1", demo_url, "/api/health"), api_case("tok-2", demo_url, "/api/text")]})
    tid = p.enqueue(task, cases)["taskId"]
    assert wait_for(lambda: completed(p, tid), 60, "task/complete with a refreshed token")
    assert len(rows_of(p, tid)) == 2
    assert len(p.state.calls("/openapi/engine/token/apply")) > applies


def test_stop_and_stop_all_end_tasks_and_kill_browsers(engine: Engine, demo_url: str) -> None:
    p = engine.platform
    # stop <taskId>: the slow case is killed, the cases after it are not executed
    task, cases = task_of({"s": [api_case("slow-1", demo_url, "/api/slow?ms=40000"), api_case("after-1", demo_url, "/api/health"),
                                 api_case("after-2", demo_url, "/api/health")]})
    tid = p.enqueue(task, cases)["taskId"]
    wait_for(lambda: engine.running_case("slow-1"), 30, "slow-1 running")
    t0 = time.monotonic()
    assert p.push({"type": "stop", "data": tid})
    assert wait_for(lambda: len(rows_of(p, tid)) == 3, 30, "the stopped task's rows")
    assert time.monotonic() - t0 < 20
    by_case = {r["caseId"]: r for r in rows_of(p, tid)}
    assert by_case["slow-1"]["status"] == 2 and "stopped" in json.dumps(by_case["slow-1"], ensure_ascii=False)
    assert by_case["after-1"]["status"] == 3 and by_case["after-2"]["status"] == 3     # not run
    # stopAll: a WEB case holding a browser and an API case, in two tasks
    web_task, web_cases = task_of({"w": [web_case("wslow", web_op("打开网页", domain=demo_url, path="/index.html"),
                                                  web_op("强制等待", second="40")),
                                         web_case("wnext", web_op("打开网页", domain=demo_url, path="/index.html"))]})
    api_task, api_cases = task_of({"a": [api_case("aslow", demo_url, "/api/slow?ms=40000"), api_case("anext", demo_url, "/api/health")]})
    t_web = p.enqueue(web_task, web_cases)["taskId"]
    t_api = p.enqueue(api_task, api_cases)["taskId"]
    # wait for the slow *steps*: a stop while the browser is still starting is a different race (see report)
    wait_for(lambda: engine.running_step("wslow") == "强制等待" and engine.running_step("aslow") == "aslow step", 60,
             "both slow steps running")
    browsers = wait_for(engine.browsers, 10, "chromium/chromedriver processes")
    browser_pids = {b.pid for b in browsers}
    assert p.push({"type": "stopAll"})
    assert wait_for(lambda: len(rows_of(p, t_web)) == 2 and len(rows_of(p, t_api)) == 2, 30, "rows of both stopped tasks")
    assert wait_for(lambda: not alive(browser_pids), 15, "browsers gone"), alive(browser_pids)
    statuses = {r["caseId"]: r["status"] for r in rows_of(p, t_web) + rows_of(p, t_api)}
    assert statuses == {"wslow": 2, "wnext": 3, "aslow": 2, "anext": 3}
    time.sleep(1.5)
    # the platform ended these tasks itself; like the original, the engine does not complete them
    assert completed(p, tid) == completed(p, t_web) == completed(p, t_api) == 0


def test_zip_with_path_escape_is_refused_and_reported(engine: Engine, demo_url: str) -> None:
    p = engine.platform
    task, cases = task_of({"z": [api_case("z-1", demo_url, "/api/health"), api_case("z-2", demo_url, "/api/health")]})
    task_id = str(uuid.uuid4())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"/{task_id}/z/z-1.json", json.dumps(cases["z-1"]))
        zf.writestr(f"/{task_id}/z/../../../escaped.json", "{}")
    sent = p.enqueue(dict(task, taskId=task_id), package=buf.getvalue())
    assert wait_for(lambda: completed(p, sent["taskId"]), 60, "the refused task's complete")
    rows = rows_of(p, task_id)
    assert sorted(r["caseId"] for r in rows) == ["z-1", "z-2"] and all(r["status"] == 2 for r in rows)
    log = rows[0]["transactionList"][0]["log"]
    assert "'..' path component" in log and "escaped.json" in log, log
    assert not list(engine.tmp.rglob("escaped.json"))
    assert "cannot run" in engine.log("fetcher")


def test_debug_task_runs_the_case_from_debug_data(engine: Engine, demo_url: str) -> None:
    p = engine.platform
    case = api_case("dbg-1", demo_url, "/api/health", name="调试用例")
    sent = p.enqueue({"taskType": "debug", "maxThread": 1, "debugData": case, "testCollectionList": [
        {"collectionId": "tmp-1", "deviceId": None, "testCaseList": [{"index": 1, "caseId": "dbg-1", "caseType": "API"}]}]})
    assert wait_for(lambda: completed(p, sent["taskId"]), 60, "the debug task's complete")
    rows = rows_of(p, sent["taskId"])
    assert [(r["caseId"], r["caseName"], r["status"], r["collectionId"]) for r in rows] == [("dbg-1", "调试用例", 0, "tmp-1")]
    assert (engine.tmp / "storage" / "data" / sent["taskId"] / "tmp-1" / "dbg-1.json").is_file()


def test_engine_stop_leaves_no_process(engine: Engine) -> None:
    engine.descendants()
    seen = set(engine.seen)
    assert seen
    assert engine.stop() == 0
    assert wait_for(lambda: not alive(seen), 15, "every engine process gone"), alive(seen)


# -- tcp + CURVE ---------------------------------------------------------------------------------------------

def free_base_port(span: int = 20) -> int:
    for _ in range(50):
        base = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
        socks = []
        try:
            for port in range(base, base + span):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def test_tcp_transport_with_curve_runs_a_suite_and_refuses_an_intruder(tmp_path: Path, demo_url: str) -> None:
    keys = tmp_path / "keys"
    subprocess.run([str(BIN), "keys", "--dir", str(keys)], check=True, capture_output=True, cwd=str(ROOT))
    assert {f.name for f in keys.iterdir()} == {"server.public", "server.secret", "client.public", "client.secret"}
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in keys.iterdir())
    base = free_base_port()
    cfg = write_config(tmp_path, api_workers=1, browsers=0, transport="tcp", tcp_base_port=base, curve_keys=keys)
    suite = write_suite(tmp_path / "suite", {"c": [api_case(f"k{i}", demo_url, "/api/slow?ms=1500") for i in range(3)]})
    proc = subprocess.Popen([str(BIN), "run", str(suite), "--config", str(cfg)], cwd=str(ROOT), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx = zmq.Context()
    intruder = ctx.socket(zmq.PUSH)
    try:
        pub, sec = zmq.curve_keypair()
        intruder.curve_publickey, intruder.curve_secretkey = pub, sec
        intruder.curve_serverkey = (keys / "server.public").read_bytes().strip()
        intruder.setsockopt(zmq.LINGER, 0)
        intruder.connect(f"tcp://127.0.0.1:{base + 2}")           # the scheduler's inbox
        from pipeline.codec import Envelope, encode
        from pipeline.messages import Kind
        evil = {"task": {"taskId": "evil", "testCollectionList": []}, "data_dir": str(tmp_path), "report_dir": str(tmp_path / "evil")}
        intruder.setsockopt(zmq.SNDTIMEO, 2000)
        try:
            intruder.send(encode(Envelope(kind=Kind.TASK_SUBMIT, body=evil, src="intruder", inc=0, msg_id="x")))
        except zmq.Again:
            pass                                                   # no handshake ever completes: nothing to send to
        log_dir = tmp_path / "storage" / "log"
        refused = wait_for(lambda: "CURVE: refused peer" in "".join(p.read_text(errors="replace") for p in log_dir.glob("scheduler*.log*")),
                           30, "the scheduler logging the refused intruder")
        assert refused
        out, err = proc.communicate(timeout=90)
    finally:
        intruder.close(0)
        ctx.term()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (out, err)
    assert "3 cases: 3 passed" in out
    assert not (tmp_path / "evil").exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])
                and "stage_main" in " ".join(p.info["cmdline"] or [])]
