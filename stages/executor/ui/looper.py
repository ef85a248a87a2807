"""Loop operations (``operationType`` ``looper``, §5.3): which loop, how many steps, index name, bounds.

``While循环`` is chosen by ``operationTrans`` exactly as the original does; any other looper is a For loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LoopSpec", "loop_spec", "WHILE"]

WHILE = "While循环"


@dataclass(frozen=True, slots=True)
class LoopSpec:
    is_while: bool
    steps: int
    index_name: str
    times: int = 0            # For
    timeout_ms: int = 0       # While; 0 = bounded only by the case deadline

    def describe(self) -> str:
        if self.is_while:
            return f"While循环(索引 {self.index_name}, 超时 {self.timeout_ms or '无'}ms)"
        return f"For循环(索引 {self.index_name}, 次数 {self.times})"


def _int(data: dict[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key, default)
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        raise ValueError(f"循环数据参数 {key} 必须是整数, 实际为 {value!r}")
    try:
        return int(float(str(value).strip()))
    except ValueError:
        raise ValueError(f"循环数据参数 {key} 必须是整数, 实际为 {value!r}") from None


def loop_spec(raw: dict[str, Any], data: dict[str, Any]) -> LoopSpec:
    """Read a looper's converted (not rendered) data; raises ValueError naming the bad parameter."""
    is_while = raw.get("operationTrans") == WHILE
    index_name = str(data.get("indexName") or "index")
    steps = _int(data, "steps")
    if is_while:
        return LoopSpec(True, steps, index_name, timeout_ms=max(0, _int(data, "timeout")))
    return LoopSpec(False, steps, index_name, times=max(0, _int(data, "times")))
