"""Run ``bin/liuma-pipeline`` as a real process and look inside its run directory while it works."""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "bin" / "liuma-pipeline"


def write_config(tmp: Path, sections: str = "", **pipeline: Any) -> Path:
    """A config.ini for tests: storage, reports and run dirs under ``tmp``, fast heartbeats."""
    values = {"storage-root": tmp / "storage", "report-dir": tmp / "reports", "run-dir": tmp / "run",
              "heartbeat-interval": 0.5, "heartbeat-timeout": 10, "kill-grace": 1, "stop-grace": 5}
    values.update({k.replace("_", "-"): v for k, v in pipeline.items()})
    lines = ["[Pipeline]"] + [f"{k} = {v}" for k, v in values.items()]
    (tmp / "run").mkdir(parents=True, exist_ok=True)
    path = tmp / "config.ini"
    path.write_text("\n".join(lines) + "\n" + sections)
    return path


def start_run(suite: Path, config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN), "run", str(suite), "--config", str(config), *args], cwd=str(ROOT), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, **(env or {})))


def run_dir_status(tmp: Path) -> dict[str, Any] | None:
    for d in (tmp / "run").glob("lmp-*"):
        try:
            return json.loads((d / "status.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            continue
    return None


def wait_for(pred: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def engine_processes(tmp: Path | None = None) -> list[psutil.Process]:
    """Stage processes, browsers and drivers of engine runs; with ``tmp``, only those of runs whose run
    directory lies under it (other engines on the machine, e.g. a benchmark, are not this test's)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if tmp is not None and str(tmp) not in cmd:
            continue
        if "pipeline.stage_main" in cmd or ("lmp-" in cmd and ("chrom" in cmd)):
            out.append(p)
    return out


def results(tmp: Path, task_id: str = "t-1") -> list[dict[str, Any]]:
    return json.loads((tmp / "reports" / task_id / "results.json").read_text())["caseResultList"]  # type: ignore[no-any-return]


def alive(pids: Iterable[int]) -> list[int]:
    """The pids of ``pids`` still running (a zombie has ended: only its exit status is left to collect)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out
