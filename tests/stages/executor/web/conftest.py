"""Fixtures for WEB tests: one demo server and one browser (kept in one RunContext) per test module."""
from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.demo_server import serve
from pipeline.models import CaseResult
from stages.executor.context import RunContext, RunSettings
from stages.executor.web import WebRunner

_ids = itertools.count(1)


def op(kind: str, name: str, elements: dict[str, tuple[str, str]] | None = None, /, *, trans: str | None = None,
       code: str | None = None, **data: Any) -> dict[str, Any]:
    """One optList entry; data values are given as (type, value) or a plain string (String)."""
    n = next(_ids)
    return {
        "operationType": kind, "operationId": f"op-{n}", "operationName": name, "operationDesc": None,
        "operationTrans": trans or name, "operationCode": code,
        "operationElement": {k: {"by": by, "expression": expr, "target": f"demo / {k}"}
                             for k, (by, expr) in (elements or {}).items()},
        "operationData": {k: ({"type": v[0], "value": v[1]} if isinstance(v, tuple) else {"type": "String", "value": v})
                          for k, v in data.items()},
    }


class Web:
    """Runs WEB cases in one shared RunContext (one browser for the module)."""

    def __init__(self, base: str, tmp: Path, settings: RunSettings | None = None) -> None:
        self.base = base
        self.runner = WebRunner()
        self.ctx = RunContext(task_id="task-web", collection_id="col-1", storage_root=tmp, data_dir=tmp / "data",
                              settings=settings or RunSettings())
        self.steps: list[str] = []
        self.ctx.on_step = self.steps.append

    def case(self, *ops: dict[str, Any], start: bool = True, close: bool = False, **extra: Any) -> dict[str, Any]:
        return {"caseId": "case-1", "caseName": "demo", "comment": None, "functions": [], "params": {},
                "startDriver": start, "closeDriver": close, "driverSetting": {}, "optList": list(ops), **extra}

    def run(self, *ops: dict[str, Any], timeout: float = 60.0, **kw: Any) -> CaseResult:
        self.ctx.deadline = time.monotonic() + timeout
        return self.runner.run(self.case(*ops, **kw), self.ctx).result

    def open(self, path: str = "/index.html") -> dict[str, Any]:
        return op("browser", "打开网页", domain=self.base, path=path)

    @property
    def driver(self) -> Any:
        return self.runner.slot(self.ctx).browser.driver  # type: ignore[union-attr]

    def close(self) -> None:
        self.runner.close_shared(self.ctx)


def statuses(result: CaseResult) -> list[int]:
    return [t["status"] for t in result.transactionList]


def logs(result: CaseResult) -> str:
    return "\n".join(t["log"] for t in result.transactionList)


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    server, url = serve()
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def web(demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    w = Web(demo_url, tmp_path_factory.mktemp("web"))
    yield w
    w.close()
