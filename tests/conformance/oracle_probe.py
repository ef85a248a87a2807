"""Run INSIDE the oracle's Python 3.8 venv: evaluate (comparator, actual, expect) triples with the original's
own comparator, imported from its extracted tree (argv[1]); JSON list in on stdin, outcomes out on stdout.

Outcome per triple: "pass", "fail", or "error" (anything the comparator raised, which the original turns into
a step error). This file only drives the original; it contains none of its code.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
from core.assertion import LMAssert  # noqa: E402  (the original's module, from its own tree)


def outcome(comparator, actual, expect):
    try:
        ok, _ = LMAssert(comparator, actual, expect).compare()
    except Exception:  # noqa: BLE001 - every raise is an error outcome
        return "error"
    return "pass" if ok else "fail"


triples = json.load(sys.stdin)
json.dump([outcome(c, a, e) for c, a, e in triples], sys.stdout)
