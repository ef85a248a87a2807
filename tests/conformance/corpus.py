"""The conformance corpus: our own API cases, generated per reference section, against ``target.Target``.

``build(base_url)`` returns ``{section: [collection, ...]}`` where a collection is ``(collectionId, [case, ...])``
(cases of a collection share variables and the session, so order matters inside one). ``tasks(base_url)``
batches every section into a few large tasks (the original is slow to start a task). Ids never contain ``_``
(the original splits its test names on it).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from stages.executor.common.assertion import ALIASES, COMPARATORS
from tests.conformance.corpus_web import web_collections
from tests.conformance.target import DATA

__all__ = ["build", "tasks", "fingerprint"]

Case = dict[str, Any]
Collection = tuple[str, list[Case]]


def step(sid: str, path: str, *, method: str = "GET", name: str | None = None, headers: dict[str, str] | None = None,
         query: dict[str, str] | None = None, body: dict[str, Any] | None = None, rest: dict[str, str] | None = None,
         assertions: list[dict[str, Any]] | None = None, relations: list[dict[str, Any]] | None = None,
         controller: dict[str, Any] | None = None, base: str = "{base}") -> dict[str, Any]:
    return {"apiId": sid, "apiName": name or sid, "apiDesc": None, "url": base, "path": path, "method": method,
            "protocol": "HTTP", "headers": headers or {}, "proxies": {},
            "body": body or {"type": "json", "form": [], "json": "", "raw": "", "file": []},
            "query": query or {}, "rest": rest or {}, "assertions": assertions or [], "relations": relations or [],
            "controller": controller or {}}


def check(expression: str, assertion: str, expect: Any, *, frm: str = "resBody", method: str = "jsonpath") -> dict[str, Any]:
    return {"from": frm, "method": method if frm != "resCode" else "", "expression": expression,
            "assertion": assertion, "expect": expect}


def relation(name: str, expression: str, *, frm: str = "resBody", method: str = "jsonpath") -> dict[str, Any]:
    return {"from": frm, "method": method, "expression": expression, "name": name}


def case(cid: str, steps: list[dict[str, Any]], *, params: dict[str, Any] | None = None,
         functions: list[dict[str, Any]] | None = None) -> Case:
    return {"comment": None, "caseId": cid, "caseName": cid, "functions": functions or [], "params": params or {},
            "apiList": steps}


def body(kind: str, *, form: list[dict[str, Any]] | None = None, json_text: str = "", raw: str = "") -> dict[str, Any]:
    return {"type": kind, "form": form or [], "json": json_text, "raw": raw, "file": []}


def row(name: str, value: str, typ: str = "String") -> dict[str, Any]:
    return {"name": name, "value": value, "type": typ, "required": True}


# -- §4.6 comparators ---------------------------------------------------------------------------------------

_EXPECTS = ["200", "0", "1.5", "-3", "5", "", "hello", "HELLO", "ali", "alice", "a", "流", "None", "null", "true",
            "[1, 2, 3]", "['alice', 'bob']", "[0, 300]", "[1.5, 0.1]", "{'a': 1}", '{"a": 1}', '{"a": true}', "2",
            "{{n}}", "{{flag}}", "{{lst}}"]
_PARAMS = {"n": {"type": "Int", "value": "200"}, "flag": {"type": "Boolean", "value": "true"},
           "lst": {"type": "JSONArray", "value": "[1, 2, 3]"}}


def _comparators() -> list[Collection]:
    """Every id over every /data field (expects rotated), plus every alias on a few fields."""
    fields = list(DATA)
    cases = []
    for i, cid in enumerate(COMPARATORS):
        for j, field in enumerate(fields):
            expect = _EXPECTS[(i * 5 + j * 3) % len(_EXPECTS)]
            cases.append(case(f"cmp-{i:02d}-{j:02d}", [step("s1", "/data", assertions=[check(f"$.{field}", cid, expect)])],
                              params=_PARAMS))
    aliases = [a for a in sorted(ALIASES) if a not in COMPARATORS]
    for i, alias in enumerate(aliases):
        for j, field in enumerate(("int", "word", "nums", "numText")):
            expect = _EXPECTS[(i + j * 7) % len(_EXPECTS)]
            cases.append(case(f"alias-{i:02d}-{j}", [step("s1", "/data", assertions=[check(f"$.{field}", alias, expect)])],
                              params=_PARAMS))
    cases.append(case("cmp-rescode", [step("s1", "/status/201", assertions=[check("", "equals", "201", frm="resCode")])]))
    cases.append(case("cmp-implicit", [step("s1", "/status/404")]))
    cases.append(case("cmp-header", [step("s1", "/token", assertions=[check("$.X-Trace", "equals", "tr-9", frm="resHeader")])]))
    cases.append(case("cmp-nomatch", [step("s1", "/data", assertions=[check("$.missing", "equals", "x")])]))
    return [("cmp", cases)]


# -- §4.3 templates -----------------------------------------------------------------------------------------

_TYPED = {"flag": ("Boolean", "true"), "off": ("Boolean", "false"), "n": ("Int", "5"), "f": ("Float", "1.5"),
          "s": ("String", "abc"), "obj": ("JSONObject", '{"a": 1}'), "arr": ("JSONArray", "[1, 2]"),
          "cn": ("String", "流马")}


def _templates() -> list[Collection]:
    params = {k: {"type": t, "value": v} for k, (t, v) in _TYPED.items()}
    cases = []
    for name in _TYPED:
        cases.append(case(f"tpl-raw-{name}", [step("s1", "/echo", method="POST", headers={"Content-Type": "text/plain"},
                                                   body=body("text", raw=f"v={{{{{name}}}}}"),
                                                   assertions=[check("$.body", "equals", f"v={_render(name)}")])],
                          params=params))
        cases.append(case(f"tpl-query-{name}", [step("s1", "/echo", query={"q": f"x{{{{{name}}}}}"},
                                                     assertions=[check("$.query.q", "equals", f"x{_render(name)}")])],
                          params=params))
        cases.append(case(f"tpl-whole-{name}", [step("s1", "/echo", method="POST", body=body("json", json_text=json.dumps({"v": f"{{{{{name}}}}}"})),
                                                     assertions=[check("$.json.v", "isIntType" if name == "n" else "notEmpty" if name in ("obj", "arr", "s", "cn") else "isTrue" if name == "flag" else "isFalse" if name == "off" else "isFloatType", "")])],
                          params=params))
        cases.append(case(f"tpl-json-{name}", [step("s1", "/echo", method="POST", body=body("json", json_text=json.dumps({"v": f"<{{{{{name}}}}}>"})),
                                                    assertions=[check("$.json.v", "equals", f"<{_render(name)}>")])],
                          params=params))
        cases.append(case(f"tpl-header-{name}", [step("s1", "/echo", headers={"X-V": f"h{{{{{name}}}}}"},
                                                      assertions=[check("$.headers.x-v", "equals", f"h{_render(name)}")])],
                          params=params))
    cases.append(case("tpl-null", [step("s1", "/data", relations=[relation("nv", "$.nul")]),
                                   step("s2", "/echo", query={"q": "x{{nv}}"}, assertions=[check("$.query.q", "equals", "xnull")])]))
    cases.append(case("tpl-true-extracted", [step("s1", "/data", relations=[relation("bv", "$.yes")]),
                                             step("s2", "/echo", query={"q": "x{{bv}}"}, assertions=[check("$.query.q", "equals", "xtrue")])]))
    cases.append(case("tpl-missing", [step("s1", "/echo", query={"q": "{{nosuch}}"}, assertions=[check("$.query.q", "equals", "{{nosuch}}")])]))
    cases.append(case("tpl-path-rest", [step("s1", "/echo/{id}", rest={"id": "{{n}}"}, assertions=[check("$.path", "equals", "/echo/5")])],
                      params=params))
    return [("tpl", cases)]


def _render(name: str) -> str:
    """What the original inserts for an embedded value: JSON spellings for booleans, str() otherwise."""
    typ, value = _TYPED[name]
    return {"Boolean": value, "JSONObject": "{'a': 1}", "JSONArray": "[1, 2]"}.get(typ, value)


# -- §4.2 bodies --------------------------------------------------------------------------------------------

def _bodies() -> list[Collection]:
    cases = []
    typed_rows = [("String", "abc", "abc"), ("Int", "7", "7"), ("Float", "2.5", "2.5"), ("Boolean", "true", "True"),
                  ("Boolean", "false", "False"), ("JSONObject", '{"a": 1}', None), ("JSONArray", "[1, 2]", None)]
    for kind in ("form-data", "form-urlencoded"):
        for i, (typ, value, expect) in enumerate(typed_rows):
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if kind == "form-urlencoded" else {}
            assertion = check("$.form.f", "notEmpty", "") if expect is None else check("$.form.f[0]", "equals", expect)
            cases.append(case(f"body-{kind}-{i}", [step("s1", "/echo", method="POST", headers=headers,
                                                       body=body(kind, form=[row("f", value, typ), row("g", "x")]),
                                                       assertions=[assertion])]))
        cases.append(case(f"body-{kind}-arrlen", [step("s1", "/echo", method="POST", body=body(kind, form=[row("f", "[1, 2]", "JSONArray")]),
                                                      assertions=[check("$.form.f", "listLenEqual", "2")])]))
    for kind, ctype in (("text", "text/plain"), ("xml", "application/xml"), ("html", "text/html")):
        cases.append(case(f"body-{kind}", [step("s1", "/echo", method="POST", headers={"Content-Type": ctype},
                                                body=body(kind, raw="<a>流马 {{x}}</a>"),
                                                assertions=[check("$.body", "equals", "<a>流马 1</a>"),
                                                            check("$.headers.content-type", "startWith", ctype)])],
                          params={"x": {"type": "Int", "value": "1"}}))
    cases.append(case("body-json", [step("s1", "/echo", method="POST", body=body("json", json_text='{"a": [1, {"b": null}], "c": true}'),
                                         assertions=[check("$.json.c", "isTrue", ""), check("$.json.a", "listLenEqual", "2"),
                                                     check("$.headers.content-type", "contains", "json")])]))
    cases.append(case("body-json-empty", [step("s1", "/echo", method="POST", body=body("json", json_text=""),
                                               assertions=[check("$.body", "empty", "")])]))
    cases.append(case("body-methods", [step(f"s{i}", "/echo", method=m, assertions=[check("$.method", "equals", m)])
                                       for i, m in enumerate(("GET", "POST", "PUT", "DELETE", "PATCH"))]))
    return [("body", cases)]


# -- §4.5 relations, §4.7 scripts, §8 functions ------------------------------------------------------------

def _relations() -> list[Collection]:
    c = [
        case("rel-token", [step("s1", "/token", relations=[relation("token", "$.data.token"), relation("uid", "$.data.uid"),
                                                          relation("trace", "$.X-Trace", frm="resHeader")])]),
        case("rel-use", [step("s1", "/auth", headers={"Authorization": "Bearer {{token}}"}),
                         step("s2", "/echo", query={"u": "{{uid}}", "t": "{{trace}}"},
                              assertions=[check("$.query.u", "equals", "7"), check("$.query.t", "equals", "tr-9")])]),
        case("rel-regex", [step("s1", "/token", relations=[relation("tk", r'"token": "(tk-\d+)"', method="regular")]),
                           step("s2", "/echo", query={"t": "{{tk}}"}, assertions=[check("$.query.t", "equals", "tk-123")])]),
        case("rel-multi", [step("s1", "/data", relations=[relation("ids", "$.nested.items[*].id")]),
                           step("s2", "/echo", method="POST", body=body("json", json_text='{"ids": "{{ids}}"}'),
                                assertions=[check("$.json.ids", "equalsList", "[1, 2]")])]),
        case("rel-nomatch", [step("s1", "/data", relations=[relation("x", "$.nothere")])]),
        case("rel-regex-nomatch", [step("s1", "/data", relations=[relation("x", "zzz(\\d)", method="regular")])]),
        case("rel-reqquery", [step("s1", "/echo", query={"a": "qv"}, relations=[relation("qa", "$.a", frm="reqQuery")]),
                              step("s2", "/echo", query={"b": "{{qa}}"}, assertions=[check("$.query.b", "equals", "qv")])]),
        case("rel-reqbody", [step("s1", "/echo", method="POST", body=body("json", json_text='{"k": 5}'), relations=[relation("kb", "$.k", frm="reqBody")]),
                             step("s2", "/echo", query={"b": "{{kb}}"}, assertions=[check("$.query.b", "equals", "5")])]),
        case("rel-cookie", [step("s1", "/cookie/set", relations=[relation("ck", "cookie", frm="resHeader")]),
                            step("s2", "/echo", query={"c": "{{ck}}"}, assertions=[check("$.query.c", "equals", "sid=abc")])]),
        case("rel-path", [step("s1", "/data", relations=[relation("nm", "$.nested.items[1].name")]),
                          step("s2", "/echo", query={"n": "{{nm}}"}, assertions=[check("$.query.n", "equals", "y")])]),
        case("rel-dotted", [step("s1", "/data", relations=[relation("nest", "$.nested")]),
                            step("s2", "/echo", query={"n": "{{nest.items[0].name}}", "t": "{{nest.total}}"},
                                 assertions=[check("$.query.n", "equals", "x"), check("$.query.t", "equals", "2")])]),
    ]
    scripts = [
        case("scr-put", [step("s1", "/echo", controller={"pre": [{"name": "preScript", "value": "sys_put('sv', 'pre-1')", "index": 1}]},
                              query={"v": "{{sv}}"}, assertions=[check("$.query.v", "equals", "pre-1")])]),
        case("scr-post", [step("s1", "/data", controller={"post": [{"name": "postScript", "index": 1,
                                                                     "value": "sys_put('code', res_code)\nsys_put('w', res_data['word'])"}]}),
                          step("s2", "/echo", query={"c": "{{code}}", "w": "{{w}}"},
                               assertions=[check("$.query.c", "equals", "200"), check("$.query.w", "equals", "hello")])]),
        case("scr-get", [step("s1", "/echo", controller={"pre": [{"name": "preScript", "index": 1, "value": "sys_put('g2', sys_get('p') + '!')"}]},
                              query={"v": "{{g2}}"}, assertions=[check("$.query.v", "equals", "pp!")])],
             params={"p": {"type": "String", "value": "pp"}}),
        case("scr-raise", [step("s1", "/echo", controller={"pre": [{"name": "preScript", "index": 1, "value": "raise ValueError('boom')"}]})]),
        case("scr-missing", [step("s1", "/echo", controller={"pre": [{"name": "preScript", "index": 1, "value": "sys_get('nope')"}]})]),
        case("scr-print", [step("s1", "/echo", controller={"post": [{"name": "postScript", "index": 1, "value": "print('hi', res_code)"}]})]),
        case("scr-syntax", [step("s1", "/echo", controller={"pre": [{"name": "preScript", "index": 1, "value": "if x"}]})]),
    ]
    funcs = [
        case("fn-lenof", [step("s1", "/echo", query={"v": "{{@lenof([1, 2, 3])}}"}, assertions=[check("$.query.v", "equals", "3")])]),
        case("fn-b64", [step("s1", "/echo", query={"v": "{{@b64encode_str(abc)}}"}, assertions=[check("$.query.v", "equals", "YWJj")])]),
        case("fn-arith", [step("s1", "/echo", query={"v": "{{@arithmetic(1+2*3)}}"}, assertions=[check("$.query.v", "equals", "7")])]),
        case("fn-pinyin", [step("s1", "/echo", query={"v": "{{@pinyin(中文)}}"}, assertions=[check("$.query.v", "equals", "zhongwen")])]),
        case("fn-replace", [step("s1", "/echo", query={"v": "{{@replace(hello, l, L)}}"}, assertions=[check("$.query.v", "equals", "heLLo")])]),
        case("fn-substing", [step("s1", "/echo", query={"v": "{{@substing(abcdef, 1, 3)}}"}, assertions=[check("$.query.v", "equals", "bc")])]),
        case("fn-time", [step("s1", "/echo", query={"v": "{{@current_time(%Y)}}"}, assertions=[check("$.query.v", "isInt", "")])]),
        case("fn-faker", [step("s1", "/echo", query={"v": "{{@phone_number()}}"}, assertions=[check("$.query.v", "notEmpty", "")])]),
        case("fn-nested", [step("s1", "/echo", query={"v": "{{@lenof({{arr}})}}"}, assertions=[check("$.query.v", "equals", "2")])],
             params={"arr": {"type": "JSONArray", "value": "[1, 2]"}}),
        case("fn-custom", [step("s1", "/echo", query={"v": "{{@twice(4)}}"}, assertions=[check("$.query.v", "equals", "8")])],
             functions=[{"name": "twice", "code": "sys_return(x * 2)", "params": {"names": ["x"], "types": ["Int"]}}]),
        case("fn-unknown", [step("s1", "/echo", query={"v": "{{@nosuchfunction()}}"})]),
        case("fn-keyof", [step("s1", "/echo", query={"v": '{{@keyof({"a": "z"}, a)}}'}, assertions=[check("$.query.v", "equals", "z")])]),
    ]
    return [("rel", c), ("scr", scripts), ("fn", funcs)]


# -- §4.8 controllers ---------------------------------------------------------------------------------------

def _controllers() -> list[Collection]:
    def loop(**kw: Any) -> str:
        return json.dumps(kw)

    cond = lambda target, a, e: json.dumps([{"target": target, "assertion": a, "expect": e}])  # noqa: E731
    cases = [
        case("ctl-cond-true", [step("s1", "/echo", controller={"whetherExec": cond("{{n}}", "equals", "5")})],
             params={"n": {"type": "Int", "value": "5"}}),
        case("ctl-cond-false", [step("s1", "/echo", controller={"whetherExec": cond("{{n}}", "equals", "6")}), step("s2", "/echo")],
             params={"n": {"type": "Int", "value": "5"}}),
        case("ctl-cond-error", [step("s1", "/echo", controller={"whetherExec": cond("abc", "isGreaterThan", "1")}), step("s2", "/echo")]),
        case("ctl-cond-list", [step("s1", "/echo", controller={"whetherExec": cond("{{arr}}", "contains", "2")})],
             params={"arr": {"type": "JSONArray", "value": "[1, 2]"}}),
        case("ctl-for", [step("s1", "/echo", query={"i": "{{idx}}"}, controller={"loopExec": loop(type="FOR", num=2, indexName="idx", times=3)}),
                         step("s2", "/echo"), step("s3", "/echo")]),
        case("ctl-for-text", [step("s1", "/echo", controller={"loopExec": loop(type="FOR", num=1, indexName="i", times="{{t}}")})],
             params={"t": {"type": "Int", "value": "2"}}),
        case("ctl-for-assert", [step("s1", "/echo", query={"i": "{{k}}"}, assertions=[check("$.query.i", "isLessThan", "2")],
                                     controller={"loopExec": loop(type="FOR", num=1, indexName="k", times=4), "errorContinue": "true"})]),
        case("ctl-while", [step("s0", "/echo", controller={"post": [{"name": "postScript", "index": 1, "value": "sys_put('w', 0)"}]}),
                           step("s1", "/echo", controller={"loopExec": loop(type="WHILE", num=1, target="{{w}}", assertion="isLessThan", expect="3", timeout=5000),
                                                           "post": [{"name": "postScript", "index": 1, "value": "sys_put('w', sys_get('w') + 1)"}]})]),
        case("ctl-while-false", [step("s1", "/echo", controller={"loopExec": loop(type="WHILE", num=1, target="a", assertion="equals", expect="b", timeout=2000)}),
                                 step("s2", "/echo")]),
        case("ctl-continue", [step("s1", "/status/500", controller={"errorContinue": "true"}), step("s2", "/echo")]),
        case("ctl-stop", [step("s1", "/status/500"), step("s2", "/echo")]),
        case("ctl-continue-error", [step("s1", "/data", relations=[relation("x", "$.nothere")], controller={"errorContinue": "true"}),
                                    step("s2", "/echo")]),
        case("ctl-timeout", [step("s1", "/slow", controller={"timeout": "0.5"})]),
        case("ctl-timeout-ok", [step("s1", "/echo", controller={"timeout": "5"})]),
        case("ctl-timeout-frac", [step("s1", "/echo", controller={"timeout": "2.5"})]),
        case("ctl-sleep", [step("s1", "/echo", controller={"sleepBeforeRun": "1", "sleepAfterRun": "0"})]),
        case("ctl-sleep-frac", [step("s1", "/echo", controller={"sleepBeforeRun": "0.2"})]),
        case("ctl-assert-then-rel", [step("s1", "/data", assertions=[check("$.int", "equals", "201")], relations=[relation("x", "$.nothere")])]),
        case("ctl-bad-url", [step("s1", "/echo", base="http://127.0.0.1:9")]),
    ]
    sessions = [
        case("ses-save", [step("s1", "/cookie/set", controller={"useSession": "true", "saveSession": "true"})]),
        case("ses-use", [step("s1", "/cookie/need", controller={"useSession": "true", "saveSession": "false"})]),
        case("ses-none", [step("s1", "/cookie/need")]),
        case("ses-fresh", [step("s1", "/echo", controller={"useSession": "false", "saveSession": "true"}),
                           step("s2", "/cookie/need", controller={"useSession": "true", "saveSession": "true"})]),
    ]
    return [("ctl", cases), ("ses", sessions)]


# -- more of §8 and §4.8: every built-in with literal arguments, every comparator as a condition -----------

_FUNCS = [
    ("indexof", "{{@indexof([5, 6, 7], 1)}}", "6"), ("keyof2", '{{@keyof({"k": [1, 2]}, k)}}', "[1, 2]"),
    ("mapdumps", '{{@map_dumps({"a": 1})}}', '{"a": 1}'), ("arrdumps", "{{@array_dumps([1, 2])}}", "[1, 2]"),
    ("b64dec", "{{@b64decode_toStr(YWJj)}}", "abc"), ("substing1", "{{@substing(abcdef, 2)}}", "cde"),
    ("replace2", "{{@replace(a-b-c, -, +)}}", "a+b+c"), ("pinyin2", "{{@pinyin(流马)}}", "liuma"),
    ("arith2", "{{@arithmetic((2+3)*4)}}", "20"), ("arith3", "{{@arithmetic(7/2)}}", "3.5"),
    ("extractfn", "{{@extract(abc)}}", "abc"), ("quoted", "{{@replace('hello', 'l', 'L')}}", "heLLo"),
    ("lenofstr", "{{@lenof([a, b])}}", "2"), ("timenone", "{{@current_time(none)}}", None),
    ("dateshift", "{{@date_shift(1)}}", None), ("faker-name", "{{@name()}}", None), ("faker-int", "{{@random_int(1, 1)}}", "1"),
    ("legacy-param", "{{$p}}", "pv"), ("param-list-index", "{{arr[1]}}", "2"), ("twoph", "{{p}}-{{p}}", "pv-pv"),
    ("fn-of-param", "{{@replace({{p}}, v, w)}}", "pw"), ("spaces", "{{ p }}", "pv"),
]


def _more() -> list[Collection]:
    params = {"p": {"type": "String", "value": "pv"}, "arr": {"type": "JSONArray", "value": "[1, 2, 3]"},
              "n": {"type": "Int", "value": "200"}, "flag": {"type": "Boolean", "value": "true"}}
    funcs = []
    for name, template, expect in _FUNCS:
        check_ = check("$.query.v", "notEmpty", "") if expect is None else check("$.query.v", "equals", expect)
        funcs.append(case(f"fx-{name}", [step("s1", "/echo", query={"v": template}, assertions=[check_])], params=params))
    conds = []
    targets = [("{{n}}", "200"), ("{{flag}}", "true"), ("{{arr}}", "2"), ("hello", "ell"), ("", "")]
    for i, cid in enumerate(COMPARATORS):
        target, expect = targets[i % len(targets)]
        cond = json.dumps([{"target": target, "assertion": cid, "expect": expect}])
        conds.append(case(f"cond-{i:02d}", [step("s1", "/echo", controller={"whetherExec": cond}), step("s2", "/echo")],
                          params=params))
    # only loops that end by their condition: one that runs until its timeout has a time-dependent length
    for i, (cid, target, expect) in enumerate([("isLessThan", "{{w}}", "3"), ("equalsNumber", "{{w}}", "0"),
                                               ("isLessThanOrEqualTo", "{{w}}", "1"), ("isIn", "{{w}}", "[0, 1]")]):
        loop = json.dumps({"type": "WHILE", "num": 1, "target": target, "assertion": cid, "expect": expect, "timeout": 4000})
        conds.append(case(f"while-{i}", [
            step("s0", "/echo", controller={"post": [{"name": "postScript", "index": 1, "value": "sys_put('w', 0)"}]}),
            step("s1", "/echo", controller={"loopExec": loop, "post": [{"name": "postScript", "index": 1,
                                                                       "value": "sys_put('w', sys_get('w') + 1)"}]})],
            params=params))
    return [("fx", funcs), ("cond", conds)]


# -- §7.4 reruns ---------------------------------------------------------------------------------------------

def _reruns() -> list[Collection]:
    return [("rerun", [
        case("rr-token", [step("s1", "/token", relations=[relation("rtoken", "$.data.token")])]),
        case("rr-flaky", [step("s1", "/flaky/a", assertions=[check("", "equals", "200", frm="resCode")]),
                          step("s2", "/auth", headers={"Authorization": "Bearer {{rtoken}}"})]),
        case("rr-always", [step("s1", "/status/500")]),
        case("rr-passes", [step("s1", "/auth", headers={"Authorization": "Bearer {{rtoken}}"})]),
    ])]


SECTIONS = {"s4.6-comparators": _comparators, "s5-web-keywords": web_collections, "s4.3-templates": _templates, "s4.2-bodies": _bodies,
            "s4.5-s4.7-s8-relations-scripts-functions": _relations, "s4.8-controllers-sessions": _controllers,
            "s8-s4.8-functions-conditions": _more, "s7.4-reruns": _reruns}


def _resolve(obj: Any, base: str) -> Any:
    if isinstance(obj, dict):
        return {k: _resolve(v, base) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, base) for v in obj]
    return base if obj == "{base}" else obj


def build(base_url: str) -> dict[str, list[Collection]]:
    return {name: [(cid, _resolve(cases, base_url)) for cid, cases in make()] for name, make in SECTIONS.items()}


def _task(task_id: str, collections: Iterable[Collection], *, rerun: bool = False,
          serial: bool = False) -> tuple[dict[str, Any], dict[str, Case]]:
    cols, cases = [], {}
    for cid, items in collections:
        cols.append({"collectionId": cid, "deviceId": None,
                     "testCaseList": [{"index": i + 1, "caseId": c["caseId"], "caseType": "WEB" if "optList" in c else "API"}
                                      for i, c in enumerate(items)]})
        cases.update({c["caseId"]: c for c in items})
    return {"taskId": task_id, "taskType": "run", "maxThread": 1 if serial else max(1, len(cols)), "reRun": rerun,
            "testCollectionList": cols, "debugData": None}, cases


def tasks(base_url: str) -> list[tuple[dict[str, Any], dict[str, Case]]]:
    """Two tasks: the comparator corpus (large, one collection split in four) and everything else (+reRun).

    The second runs its collections one at a time: the original keeps function signatures in one table
    shared by its threads, so a custom function registered in one collection randomly breaks built-in
    calls (placeholder kept) in a parallel one — its answer would not be deterministic."""
    sections = build(base_url)
    (cid, cmp_cases), = sections["s4.6-comparators"]
    quarter = (len(cmp_cases) + 3) // 4
    cmp_cols = [(f"cmp{k}", cmp_cases[k * quarter:(k + 1) * quarter]) for k in range(4)]
    rest = [col for name, cols in sections.items() if name != "s4.6-comparators" for col in cols]
    return [_task("task-cmp", cmp_cols), _task("task-misc", rest, rerun=True, serial=True)]


def fingerprint() -> str:
    """A hash of the corpus (with a placeholder base URL) and of what the target serves, for caching the
    original's answer."""
    from tests.conformance.target import PAGES
    text = json.dumps([tasks("http://base"), DATA, PAGES], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
