"""``<report-dir>/<taskId>/attachments/``: the report's own copy of every screenshot, so a report is whole.

Executors store screenshots in ``storage/image/<taskId>/``, which the janitor empties after a day while
reports are kept for weeks; every format links ``attachments/<file>`` relative to the report directory
instead, so zipping or moving the task's report directory keeps every image. Files are hard-linked when
storage and reports share a file system (no extra space), copied otherwise; a file already present is left
alone (screenshot names are unique and never rewritten), so repeated writes during a run cost one ``stat``.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.models import CaseResult
from stages.aggregator.writers._common import ATTACH_DIR, step_screenshots

if TYPE_CHECKING:
    from stages.aggregator.writers import TaskReportMeta

__all__ = ["link_attachments", "place"]


def link_attachments(report_dir: Path, meta: TaskReportMeta, results: Iterable[CaseResult]) -> list[Path]:
    """Bring every step screenshot of ``results`` into ``report_dir/attachments``; returns the sources that
    were missing (already cleaned up or never written), which the reports then show as missing images."""
    missing: list[Path] = []
    target: Path | None = None              # made for the first screenshot: most attempts have none
    for r in results:
        for step in r.transactionList:
            if not isinstance(step, dict):
                continue
            for src in step_screenshots(meta, step):
                target = Path(report_dir) / ATTACH_DIR if target is None else target
                if not place(src, target / src.name):
                    missing.append(src)
    return missing


def place(src: Path, dst: Path) -> bool:
    """Hard-link (else copy) ``src`` to ``dst`` atomically unless ``dst`` already exists; False if ``src`` is gone."""
    if dst.exists():
        return True
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        tmp.replace(dst)
        return True
    except OSError:
        return False
