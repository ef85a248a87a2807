"""WEB cases on Selenium + Chromium: ``WebRunner`` (the CaseRunner), the browser lifecycle and the catalog."""
from __future__ import annotations

from stages.executor.web.runner import WebRunner

__all__ = ["WebRunner"]
