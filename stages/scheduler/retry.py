"""Retry policy: which failed attempts get another one (pure).

Infrastructure failures (``broken``: executor crash, timeout, lost browser/device) are always eligible up
to ``max_attempts``; product failures/errors are retried when the task asks for it (LiuMa ``reRun`` =
one more round) or the case's own ``retry`` count allows, and only if ``retry_failures`` is on. A per-run
``budget`` caps the total number of retries so a broken environment cannot double the run time.
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.models import Task

from .plan import CaseState

__all__ = ["RetryPolicy"]


@dataclass
class RetryPolicy:
    max_attempts: int = 2
    retry_failures: bool = True
    budget: int = 100
    used: int = 0

    def should_retry(self, st: CaseState, task: Task, *, broken: bool) -> bool:
        attempts = len(st.attempts)
        if self.used >= self.budget:
            return False
        if broken:
            allowed = max(self.max_attempts, 1 + st.ref.retry)
        elif self.retry_failures:
            allowed = max(2 if task.reRun else 1, 1 + st.ref.retry)
        else:
            allowed = 1
        if attempts < allowed:
            self.used += 1
            return True
        return False
