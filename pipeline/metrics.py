"""The engine's Prometheus metrics, kept in the supervisor process so counters survive every stage restart
(a scrape never goes backwards while the engine runs) and exported with ``prometheus_client`` (imported by
the first scrape only: a run without ``[Metrics] listen`` never pays for it).

Where the numbers come from (messages the supervisor already receives, no side files):
- ``case.reported`` (one per attempt, from the aggregator): ``liuma_attempts_total``, ``liuma_case_duration_seconds``;
- ``task.reported`` (reliable, carries ``by_kind``): ``liuma_cases_total`` — a case counts once, by its final status;
- heartbeat ``stats`` of the scheduler, uploader and fetcher: the queue, task, upload and platform gauges;
- heartbeat ``stats["observed"]`` of any stage (cumulative per incarnation, see ``observe_local``): the
  browser start histogram; the supervisor adds the difference to the last heartbeat of the same
  incarnation, so a lost heartbeat loses nothing and a restarted stage starts from zero without a reset;
- the supervisor's own watchers and deadline table: restarts, executor and device states.

Label sets are fixed: every known kind/status/state is exported, a state that drops to zero as zero.
"""
from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:   # prometheus_client (~35 ms of imports) only when ``[Metrics] listen`` serves a scrape (#21)
    from prometheus_client.core import Metric

__all__ = ["Histogram", "EngineMetrics", "observe_local", "local_snapshot", "KINDS", "STATUSES", "OUTCOMES",
           "EXECUTOR_STATES", "DEVICE_STATES", "BUCKETS"]

KINDS = ("API", "WEB", "APP")
STATUSES = ("passed", "failed", "error", "skipped")
OUTCOMES = ("passed", "failed", "error", "skipped", "broken", "flaky")
EXECUTOR_STATES = ("idle", "busy", "starting", "down")
DEVICE_STATES = ("available", "busy", "quarantined", "down")
BUCKETS = {
    "case_duration_seconds": (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
    "browser_start_seconds": (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0),
}


class Histogram:
    """Fixed buckets, per-bucket (not cumulative) counts plus one overflow slot; mergeable by difference."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def add(self, counts: list[int], total: float) -> None:
        if len(counts) == len(self.counts):
            self.counts = [a + max(0, b) for a, b in zip(self.counts, counts)]
            self.sum += max(0.0, total)

    def snapshot(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "sum": self.sum}

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        run = 0
        for le, n in zip(self.buckets, self.counts):
            run += n
            out.append((repr(float(le)), run))
        out.append(("+Inf", run + self.counts[-1]))
        return out


# -- stage side: observations a stage process makes, shipped cumulatively in its heartbeat stats --------
_LOCAL: dict[str, Histogram] = {}
_LOCAL_LOCK = threading.Lock()


def observe_local(name: str, value: float) -> None:
    """Record one observation of histogram ``name`` (a key of ``BUCKETS``) in this stage process."""
    with _LOCAL_LOCK:
        _LOCAL.setdefault(name, Histogram(BUCKETS[name])).observe(value)


def local_snapshot() -> dict[str, Any]:
    with _LOCAL_LOCK:
        return {name: h.snapshot() for name, h in _LOCAL.items()}


# -- supervisor side -----------------------------------------------------------------------------------
class EngineMetrics:
    """Counters and the latest gauges. Fed by the supervisor's thread, read by the HTTP thread (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cases: dict[tuple[str, str], int] = {}
        self.attempts: dict[tuple[str, str], int] = {}
        self.durations: dict[str, Histogram] = {}
        self.observed: dict[str, Histogram] = {n: Histogram(b) for n, b in BUCKETS.items() if n != "case_duration_seconds"}
        self.restarts: dict[str, int] = {}
        self.gauges: dict[str, Any] = {"queue_cases": 0, "queue_oldest_wait_seconds": 0.0, "tasks_running": 0,
                                       "executors": {}, "devices": {}, "uploads_pending": 0, "platform_up": 0}
        self._attempt_keys: dict[str, set[tuple[Any, ...]]] = {}
        self._tasks_counted: set[str] = set()
        self._stage_obs: dict[str, tuple[int, dict[str, Any]]] = {}

    # -- events ----------------------------------------------------------------------------------
    def on_case(self, body: dict[str, Any]) -> None:
        """``case.reported``: one attempt (de-duplicated by its result key)."""
        key = (body.get("collection_id"), body.get("case_id"), body.get("index"), body.get("runTimes"))
        kind = str(body.get("case_type") or "API")
        with self.lock:
            seen = self._attempt_keys.setdefault(str(body.get("task_id")), set())
            if key in seen:
                return
            seen.add(key)
            outcome = str(body.get("outcome") or "")
            self.attempts[(kind, outcome)] = self.attempts.get((kind, outcome), 0) + 1
            self.durations.setdefault(kind, Histogram(BUCKETS["case_duration_seconds"])).observe(
                max(0.0, float(body.get("elapsed_ms") or 0) / 1000.0))

    def on_task(self, body: dict[str, Any]) -> None:
        """``task.reported``: the final status of each of its cases, once per task."""
        task_id = str(body.get("task_id"))
        with self.lock:
            if task_id in self._tasks_counted:
                return
            self._tasks_counted.add(task_id)
            self._attempt_keys.pop(task_id, None)
            for kind, by in (body.get("by_kind") or {}).items():
                for status, n in by.items():
                    self.cases[(kind, status)] = self.cases.get((kind, status), 0) + int(n)

    def on_stage_stats(self, stage: str, inc: int, stats: dict[str, Any]) -> None:
        """A heartbeat's ``observed`` snapshot: add what is new since this incarnation's last one."""
        snap = stats.get("observed")
        if not isinstance(snap, dict):
            return
        with self.lock:
            last_inc, last = self._stage_obs.get(stage, (-1, {}))
            if inc < last_inc:
                return
            if inc > last_inc:
                last = {}
            for name, cur in snap.items():
                h = self.observed.get(name)
                if h is None or not isinstance(cur, dict):
                    continue
                prev = last.get(name) or {"counts": [0] * len(h.counts), "sum": 0.0}
                try:
                    h.add([int(a) - int(b) for a, b in zip(cur["counts"], prev["counts"])], float(cur["sum"]) - float(prev["sum"]))
                except (KeyError, TypeError, ValueError):
                    continue
            self._stage_obs[stage] = (inc, snap)

    def set_restarts(self, restarts: dict[str, int]) -> None:
        with self.lock:
            for name, n in restarts.items():
                self.restarts[name] = max(self.restarts.get(name, 0), int(n))   # a removed stage keeps its count

    def set_gauges(self, **values: Any) -> None:
        with self.lock:
            self.gauges.update(values)

    # -- export (prometheus_client Collector protocol) ----------------------------------------------
    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from self._families()

    def _families(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        c = CounterMetricFamily("liuma_cases", "Cases finished, by case type and final status (last attempt).",
                                labels=["kind", "status"])
        for kind in _kinds(k for k, _ in self.cases):
            for status in STATUSES:
                c.add_metric([kind, status], self.cases.get((kind, status), 0))
        yield c
        a = CounterMetricFamily("liuma_attempts", "Case attempts, by case type and outcome.", labels=["kind", "outcome"])
        for kind in _kinds(k for k, _ in self.attempts):
            for outcome in _extend(OUTCOMES, (o for k, o in self.attempts if k == kind)):
                a.add_metric([kind, outcome], self.attempts.get((kind, outcome), 0))
        yield a
        h = HistogramMetricFamily("liuma_case_duration_seconds", "Case attempt duration, by case type.", labels=["kind"])
        for kind in _kinds(self.durations):
            hist = self.durations.get(kind) or Histogram(BUCKETS["case_duration_seconds"])
            h.add_metric([kind], hist.cumulative(), hist.sum)
        yield h
        b = HistogramMetricFamily("liuma_browser_start_seconds", "Time to start a browser (WebDriver session).")
        hist = self.observed["browser_start_seconds"]
        b.add_metric([], hist.cumulative(), hist.sum)
        yield b
        r = CounterMetricFamily("liuma_stage_restarts", "Stage restarts by the supervisor.", labels=["stage"])
        for name in sorted(self.restarts):
            r.add_metric([name], self.restarts[name])
        yield r
        g = self.gauges
        yield GaugeMetricFamily("liuma_queue_cases", "Cases queued, waiting for an executor.", value=g["queue_cases"])
        yield GaugeMetricFamily("liuma_queue_oldest_wait_seconds", "How long the oldest queued work has waited.",
                                value=g["queue_oldest_wait_seconds"])
        yield GaugeMetricFamily("liuma_tasks_running", "Tasks planned and not finished.", value=g["tasks_running"])
        e = GaugeMetricFamily("liuma_executors", "Executors by the case type they serve and state.", labels=["kind", "state"])
        for kind in _kinds(k for k, _ in g["executors"]):
            for state in EXECUTOR_STATES:
                e.add_metric([kind, state], g["executors"].get((kind, state), 0))
        yield e
        d = GaugeMetricFamily("liuma_devices", "APP devices by state.", labels=["state"])
        for state in DEVICE_STATES:
            d.add_metric([state], g["devices"].get(state, 0))
        yield d
        yield GaugeMetricFamily("liuma_uploads_pending", "Result uploads waiting in the outbox.", value=g["uploads_pending"])
        yield GaugeMetricFamily("liuma_platform_up", "1 when the LiuMa platform answers (0 in local mode).",
                                value=g["platform_up"])


def _kinds(seen: Iterable[str]) -> list[str]:
    return list(_extend(KINDS, seen))


def _extend(fixed: tuple[str, ...], seen: Iterable[str]) -> list[str]:
    extra = sorted({s for s in seen if s not in fixed})
    return list(fixed) + extra
