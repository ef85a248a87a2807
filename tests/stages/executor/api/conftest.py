"""Fixtures for the API runner conformance tests: the demo HTTP server on 127.0.0.1, a real PostgreSQL server
(initdb + pg_ctl as the postgres OS user, stopped at the end), and helpers that build steps and run cases."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.demo_server import serve
from pipeline.models import CaseResult
from stages.executor.api import ApiRunner
from stages.executor.context import RunContext, RunSettings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
TEST_FILES = {"file-1": ("report.txt", b"hello file"), "file-2": ("logo.png", b"\x89PNG\r\n\x1a\nbinary")}


@pytest.fixture(scope="session")
def base_url() -> Iterator[str]:
    server, url = serve()
    yield url
    server.shutdown()
    server.server_close()


def step(base: str, path: str, method: str = "GET", **fields: Any) -> dict[str, Any]:
    """A full step object as the platform sends it (all keys present)."""
    data: dict[str, Any] = {
        "apiId": fields.pop("apiId", f"id-{path}"), "apiName": fields.pop("apiName", path), "apiDesc": None,
        "url": base, "path": path, "method": method, "protocol": "HTTP", "headers": {}, "proxies": {},
        "body": {"type": "json", "form": [], "json": "", "raw": "", "file": []}, "query": {}, "rest": {},
        "assertions": [], "relations": [], "controller": {},
    }
    data.update(fields)
    return data


def make_ctx(tmp: Path, **kwargs: Any) -> RunContext:
    settings = kwargs.pop("settings", RunSettings(default_step_timeout=10.0))
    return RunContext(task_id="task-1", collection_id="col-1", storage_root=tmp, data_dir=tmp / "data",
                      settings=settings, fetch_file=kwargs.pop("fetch_file", TEST_FILES.__getitem__), **kwargs)


@pytest.fixture()
def run_case(tmp_path: Path) -> Iterator[Callable[..., CaseResult]]:
    """run_case(steps, params=..., functions=..., ctx=...) -> CaseResult; closes shared sessions afterwards."""
    runner = ApiRunner()
    contexts: list[RunContext] = []

    def run(steps: list[dict[str, Any]], *, params: dict[str, Any] | None = None,
            functions: list[dict[str, Any]] | None = None, ctx: RunContext | None = None) -> CaseResult:
        ctx = ctx or make_ctx(tmp_path)
        contexts.append(ctx)
        case = {"caseId": "case-1", "caseName": "用例", "comment": "说明", "functions": functions or [],
                "params": params or {}, "apiList": steps}
        return runner.run(case, ctx).result
    yield run
    for ctx in contexts:
        runner.close_shared(ctx)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[dict[str, Any]]:
    """A throwaway PostgreSQL 15 on 127.0.0.1 (trust auth); yields the platform's db connection object."""
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL 15 binaries or runuser not available")
    root = Path(tempfile.mkdtemp(prefix="liuma-pg-"))
    os.chmod(root, 0o755)
    shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()

    def as_postgres(*cmd: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=120)
    try:
        as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -F", "start")
    except subprocess.CalledProcessError as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {e.stderr.decode(errors='replace')}")
    try:
        yield {"host": "127.0.0.1", "port": str(port), "user": "postgres", "password": "", "tpz": "pgsql", "db": "postgres"}
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def mkstep(base_url: str) -> Callable[..., dict[str, Any]]:
    """mkstep(path, method="GET", **fields) -> step dict against the demo server."""
    return lambda path, method="GET", **fields: step(base_url, path, method, **fields)


def log_of(result: CaseResult, index: int = 0) -> str:
    return str(result.transactionList[index]["log"])
