"""Reference §3.3 (common params) and the operationData types: JSON parsing, never eval, errors keep text."""
from __future__ import annotations

from typing import Any

import pytest

from stages.executor.common.params import convert_params, convert_typed
from stages.executor.common.variables import Variables


@pytest.mark.parametrize("type_name,value,wanted", [
    ("String", "admin", "admin"), ("Int", "20", 20), ("Int", "2x", "2x"), ("Float", "1.5", 1.5),
    ("Number", "3", 3), ("Number", "3.5", 3.5), ("Boolean", "TRUE", True), ("Boolean", "yes", False),
    ("JSONObject", '{"a": true, "b": null}', {"a": True, "b": None}),     # JSON literals work (original: eval failed)
    ("JSONObject", "{'a': 1}", {"a": 1}), ("JSONArray", "[1, 2]", [1, 2]), ("JSONArray", '{"a": 1}', '{"a": 1}'),
    ("JSONObject", "__import__('os').getcwd()", "__import__('os').getcwd()"),   # never evaluated
    ("Bytes", "ab", b"ab"), ("Other", "x", "x"), ("Unknown", "x", "x"),
])
def test_convert_typed(type_name: str, value: Any, wanted: Any) -> None:
    assert convert_typed(type_name, value) == wanted


def test_convert_params_shape() -> None:
    out = convert_params({"username": {"type": "String", "value": "admin"}, "pageSize": {"type": "Int", "value": "20"},
                          "bad": {"type": "Int", "value": "x"}})
    assert out == {"username": "admin", "pageSize": 20, "bad": "x"}


def test_variables_lookup_order_and_spaces() -> None:
    context: dict[str, Any] = {"a": "ctx"}
    v = Variables(context, {"a": "param", "b": "param"})
    assert v.get("a") == "ctx" and v.get("b") == "param"
    v.put("c", 1)
    v.put("b", "changed", ps=True)
    assert context == {"a": "ctx", "c": 1} and v.params["b"] == "changed" and v.exported == {"c": 1}
    with pytest.raises(KeyError, match="nope"):
        v.get("nope")
