"""The two variable spaces of a case (reference §3.3): ``context`` (关联参数, shared by the cases of one
collection and mutated in place) and ``params`` (公共参数, a per-case copy). Lookup is context first."""
from __future__ import annotations

from typing import Any

__all__ = ["Variables"]


class Variables:
    """Wraps the collection context dict (not copied) and the case's converted params."""

    def __init__(self, context: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> None:
        self.context: dict[str, Any] = context if context is not None else {}
        self.params: dict[str, Any] = params if params is not None else {}
        self.exported: dict[str, Any] = {}     # names written during this case (relations, sys_put)

    def __contains__(self, name: object) -> bool:
        return name in self.context or name in self.params

    def get(self, name: str) -> Any:
        if name in self.context:
            return self.context[name]
        if name in self.params:
            return self.params[name]
        raise KeyError(f"不存在的公共参数或关联变量: {name}")

    def put(self, name: str, value: Any, ps: bool = False) -> None:
        """Write to the context (visible to later cases) or, with ``ps``, to this case's params only."""
        if not isinstance(name, str) or not name:
            raise KeyError(f"变量名必须是非空字符串: {name!r}")
        if ps:
            self.params[name] = value
        else:
            self.context[name] = value
            self.exported[name] = value
