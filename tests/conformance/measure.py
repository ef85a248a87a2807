"""Figures for the lead: ``python -m tests.conformance.measure [--root CHECKOUT]``.

Runs the conformance corpus through the engine of ``CHECKOUT`` (default: this one) and judges it against the
original's cached answer (run first with the test suite, or here when missing), and the comparator grid when
``CHECKOUT`` is this one. Prints cases differing, documented/undocumented differences.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tests.conformance import corpus, oracle_env
from tests.conformance.engines import ROOT, run_oracle, run_ours
from tests.conformance.target import Target
from tests.conformance.verdict import judge


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=ROOT)
    args = ap.parse_args()
    oracle = oracle_env.ensure(verbose=True)
    if oracle is None:
        raise SystemExit("the original cannot run on this machine")
    scratch = Path(tempfile.mkdtemp(prefix="lmconf-"))
    cached = oracle.answers / f"{corpus.fingerprint()}.json"
    if not cached.is_file():
        with Target() as target:
            answer = run_oracle(oracle, corpus.tasks(target.url), scratch, before_attempt=target.reset)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(answer, ensure_ascii=False))
    theirs = json.loads(cached.read_text())
    with Target() as target:
        tasks = corpus.tasks(target.url)
        ours = run_ours(tasks, scratch, root=args.root.resolve())
    cases = {cid: c for _, cs in tasks for cid, c in cs.items()}
    v = judge(theirs, ours, cases)
    undocumented = sorted({p.split(" ")[0] for p in v.problems})
    print(f"{args.root}: {len(cases)} cases, {v.rows} original rows; {len(v.cases_differing)} cases end differently; "
          f"explained {dict(v.explained)}; undocumented in {len(undocumented)} cases: {undocumented}")


if __name__ == "__main__":
    main()
