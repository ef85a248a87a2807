"""Who is who: stage names, kinds and endpoints, in one table (rendered by ``status``).

Every stage instance has one inbox; senders connect to it. ipc:// endpoints live in the run directory
(mode 0700); with ``transport = tcp`` each instance gets ``tcp://<host>:<base + slot>``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STAGE_KINDS", "SLOTS", "RunSpec", "ExecutorSpec", "endpoint_resolver"]

STAGE_KINDS = ("fetcher", "scheduler", "aggregator", "uploader", "janitor", "executor")
SLOTS = {"supervisor": 0, "fetcher": 1, "scheduler": 2, "aggregator": 3, "uploader": 4, "janitor": 5}


@dataclass(frozen=True)
class ExecutorSpec:
    name: str                     # executor-1 ...
    kinds: tuple[str, ...]        # case types it runs: ("API",), ("API", "WEB"), ("APP",)
    device: str | None = None     # APP: the device registry name it owns


@dataclass
class RunSpec:
    """Everything a stage process needs, written by the supervisor to ``<run_dir>/settings.json``."""

    run_dir: str
    mode: str                                   # "run" (one suite, then exit) | "start" (long-running)
    config: dict[str, dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)
    config_path: str = ""
    suite: str | None = None
    tags: list[str] = field(default_factory=list)
    report_dir: str = "reports"
    storage_root: str = "storage"
    executors: list[dict[str, Any]] = field(default_factory=list)

    def save(self) -> Path:
        p = Path(self.run_dir) / "settings.json"
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, ensure_ascii=False, indent=1))
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, run_dir: str | Path) -> RunSpec:
        return cls(**json.loads((Path(run_dir) / "settings.json").read_text()))

    def executor_specs(self) -> list[ExecutorSpec]:
        return [ExecutorSpec(e["name"], tuple(e["kinds"]), e.get("device")) for e in self.executors]

    def setting(self, section: str, key: str) -> Any:
        return self.config[section][key]


def endpoint_resolver(spec: RunSpec) -> Any:
    transport = spec.setting("Pipeline", "transport")
    host, base = spec.setting("Pipeline", "tcp-host"), int(spec.setting("Pipeline", "tcp-base-port"))
    run_dir = Path(spec.run_dir)
    executors = [e["name"] for e in spec.executors]

    def resolve(name: str) -> str:
        if transport == "ipc":
            return f"ipc://{run_dir / (name + '.sock')}"
        slot = SLOTS.get(name)
        if slot is None:
            slot = 10 + executors.index(name) if name in executors else 100 + abs(hash(name)) % 100
        return f"tcp://{host}:{base + slot}"

    return resolve
