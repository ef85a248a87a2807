"""Device quarantine: the pure policy (table-tested, time injected) and the scheduler around it (no processes)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.messages import Kind
from pipeline.models import Status
from stages.scheduler import Scheduler
from stages.scheduler.quarantine import Quarantine
from tests.fakes import FakeMailbox, Sent, envelope
from tests.stages.scheduler.test_scheduler import cases_of, coll, make, results, runs, start, submit

LOST = "broken: 设备[phone-a]会话已丢失: MaxRetryError: Connection refused"


# -- the policy ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("after, window, times, held_at", [
    (2, 300.0, [0.0, 100.0], 1),               # second failure inside the window holds
    (2, 300.0, [0.0, 300.0, 310.0], 2),        # the first one fell out of the window
    (2, 300.0, [0.0, 301.0, 700.0], None),     # never two within 300 s
    (3, 10.0, [0.0, 1.0, 2.0], 2),
    (1, 300.0, [5.0], 0),
    (0, 300.0, [0.0, 1.0, 2.0, 3.0], None),    # 0 = quarantine off
])
def test_n_failures_in_a_window_hold_the_executor(after: int, window: float, times: list[float], held_at: int | None) -> None:
    q = Quarantine(after=after, window=window, probe=60.0)
    got = [q.broken("executor-3", "phone-a", f"lost #{i}", t) for i, t in enumerate(times)]
    assert got == [i == held_at for i in range(len(times))]
    if held_at is not None:
        h = q.held["executor-3"]
        assert (h.device, h.reason, h.since, h.probe_at) == ("phone-a", f"lost #{held_at}", times[held_at], times[held_at] + 60)


def test_probe_cycle_blocks_until_probe_passes() -> None:
    q = Quarantine(after=2, window=300.0, probe=60.0)
    q.broken("e", "phone-a", "first", 0.0)
    assert q.broken("e", "phone-a", "second", 10.0)
    assert q.blocked("e", 10.0) and not q.probe_due("e", 69.9) and q.probe_due("e", 70.0)
    assert not q.broken("e", "phone-a", "rest of its unit", 11.0)         # held: nothing changes
    assert q.held["e"].reason == "second"
    q.probe_sent("e", 70.0)
    assert q.blocked("e", 75.0) and not q.probe_due("e", 129.0) and q.probe_due("e", 130.0)   # unanswered: again
    assert q.snapshot(80.0, 1000.0)["e"]["probe_in_s"] is None
    assert not q.probe_result("e", False, "probe failed", 80.0)           # a failed probe keeps it, new error
    h = q.held["e"]
    assert (h.reason, h.since, h.probe_at, h.probing, h.probes) == ("probe failed", 10.0, 140.0, False, 1)
    assert q.probe_result("e", True, "", 140.0) and "e" not in q.held and not q.blocked("e", 150.0)
    assert not q.broken("e", "phone-a", "one after release", 151.0)      # the failure history was cleared
    assert not q.probe_result("e", True, "", 152.0)                      # an answer nobody waits for


def test_device_down_holds_at_once_even_with_counting_off() -> None:
    q = Quarantine(after=0, window=300.0, probe=5.0)
    assert not q.broken("e", "phone-a", "one broken case", 1.0)
    assert q.hold("e", "phone-a", "无法创建Appium会话 (https://u:k@farm/wd/hub)", 2.0)
    assert not q.hold("e", "phone-a", "again", 3.0) and q.held["e"].probe_at == 7.0   # schedule kept
    assert q.held["e"].reason == "无法创建Appium会话 (https://******@farm/wd/hub)"


def test_state_survives_a_restart(tmp_path: Path) -> None:
    q = Quarantine(after=1, window=300.0, probe=60.0)
    q.broken("executor-3", "phone-a", "session lost", 100.0)
    q.broken("executor-1", "phone-b", "x", 100.0)
    q.probe_result("executor-1", True, "", 101.0)
    q.save(tmp_path / "q.json", now=130.0, wall_now=5000.0)
    # a new scheduler, 20 s later on the wall clock and with another monotonic origin
    r = Quarantine(after=1, window=300.0, probe=60.0)
    assert r.load(tmp_path / "q.json", now=7.0, wall_now=5020.0) == ""
    h = r.held["executor-3"]
    assert (h.device, h.reason) == ("phone-a", "session lost") and round(h.since, 3) == -43.0
    assert round(h.probe_at, 3) == 17.0                                   # 10 s of its 60 s left
    assert set(r.held) == {"executor-3"} and r.last_error["executor-1"][0] == "x"
    assert Quarantine().load(tmp_path / "none.json", 0.0, 0.0) == ""
    (tmp_path / "bad.json").write_text("{nope")
    assert "bad.json" in Quarantine().load(tmp_path / "bad.json", 0.0, 0.0)


def test_device_rows_for_status() -> None:
    q = Quarantine(after=1, window=300.0, probe=60.0)
    assert q.device_state("executor-1", "phone-a", 10.0, 1000.0) == {
        "executor": "executor-1", "device": "phone-a", "state": "healthy", "last_error": None, "last_error_at": None,
        "since": None, "next_probe_at": None, "next_probe_in_s": None}
    q.hold("executor-1", "phone-a", "down", 10.0)
    row = q.device_state("executor-1", "phone-a", 40.0, 1030.0)
    assert (row["state"], row["last_error"], row["since"], row["next_probe_in_s"], row["next_probe_at"]) == (
        "quarantined", "down", 1000.0, 30.0, 1060.0)
    q.probe_sent("executor-1", 70.0)
    assert q.device_state("executor-1", "phone-a", 71.0, 1061.0)["state"] == "probing"
    q.probe_result("executor-1", True, "", 72.0)
    row = q.device_state("executor-1", "phone-a", 73.0, 1063.0)
    assert (row["state"], row["last_error"]) == ("healthy", "down")      # the last error stays visible


def test_snapshot_for_status() -> None:
    q = Quarantine(after=1, window=300.0, probe=60.0)
    q.broken("executor-3", "phone-a", "session lost", 100.0)
    assert q.snapshot(130.0, 5000.0) == {"executor-3": {"device": "phone-a", "reason": "session lost",
                                                        "since": 4970.0, "probe_in_s": 30.0}}


# -- the scheduler around it ------------------------------------------------------------------------------
def device(sched: Scheduler, name: str, dev: str | None, kinds: tuple[str, ...] = ("APP",)) -> None:
    sched.on_executor_status(envelope(Kind.EXECUTOR_STATUS, {"kinds": list(kinds), "device": dev, "idle": True,
                                                             "last_unit": ""}, src=name))


def app(*ids: str) -> list[dict[str, Any]]:
    return [{"caseId": i, "caseType": "APP"} for i in ids]


def play(sched: Scheduler, s: Sent, outcomes: dict[str, str] | None = None, reason: str = LOST) -> None:
    """The executor of ``s`` runs its unit; ``outcomes`` maps case -> "broken" (default passed)."""
    for c in s.body["cases"]:
        start(sched, s.peer, s.body, c)
        broken = (outcomes or {}).get(c["case_id"]) == "broken"
        sched.on_case_finished(envelope(Kind.CASE_FINISHED, {
            "unit_id": s.body["unit_id"], "task_id": s.body["task_id"], "collection_id": s.body["collection_id"],
            "case_id": c["case_id"], "index": c["index"], "run_times": c["run_times"],
            "status": int(Status.ERROR if broken else Status.PASS), "outcome": "broken" if broken else "passed",
            "reason": reason if broken else "", "variables": {}}, src=s.peer))
    sched.on_unit_done(envelope(Kind.UNIT_DONE, {"unit_id": s.body["unit_id"]}, src=s.peer))


def two_devices(tmp_path: Path, ini: str = "") -> tuple[Scheduler, FakeMailbox]:
    sched, fake = make(tmp_path, ini)
    device(sched, "executor-1", "phone-a")
    device(sched, "executor-2", "phone-b")
    return sched, fake


def test_broken_cases_quarantine_the_device_and_retry_on_the_other(tmp_path: Path) -> None:
    sched, fake = two_devices(tmp_path)
    submit(sched, coll("c1", *app("a1", "a2", "a3")), coll("c2", *app("b1")))
    sched.on_tick()
    on_a, on_b = sorted(runs(fake), key=lambda s: s.peer)
    assert (on_a.peer, on_b.peer) == ("executor-1", "executor-2")
    play(sched, on_a, {"a1": "broken", "a2": "broken", "a3": "broken"})
    held = sched.stats()["quarantined"]
    assert set(held) == {"executor-1"} and held["executor-1"]["device"] == "phone-a"
    assert held["executor-1"]["reason"] == LOST and 59 <= held["executor-1"]["probe_in_s"] <= 60
    sched.on_tick()
    assert len(runs(fake)) == 2                        # the idle quarantined device got nothing
    play(sched, on_b)
    sched.on_tick()
    retry = runs(fake)[2]
    assert retry.peer == "executor-2" and cases_of(retry) == [("a1", 2), ("a2", 2), ("a3", 2)]
    play(sched, retry)
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert sorted(tuple(k[2:]) for k in fin.body["expected"]) == [
        ("a1", 1, 1), ("a1", 1, 2), ("a2", 2, 1), ("a2", 2, 2), ("a3", 3, 1), ("a3", 3, 2), ("b1", 1, 1)]


def test_one_broken_case_retries_elsewhere_without_quarantine(tmp_path: Path) -> None:
    sched, fake = two_devices(tmp_path)
    submit(sched, coll("c1", *app("a1", "a2")), coll("c2", *app("b1")))
    sched.on_tick()
    on_a, on_b = sorted(runs(fake), key=lambda s: s.peer)
    play(sched, on_a, {"a1": "broken"})
    sched.on_tick()
    assert len(runs(fake)) == 2 and sched.stats()["quarantined"] == {}   # the idle executor-1 does not take it back
    play(sched, on_b)
    sched.on_tick()
    retry = runs(fake)[2]
    assert retry.peer == "executor-2" and cases_of(retry) == [("a1", 2)]  # the existing avoid, now for broken results too


def test_only_device_quarantined_cases_end_broken_with_the_reason_and_the_task_finishes(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    device(sched, "executor-1", "phone-a")
    submit(sched, coll("c1", *app("a1", "a2", "a3")), coll("c2", *app("b1")))
    sched.on_tick()
    [s] = runs(fake)
    play(sched, s, {"a1": "broken", "a2": "broken", "a3": "broken"})
    sched.on_tick()
    sched.on_tick()
    assert len(runs(fake)) == 1 and not sched.queue
    final = {(r["caseId"], r["runTimes"]): r for r in results(fake)}
    want = f"no healthy device: phone-a quarantined: {LOST}"
    assert {k: (r["status"], r["outcome"], r["reason"]) for k, r in final.items()} == {
        ("a1", 2): (2, "broken", want), ("a2", 2): (2, "broken", want), ("a3", 2): (2, "broken", want),
        ("b1", 1): (2, "broken", want)}                 # b1 never ran: it ends broken too, with the same reason
    [fin] = fake.of(Kind.TASK_FINISHED)
    assert len(fin.body["expected"]) == 7


def probe_answer(sched: Scheduler, name: str, dev: str, ok: bool, error: str = "") -> None:
    sched.on_executor_status(envelope(Kind.EXECUTOR_STATUS, {"kinds": ["APP"], "device": dev, "idle": True, "last_unit": "",
                                                             "probe": {"ok": ok, "error": error}}, src=name))


def test_device_down_holds_then_probes_on_schedule_and_a_passing_probe_readmits(tmp_path: Path) -> None:
    sched, fake = two_devices(tmp_path)
    submit(sched, coll("c1", *app("a1", "a2")), coll("c2", *app("b1")), coll("c3", *app("d1")))
    sched.on_tick()
    on_a = next(s for s in runs(fake) if s.peer == "executor-1")
    c = on_a.body["cases"][0]
    start(sched, "executor-1", on_a.body, c)
    sched.on_case_finished(envelope(Kind.CASE_FINISHED, {
        "unit_id": on_a.body["unit_id"], "task_id": "t1", "collection_id": "c1", "case_id": "a1", "index": 1, "run_times": 1,
        "status": 2, "outcome": "broken", "reason": "broken: 设备[phone-a]无法创建Appium会话", "device_down": True,
        "variables": {}}, src="executor-1"))
    assert sched.stats()["devices"]["phone-a"]["state"] == "quarantined"      # one case was enough: the ladder failed
    assert (tmp_path / "state" / "quarantine.json").exists()
    sched.on_unit_done(envelope(Kind.UNIT_DONE, {"unit_id": on_a.body["unit_id"], "device_down": "still down"}, src="executor-1"))
    sched.on_tick()
    assert not fake.of(Kind.DEVICE_PROBE) and all(s.peer != "executor-1" for s in runs(fake)[2:])
    sched.quarantine.held["executor-1"].probe_at = 0.0        # the probe time has come
    sched.on_tick()
    [probe] = fake.of(Kind.DEVICE_PROBE)
    assert probe.peer == "executor-1" and probe.body == {"device": "phone-a"}
    assert sched.stats()["devices"]["phone-a"]["state"] == "probing"
    sched.on_tick()
    assert len(fake.of(Kind.DEVICE_PROBE)) == 1                               # not again while it is unanswered
    probe_answer(sched, "executor-1", "phone-a", False, "设备[phone-a]的Appium服务不可用")
    row = sched.stats()["devices"]["phone-a"]
    assert (row["state"], row["last_error"]) == ("quarantined", "设备[phone-a]的Appium服务不可用") and row["next_probe_in_s"] > 50
    # a restarted scheduler still holds it
    again, _ = make(tmp_path)
    assert again.stats()["devices"]["phone-a"]["state"] == "quarantined"
    sched.quarantine.held["executor-1"].probe_at = 0.0
    sched.on_tick()
    probe_answer(sched, "executor-1", "phone-a", True)
    assert sched.stats()["devices"]["phone-a"]["state"] == "healthy" and sched.stats()["quarantined"] == {}
    sched.on_tick()
    assert any(s.peer == "executor-1" for s in runs(fake)[2:])                 # it gets work again


def test_dying_while_running_counts_and_only_unbound_units_move(tmp_path: Path) -> None:
    sched, fake = two_devices(tmp_path)
    submit(sched, coll("c1", *app("a1")), coll("c2", *app("a2"), deviceId="phone-a"),
           coll("c3", *app("b1"), deviceId="phone-b"))
    sched.on_tick()
    assert sorted((s.peer, s.body["collection_id"]) for s in runs(fake)) == [("executor-1", "c1"), ("executor-2", "c3")]
    for n in (1, 2):                                   # executor-1 killed mid-case twice (e.g. hung on a dead device)
        on_a = [s for s in runs(fake) if s.peer == "executor-1"][-1]
        start(sched, "executor-1", on_a.body, on_a.body["cases"][0])
        sched.on_stage_died(envelope(Kind.STAGE_DIED, {"stage": "executor-1", "inc": 0, "reason": f"executor-1 killed #{n}"},
                                     src="supervisor"))
        device(sched, "executor-1", "phone-a")         # restarted by the supervisor
        sched.on_tick()
    assert [s.body["collection_id"] for s in runs(fake) if s.peer == "executor-1"] == ["c1", "c2"]
    assert sched.quarantine.held["executor-1"].reason == "executor-1 killed #2"
    # c2 is bound to phone-a, now quarantined: it ends broken with the reason instead of moving to phone-b
    a2 = [r for r in results(fake) if r["caseId"] == "a2"]
    assert [(r["runTimes"], r["outcome"]) for r in a2] == [(1, "broken"), (2, "broken")]
    assert a2[-1]["reason"] == "no healthy device: phone-a quarantined: executor-1 killed #2"
    play(sched, next(s for s in runs(fake) if s.peer == "executor-2"))
    sched.on_tick()
    moved = runs(fake)[-1]
    assert (moved.peer, moved.body["collection_id"], cases_of(moved)) == ("executor-2", "c1", [("a1", 2)])
    play(sched, moved)
    assert fake.of(Kind.TASK_FINISHED)


def test_api_and_browser_executors_are_never_quarantined(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    device(sched, "executor-1", None, ("API", "WEB"))
    submit(sched, coll("c1", "a1", "a2"))
    sched.on_tick()
    play(sched, runs(fake)[0], {"a1": "broken", "a2": "broken"})
    assert sched.stats()["quarantined"] == {}


def test_quarantine_settings_come_from_retry_section(tmp_path: Path) -> None:
    sched, _ = make(tmp_path, "[Retry]\nquarantine-after = 3\nquarantine-window = 30\nquarantine-probe = 5\n")
    assert (sched.quarantine.after, sched.quarantine.window, sched.quarantine.probe) == (3, 30.0, 5.0)


def test_a_re_sent_broken_finish_counts_once(tmp_path: Path) -> None:
    sched, fake = two_devices(tmp_path)
    submit(sched, coll("c1", *app("a1", "a2")))
    sched.on_tick()
    [s] = runs(fake)
    c = s.body["cases"][0]
    start(sched, s.peer, s.body, c)
    finished = envelope(Kind.CASE_FINISHED, {
        "unit_id": s.body["unit_id"], "task_id": "t1", "collection_id": "c1", "case_id": "a1", "index": 1,
        "run_times": 1, "status": 2, "outcome": "broken", "reason": LOST, "variables": {}}, src=s.peer)
    sched.on_case_finished(finished)
    sched.on_case_finished(finished)                     # at-least-once delivery: the same finish again
    assert sched.stats()["quarantined"] == {}


def test_a_unit_handed_back_unrun_by_a_down_device_runs_elsewhere_without_an_attempt(tmp_path: Path) -> None:
    sched, fake = two_devices(tmp_path)
    submit(sched, coll("c1", *app("a1", "a2")), coll("c2", *app("b1")))
    sched.on_tick()
    on_a = next(s for s in runs(fake) if s.peer == "executor-1")
    on_b = next(s for s in runs(fake) if s.peer == "executor-2")
    sched.on_unit_done(envelope(Kind.UNIT_DONE, {"unit_id": on_a.body["unit_id"], "device_down": "Appium服务不可用"},
                                src="executor-1"))
    assert sched.stats()["devices"]["phone-a"]["state"] == "quarantined" and not results(fake)
    play(sched, on_b)
    sched.on_tick()
    again = runs(fake)[-1]
    assert again.peer == "executor-2" and cases_of(again) == [("a1", 1), ("a2", 1)]     # no attempt was used up
