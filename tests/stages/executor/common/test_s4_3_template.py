"""Reference §4.3: placeholder forms, type preservation, nesting, reference markers, strict vs original mode."""
from __future__ import annotations

from typing import Any

import pytest

from stages.executor.common.functions import FunctionLibrary
from stages.executor.common.template import Renderer, TemplateError
from stages.executor.common.variables import Variables


@pytest.fixture()
def renderer() -> Renderer:
    v = Variables({"token": "abc", "n": 5, "lst": [1, 2, 3], "d": {"a": [{"x": 7}, {"x": 8}]}, "flag": True,
                   "off": False, "nothing": None},
                  {"pageSize": 20, "n": 99, "name": "admin"})
    return Renderer(v, FunctionLibrary(variables=v))


@pytest.mark.parametrize("template,wanted", [
    ("{{n}}", 5), ("{{ n }}", 5), ("n={{n}}", "n=5"), ("{{flag}}", True), ("{{lst}}", [1, 2, 3]),
    ("{{d.a[0].x}}", 7), ("{{d.a[*].x}}", [7, 8]), ("{{lst[1]}}", 2), ("{{$n}}", 99), ("{{pageSize}}", 20),
    ("{{@lenof({{lst}})}}", 3), ("list={{lst}}", "list=[1, 2, 3]"), ("{{@arithmetic(2*{{n}})}}", 10),
    ("f={{flag}}", "f=true"), ("f={{off}}", "f=false"), ("x{{nothing}}", "xnull"), ("{{nothing}}", None),
    ("no placeholder", "no placeholder"), ("{{ unclosed", "{{ unclosed"), ("a }} b", "a }} b"),
])
def test_render_strings(renderer: Renderer, template: str, wanted: Any) -> None:
    assert renderer.render(template) == wanted


def test_deep_render_keeps_types(renderer: Renderer) -> None:
    out = renderer.render({"k": "{{n}}", "s": "x{{n}}", "l": ["{{token}}", 1, None], "{{name}}": "v"})
    assert out == {"k": 5, "s": "x5", "l": ["abc", 1, None], "admin": "v"}


def test_inserted_text_is_not_rendered_again() -> None:
    v = Variables({"evil": "{{secret}}", "secret": "s3"}, {})
    assert Renderer(v, FunctionLibrary(variables=v)).render("x{{evil}}") == "x{{secret}}"


def test_strict_error_names_placeholder_and_step(renderer: Renderer) -> None:
    with pytest.raises(TemplateError, match=r"步骤\[登录\].*\{\{missing\}\}"):
        renderer.render({"a": "{{missing}}"}, step="登录")


def test_non_strict_keeps_literal_and_prints() -> None:
    printed: list[str] = []
    v = Variables({}, {})
    r = Renderer(v, FunctionLibrary(variables=v, printer=printed.append), strict=False)
    assert r.render("a {{missing}} b") == "a {{missing}} b"
    assert printed == ["不存在的公共参数、关联变量或内置函数: missing\n"]


def test_reference_markers_in_function_args(renderer: Renderer) -> None:
    refs = {"_request_body": {"a": {"b": "deep"}, "sign": "x"}, "_request_header": {"X-Token": "tk"},
            "_request_query": {"q": "1"}, "_request_url": "http://h/p", "_request_path": "/p"}
    assert renderer.render("{{@extract(#{$.a.b})}}", refs=refs) == "deep"
    assert renderer.render("{{@extract(#{a.b})}}", refs=refs) == "deep"
    assert renderer.render("{{@extract(#{_REQUEST_HEADER.x-token})}}", refs=refs) == "tk"
    assert renderer.render("{{@extract(#{_request_body})}}", refs=refs) == refs["_request_body"]
    assert renderer.render("{{@replace(#{_request_url}, http, https)}}", refs=refs) == "https://h/p"
    assert renderer.render("{{@extract(#{nothing.here})}}", refs=refs) == "#{nothing.here}"
