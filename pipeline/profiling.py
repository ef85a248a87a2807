"""Opt-in per-process profile (``LIUMA_PROFILE=DIR``): where a run's start-up and shutdown CPU and wall go.

Each stage process (and the ``run``/``start`` process) writes ``DIR/<name>-<pid>.prof`` (cProfile, for
``python -m pstats``; not with ``LIUMA_PROFILE=cpu:DIR``, which keeps only the marks and the CPU figures,
undistorted by the profiler) and ``DIR/<name>-<pid>.json`` (wall-clock marks with the process's CPU seconds so far,
and its CPU seconds at exit: user, system). ``bench/launcher.py --profile`` prints them as one timeline. cProfile sees only the thread it runs in, so a
stage's own threads (the aggregator's report thread, an executor's unit threads) are wrapped one by one with
:func:`profiled`. Unset: no cost.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ENV", "Profile", "mark", "profiled"]

ENV = "LIUMA_PROFILE"
_MARKS: list[tuple[str, float, float]] = []


def mark(what: str) -> None:
    """A named moment of this process's life (wall clock, and CPU seconds so far), kept only while profiling."""
    if os.environ.get(ENV):
        t = os.times()
        _MARKS.append((what, time.time(), t.user + t.system))


class Profile:
    """``with Profile(name):`` around a process's main work; a no-op unless ``LIUMA_PROFILE`` names a directory."""

    def __init__(self, name: str) -> None:
        value = os.environ.get(ENV) or ""
        self.name, self.dir, self.cpu_only = name, value.removeprefix("cpu:"), value.startswith("cpu:")
        self.prof: Any = None

    def __enter__(self) -> Profile:
        if self.dir:
            _MARKS.clear()
            mark("enter")
            if not self.cpu_only:
                import cProfile
                self.prof = cProfile.Profile()
                self.prof.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.dir:
            return
        if self.prof:
            self.prof.disable()
        mark("exit")
        t = os.times()
        base = Path(self.dir) / f"{self.name}-{os.getpid()}"
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            if self.prof:
                self.prof.dump_stats(f"{base}.prof")
            base.with_suffix(".json").write_text(json.dumps({"name": self.name, "pid": os.getpid(), "user": t.user,
                                                             "system": t.system, "marks": _MARKS}))
        except OSError:                      # a profile that cannot be written never fails the process
            pass


def profiled(target: Callable[[], None], name: str) -> Callable[[], None]:
    """``target`` itself, or ``target`` under cProfile dumping ``DIR/<name>-<pid>.prof`` when ``LIUMA_PROFILE``
    names a directory (not in ``cpu:`` mode): the way to profile a thread."""
    value = os.environ.get(ENV) or ""
    if not value or value.startswith("cpu:"):
        return target

    def run() -> None:
        import cProfile
        prof = cProfile.Profile()
        try:
            prof.runcall(target)
        finally:
            try:
                Path(value).mkdir(parents=True, exist_ok=True)
                prof.dump_stats(str(Path(value) / f"{name}-{os.getpid()}.prof"))
            except OSError:
                pass
    return run
