"""Reload planning without processes: live vs restart-only keys, pool changes keyed by executor signature."""
from __future__ import annotations

from pipeline.config import load_config_text
from pipeline.reload import changed_keys, desired_pool, executor_entries, merge_live, plan_pool

API, WEB = ("API",), ("API", "WEB")


def pool(api: int, browsers: int, devices: tuple[str, ...] = ()) -> list:
    cfg = load_config_text(f"[Pipeline]\napi-workers = {api}\nbrowsers = {browsers}\n"
                           + "".join(f"[Device:{d}]\nudid = {d}\n" for d in devices))
    return desired_pool(cfg.values, cfg.devices)


def test_desired_pool_and_fresh_entries_match_the_cli_numbering() -> None:
    assert executor_entries(pool(2, 1, ("pixel",))) == [
        {"name": "executor-1", "kinds": ["API"]}, {"name": "executor-2", "kinds": ["API"]},
        {"name": "executor-3", "kinds": ["API", "WEB"]}, {"name": "executor-4", "kinds": ["APP"], "device": "pixel"}]


def test_growing_keeps_every_running_executor_and_appends_new_names() -> None:
    cur = executor_entries(pool(2, 1))
    plan = plan_pool(cur, pool(3, 1))
    assert plan.start == ["executor-4"] and plan.retire == []
    assert plan.executors[:3] == cur and plan.executors[3] == {"name": "executor-4", "kinds": ["API"]}


def test_shrinking_retires_idle_highest_first_and_keeps_entries_for_stable_slots() -> None:
    cur = executor_entries(pool(3, 1))
    plan = plan_pool(cur, pool(1, 1))
    assert plan.retire == ["executor-3", "executor-2"] and plan.start == []
    assert [e["name"] for e in plan.executors] == ["executor-1", "executor-2", "executor-3", "executor-4"]
    assert [bool(e.get("retired")) for e in plan.executors] == [False, True, True, False]
    assert not any(e.get("retired") for e in cur)              # the caller's list is not modified
    # a busy executor is retired last: the idle ones go first
    assert plan_pool(cur, pool(1, 1), busy={"executor-3"}).retire == ["executor-2", "executor-1"]
    # one busy executor is retired last: with one to remove, the idle one goes
    plan = plan_pool(cur, pool(2, 1), busy={"executor-3"})
    assert plan.retire == ["executor-2"]


def test_growing_again_reuses_a_retired_name_before_inventing_one() -> None:
    shrunk = plan_pool(executor_entries(pool(2, 0)), pool(1, 0)).executors
    plan = plan_pool(shrunk, pool(3, 0))
    assert plan.start == ["executor-2", "executor-3"]
    assert not any(e.get("retired") for e in plan.executors)


def test_devices_and_browsers_change_independently() -> None:
    cur = executor_entries(pool(1, 1, ("a",)))
    plan = plan_pool(cur, pool(1, 0, ("a", "b")))
    assert plan.retire == ["executor-2"] and plan.start == ["executor-4"]
    assert plan.executors[-1] == {"name": "executor-4", "kinds": ["APP"], "device": "b"}
    assert plan_pool(cur, pool(1, 1, ("a",))).start == [] and plan_pool(cur, pool(1, 1, ("a",))).retire == []


def test_restart_only_keys_keep_their_old_value_and_are_named() -> None:
    old = load_config_text("[Pipeline]\nstorage-root = /a\ncase-timeout = 10\n").values
    new = load_config_text("[Pipeline]\nstorage-root = /b\ncase-timeout = 20\n[Logging]\nlevel = debug\n").values
    merged, ignored = merge_live(old, new)
    assert ignored == ["Pipeline.storage-root"]
    assert merged["Pipeline"]["storage-root"] == "/a" and merged["Pipeline"]["case-timeout"] == 20.0
    assert merged["Logging"]["level"] == "debug"
    assert changed_keys(old, merged) == ["Logging.level", "Pipeline.case-timeout"]
    assert changed_keys(old, old) == []
