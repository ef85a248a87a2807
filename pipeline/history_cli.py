"""``liuma-pipeline history [CASE] [--json]``: what the run history (pipeline/history.py) knows.

With CASE: its latest attempts (when, outcome, duration, executor, failure class) and its flake rate. Without:
the slowest cases and the flakiest ones (at least ``--min-runs`` counted runs). Read-only: it never creates
or changes the database, and works while an engine writes to it.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .history import CaseFlake, HistoryStore, history_path

__all__ = ["add_parser", "cmd_history"]


def add_parser(command: Any, config_option: Any) -> None:
    p = command("history", "show a case's recent outcomes and durations, or the slowest and flakiest cases",
                "Read the run history (<storage-root>/history.sqlite, one row per case attempt, kept [Retention] "
                "history-days). With CASE: its latest attempts and its flake rate over the last [History] flaky-runs "
                "runs (pass-on-retry and changed outcomes on the same case file; runs where more than 80 % of cases "
                "failed are ignored as outages). Without: the slowest and the flakiest cases.")
    p.add_argument("case", nargs="?", metavar="CASE", help="a case id (default: the overview)")
    config_option(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--limit", type=int, default=10, metavar="N", help="rows per list (default: 10)")
    p.add_argument("--min-runs", type=int, default=3, metavar="N",
                   help="a case is listed as flaky only after this many counted runs (default: 3)")
    p.set_defaults(func=cmd_history)


def _flake(f: CaseFlake | None) -> dict[str, Any] | None:
    return None if f is None else {"case_id": f.case_id, "name": f.name, "runs": f.runs, "flaky_runs": f.flaky_runs,
                                   "rate": round(f.rate, 3), "outcomes": list(f.outcomes)}


def cmd_history(args: argparse.Namespace) -> int:
    from .cli import _abs, _err
    from .config import load_config
    cfg = load_config(args.config)
    path = history_path(Path(_abs(cfg.get("Pipeline", "storage-root"))))
    problems: list[str] = []
    store = HistoryStore(path, readonly=True, warn=problems.append)
    runs = int(cfg.get("History", "flaky-runs"))
    try:
        if args.case:
            rows = store.case_attempts(args.case, max(1, args.limit))
            out: dict[str, Any] = {"case_id": args.case, "attempts": rows,
                                   "flake": _flake(store.flakes([args.case], runs).get(args.case))}
        else:
            flakes = [f for f in store.flakes(None, runs).values() if f.runs >= args.min_runs and f.flaky_runs]
            flakes.sort(key=lambda f: (-f.rate, -f.runs, f.case_id))
            out = {"slowest": [{"case_id": c, "name": n, "mean_s": round(s, 3), "attempts": k}
                               for c, n, s, k in store.slowest(max(1, args.limit))],
                   "flakiest": [_flake(f) for f in flakes[:max(1, args.limit)]]}
    finally:
        store.close()
    for p in problems:
        _err(f"liuma-pipeline: {p}")
    if problems:
        return 1
    if args.json:
        print(json.dumps(dict(out, history=str(path)), indent=1, ensure_ascii=False, default=str))
        return 0
    if not path.exists():
        print(f"no run history yet ({path})")
        return 0
    if args.case:
        _print_case(out)
    else:
        _print_overview(out)
    return 0


def _print_case(out: dict[str, Any]) -> None:
    rows = out["attempts"]
    if not rows:
        print(f"case {out['case_id']}: no attempts in the run history")
        return
    f = out["flake"]
    if f:
        print(f"case {out['case_id']} {f['name']}: flake rate {f['rate'] * 100:.0f}% over {f['runs']} runs "
              f"({f['flaky_runs']} flaky); last outcomes (oldest first): {' '.join(f['outcomes'])}")
    print(f"{'WHEN':<19} {'TASK':<16} {'TRY':>3} {'OUTCOME':<8} {'SECONDS':>8} {'EXECUTOR':<12} CLASS")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"]))
        print(f"{when:<19} {r['task_id'][:16]:<16} {r['run_times']:>3} {r['outcome']:<8} {r['duration_s']:>8.2f} "
              f"{r['executor'] or '-':<12} {r['reason_class'] or '-'}")


def _print_overview(out: dict[str, Any]) -> None:
    print("slowest cases (mean of timed attempts, last 30 days):")
    for r in out["slowest"]:
        print(f"  {r['mean_s']:>8.2f} s  {r['case_id']} {r['name']} ({r['attempts']} attempts)")
    print("flakiest cases:" if out["flakiest"] else "flakiest cases: none")
    for f in out["flakiest"]:
        print(f"  {f['rate'] * 100:>5.0f}%  {f['case_id']} {f['name']} ({f['flaky_runs']}/{f['runs']} runs): "
              f"{' '.join(f['outcomes'])}")
