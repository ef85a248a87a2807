"""The API case runner (reference §3.4, §4): ``ApiRunner`` implements ``stages.executor.context.CaseRunner``."""
from __future__ import annotations

from stages.executor.api.runner import ApiRunner

__all__ = ["ApiRunner"]
