"""APP device health and warm-up, measured on real Appium servers (fake driver), median of N runs:

- a device's Appium server killed mid-case -> the device quarantined (the scheduler's log line; the
  executor's health ladder after the broken case fails at once on /status);
- the server back (ready on the same port) -> the device re-admitted by its probe (bounded by
  ``[Retry] quarantine-probe``, 1 s here; the default is 60 s);
- the first case on a device: its duration with a cold runner (the session starts inside the case) and
  after the warm-up the executor now does before announcing credit.

    python bench/app_devices.py [--runs 3]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.executor.app.runner import AppRunner  # noqa: E402
from tests.appium_server import AppiumServer  # noqa: E402
from tests.stages.executor.app.appcases import by_id, case, fake_device, make_ctx, op  # noqa: E402
from tests.system.devices import app_case, device_section, executor_of, start_servers, wait_until, write_task_suite  # noqa: E402
from tests.system.engine import run_dir_status, start_run, write_config  # noqa: E402

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_time(log: Path, needle: str) -> float:
    """Wall time of the first line of ``log`` containing ``needle``."""
    for line in log.read_text(encoding="utf-8").splitlines():
        m = _STAMP.match(line)
        if m and needle in line:
            return datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise AssertionError(f"{needle!r} not in {log}")


def quarantine_once(servers: dict[str, AppiumServer]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        android = [app_case(f"a{i}", f"a{i}", wait=2.0 if i == 1 else 0.2, deviceSystem="android") for i in (1, 2, 3)]
        suite = write_task_suite(t / "suite", [
            ("android", "phone-a", android),
            ("apple", None, [app_case(f"i{i}", f"i{i}", wait=1.0, deviceSystem="apple") for i in range(1, 20)])])
        cfg = write_config(t, "".join(device_section(n, s.url) for n, s in servers.items())
                           + "[Retry]\nquarantine-probe = 1\n", api_workers=0, browsers=0)
        proc = start_run(suite, cfg)
        victim = executor_of("phone-a")
        try:
            wait_until(lambda: any(s["name"] == victim and (s.get("current") or {}).get("case_id") == "a1"
                                   for s in (run_dir_status(t) or {}).get("stages", [])), 60, "phone-a mid-case")
            port = servers["phone-a"].port
            servers["phone-a"].stop()
            killed = time.time()
            log = t / "storage" / "log" / "scheduler.log"
            wait_until(lambda: log.exists() and "(device phone-a) quarantined" in log.read_text(), 60, "quarantine", 0.05)
            servers["phone-a"] = AppiumServer(port=port).start()
            back = time.time()
            wait_until(lambda: "(device phone-a) passed its probe" in log.read_text(), 60, "re-admission", 0.05)
            quarantined = log_time(log, "(device phone-a) quarantined")
            readmitted = log_time(log, "(device phone-a) passed its probe")
        finally:
            proc.kill()
            proc.wait(30)
        return quarantined - killed, readmitted - back


def first_case_once(server: AppiumServer, warm: bool) -> tuple[float, float]:
    """(first case's seconds, session start seconds) on a fresh runner, warmed up or not."""
    with tempfile.TemporaryDirectory() as tmp:
        runner, shared = AppRunner(), {}  # type: ignore[var-annotated]
        device = fake_device(server.url)
        ctx = make_ctx(Path(tmp), device, shared)
        if warm:
            runner.warm_up(ctx)
        ops = [op("view", "输入", {"element": by_id("username")}, {"text": "a"})]
        ctx = make_ctx(Path(tmp), device, shared)
        t0 = time.monotonic()
        result = runner.run(case(ops), ctx).result
        took = time.monotonic() - t0
        assert result.status == 0, result.transactionList
        start = shared["app.session"].start_seconds
        runner.close_shared(ctx)
        return took, start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    servers = start_servers()
    try:
        q = [quarantine_once(servers) for _ in range(args.runs)]
        cold = [first_case_once(servers["phone-b"], warm=False) for _ in range(args.runs * 2)]
        warm = [first_case_once(servers["phone-b"], warm=True) for _ in range(args.runs * 2)]
    finally:
        for s in servers.values():
            s.stop()
    med: Any = statistics.median
    print(f"server killed -> device quarantined:   {med([a for a, _ in q]):.2f} s (runs: {', '.join(f'{a:.2f}' for a, _ in q)})")
    print(f"server back   -> device re-admitted:   {med([b for _, b in q]):.2f} s with quarantine-probe = 1 s "
          f"(runs: {', '.join(f'{b:.2f}' for _, b in q)})")
    print(f"first case, no warm-up:                {med([c for c, _ in cold]) * 1000:.0f} ms "
          f"(session start inside it: {med([s for _, s in cold]) * 1000:.0f} ms)")
    print(f"first case, after warm-up:             {med([c for c, _ in warm]) * 1000:.0f} ms "
          f"(session start before it: {med([s for _, s in warm]) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
