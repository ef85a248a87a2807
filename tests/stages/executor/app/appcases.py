"""Builders shared by the APP test modules: operations, cases, fake devices and run contexts."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from stages.executor.context import RunContext, RunSettings
from tests.appium_server import FAKE_APPS


def op(kind: str, name: str, elements: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
       system: str = "android", op_id: str = "", code: str | None = None, trans: str | None = None) -> dict[str, Any]:
    """One optList entry; ``data`` values are (type, value) pairs or plain strings (String)."""
    return {
        "operationType": kind, "operationSystem": system, "operationId": op_id or f"{kind}-{name}",
        "operationName": name, "operationDesc": None, "operationTrans": trans or name, "operationCode": code,
        "operationElement": {k: dict(v, target=v.get("target", f"页面 / {k}")) for k, v in (elements or {}).items()},
        "operationData": {k: ({"type": v[0], "value": v[1]} if isinstance(v, tuple) else {"type": "String", "value": v})
                          for k, v in (data or {}).items()},
    }


def el(expression: str, by: str = "XPATH") -> dict[str, str]:
    return {"by": by, "expression": expression}


def by_id(element_id: str) -> dict[str, str]:
    """An Android PROP locator on resourceId alone: Appium ``id`` strategy (the fake driver supports it)."""
    return {"by": "PROP", "expression": json.dumps([{"propName": "resourceId", "propValue": element_id}])}


def case(ops: list[dict[str, Any]], system: str = "android", **extra: Any) -> dict[str, Any]:
    return {"caseId": "case-1", "caseName": "登录", "comment": None, "functions": [], "params": {},
            "appId": "com.example.shop", "activity": ".ui.MainActivity", "deviceSystem": system,
            "deviceUrl": None, "optList": ops, **extra}


def fake_device(url: str, platform: str = "android", app: str = "login.xml", name: str = "fake1") -> dict[str, Any]:
    """The raw registry entry the executor stage hands over in ``ctx.device`` (config values are text)."""
    caps = {"platformName": "Fake", "app": str((FAKE_APPS / app).resolve()), "newCommandTimeout": 60}
    return {"name": name, "platform": platform, "appium_url": url, "automation_name": "Fake",
            "capabilities": json.dumps(caps)}


def make_ctx(tmp: Path, device: dict[str, Any] | None, shared: dict[str, Any] | None = None,
             timeout: float = 60.0) -> RunContext:
    return RunContext(task_id="task-1", collection_id="col-1", storage_root=tmp, data_dir=tmp / "data",
                      settings=RunSettings(default_step_timeout=10.0), shared=shared if shared is not None else {},
                      deadline=time.monotonic() + timeout, device=device)
