"""The aggregator's state machine alone: feed events with a FakeClock's time, check the commands. No
sockets, no threads, no sleeps; the journal is checked by replaying the records the machine asked for."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.messages import Kind, TaskFinished, TaskPlanned, TaskReported
from pipeline.models import CaseResult, Status
from stages.aggregator.events import (
    AddToReport,
    AttemptRecorded,
    Command,
    Drop,
    Dropped,
    Event,
    Finished,
    Forward,
    Forwarded,
    Journal,
    JournalRecordError,
    LogError,
    OpenReport,
    Planned,
    Recorded,
    Recovered,
    Reported,
    Send,
    Tick,
    WriteFinal,
    WriteMetadata,
    event_of,
)
from stages.aggregator.machine import AggregatorMachine, MachineConfig
from tests.fakes import FakeClock

START = 1_700_000_000.0


def machine(platform: bool = False, grace_s: float = 30.0) -> AggregatorMachine:
    return AggregatorMachine(MachineConfig(report_dir="/r/default", storage_root=Path("/s"), platform=platform,
                                           grace_s=grace_s, meta_every_s=5.0))


def res(case_id: str, run_times: int = 1, status: Status = Status.PASS, task: str = "t1") -> dict[str, Any]:
    return CaseResult(taskId=task, collectionId="c1", caseId=case_id, caseName=case_id, index=0, runTimes=run_times,
                      status=int(status), startTime=1000, endTime=1250,
                      outcome={Status.PASS: "passed", Status.FAIL: "failed"}[status]).to_dict()


def key(case_id: str, run_times: int = 1, task: str = "t1") -> list[Any]:
    return [task, "c1", case_id, 0, run_times]


PLANNED = Planned(TaskPlanned(task_id="t1", report_dir="/r", name="nightly", cases=2, started_at=START))


def finished(task_id: str, *keys: list[Any], stopped: str | None = None) -> Finished:
    return Finished(TaskFinished(task_id=task_id, expected=list(keys), stopped=stopped))


def kinds(cmds: list[Command]) -> list[str]:
    return [type(c).__name__ for c in cmds]


class Driver:
    """Applies events at the FakeClock's time and keeps every journal record the machine asked for."""

    def __init__(self, m: AggregatorMachine, clock: FakeClock) -> None:
        self.m, self.clock = m, clock
        self.journal: list[list[Any]] = []

    def __call__(self, event: Event) -> list[Command]:
        out = self.m.apply(event, self.clock.monotonic())
        self.journal += [c.record for c in out if isinstance(c, Journal)]
        return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START + 10)


def test_planned_opens_the_reports_and_writes_running_metadata(clock: FakeClock) -> None:
    feed = Driver(machine(), clock)
    out = feed(PLANNED)
    assert kinds(out) == ["Journal", "OpenReport", "WriteMetadata"]
    assert isinstance(out[1], OpenReport) and out[1].report_dir == Path("/r/t1") and out[1].meta.task_name == "nightly"
    assert isinstance(out[2], WriteMetadata) and out[2].path == Path("/s/data/t1/metadata.json")
    assert (out[2].doc["status"], out[2].doc["cases"], out[2].doc["finish_time"]) == ("running", 2, None)
    assert feed(PLANNED) == []                                           # re-sent: nothing, not journaled again


def test_each_attempt_is_journaled_reported_and_announced_once(clock: FakeClock) -> None:
    feed = Driver(machine(), clock)
    feed(PLANNED)
    out = feed(Recorded(res("k1")))
    assert kinds(out) == ["Journal", "AddToReport", "AttemptRecorded"]
    assert isinstance(out[2], AttemptRecorded) and out[2].result.key == tuple(key("k1"))
    assert feed(Recorded(dict(res("k1"), caseName="a re-sent copy"))) == []
    assert kinds(feed(Recorded(res("k1", 2)))) == ["Journal", "AddToReport", "AttemptRecorded"]
    assert [r.caseName for r in feed.m.tasks["t1"].results.values()] == ["k1", "k1"]


def test_a_result_of_an_unplanned_task_gets_reports_under_the_default_dir(clock: FakeClock) -> None:
    out = Driver(machine(), clock)(Recorded(res("k1", task="t9")))
    assert kinds(out) == ["Journal", "OpenReport", "AddToReport", "AttemptRecorded"]
    assert isinstance(out[1], OpenReport) and out[1].report_dir == Path("/r/default/t9")


def test_a_malformed_result_raises_and_changes_nothing(clock: FakeClock) -> None:
    m = machine()
    m.apply(PLANNED, clock.now)
    for bad, why in [({"caseId": "k1"}, "result of case 'k1' has no taskId"),
                     (dict(res("k1"), status=7), "result t1|c1|k1|0|1: status must be one of 0-3, got 7"),
                     (dict(res("k1"), runTimes="2"), "result of task t1: runTimes must be an int, got '2'")]:
        with pytest.raises(ValueError, match=why):
            m.apply(Recorded(bad), clock.now)
    assert m.tasks["t1"].results == {} and m.tasks["t1"].counts.totals()["attempts"] == 0


def test_final_report_once_every_expected_key_is_in(clock: FakeClock) -> None:
    feed = Driver(machine(), clock)
    feed(PLANNED)
    feed(Recorded(res("k1")))
    assert kinds(feed(finished("t1", key("k1"), key("k2"), stopped=""))) == ["Journal"]
    assert not any(isinstance(c, WriteFinal) for c in feed(Tick()))
    feed(Recorded(res("k2", status=Status.FAIL)))
    clock.advance(1)
    [final] = [c for c in feed(Tick()) if isinstance(c, WriteFinal)]
    assert final.meta.finished_at is not None and final.meta.stop_reason is None
    assert not any(isinstance(c, WriteFinal) for c in feed(Tick()))   # asked once
    late = feed(Recorded(res("k2", 2)))                               # journaled, but the final write has begun
    assert kinds(late) == ["Journal", "AttemptRecorded"]


def test_missing_results_wait_for_the_grace_then_are_named(clock: FakeClock) -> None:
    feed = Driver(machine(grace_s=30.0), clock)
    feed(PLANNED)
    feed(Recorded(res("k1")))
    feed(finished("t1", key("k1"), key("k2")))
    feed(Tick())
    clock.advance(29.9)
    assert not any(isinstance(c, (WriteFinal, LogError)) for c in feed(Tick()))
    clock.advance(0.1)
    out = feed(Tick())
    [err] = [c for c in out if isinstance(c, LogError)]
    assert "t1: 1 expected results never arrived" in err.text and "k2" in err.text
    assert any(isinstance(c, WriteFinal) for c in out)
    sent = [c for c in feed(Reported("t1", {"summary": "/r/t1/summary.json"})) if isinstance(c, Send)]
    assert isinstance(sent[0].body, TaskReported)
    assert sent[0].body.missing == [key("k2")] and sent[0].body.totals["cases"] == 1


def test_reported_writes_final_metadata_journals_syncs_then_tells(clock: FakeClock) -> None:
    feed = Driver(machine(), clock)
    feed(PLANNED)
    feed(Recorded(res("k1")))
    feed(finished("t1", key("k1"), stopped="stopped by request"))
    feed(Tick())
    out = feed(Reported("t1", {"summary": "/r/t1/summary.json"}, ("disk full: /r/t1",)))
    assert kinds(out) == ["WriteMetadata", "Journal", "Sync", "Send", "Send", "Drop"]
    meta, send = out[0], out[3]
    assert isinstance(out[4], Send) and out[4].peer == "scheduler" and out[4].body == send.body
    assert isinstance(meta, WriteMetadata) and isinstance(send, Send)
    assert (meta.doc["status"], meta.doc["stop_reason"], meta.doc["counts"]["passed"]) == ("stopped", "stopped by request", 1)
    assert send.peer == "supervisor" and isinstance(send.body, TaskReported)
    assert send.body.paths == {"summary": "/r/t1/summary.json"} and send.body.storage_faults == ["disk full: /r/t1"]
    assert send.body.by_kind == {"API": {"passed": 1}} and send.body.totals["passed"] == 1
    assert feed(Reported("t1", {})) == [] and feed(Tick()) == []


def test_running_metadata_at_most_every_few_seconds_and_only_when_changed(clock: FakeClock) -> None:
    feed = Driver(machine(), clock)
    feed(PLANNED)
    feed(Recorded(res("k1")))
    assert kinds(feed(Tick())) == ["WriteMetadata"]
    feed(Recorded(res("k2")))
    clock.advance(4.9)
    assert feed(Tick()) == []
    clock.advance(0.1)
    [meta] = feed(Tick())
    assert isinstance(meta, WriteMetadata) and meta.doc["counts"]["passed"] == 2
    clock.advance(5)
    assert feed(Tick()) == []                                         # nothing new


def test_platform_mode_forwards_until_acked_and_an_ack_is_journaled_once(clock: FakeClock) -> None:
    feed = Driver(machine(platform=True), clock)
    feed(PLANNED)
    [fwd] = [c for c in feed(Recorded(res("k1"))) if isinstance(c, Forward)]
    assert (fwd.body.KIND, fwd.mark, fwd.body.to_wire()["result"]["caseId"]) == (Kind.RESULT_RECORD, "result:t1|c1|k1|0|1", "k1")
    assert kinds(feed(Forwarded(fwd.mark))) == ["Journal"]
    assert feed(Forwarded(fwd.mark)) == []
    feed(finished("t1", key("k1")))
    feed(Tick())
    out = feed(Reported("t1", {}))
    assert [(c.body.KIND, c.mark) for c in out if isinstance(c, Forward)] == [(Kind.TASK_REPORTED, "reported:t1")]


def test_replaying_the_journal_rebuilds_the_state_and_recovered_redoes_only_what_is_owed(clock: FakeClock) -> None:
    feed = Driver(machine(platform=True), clock)
    feed(PLANNED)
    for case in ("k1", "k2"):
        clock.advance(1)
        feed(Recorded(res(case)))
    feed(Forwarded("result:t1|c1|k1|0|1"))                             # k2 was never acked by the uploader
    feed(finished("t1", key("k1"), key("k2"), key("k3")))
    feed(Recorded(res("k1", task="t2")))
    feed(finished("t2", key("k1", task="t2")))
    feed(Tick())
    feed(Reported("t2", {}))
    again = machine(platform=True)
    for record in feed.journal:
        event, at = event_of(record)
        assert at is not None
        again.apply(event, at)
    for task_id, agg in feed.m.tasks.items():
        twin = again.tasks[task_id]
        assert ({k: r.to_dict() for k, r in twin.results.items()} == {k: r.to_dict() for k, r in agg.results.items()})
        assert (twin.name, twin.expected, twin.finished_at, twin.reported, twin.counts.totals()) == \
            (agg.name, agg.expected, agg.finished_at, agg.reported, agg.counts.totals())
    assert again.forwarded == feed.m.forwarded
    out = again.apply(Recovered(), clock.advance(60))
    assert [(c.task_id, c.result.caseId) for c in out if isinstance(c, AddToReport)] == [("t1", "k1"), ("t1", "k2")]
    assert [c.task_id for c in out if isinstance(c, OpenReport)] == ["t1"]             # t2 is reported already
    assert all(c.resume for c in out if isinstance(c, OpenReport))        # results.jsonl is appended to, not restarted
    assert [c.mark for c in out if isinstance(c, Forward)] == ["result:t1|c1|k2|0|1", "result:t2|c1|k1|0|1", "reported:t2"]
    assert not any(isinstance(c, WriteFinal) for c in again.apply(Tick(), clock.now))      # k3's grace starts anew
    clock.advance(30)
    assert any(isinstance(c, WriteFinal) and c.task_id == "t1" for c in again.apply(Tick(), clock.now))


def test_a_reported_task_is_dropped_and_what_comes_for_it_later_is_ignored(clock: FakeClock) -> None:
    feed = Driver(machine(), clock)
    feed(PLANNED)
    feed(Recorded(res("k1")))
    feed(finished("t1", key("k1")))
    feed(Tick())
    assert feed(Reported("t1", {}))[-1] == Drop("t1")
    assert kinds(feed(Dropped("t1"))) == ["Journal"]
    assert feed.m.tasks == {} and feed.m.dropped == {"t1"}
    assert feed(Recorded(res("k1"))) == [] and feed(Recorded(res("k2"))) == []      # re-sent by a restarted scheduler
    assert feed(PLANNED) == [] and feed(finished("t1", key("k1"))) == [] and feed(Dropped("t1")) == []
    assert feed.m.tasks == {}
    again = machine()
    for record in feed.journal:
        again.apply(*event_of(record))                     # type: ignore[arg-type]
    assert again.tasks == {} and again.dropped == {"t1"}   # a replay does not resurrect it
    assert again.apply(Recovered(), clock.now) == []


def test_a_crash_between_reported_and_its_drop_drops_after_the_replay(clock: FakeClock) -> None:
    feed = Driver(machine(), clock)
    feed(PLANNED)
    feed(Recorded(res("k1")))
    feed(finished("t1", key("k1")))
    feed(Tick())
    feed(Reported("t1", {}))                               # no Dropped: the shell died first
    again = machine()
    for record in feed.journal:
        again.apply(*event_of(record))                     # type: ignore[arg-type]
    assert again.apply(Recovered(), clock.now) == [Drop("t1")]


def test_platform_mode_drops_only_once_the_uploader_acked_everything(clock: FakeClock) -> None:
    feed = Driver(machine(platform=True), clock)
    feed(PLANNED)
    marks = [c.mark for case in ("k1", "k2") for c in feed(Recorded(res(case))) if isinstance(c, Forward)]
    feed(Forwarded(marks[0]))
    feed(finished("t1", key("k1"), key("k2")))
    feed(Tick())
    out = feed(Reported("t1", {}))
    assert not any(isinstance(c, Drop) for c in out)
    assert not any(isinstance(c, Drop) for c in feed(Forwarded("reported:t1")))        # k2 not acked yet
    assert feed(Forwarded(marks[1]))[-1] == Drop("t1")
    feed(Dropped("t1"))
    assert feed.m.tasks == {} and feed.m.forwarded == set()                          # its marks go too


def test_local_mode_never_forwards(clock: FakeClock) -> None:
    feed = Driver(machine(), clock)
    feed(PLANNED)
    feed(Recorded(res("k1")))
    assert not any(isinstance(c, Forward) for c in feed(Recovered()))


@pytest.mark.parametrize("record, why", [
    (["planned"], "not an aggregator event"),
    (["nonsense", {}], "not an aggregator event"),
    ({"planned": {}}, "not an aggregator event"),
    (["result", "k1", 1.0], "result record: payload must be a map, got str"),
    (["fwd", {"mark": 1}], "fwd record: payload must be a string, got dict"),
    (["finished", {}, "yesterday"], "finished record: time must be a number, got 'yesterday'"),
    (["planned", {"task_id": "t1"}, 1.0], "planned record: lacks field report_dir"),
    (["finished", {"task_id": "t1", "expected": "all"}, 1.0], "finished record: field expected must be"),
])
def test_a_bad_journal_record_is_named(record: Any, why: str) -> None:
    with pytest.raises(JournalRecordError, match=why):
        event_of(record)


def test_records_written_before_events_carried_their_time_are_still_read() -> None:
    assert event_of(["reported", "t1"]) == (Reported("t1", {}), None)
    assert event_of(["result", {"taskId": "t1"}]) == (Recorded({"taskId": "t1"}), None)
    assert event_of(["fwd", "reported:t1", 5]) == (Forwarded("reported:t1"), 5)
