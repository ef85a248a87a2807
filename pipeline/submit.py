"""``liuma-pipeline submit SUITE [--priority N] [--wait] [--report-dir DIR]``: hand a suite to the running
``start`` engine of the same config, through its control socket (engine side: ``pipeline.submit_queue``).

The suite is validated here first, exactly as ``run`` does (a bad suite exits 2 naming file and field and
nothing is queued), and copied into ``<storage>/data/<taskId>-<id>/`` so later edits of the suite do not
change queued work. ``--wait`` follows the task to its report and exits like ``run``: 0 all passed, 1 a
case failed or errored (or the engine went away), 2 bad usage/config/suite, 130 interrupted (the task
itself stays queued or running in the engine).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .errors import SuiteError, TransportError

__all__ = ["add_parser", "cmd_submit", "ENGINE_GONE_S"]

ENGINE_GONE_S = 60.0          # --wait gives up when the engine stays unreachable this long
POLL_S = 0.3


def add_parser(command: Any, config_option: Any) -> None:
    """Register ``submit`` through the CLI's ``command`` helper (same help style, exit codes, usage on errors)."""
    p = command("submit", "hand a suite to the running engine (`start`) of the same config",
                "Validate a suite like `run` does (a bad suite exits 2 naming file and field, nothing is queued), "
                "then queue it in the running `start` engine of the same config, beside the platform's tasks, "
                "ordered by priority. Queued work survives an engine restart.")
    p.add_argument("suite", metavar="SUITE", help="a LiuMa package directory or .zip")
    config_option(p)
    p.add_argument("--priority", type=int, metavar="N", help="higher runs first (default: the suite's task.json priority, else 0)")
    p.add_argument("--wait", action="store_true", help="follow the task to its report and exit like `run` (0/1/2/130)")
    p.add_argument("--report-dir", metavar="DIR", help="where its reports go (default: the engine's [Pipeline] report-dir)")
    p.set_defaults(func=cmd_submit)


def _prepare(args: argparse.Namespace, storage: Path) -> tuple[dict[str, Any], Path, set[str]]:
    from .suite import case_path, load_suite, read_case
    data = storage / "data"
    staging = data / f".incoming-{uuid.uuid4().hex}"         # the janitor skips dot folders
    try:
        task, dest = load_suite(args.suite, staging)
        names, kinds = {}, set()
        for c in task.collections():
            for r in c.cases():
                kinds.add(r.caseType)
                names[r.caseId] = str(read_case(case_path(dest, c.collectionId, r.caseId)).get("caseName") or r.caseId)
        final = data / f"{task.taskId}-{uuid.uuid4().hex[:8]}"
        dest.replace(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    body = {"task": task.to_dict(), "data_dir": str(final), "name": Path(args.suite).name, "case_names": names}
    if args.report_dir:
        body["report_dir"] = str(Path(args.report_dir).expanduser().resolve())
    return body, final, kinds


def cmd_submit(args: argparse.Namespace) -> int:
    from .cli import _abs, _config, _engine_dir
    from .transport import control_request
    cfg = _config(argparse.Namespace(config=args.config))
    endpoint = f"ipc://{_engine_dir(cfg) / 'control.sock'}"
    body, data_dir, kinds = _prepare(args, Path(_abs(cfg.get("Pipeline", "storage-root"))))
    try:
        st = control_request(endpoint, {"cmd": "status"})
        have = {k for s in st.get("stages", []) if s.get("kind") == "executor" for k in (s.get("kinds") or [])}
        missing = kinds - have
        if missing:
            raise SuiteError(f"the suite has {', '.join(sorted(missing))} cases but the running engine has no executor "
                             f"for them (executors run {', '.join(sorted(have)) or 'nothing'})", file=args.suite, field="caseType")
        reply = control_request(endpoint, {"cmd": "submit", "body": body, "priority": args.priority})
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)          # nothing queued: no copy left behind
        raise
    if reply.get("status") != "ok":
        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"liuma-pipeline: not submitted: {reply.get('reason')}", file=sys.stderr)
        return int(reply.get("errno") or 1)
    task_id = reply["task_id"]
    renamed = f" (task id {reply['renamed_from']} was already used)" if reply.get("renamed_from") else ""
    # Ctrl-C must reach us even when started with SIGINT ignored (a background job of a non-interactive shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:                                     # from here on a Ctrl-C leaves the queued task to the engine
        print(f"liuma-pipeline: task {task_id} queued: {len(body['case_names'])} case(s){renamed}", flush=True)
        if not args.wait:
            return 0
        return _follow(endpoint, task_id)
    except KeyboardInterrupt:
        print(f"\nliuma-pipeline: stopped following; task {task_id} stays in the engine", file=sys.stderr)
        return 130


def _follow(endpoint: str, task_id: str) -> int:
    from .progress import make_writer
    from .transport import control_request
    printer = make_writer("plain", sys.stdout, 0)
    since, gone_since = 0, None
    while True:
        try:
            r = control_request(endpoint, {"cmd": "task", "task_id": task_id, "since": since})
            gone_since = None
        except TransportError as e:
            now = time.monotonic()
            gone_since = gone_since or now
            if now - gone_since > ENGINE_GONE_S:
                print(f"liuma-pipeline: the engine stayed unreachable for {ENGINE_GONE_S:.0f} s: {e}", file=sys.stderr)
                return 1
            time.sleep(1.0)
            continue
        if r.get("status") != "ok":
            print(f"liuma-pipeline: {r.get('reason')}", file=sys.stderr)
            return 1
        for b in r.get("cases") or []:
            printer.case(b)
        since = int(r.get("next") or since)
        if r.get("state") == "reported":
            report = r["report"]
            printer.task(report)
            t = report["totals"]
            return 0 if t["failed"] == 0 and t["error"] == 0 and not report.get("missing") else 1
        time.sleep(POLL_S)
