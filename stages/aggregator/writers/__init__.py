"""Report writers of the aggregator: pure functions of ``(meta, results)`` that write one format each.

Contract every writer keeps (the aggregator calls them repeatedly while a run progresses):

- input is the task's :class:`TaskReportMeta` and *all* :class:`~pipeline.models.CaseResult` rows so far
  (every attempt; order does not matter, duplicates by result key must already be removed);
- nothing is mutated, no socket is opened, secrets (``meta.secrets``) never reach a file (``******``);
- each file is written to a temp sibling and moved into place with ``os.replace``: a crash mid-run leaves
  the previous complete file, and file names are deterministic so a rewrite replaces instead of adding.

The aggregator does not call the batch functions while a run progresses: ``builder.ReportBuilder`` renders each
case's part of every format once, when it arrives, and assembles the files from those parts (same output).

Formats: ``summary.json`` (HttpRunner go-v5 dialect), ``results.json`` (LiuMa ``result/upload`` body),
``junit.xml`` (Surefire flaky elements), ``allure-results/``, ``report.html`` (self-contained). Screenshots are
brought into ``attachments/`` first and every format links there relatively: the directory is the report.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.models import CaseResult

__all__ = ["TaskReportMeta", "write_all", "FORMATS"]


@dataclass(frozen=True, slots=True)
class TaskReportMeta:
    """What the reports say about the task itself. Datetimes must be timezone-aware (RFC 3339 output)."""

    task_id: str
    task_name: str
    started_at: datetime
    finished_at: datetime | None = None
    engine_version: str = ""
    engine_code: str = ""
    secrets: Sequence[str] = field(default_factory=tuple)
    storage_root: Path = Path("storage")     # screenshots: storage_root/image/<task_id>/<id>.png
    stop_reason: str | None = None           # the task was stopped (engine stop, Ctrl-C, stop request): why
    history: Mapping[str, Any] = field(default_factory=dict)    # case id -> pipeline.history.CaseFlake (previous runs)

    def __post_init__(self) -> None:
        for name in ("started_at", "finished_at"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
                raise ValueError(f"TaskReportMeta.{name} must be a timezone-aware datetime, got {value!r}")


def write_all(report_dir: Path, meta: TaskReportMeta, results: Sequence[CaseResult]) -> dict[str, Path]:
    """Write every format into ``report_dir``; returns ``{format name: path written}``.

    One pass of :class:`~stages.aggregator.writers.builder.ReportBuilder` (what the aggregator keeps across a
    run): secrets are masked once per attempt and every format's part of a case is rendered once.
    """
    from dataclasses import replace

    from stages.aggregator.writers.builder import ReportBuilder

    builder = ReportBuilder(Path(report_dir), replace(meta, finished_at=None))
    for r in results:
        builder.add(r)
    try:
        return builder.write(meta.finished_at)
    finally:
        builder.close()


FORMATS = ("summary", "results", "junit", "allure", "html", "jsonl")
