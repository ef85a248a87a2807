"""The UI step engine shared by WEB and APP runners (§5.3); a driver plugs in through ``UiCatalog``."""
from __future__ import annotations

from stages.executor.ui.catalog import MISSING, OpCall, Operation, OperationError, UiCatalog
from stages.executor.ui.engine import CUSTOM, EngineOptions, StepEngine, opt_list
from stages.executor.ui.screenshot import SCREENSHOT_ID, save_screenshot

__all__ = ["StepEngine", "opt_list", "EngineOptions", "UiCatalog", "OpCall", "Operation", "OperationError", "MISSING",
           "CUSTOM", "save_screenshot", "SCREENSHOT_ID"]
