"""Exit latency of ``run`` after its operator lets go (median of N runs, real processes):

- SIGINT while a case hangs (a stuck native call): signal -> process exit; the case gets the stop grace
  (``stop-grace = 2``), then its executor is killed. Target: grace + 2 s.
- SIGINT while short cases run: signal -> exit (the running case finishes, the rest is skipped).
- second SIGINT while a case hangs (grace 300 s): second signal -> exit.
- terminal hangup (the pty master closed) mid-run: ``run`` finishes detached, so there is no exit
  latency to speak of; measured is the whole run with and without the hangup (it should cost nothing).

    python bench/stop.py [--runs 5]
"""
from __future__ import annotations

import argparse
import fcntl
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.demo_server import serve  # noqa: E402
from tests.system.engine import BIN, run_dir_status, start_run, wait_for, write_config  # noqa: E402
from tests.system.suites import api_case, write_suite  # noqa: E402

HANG = {"pre": [{"name": "preScript", "value": "import time\ntime.sleep(600)", "index": 1}]}


def running(tmp: Path, case_id: str) -> bool:
    return any((s.get("current") or {}).get("case_id") == case_id for s in (run_dir_status(tmp) or {}).get("stages", []))


def sigint_latency(url: str, *, hang: bool, twice: bool = False) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-stop-") as d:
        tmp = Path(d)
        first = api_case("first", url, "/api/health", controller=HANG) if hang else api_case("first", url, "/api/slow?ms=500")
        suite = write_suite(tmp / "suite", {"c1": [first] + [api_case(f"n{i}", url, "/api/slow?ms=500") for i in range(5)]})
        proc = start_run(suite, write_config(tmp, api_workers=1, browsers=0, stop_grace=300 if twice else 2))
        wait_for(lambda: running(tmp, "first"), 60, "the first case running")
        proc.send_signal(signal.SIGINT)
        if twice:
            wait_for(lambda: "draining" in (tmp / "storage" / "log" / "supervisor.log").read_text(), 10, "the stop")
            proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        proc.communicate(timeout=120)
        took = time.monotonic() - t0
        assert proc.returncode == 130, proc.returncode
        return took


def run_on_pty(url: str, *, hangup: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-hup-") as d:
        tmp = Path(d)
        suite = write_suite(tmp / "suite", {"c1": [api_case(f"a{i}", url, "/api/slow?ms=400") for i in range(8)]})
        cfg = write_config(tmp, api_workers=1, browsers=0)
        master, slave = os.openpty()

        def own_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        t0 = time.monotonic()
        proc = subprocess.Popen([str(BIN), "run", str(suite), "--config", str(cfg)], cwd=str(ROOT), stdin=slave,
                                stdout=slave, stderr=slave, preexec_fn=own_terminal)
        os.close(slave)
        seen = bytearray()

        def drain() -> None:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                seen.extend(chunk)
        threading.Thread(target=drain, daemon=True).start()
        wait_for(lambda: b"PASS" in seen, 60, "a first case")
        if hangup:
            os.close(master)
        code = proc.wait(timeout=120)
        took = time.monotonic() - t0
        if not hangup:
            os.close(master)
        assert code == 0, code
        return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    server, url = serve(0)
    try:
        rows = [
            ("SIGINT, case hanging, stop-grace 2 s: signal -> exit", lambda: sigint_latency(url, hang=True), "<= 4.0 s"),
            ("SIGINT, short cases: signal -> exit", lambda: sigint_latency(url, hang=False), "<= 2.0 s"),
            ("second SIGINT, case hanging, stop-grace 300 s: 2nd signal -> exit", lambda: sigint_latency(url, hang=True, twice=True), "<= 2.0 s"),
            ("8 cases on a pty, undisturbed: whole run", lambda: run_on_pty(url, hangup=False), ""),
            ("8 cases on a pty, hung up after the 1st case: whole run", lambda: run_on_pty(url, hangup=True), "= undisturbed"),
        ]
        for what, measure, target in rows:
            values = [measure() for _ in range(args.runs)]
            print(f"{what}: median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, "
                  f"n={len(values)}){'  target ' + target if target else ''}", flush=True)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
