"""Run the same LiuMa tasks through the original engine (driven by the fake platform) and through ours.

``run_oracle`` copies the installed original's tree into a scratch dir, points its config.ini at a
``FakePlatform`` that already holds the tasks (zip packages built as the platform builds them), starts
``python startup.py`` in its own process group, hands the tasks over one by one, waits until every task is completed and returns what it
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

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


class OracleStalled(RuntimeError):
    """A task of the original produced nothing for too long (see run_oracle)."""


def run_oracle(oracle: Oracle, tasks: Sequence[Task], scratch: Path, *, timeout: float = 480.0, stall: float = 120.0,
               attempts: int = 2, before_attempt: Callable[[], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The original's answer. It forks a process per task from a process with running threads, and a child
    forked while another thread held a lock hangs before running anything (seen ~1 run in 4 with two tasks
    fetched at once). So tasks are handed over one at a time (the next once the previous has uploaded a
    result), and a task that uploads nothing for ``stall`` seconds restarts the whole run, at most
    ``attempts`` times (``before_attempt`` resets the target's state, e.g. the flaky endpoint's counters)."""
    for attempt in range(1, attempts + 1):
        if before_attempt is not None:
            before_attempt()
        try:
            return _oracle_attempt(oracle, tasks, scratch / f"attempt{attempt}", timeout, stall)
        except OracleStalled:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _oracle_attempt(oracle: Oracle, tasks: Sequence[Task], scratch: Path, timeout: float,
                    stall: float) -> dict[str, list[dict[str, Any]]]:
    tree = scratch / "oracle"
    shutil.copytree(oracle.tree, tree, ignore=shutil.ignore_patterns("data", "log", "image", "file"))
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET) as platform:
        (tree / "config" / "config.ini").write_text(_oracle_config(platform.base_url), encoding="utf-8")
        pending = list(tasks)
        first_task, first_cases = pending.pop(0)
        ids = [platform.enqueue(first_task, first_cases, push_start=False)["taskId"]]
        handed = {ids[0]: time.monotonic()}
        log = open(scratch / "oracle.log", "wb")
        proc = subprocess.Popen([str(oracle.python), "startup.py"], cwd=tree, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        stalled: list[str] = []
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                with platform.state.lock:
                    started = {i for i in ids if platform.state.results.get(i) or platform.state.completions[i]}
                    done = all(platform.state.completions[i] for i in ids)
                if done and not pending:
                    break
                stalled = [i for i in ids if i not in started and time.monotonic() - handed[i] > stall]
                if stalled:
                    break
                if pending and ids[-1] in started:
                    task, cases = pending.pop(0)
                    ids.append(platform.enqueue(task, cases, push_start=True)["taskId"])
                    handed[ids[-1]] = time.monotonic()
                time.sleep(0.2)
            with platform.state.lock:
                missing = [i for i in ids if not platform.state.completions[i]] + [t["taskId"] for t, _ in pending]
                results = {i: list(platform.state.results.get(i, [])) for i in ids}
                rejected = list(platform.state.rejected_batches)
        finally:
            _stop_group(proc)
            log.close()
    tail = (scratch / "oracle.log").read_text(errors="replace")[-3000:]
    if stalled:
        raise OracleStalled(f"the original uploaded nothing for task {stalled} in {stall} s; log tail:\n{tail}")
    if missing:
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
