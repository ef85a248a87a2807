"""A WebDriver timeout is the host's fault only when the host was saturated during the wait: real headless
Chromium, a real page, the real host monitor; the host is saturated by CPU-burning helper processes this
test starts (4 per core) and kills. The calm case judges the same timeout against limits the host is below."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.capacity import Limits, saturation
from pipeline.errors import InfrastructureError
from pipeline.host_monitor import monitor
from stages.executor.context import RunSettings
from tests.stages.executor.web.conftest import Web, logs, op
from tests.system.engine import wait_for

pytestmark = pytest.mark.browser

SATURATED = {"max-load": 1.0, "min-free-mb": 0}          # 1 runnable per core: 4 burners per core are well above
CALM = {"max-load": 1000.0, "min-free-mb": 0}            # no host gets there


@pytest.fixture
def burners() -> Iterator[None]:
    cores = len(os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4 * cores)]
    try:
        limits = Limits(max_load=SATURATED["max-load"], min_free_mb=0)
        # the judgement windows are a step (>= 2 s here) and the retry's last 2 s: every sample of the last 3 s
        # must be the burners' (a mean over a window reaching back before them may still be calm)
        wait_for(lambda: all(x.runnable / x.cores > limits.max_load for t, x in monitor().samples()
                             if t >= time.monotonic() - 3.0) and saturation(monitor().samples(), limits,
                                                                           time.monotonic() - 3.0, time.monotonic()),
                 60, "the burners to saturate the run queue")
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _timeout_case(w: Web) -> dict:  # type: ignore[type-arg]
    return w.case(w.open(), op("page", "等待元素出现", {"element": ("ID", "never-there")}, second="2"), close=True)


def test_a_timeout_while_the_host_is_saturated_is_broken_with_the_measured_load(demo_url: str, tmp_path: Path,
                                                                                burners: None) -> None:
    w = Web(demo_url, tmp_path, RunSettings(capacity=SATURATED))
    try:
        w.ctx.deadline = time.monotonic() + 120
        with pytest.raises(InfrastructureError) as e:
            w.runner.run(_timeout_case(w), w.ctx)
        text = str(e.value)
        assert "timeout while the host was saturated: load" in text and "runnable on" in text, text
        assert "TimeoutException" in text and "等待元素出现超时" in text, text
        assert w.runner.slot(w.ctx).browser is None               # the retry gets a fresh browser
    finally:
        w.close()


def test_the_same_timeout_on_a_calm_host_stays_a_product_failure(demo_url: str, tmp_path: Path) -> None:
    w = Web(demo_url, tmp_path, RunSettings(capacity=CALM))
    try:
        w.ctx.deadline = time.monotonic() + 120
        r = w.runner.run(_timeout_case(w), w.ctx).result
        assert r.status == 2 and "等待元素出现超时" in logs(r) and "saturated" not in logs(r)
    finally:
        w.close()


def test_a_retry_waits_for_a_calm_host_and_says_so_when_it_gives_up(demo_url: str, tmp_path: Path,
                                                                   burners: None) -> None:
    busy = Web(demo_url, tmp_path, RunSettings(capacity=dict(SATURATED, **{"retry-wait": 1.0})))
    assert "runnable on" in busy.runner._wait_calm(busy.ctx)    # still saturated after the bounded wait
    calm = Web(demo_url, tmp_path, RunSettings(capacity=dict(CALM, **{"retry-wait": 1.0})))
    assert calm.runner._wait_calm(calm.ctx) == ""                # below its limits: no wait at all
