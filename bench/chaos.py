"""Chaos figures: the chaos suite (300 API + 6 WEB cases) run calm and with SIGKILLs of random stages plus one
hung stage, N times; prints cases, kills, restarts, lost and duplicated results, and the time overhead.

    python bench/chaos.py [--rounds 3] [--kills 8]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.demo_server import serve  # noqa: E402
from tests.chaos.harness import chaos_suite, final_statuses, kill_leftovers, leftovers, run_engine  # noqa: E402


def rows(d: Path) -> list[dict]:
    return json.loads((d / "reports" / "chaos" / "results.json").read_text())["caseResultList"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kills", type=int, default=8)
    args = ap.parse_args()
    server, url = serve(0)
    print(f"{'round':>5} {'cases':>6} {'kills':>6} {'restarts':>8} {'lost':>5} {'dup':>4} {'match':>6} {'calm s':>7} {'chaos s':>8} {'overhead':>8} leftovers")
    try:
        for i in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                t = Path(tmp)
                suite = chaos_suite(t / "suite", url)
                calm = run_engine(suite, t / "calm", chaos=False)
                wild = run_engine(suite, t / "wild", chaos=True, kills=args.kills, seed=100 + i)
                c_rows, w_rows = rows(t / "calm"), rows(t / "wild")
                keys = Counter((r["collectionId"], r["caseId"], r["index"], r["runTimes"]) for r in w_rows)
                cases = {k[:3] for k in keys}
                lost = len({(r["collectionId"], r["caseId"], r["index"]) for r in c_rows} - cases)
                dup = sum(v - 1 for v in keys.values())
                match = final_statuses(w_rows) == final_statuses(c_rows)
                kills = ", ".join(f"{n}" for _, n, _ in wild.kills)
                print(f"{i + 1:>5} {len(cases):>6} {len(wild.kills):>6} {sum(wild.restarts.values()):>8} {lost:>5} {dup:>4} "
                      f"{str(match):>6} {calm.wall_s:>7.1f} {wild.wall_s:>8.1f} {wild.wall_s / calm.wall_s:>7.2f}x {len(leftovers(t))}")
                print(f"      killed: {kills}")
                kill_leftovers(t)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
