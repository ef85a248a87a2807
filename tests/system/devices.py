"""Three fake-driver devices for system tests and benchmarks (two android, one apple), each on its own real
Appium server, and ``HoldProxy``: a TCP relay on 127.0.0.1 that holds every connection until released, so
a test decides when a device's executor can finish its warm-up and announce credit."""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.appium_server import FAKE_APPS, AppiumServer, free_port
from tests.stages.executor.app.appcases import case, op

__all__ = ["PHONES", "device_section", "HoldProxy", "start_servers", "servers_fixture", "app_case", "write_task_suite",
           "executor_of", "wait_until"]

# name -> (platform, udid); executors are numbered by device name: ipad = executor-1, phone-a = 2, phone-b = 3
PHONES = {"ipad": ("apple", "00008101-AB"), "phone-a": ("android", "emulator-5554"), "phone-b": ("android", "R58M")}


def executor_of(device: str, devices: Any = PHONES) -> str:
    """The APP executor the engine gives ``device`` when ``devices`` are configured (numbered by name)."""
    return f"executor-{sorted(devices).index(device) + 1}"


def device_section(name: str, url: str) -> str:
    platform, udid = PHONES[name]
    caps = {"platformName": "Fake", "app": str((FAKE_APPS / "login.xml").resolve()), "newCommandTimeout": 60}
    return (f"[Device:{name}]\nplatform = {platform}\nappium_url = {url}\nudid = {udid}\nautomation_name = Fake\n"
            f"capabilities = {json.dumps(caps)}\n")


def start_servers(names: Any = PHONES) -> dict[str, AppiumServer]:
    servers = {n: AppiumServer() for n in names}
    threads = [threading.Thread(target=s.start) for s in servers.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not all(s.is_ready() for s in servers.values()):
        for s in servers.values():
            s.stop()
        raise RuntimeError("an Appium server did not start")
    return servers


class HoldProxy:
    """``127.0.0.1:<port>`` -> ``upstream``; connections wait (accepted, not relayed) until ``release()``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.released = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.closed = True
        self.released.set()
        self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        self.released.wait()
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            conn.close()
            return
        for a, b in ((conn, up), (up, conn)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def app_case(case_id: str, name: str, wait: float = 0.3, **extra: Any) -> dict[str, Any]:
    """A case every fake device runs (wait, screenshot); ``extra`` sets deviceSystem / deviceUrl."""
    ops = [op("system", "强制等待", data={"second": ("Float", str(wait))}), op("system", "屏幕截图", data={"name": "s"})]
    return case(ops, system=extra.pop("deviceSystem", ""), caseId=case_id, caseName=name, **extra)


def write_task_suite(root: Path, colls: list[tuple[str, str | None, list[dict[str, Any]]]], max_thread: int = 8) -> Path:
    """colls: (collectionId, deviceId, cases); one task t-1."""
    out = []
    for cid, device_id, cases in colls:
        (root / cid).mkdir(parents=True)
        for c in cases:
            (root / cid / f"{c['caseId']}.json").write_text(json.dumps(c, ensure_ascii=False))
        out.append({"collectionId": cid, "deviceId": device_id,
                    "testCaseList": [{"index": i, "caseId": c["caseId"], "caseType": "APP"} for i, c in enumerate(cases, 1)]})
    (root / "task.json").write_text(json.dumps({"taskId": "t-1", "taskType": "run", "maxThread": max_thread, "reRun": False,
                                                "testCollectionList": out, "downloadUrl": None, "debugData": None}))
    return root


def servers_fixture() -> Iterator[dict[str, AppiumServer]]:
    servers = start_servers()
    try:
        yield servers
    finally:
        for s in servers.values():
            s.stop()


def wait_until(pred: Any, timeout: float, what: str, every: float = 0.02) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
