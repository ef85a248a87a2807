"""Profiling switch for finding what a case costs in each process: with ``LIUMA_PROFILE_DIR=<dir>`` set, each
stage (and each thread wrapped in :func:`profiled`) runs under cProfile and dumps ``<dir>/<name>.<pid>.prof``
when it ends; read them with ``python -m pstats``. Off (no cost) when the variable is unset."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["PROFILE_ENV", "profiled"]

PROFILE_ENV = "LIUMA_PROFILE_DIR"


def profiled(target: Callable[[], None], name: str) -> Callable[[], None]:
    """``target`` itself, or ``target`` under cProfile when ``LIUMA_PROFILE_DIR`` is set (cProfile sees only the
    thread it runs in, so a stage's own threads are wrapped one by one)."""
    where = os.environ.get(PROFILE_ENV)
    if not where:
        return target

    def run() -> None:
        import cProfile
        prof = cProfile.Profile()
        try:
            prof.runcall(target)
        finally:
            Path(where).mkdir(parents=True, exist_ok=True)
            prof.dump_stats(str(Path(where) / f"{name}.{os.getpid()}.prof"))
    return run
