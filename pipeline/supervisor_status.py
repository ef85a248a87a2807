"""What ``liuma-pipeline status`` and ``status.json`` show of a running engine: read from the supervisor's
state, never changing it (kept apart so the arbiter stays one loop and its policy)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .secrets import redact_urls

if TYPE_CHECKING:
    from .supervisor import Supervisor

__all__ = ["executor_fields", "status", "write_status"]


def status(sup: Supervisor, now: float) -> dict[str, Any]:
    stages = [w.as_status(now) for w in sup.watchers.values()]
    entries = {e["name"]: e for e in sup.spec.executors}
    for s in stages:
        r = sup.deadlines.get(s["name"])
        if r:
            s["deadline_in_s"] = round(r.deadline - now, 1)
        if s["kind"] == "executor":
            s.update(executor_fields(sup.spec.config, sup.spec.devices, entries.get(s["name"]) or {}))
            s["retiring"] = s["name"] in sup.reloader.retiring
    sched = sup.watchers.get("scheduler")
    agg = sup.watchers.get("aggregator")
    return {"status": "ok", "mode": sup.spec.mode, "uptime_s": round(now - sup.started, 1),
            "shutting_down": sup.shutdown_at is not None, "reason": sup.shutdown_reason or None,
            "config_generation": sup.reloader.generation,
            "stages": stages, "queues": (sched.heartbeat.get("stats", {}) if sched else {}),
            "tasks": ((agg.heartbeat.get("stats") or {}).get("tasks") or []) if agg else [],
            "tasks_reported": [r["task_id"] for r in sup.reported], "storage_faults": list(sup.storage_faults),
            "disk_short": (sched.heartbeat.get("stats") or {}).get("disk_short") if sched else None}


def executor_fields(config: dict[str, dict[str, Any]], devices: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """What an executor runs on: its case kinds, the browser (WEB) and the device (APP) it owns."""
    kinds = list(entry.get("kinds") or [])
    wd = config.get("WebDriver") or {}
    browser = None
    if "WEB" in kinds:
        browser = (f"remote {wd.get('remote-url')}" if wd.get("options") == "remote"
                   else f"{Path(str(wd.get('binary') or 'chromium')).name} ({wd.get('options') or 'headless'})")
    device = entry.get("device")
    dev = devices.get(device) if device else None
    return {"kinds": kinds, "browser": redact_urls(browser) if browser else None, "device": device,
            "device_info": {k: redact_urls(str(v)) for k, v in (dev or {}).items()
                            if "password" not in k and "secret" not in k} or None}


def write_status(sup: Supervisor, now: float, final: bool = False) -> None:
    """``status.json`` in the run dir, replaced atomically; a failed write only loses this snapshot."""
    data = status(sup, now)
    if final:
        for s in data["stages"]:
            s["state"] = "stopped" if s["state"] != "failed" else "failed"
    tmp = sup.run_dir / "status.json.tmp"
    try:
        tmp.write_text(json.dumps(data, default=str))
        tmp.replace(sup.run_dir / "status.json")
    except OSError:
        pass
