"""The seam between the UI step engine and a driver-specific keyword catalog (WEB: Selenium, APP: Appium).

The engine owns §5.3 semantics (transactions, branches, loops, rendering, comparison, custom code,
screenshots); a catalog owns only "what does operation X do on this driver". An operation is a callable
taking one :class:`OpCall` and returning a value: for ``assertion``/``condition`` operations the *actual*
value to compare, for ``relation`` operations the value to save, for the others anything (ignored).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["OpCall", "Operation", "UiCatalog", "OperationError", "MISSING"]

MISSING: Any = object()


class OperationError(Exception):
    """An operation was given unusable input (missing element/data, bad value): a step error."""


@dataclass(slots=True)
class OpCall:
    """One operation invocation: rendered locators, converted data, and hooks back into the engine."""

    name: str
    elements: dict[str, Any] = field(default_factory=dict)     # param -> catalog locator
    data: dict[str, Any] = field(default_factory=dict)         # param -> converted value
    log: Callable[[str], None] = lambda message: None
    screenshot: Callable[[], str] = lambda: ""                 # attaches a screenshot, returns its id
    deadline: float = float("inf")                             # time.monotonic() value of the case deadline

    def element(self, key: str = "element") -> Any:
        if key not in self.elements:
            raise OperationError(f"操作[{self.name}]缺少元素参数 {key}")
        return self.elements[key]

    def arg(self, key: str, default: Any = MISSING) -> Any:
        if key in self.data and self.data[key] is not None and self.data[key] != "":
            return self.data[key]
        if default is MISSING:
            raise OperationError(f"操作[{self.name}]缺少数据参数 {key}")
        return default

    def number(self, key: str, default: Any = MISSING) -> int | float:
        value = self.arg(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                return float(value) if "." in str(value) else int(str(value).strip())
            except (TypeError, ValueError):
                raise OperationError(f"操作[{self.name}]数据参数 {key} 必须是数字, 实际为 {value!r}") from None
        return value


Operation = Callable[[OpCall], Any]


class UiCatalog(Protocol):
    """What the engine needs from a driver-specific catalog. Implemented by ``web.catalog.WebCatalog``."""

    step_type: str          # Transaction.stepType: "browser" / "android" / "ios"
    driver_name: str        # the name custom code sees the driver under: "driver" (WEB) / "device" (APP)
    keyword: str            # log prefix: "WEB" / "APP"

    def operations(self, kind: str) -> Mapping[str, Operation]:
        """Operations of one operationType (``scenario`` for anything not otherwise known)."""
        ...

    def locator(self, element: dict[str, Any]) -> Any:
        """``{"by", "expression"}`` (already rendered) -> the driver's locator (WEB: ``(By.X, expr)``)."""
        ...

    def driver(self) -> Any:
        """The object custom code gets (WebDriver / Appium driver)."""
        ...

    def screenshot_png(self) -> bytes:
        ...

    def translate_error(self, exc: BaseException) -> BaseException | None:
        """An ``InfrastructureError`` when ``exc`` means the driver is lost, else None (a step error)."""
        ...

    def prepare(self, deadline: float) -> None:
        """Called before each operation: bound the driver's command timeouts by the case deadline."""
        ...
