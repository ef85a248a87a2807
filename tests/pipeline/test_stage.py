"""The run loop every stage shares, driven with envelopes and a FakeClock: the handler table, dead-lettering,
stop, and heartbeats paced by the clock (no socket, no sleep)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from pipeline.codec import Envelope
from pipeline.config import load_config_text
from pipeline.messages import Kind
from pipeline.stage import Handler, Stage
from pipeline.topology import RunSpec
from tests.fakes import FakeClock, FakeMailbox, envelope


class Echo(Stage):
    """A stage with two handlers: one records, one raises."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.seen: list[str] = []

    def on_task_stop(self, env: Envelope) -> None:
        self.seen.append(str(env.body.task_id))  # type: ignore[attr-defined]

    def on_stage_died(self, env: Envelope) -> None:
        raise ValueError("bad body")

    HANDLERS: ClassVar[dict[Kind, Handler]] = {Kind.TASK_STOP: on_task_stop, Kind.STAGE_DIED: on_stage_died}


@pytest.fixture
def stage(tmp_path: Path) -> tuple[Echo, FakeMailbox, FakeClock]:
    cfg = load_config_text("[Pipeline]\nheartbeat-interval = 2\n")
    clock = FakeClock()
    st = Echo("echo", 0, RunSpec(str(tmp_path), "start", cfg.values), clock=clock)
    mail = FakeMailbox("echo")
    st.mailbox = mail  # type: ignore[assignment]
    return st, mail, clock


def test_heartbeats_follow_the_interval_on_the_clock(stage: tuple[Echo, FakeMailbox, FakeClock]) -> None:
    st, mail, clock = stage
    st.heartbeat(force=True)
    beats = [clock.now]
    for _ in range(10):
        clock.advance(0.5)
        before = len(mail.of(Kind.STAGE_HEARTBEAT))
        st.tick(timeout_ms=0)
        if len(mail.of(Kind.STAGE_HEARTBEAT)) > before:
            beats.append(clock.now)
    assert [b - beats[0] for b in beats] == [0.0, 2.0, 4.0]
    hb = mail.of(Kind.STAGE_HEARTBEAT)[-1]
    assert hb.peer == "supervisor" and hb.body["stats"]["outbox"] == 0 and "current" not in hb.body


def test_handlers_come_from_the_table_and_a_raising_one_is_dead_lettered(stage: tuple[Echo, FakeMailbox, FakeClock],
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    st, mail, _ = stage
    mail.deliver(envelope(Kind.TASK_STOP, {"task_id": "t1"}, "supervisor"),
                 envelope(Kind.STAGE_DIED, {"stage": "executor-1", "inc": 0, "reason": "gone"}, "supervisor"),
                 envelope(Kind.UNIT_RUN, {"unit_id": "u1", "task_id": "t1", "collection_id": "c1", "data_dir": "d",
                                          "cases": []}, "scheduler"),
                 envelope(Kind.TASK_STOP, {"task_id": "t2"}, "supervisor"))
    st.tick(timeout_ms=0)
    assert st.seen == ["t1", "t2"] and not st.stopping          # neither the raise nor the unknown kind stopped it
    assert "echo: handler for stage.died from supervisor failed: bad body" in caplog.text
    assert "echo: no handler for unit.run from scheduler (inc 0); dropped" in caplog.text


def test_stage_stop_ends_the_loop(stage: tuple[Echo, FakeMailbox, FakeClock]) -> None:
    st, mail, _ = stage
    mail.deliver(envelope(Kind.STAGE_STOP, {}, "supervisor"))
    st.tick(timeout_ms=0)
    assert st.stopping


def test_a_storage_fault_is_reported_at_once_and_in_every_heartbeat(stage: tuple[Echo, FakeMailbox, FakeClock]) -> None:
    st, mail, clock = stage
    st.storage_fault("journal.log: [Errno 28] No space left on device")
    st.storage_fault("journal.log: [Errno 28] No space left on device")
    assert [s.body["stats"]["storage_faults"] for s in mail.of(Kind.STAGE_HEARTBEAT)] == [["journal.log: [Errno 28] No space left on device"]]
    clock.advance(2)
    st.tick(timeout_ms=0)
    assert mail.of(Kind.STAGE_HEARTBEAT)[-1].body["stats"]["storage_faults"] == ["journal.log: [Errno 28] No space left on device"]
