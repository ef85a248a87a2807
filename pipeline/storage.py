"""Storage faults are loud (issue 22): a failed write of a report or a journal is described once, with the
file and the errno, carried to the supervisor (heartbeat stats, ``task.reported``) and makes ``run`` exit
non-zero with the message on stderr. ``short_of_space`` is the ``[Pipeline] min-free-mb`` policy (pure
but for the ``disk_usage`` call it is handed)."""
from __future__ import annotations

import errno as _errno
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["fault_text", "short_of_space", "apply_umask", "follow_umask"]


def apply_umask(mask: int) -> None:
    """``[Pipeline] umask`` (default 077: files 0600, directories 0700) for this process and every stage,
    browser and report it starts or writes."""
    os.umask(mask)


def follow_umask(root: Path) -> None:
    """Give a copied tree (``shutil.copytree`` keeps the source's 0644/0755) the modes new files get."""
    mask = os.umask(0)
    os.umask(mask)
    for d, _dirs, files in os.walk(root):
        os.chmod(d, 0o777 & ~mask)
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask)


def fault_text(e: BaseException, path: str | Path | None = None) -> str:
    """``<file>: [Errno 28 ENOSPC] No space left on device`` (the file from the error when it names one)."""
    where = getattr(e, "filename", None) or path or "?"
    if isinstance(e, OSError) and e.errno:
        code = _errno.errorcode.get(e.errno, "")
        return f"{where}: [Errno {e.errno}{' ' + code if code else ''}] {e.strerror or os.strerror(e.errno)}"
    return f"{where}: {type(e).__name__}: {e}"


def short_of_space(paths: Iterable[str | Path], min_mb: float,
                   usage: Callable[[str], tuple[int, int, int]] = shutil.disk_usage) -> str | None:
    """Why new work must wait (the first path with less than ``min_mb`` MiB free), or None. 0 = never."""
    if min_mb <= 0:
        return None
    for p in paths:
        probe = Path(p)
        while not probe.exists() and probe != probe.parent:      # not created yet: its filesystem is the parent's
            probe = probe.parent
        try:
            free = usage(str(probe))[2]
        except OSError:
            continue
        if free < min_mb * 2**20:
            return f"{p} has {free / 2**20:.1f} MiB free, less than [Pipeline] min-free-mb = {min_mb:g}; new work waits"
    return None
