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


def test_probe_cycle_blocks_until_due_then_one_unit_decides() -> None:
    q = Quarantine(after=2, window=300.0, probe=60.0)
    q.broken("e", "phone-a", "first", 0.0)
    assert q.broken("e", "phone-a", "second", 10.0)
    assert q.blocked("e", 10.0) and q.blocked("e", 69.9) and not q.blocked("e", 70.0)
    assert not q.broken("e", "phone-a", "rest of its unit", 11.0)         # held, not probing: nothing changes
    assert not q.succeeded("e") and q.held["e"].reason == "second"        # a pass that is not the probe releases nothing
    q.probing("e")
    assert q.blocked("e", 1e9) and q.snapshot(80.0, 1000.0)["e"]["probe_in_s"] is None
    assert q.broken("e", "phone-a", "probe failed", 80.0)                 # a failed probe holds it again at once
    h = q.held["e"]
    assert (h.reason, h.since, h.probe_at) == ("probe failed", 80.0, 140.0) and not h.probing
    q.probing("e")
    assert q.succeeded("e") and "e" not in q.held and not q.blocked("e", 150.0)
    assert not q.broken("e", "phone-a", "one after release", 151.0)      # the failure history was cleared


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


def test_probe_due_device_takes_one_unit_and_a_pass_releases_it(tmp_path: Path) -> None:
    sched, fake = two_devices(tmp_path)
    submit(sched, coll("c1", *app("a1", "a2")), coll("c2", *app("b1")), coll("c3", *app("d1")), coll("c4", *app("e1")))
    sched.on_tick()
    on_a = next(s for s in runs(fake) if s.peer == "executor-1")
    play(sched, on_a, {"a1": "broken", "a2": "broken"})
    assert "executor-1" in sched.quarantine.held
    sched.quarantine.held["executor-1"].probe_at = 0.0        # the probe time has come
    sched.on_tick()
    probe = runs(fake)[-1]
    assert probe.peer == "executor-1" and sched.stats()["quarantined"]["executor-1"]["probe_in_s"] is None
    play(sched, probe)
    assert sched.stats()["quarantined"] == {}


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
