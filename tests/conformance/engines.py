"""Run the same LiuMa tasks through the original engine (driven by the fake platform) and through ours.

``run_oracle`` copies the installed original's tree into a scratch dir, points its config.ini at a
``FakePlatform`` that already holds the tasks (zip packages built as the platform builds them), starts
``python startup.py`` in its own process group, waits until every task is completed and returns what it
posted to ``result/upload``; the process group it started is then terminated. ``run_ours`` writes the same
tasks as package directories and runs ``bin/liuma-pipeline run`` on each; it returns ``results.json`` rows.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from tests.conformance.oracle_env import Oracle
from tests.fakeplatform import ENGINE_CODE, ENGINE_SECRET, FakePlatform

__all__ = ["Task", "run_oracle", "run_ours"]

ROOT = Path(__file__).resolve().parents[2]
Task = tuple[dict[str, Any], dict[str, dict[str, Any]]]     # (task object, {caseId: case JSON})


def _oracle_config(url: str) -> str:
    return (f"[Platform]\nurl = {url}\nenable-stderr = true\n\n[Engine]\nengine-code = {ENGINE_CODE}\n"
            f"engine-secret = {ENGINE_SECRET}\n\n[Header]\ncontent-type = application/json;charset=utf-8\n"
            f"token = ******\n\n[WebDriver]\noptions = headless\npath = /usr/bin/chromedriver\n\n"
            f"[RunSetting]\nmax-run = 2\n")


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the process group this module started (the original forks helper processes)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:   # children left in the group after the leader died
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_oracle(oracle: Oracle, tasks: Sequence[Task], scratch: Path, timeout: float = 480.0) -> dict[str, list[dict[str, Any]]]:
    tree = scratch / "oracle"
    shutil.copytree(oracle.tree, tree, ignore=shutil.ignore_patterns("data", "log", "image", "file"))
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET) as platform:
        (tree / "config" / "config.ini").write_text(_oracle_config(platform.base_url), encoding="utf-8")
        ids = [platform.enqueue(task, cases, push_start=False)["taskId"] for task, cases in tasks]
        log = open(scratch / "oracle.log", "wb")
        proc = subprocess.Popen([str(oracle.python), "startup.py"], cwd=tree, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with platform.state.lock:
                    done = all(platform.state.completions[i] for i in ids)
                if done or proc.poll() is not None:
                    break
                time.sleep(0.2)
            with platform.state.lock:
                missing = [i for i in ids if not platform.state.completions[i]]
                results = {i: list(platform.state.results.get(i, [])) for i in ids}
                rejected = list(platform.state.rejected_batches)
        finally:
            _stop_group(proc)
            log.close()
    if missing:
        tail = (scratch / "oracle.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the original did not complete tasks {missing} within {timeout} s; log tail:\n{tail}")
    if rejected:
        raise RuntimeError(f"the fake platform rejected {len(rejected)} result batches of the original: {rejected[0][0]}")
    return results


def _write_package(task: Mapping[str, Any], cases: Mapping[str, Mapping[str, Any]], root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "task.json").write_text(json.dumps({**task, "downloadUrl": None}, ensure_ascii=False, indent=1), "utf-8")
    for collection in task["testCollectionList"]:
        folder = root / collection["collectionId"]
        folder.mkdir(exist_ok=True)
        for ref in collection["testCaseList"]:
            (folder / f"{ref['caseId']}.json").write_text(json.dumps(cases[ref["caseId"]], ensure_ascii=False,
                                                                    indent=1), "utf-8")
    return root


def run_ours(tasks: Sequence[Task], scratch: Path, timeout: float = 400.0,
             root: Path = ROOT) -> dict[str, list[dict[str, Any]]]:
    """``root``: the checkout whose engine runs (another checkout measures a before/after)."""
    from tests.system.engine import write_config
    ours = scratch / "ours"
    config = write_config(ours)
    out: dict[str, list[dict[str, Any]]] = {}
    for task, cases in tasks:
        package = _write_package(task, cases, ours / "packages" / task["taskId"])
        web = any(ref["caseType"] == "WEB" for c in task["testCollectionList"] for ref in c["testCaseList"])
        proc = subprocess.run([str(root / "bin" / "liuma-pipeline"), "run", str(package), "--config", str(config),
                               "--progress", "plain", "--api-workers", "4", "--browsers", "1" if web else "0"], cwd=root, capture_output=True, text=True, timeout=timeout)
        report = ours / "reports" / task["taskId"] / "results.json"
        if not report.is_file():
            raise RuntimeError(f"our engine wrote no results for task {task['taskId']} (exit {proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        out[task["taskId"]] = json.loads(report.read_text())["caseResultList"]
    return out
