"""EngineMetrics: counters from real message bodies' shapes, histogram merging by difference, fixed label
sets, and the exposition parsed back with prometheus_client's own parser."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import metrics as m
from pipeline.metrics import BUCKETS, EngineMetrics, Histogram


def parse(em: EngineMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(em)
    out = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def case(task: str, case_id: str, run_times: int, outcome: str, ms: int = 120, kind: str = "API") -> dict:
    return {"task_id": task, "case_id": case_id, "collection_id": "c1", "index": 1, "runTimes": run_times,
            "outcome": outcome, "elapsed_ms": ms, "case_type": kind, "status": 0}


def test_attempts_are_counted_once_and_cases_by_final_status_at_task_report() -> None:
    em = EngineMetrics()
    em.on_case(case("t", "a", 1, "broken"))
    em.on_case(case("t", "a", 1, "broken"))          # re-sent: not counted twice
    em.on_case(case("t", "a", 2, "flaky", ms=2500))
    em.on_task({"task_id": "t", "by_kind": {"API": {"passed": 1}}})
    em.on_task({"task_id": "t", "by_kind": {"API": {"passed": 1}}})     # a re-sent report
    s = parse(em)
    assert s[("liuma_attempts_total", (("kind", "API"), ("outcome", "broken")))] == 1
    assert s[("liuma_attempts_total", (("kind", "API"), ("outcome", "flaky")))] == 1
    assert s[("liuma_cases_total", (("kind", "API"), ("status", "passed")))] == 1
    assert s[("liuma_cases_total", (("kind", "WEB"), ("status", "failed")))] == 0     # fixed labels, zero
    assert s[("liuma_case_duration_seconds_count", (("kind", "API"),))] == 2
    assert s[("liuma_case_duration_seconds_sum", (("kind", "API"),))] == 2.62
    assert s[("liuma_case_duration_seconds_bucket", (("kind", "API"), ("le", "0.25")))] == 1
    assert s[("liuma_case_duration_seconds_bucket", (("kind", "API"), ("le", "+Inf")))] == 2


def test_stage_observations_merge_by_difference_and_a_new_incarnation_starts_from_zero() -> None:
    h = Histogram(BUCKETS["browser_start_seconds"])
    h.observe(0.6)
    first = {"observed": {"browser_start_seconds": h.snapshot()}}
    em = EngineMetrics()
    em.on_stage_stats("executor-2", 0, first)
    em.on_stage_stats("executor-2", 0, first)                 # the same snapshot again: nothing new
    h.observe(1.2)
    em.on_stage_stats("executor-2", 0, {"observed": {"browser_start_seconds": h.snapshot()}})
    fresh = Histogram(BUCKETS["browser_start_seconds"])      # restarted: its counts begin at zero again
    fresh.observe(2.5)
    em.on_stage_stats("executor-2", 1, {"observed": {"browser_start_seconds": fresh.snapshot()}})
    em.on_stage_stats("executor-2", 0, {"observed": {"browser_start_seconds": h.snapshot()}})   # a stale incarnation
    s = parse(em)
    assert s[("liuma_browser_start_seconds_count", ())] == 3
    assert abs(s[("liuma_browser_start_seconds_sum", ())] - 4.3) < 1e-9
    assert s[("liuma_browser_start_seconds_bucket", (("le", "0.75"),))] == 1


def test_restart_counts_never_go_backwards_and_states_drop_to_zero() -> None:
    em = EngineMetrics()
    em.set_restarts({"executor-3": 2, "scheduler": 0})
    em.set_restarts({"scheduler": 1})                          # executor-3 retired by a reload: kept
    em.set_gauges(executors={("API", "busy"): 1}, devices={"quarantined": 1}, queue_cases=4, queue_oldest_wait_seconds=2.5)
    em.set_gauges(executors={("API", "idle"): 1}, devices={})
    s = parse(em)
    assert s[("liuma_stage_restarts_total", (("stage", "executor-3"),))] == 2
    assert s[("liuma_stage_restarts_total", (("stage", "scheduler"),))] == 1
    assert s[("liuma_executors", (("kind", "API"), ("state", "busy")))] == 0
    assert s[("liuma_executors", (("kind", "API"), ("state", "idle")))] == 1
    assert s[("liuma_devices", (("state", "quarantined"),))] == 0
    assert s[("liuma_queue_cases", ())] == 4 and s[("liuma_queue_oldest_wait_seconds", ())] == 2.5


def test_local_observations_are_what_a_stage_heartbeat_ships() -> None:
    before = m.local_snapshot().get("browser_start_seconds", {"counts": [0] * (len(BUCKETS["browser_start_seconds"]) + 1)})
    m.observe_local("browser_start_seconds", 0.4)
    after = m.local_snapshot()["browser_start_seconds"]
    assert sum(after["counts"]) == sum(before["counts"]) + 1
