"""What a case runner is given and must return: the seam between the executor host and the keyword libraries.

The executor host (``stages/executor/__init__.py``) owns sockets, heartbeats and deadlines; a runner
(``api/``, ``web/``, ``app/``) owns nothing but the case. A runner never touches ZeroMQ: it receives a
``RunContext`` and returns a ``CaseOutcome``. Resources shared by the cases of one collection (HTTP
session, browser, device session) live in ``ctx.shared``, which the host keeps for the whole unit and
closes (``close_shared``) when the unit ends or the executor resets between collections.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.models import CaseResult
from stages.executor.common.evidence import EvidenceSpec

__all__ = ["CaseOutcome", "CaseRunner", "FileFetcher", "RunContext", "RunSettings"]

FileFetcher = Callable[[str], tuple[str, bytes]]   # test-file id -> (file name, content); cached per task


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Engine settings a runner may read (from config.ini; all have safe defaults for tests)."""

    enable_stderr: bool = False            # [Platform] enable-stderr: tracebacks in step logs
    strict_templates: bool = True          # unresolved {{x}} is an error; False = original keep-the-text
    faker_locale: str = "zh_CN"
    screenshot_every_step: bool = False
    default_step_timeout: float = 60.0     # seconds for an HTTP call / WebDriver command when the case sets none
    webdriver: dict[str, Any] = field(default_factory=dict)   # [WebDriver] section, parsed
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # [Device:<name>] sections
    evidence_keep: str = "never"           # [Evidence] keep (tests and benches opt in); a task may override it
    evidence_max_mb: float = 25.0
    evidence_video: bool = True
    evidence_secrets: tuple[str, ...] = ()  # masked in every bundle file (pipeline.secrets.spec_secrets)
    report_dir: str = ""                   # [Pipeline] report-dir, when a unit does not name its own
    recycle_cases: int = 0                 # [Capacity] recycle-cases: a browser is replaced after this many (0: never)
    recycle_rss_mb: float = 0.0            # [Capacity] recycle-rss-mb: ... or above this RSS (0: never)
    spare_browser: bool = True             # [Capacity] spare: start a replacement browser in the background
    capacity: dict[str, Any] = field(default_factory=dict)   # [Capacity] section (the spare's memory bound)


@dataclass(slots=True)
class RunContext:
    """Everything one case attempt may use. ``variables`` is the collection context (关联参数), shared and
    mutated in place by the cases of one collection; ``shared`` holds collection-scoped resources."""

    task_id: str
    collection_id: str
    storage_root: Path                      # screenshots go to storage_root/image/<task_id>/
    data_dir: Path                          # data/<task_id>/ : extracted package, per-task file cache
    settings: RunSettings = field(default_factory=RunSettings)
    variables: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)
    deadline: float = float("inf")          # time.monotonic() value; the parent also enforces it from outside
    fetch_file: FileFetcher | None = None   # None in local mode without a platform
    on_step: Callable[[str], None] = lambda name: None   # host reports "now running step <name>" (timeouts name it)
    executor_name: str = ""
    attempt: int = 1                        # the case's run_times: a retry waits for a calm host (WEB prepare)
    device: dict[str, Any] | None = None    # APP executors: the device registry entry they own
    evidence: EvidenceSpec = field(default_factory=EvidenceSpec)     # this attempt's policy (set by the host)
    evidence_result: dict[str, Any] = field(default_factory=dict)   # what the runner kept -> CaseResult.evidence
    # set by a recorder while its attempt runs: keep what was collected (the executor got SIGTERM: killed)
    evidence_flush: Callable[[str], None] | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def image_dir(self) -> Path:
        return self.storage_root / "image" / self.task_id


@dataclass(slots=True)
class CaseOutcome:
    """What a runner returns: the LiuMa-shaped result (ids, runTimes filled in by the host) and the
    case's parameters for the summary's in_out."""

    result: CaseResult
    params: dict[str, Any] = field(default_factory=dict)


class CaseRunner(Protocol):
    """One per case type. ``run`` must not raise for case-level problems: it records them as step errors
    (synthetic step when nothing ran, §7.3) and returns. It may raise only for infrastructure failures
    the host should treat as *broken* (``pipeline.errors.InfrastructureError``)."""

    case_type: str

    def run(self, case: dict[str, Any], ctx: RunContext) -> CaseOutcome: ...

    def close_shared(self, ctx: RunContext) -> None:
        """Release collection-scoped resources in ``ctx.shared`` (browser, sessions)."""
