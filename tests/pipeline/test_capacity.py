"""The capacity policy (pipeline/capacity.py): sizing for ``browsers = auto`` and admission by rank, from
hand-given host samples and times (the policy is pure; the probe is tested against this host below)."""
from __future__ import annotations

import pytest

from pipeline.capacity import HostSample, Limits, admission, capacity, pool_size
from pipeline.capacity_probe import browser_count, grid_slots, limits_from, measure
from pipeline.config import load_config_text
from pipeline.errors import ConfigError
from tests.appium_server import free_port

BIG = HostSample(cores=8, load1=0.5, mem_available_mb=32000, shm_free_mb=8000)


def test_pool_size_is_bound_by_cores_memory_and_shm() -> None:
    lim = Limits(cores_per_browser=0.5, min_free_mb=500, browser_mb=400, shm_per_browser_mb=64, max_browsers=64)
    assert pool_size(BIG, lim) == 16                                                     # cores: 8 / 0.5
    assert pool_size(HostSample(8, 0.5, 500 + 3 * 400 + 10, 8000), lim) == 3             # memory
    assert pool_size(HostSample(8, 0.5, 500 + 3 * 400 + 10, 8000, browser_mb=200), lim) == 6   # measured PSS wins
    assert pool_size(HostSample(8, 0.5, 32000, 64 * 2 + 1), lim) == 2                    # /dev/shm
    assert pool_size(HostSample(2, 0.5, 100, 0), lim) == 1                               # never 0
    assert pool_size(BIG, Limits(max_browsers=5)) == 5


def test_capacity_shrinks_with_load_memory_and_shm_and_names_the_limit() -> None:
    lim = Limits(max_load=2.0, min_free_mb=1000, browser_mb=300, shm_per_browser_mb=64)
    assert capacity(HostSample(2, 3.9, 9000, 1000), lim, 4) == (4, "")
    cap, why = capacity(HostSample(2, 8.0, 9000, 1000), lim, 4)          # 4/core against 2/core: half
    assert cap == 2 and "load 8.0 on 2 cores" in why
    assert capacity(HostSample(2, 80.0, 9000, 1000), lim, 4)[0] == 1     # never below one
    cap, why = capacity(HostSample(2, 0.1, 1000 - 301, 1000), lim, 4)    # 301 MB short: two browsers' worth
    assert cap == 2 and "available memory 699 MB" in why
    cap, why = capacity(HostSample(2, 0.1, 9000, 10), lim, 4)
    assert cap == 1 and "/dev/shm" in why


def test_admission_by_rank_with_a_hold_after_parking() -> None:
    lim = Limits(max_load=1.0, hold_s=3.0)
    busy = HostSample(2, 4.0, 9000, 1000)          # 2/core against 1/core: capacity 2 of 4
    calm = HostSample(2, 0.2, 9000, 1000)
    assert [admission(busy, lim, 4, r, None, 10.0).admit for r in range(4)] == [True, True, False, False]
    parked = admission(busy, lim, 4, 3, None, 10.0)
    assert "load 4.0" in parked.reason and parked.capacity == 2
    assert not admission(calm, lim, 4, 3, 10.0, 11.0).admit              # calm again, but held
    assert admission(calm, lim, 4, 3, 10.0, 13.5).admit
    assert admission(HostSample(2, 99.0, 10, 0), lim, 4, 0, None, 0.0).admit   # rank 0 always runs


def test_limits_and_browser_modes_come_from_the_config() -> None:
    cfg = load_config_text("[Pipeline]\nbrowsers = auto\n[Capacity]\nmax-load = 1.5\ncores-per-browser = 1\nmax-browsers = 3\n")
    lim = limits_from(cfg.values)
    assert (lim.max_load, lim.cores_per_browser, lim.max_browsers) == (1.5, 1.0, 3)
    assert 1 <= browser_count(cfg.values) <= 3
    assert browser_count(load_config_text("[Pipeline]\nbrowsers = 5\n").values) == 5
    with pytest.raises(ConfigError, match="browsers"):
        load_config_text("[Pipeline]\nbrowsers = many\n")
    with pytest.raises(ConfigError, match="remote-url"):
        browser_count(load_config_text("[Pipeline]\nbrowsers = grid\n").values)


def test_grid_down_is_a_clear_error() -> None:
    port = free_port()
    with pytest.raises(ConfigError, match=rf"127.0.0.1:{port}/status does not answer"):
        grid_slots(f"http://127.0.0.1:{port}")


def test_measure_reads_this_host() -> None:
    s = measure()
    assert s.cores >= 1 and s.mem_available_mb > 0 and s.load1 >= 0 and s.shm_free_mb >= 0


def test_a_spare_browser_needs_room_for_one_more_browser_above_min_free() -> None:
    from pipeline.capacity import spare_room
    lim = Limits(min_free_mb=512, browser_mb=350, shm_per_browser_mb=64)
    assert spare_room(HostSample(cores=2, load1=9.0, mem_available_mb=900, shm_free_mb=1000), lim) == ""   # load: no matter
    assert "< one browser (350 MB)" in spare_room(HostSample(cores=2, load1=0, mem_available_mb=800, shm_free_mb=1000), lim)
    assert "< one browser (500 MB)" in spare_room(HostSample(2, 0, 900, 1000, browser_mb=500), lim)   # measured PSS
    assert "/dev/shm free 10 MB" in spare_room(HostSample(2, 0, 4000, 10), lim)


def test_saturation_is_judged_on_the_samples_taken_during_the_wait() -> None:
    from pipeline.capacity import saturation
    lim = Limits(max_load=2.0, min_free_mb=500)

    def s(runnable: float, mem: float = 4000) -> HostSample:
        return HostSample(cores=2, load1=0, mem_available_mb=mem, shm_free_mb=1000, runnable=runnable)
    busy = [(10.0, s(1)), (11.0, s(9)), (11.5, s(7)), (12.0, s(8)), (20.0, s(0))]
    assert "load 8.0 runnable on 2 cores > 2/core (mean of 3 samples over 1.0 s)" == saturation(busy, lim, 11.0, 12.0)
    assert saturation(busy, lim, 19.0, 21.0) == ""                     # calm by the time of this wait
    assert saturation(busy, lim, 12.1, 12.2) != ""                     # a short wait: the sample just before
    assert "available memory 300 MB < 500 MB" == saturation([(1.0, s(0, 300))], lim, 0.5, 1.5)
    assert saturation([], lim, 0, 1) == "" and saturation([(1.0, s(-1))], lim, 0, 2) == ""   # not measured: calm


def test_admission_reads_the_lasting_run_queue_not_a_burst() -> None:
    from pipeline.capacity import recent_load

    def s(runnable: float) -> HostSample:
        return HostSample(cores=2, load1=9.5, mem_available_mb=4000, shm_free_mb=1000, runnable=runnable)
    calm = [(t / 2, s(1)) for t in range(20)]                           # 0 .. 9.5 s, one runnable
    start_burst = calm[:6] + [(t, s(30)) for t in (3.0, 3.5, 4.0)] + calm[9:]
    assert recent_load(start_burst, now=10.0) == 1.0                    # 3 burst samples of 20: not a lasting load
    lasting = [(t / 2, s(12 if t >= 8 else 1)) for t in range(20)]
    assert recent_load(lasting, now=10.0) == 12.0                        # the last 6 s busy: parks
    assert recent_load(lasting, now=30.0) == -1.0                       # nothing in the last 10 s: the caller falls back
    assert recent_load([(0.0, s(-1))] * 8, now=10.0) == -1.0            # unmeasured samples do not count
    assert recent_load([(t / 2, s(t % 2)) for t in range(21)], now=10.0) == 0.0  # 21 samples, 10 of them 1
    assert recent_load([(0.0, s(1))] + [(t / 2, s(t % 2)) for t in range(2, 21)], now=10.0) == 0.5  # 20 samples: the middle two


def test_a_young_monitor_parks_only_when_the_average_and_the_run_queue_both_say_busy() -> None:
    from pipeline.capacity import recent_load

    def s(runnable: float, load1: float) -> HostSample:
        return HostSample(cores=2, load1=load1, mem_available_mb=4000, shm_free_mb=1000, runnable=runnable)
    after_a_burst = [(t / 2, s(1, 18.6)) for t in range(4)]             # the previous suite left its average
    assert recent_load(after_a_burst, now=2.0) == 1.0                   # the host is calm now: admit
    own_start = [(t / 2, s(20, 0.4)) for t in range(6)]                  # our browsers starting on a calm host
    assert recent_load(own_start, now=3.0) == 0.4
    busy = [(t / 2, s(14 + t, 16.0)) for t in range(3)]                 # busy before we came, and still
    assert recent_load(busy, now=1.5) == 15.0
    assert recent_load(busy[:1], now=0.0) == 14.0                       # one sample is enough to decide on
    later = [(t / 2, s(14, 1.0)) for t in range(6)] + [(t / 2, s(14, 1.0)) for t in range(6, 21)]
    assert recent_load(later, now=10.0) == 14.0                         # a full window: its median alone


def test_a_young_monitor_compares_its_own_start_up_with_the_host_before_the_run() -> None:
    from pipeline.capacity import recent_load

    def s(runnable: float, load1: float) -> HostSample:
        return HostSample(cores=2, load1=load1, mem_available_mb=4000, shm_free_mb=1000, runnable=runnable)
    own_start = [(100 + t / 2, s(27, 15.0)) for t in range(6)]          # our browsers starting after a heavy suite
    assert recent_load(own_start, now=103.0) == 15.0                    # the average alone would park
    assert recent_load(own_start, now=103.0, before=(99.5, 1.0)) == 1.0  # the host was calm before us: admit
    assert recent_load(own_start, now=103.0, before=(99.5, 20.0)) == 20.0  # busy before and still: park
    assert recent_load(own_start, now=103.0, before=(80.0, 1.0)) == 15.0  # a before older than the span is not read
    full = [(100 + t / 2, s(3, 15.0)) for t in range(21)]
    assert recent_load(full, now=110.0, before=(99.5, 20.0)) == 3.0     # a full window: its median alone


def test_the_host_before_the_run_is_measured_and_inherited_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess
    import sys
    import time

    from pipeline import host_monitor
    monkeypatch.delenv(host_monitor.BEFORE_ENV, raising=False)
    assert host_monitor.before() is None
    value = host_monitor.record_before()
    got = host_monitor.before()
    assert got is not None and got[1] == value >= 0 and abs(got[0] - time.monotonic()) < 5
    child = subprocess.run([sys.executable, "-c", "from pipeline import host_monitor; print(host_monitor.before())"],
                           capture_output=True, text=True, env=dict(os.environ), check=True,
                           cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert child.stdout.strip() == repr(got)
    monkeypatch.setenv(host_monitor.BEFORE_ENV, "garbage")
    assert host_monitor.before() is None
