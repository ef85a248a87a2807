"""The cost of being scraped (and, as context, the engine overhead it is measured against): 1,000 and 5,000 no-op cases (API cases without steps: ~20 µs of runner work) through
every stage. Prints cases/s, time from plan to first dispatch, wall time, memory per stage (max RSS) and
message rates per hop (frames pushed, from each stage's counters). Then the cost of being scraped: pairs of
runs without and with ``[Metrics] listen`` and a client fetching ``/metrics`` every second (interleaved,
medians), and the scrape's own latency (an upper bound of the supervisor CPU it takes, per second).

    python bench/scrape.py [--sizes 1000 5000] [--workers 2] [--scrape-size 2000] [--scrape-pairs 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import noop_suite, sample  # noqa: E402  (the same no-op suite and stage sampler as bench/overhead.py)


def scraper(port: int, stop: threading.Event, every: float, took: list[float]) -> None:
    """GET /metrics every ``every`` seconds, as Prometheus would; record each request's latency."""
    while not stop.wait(every):
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                r.read()
            took.append(time.perf_counter() - t0)
        except OSError:
            pass                       # not listening yet / already gone


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cases: int, workers: int, scrape_every: float | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        suite = noop_suite(t / "suite", cases)
        (t / "run").mkdir()
        cfg = t / "config.ini"
        port = free_port()
        metrics = f"[Metrics]\nlisten = 127.0.0.1:{port}\n" if scrape_every else ""
        cfg.write_text(f"[Pipeline]\nstorage-root = {t / 'storage'}\nreport-dir = {t / 'reports'}\nrun-dir = {t / 'run'}\n"
                       f"api-workers = {workers}\nbrowsers = 0\nheartbeat-interval = 0.5\n[Logging]\nlevel = info\n" + metrics)
        mem: dict[str, float] = {}
        stats: dict[str, dict] = {}
        stop = threading.Event()
        th = threading.Thread(target=sample, args=(t / "run", stop, mem, stats), daemon=True)
        th.start()
        scrapes: list[float] = []
        if scrape_every:
            threading.Thread(target=scraper, args=(port, stop, scrape_every, scrapes), daemon=True).start()
        t0 = time.perf_counter()
        r = subprocess.run([str(ROOT / "bin" / "liuma-pipeline"), "run", str(suite), "--config", str(cfg)],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
        if r.returncode != 0:
            raise SystemExit(r.stderr[-2000:])
        rows = json.loads((t / "reports" / "noop" / "results.json").read_text())["caseResultList"]
        starts = sorted(x["startTime"] for x in rows)
        ends = sorted(x["endTime"] for x in rows)
        log = (t / "storage" / "log" / "scheduler.log").read_text()
        m = re.search(r"^(\S+ \S+) INFO stage.scheduler: task noop planned", log, re.M)
        planned = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() * 1000 if m else starts[0]
        span = (ends[-1] - starts[0]) / 1000
        return {"cases": len(rows), "wall": wall, "span": span, "rate": len(rows) / span if span else 0,
                "first_dispatch_ms": starts[0] - planned, "mem": mem, "stats": stats, "scrapes": scrapes}


def render_cost(n: int = 2000) -> float:
    """CPU seconds the supervisor spends rendering one /metrics answer, in this process (no network): the
    metrics of a busy engine (every label combination populated, 50 stages with restarts)."""
    import sys
    sys.path.insert(0, str(ROOT))
    from prometheus_client import CollectorRegistry, generate_latest

    from pipeline.metrics import EngineMetrics
    em = EngineMetrics()
    for i in range(5000):
        em.on_case({"task_id": f"t{i % 7}", "case_id": f"c{i}", "collection_id": "x", "index": 1, "runTimes": 1,
                    "outcome": ("passed", "failed", "broken")[i % 3], "elapsed_ms": i % 900, "case_type": ("API", "WEB", "APP")[i % 3]})
    em.set_restarts({f"executor-{i}": i for i in range(50)})
    reg = CollectorRegistry(auto_describe=False)
    reg.register(em)
    t0 = time.process_time()
    for _ in range(n):
        generate_latest(reg)
    return (time.process_time() - t0) / n


def scrape_cost(cases: int, workers: int, pairs: int) -> None:
    """Throughput without and with a scrape every second, in interleaved pairs (the machine's drift hits both)."""
    plain, scraped, took = [], [], []
    for _ in range(pairs):
        plain.append(run(cases, workers)["rate"])
        res = run(cases, workers, scrape_every=1.0)
        scraped.append(res["rate"])
        took += res["scrapes"]
    a, b = statistics.median(plain), statistics.median(scraped)
    print(f"\nscraping /metrics every second, {cases} no-op cases, {pairs} interleaved pairs (median cases/s):")
    print(f"  without: {a:.0f} cases/s  ({', '.join(f'{x:.0f}' for x in plain)})")
    print(f"  with:    {b:.0f} cases/s  ({', '.join(f'{x:.0f}' for x in scraped)})")
    print(f"  ratio with/without: {b / a:.3f}  (cost {100 * (1 - b / a):+.1f} %; run-to-run spread of the pairs above)")
    if took:
        lat = statistics.median(took)
        print(f"  one scrape: median {1000 * lat:.2f} ms, max {1000 * max(took):.2f} ms over {len(took)} scrapes "
              f"-> at most {100 * lat:.2f} % of one core at 1 scrape/s")
    cpu = render_cost()
    print(f"  rendering one answer: {1000 * cpu:.3f} ms CPU in the supervisor -> {100 * cpu:.3f} % of one core "
          f"(the supervisor loop's share of the GIL) at 1 scrape/s")
    print("target: scraping every second costs < 1 % of the no-op case throughput")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scrape-size", type=int, default=2000, help="cases per run of the scrape comparison (0: skip it)")
    ap.add_argument("--scrape-pairs", type=int, default=3)
    args = ap.parse_args()
    print(f"{'cases':>6} {'wall s':>7} {'run s':>6} {'cases/s':>8} {'ms/case':>8} {'plan->1st dispatch':>19}")
    results = []
    for n in args.sizes:
        res = run(n, args.workers)
        results.append(res)
        print(f"{res['cases']:>6} {res['wall']:>7.2f} {res['span']:>6.2f} {res['rate']:>8.0f} {1000 / res['rate']:>8.2f} "
              f"{res['first_dispatch_ms']:>16.0f} ms")
    if not results:                  # --sizes with no value: only the scrape comparison
        scrape_cost(args.scrape_size, args.workers, args.scrape_pairs)
        return
    last = results[-1]
    print(f"\nmax RSS per stage (MB), {last['cases']}-case run:")
    print("  " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(last["mem"].items())))
    print(f"frames pushed per hop, {last['cases']}-case run (includes acks, statuses, heartbeats; rate over the run span):")
    for src, st in sorted(last["stats"].items()):
        for dst, n in sorted((st.get("sent_to") or {}).items()):
            print(f"  {src:>11} -> {dst:<11} {n:>7}  {n / last['span']:>8.0f}/s")
    print("targets: >= 1000 no-op cases/s (<= 1 ms per case); first dispatch < 1 s after the plan")
    if args.scrape_size:
        scrape_cost(args.scrape_size, args.workers, args.scrape_pairs)


if __name__ == "__main__":
    main()
