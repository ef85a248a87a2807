"""The fetcher's side channels to the uploader are messages: ``task.stopped`` when the platform stops tasks,
``task.keepalive`` for tasks in flight. Each test feeds what the REAL fetcher loop sent to the REAL uploader
stage (its Delivery against the fake platform) and checks what the platform received."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline.messages import Kind
from pipeline.topology import RunSpec
from stages.fetcher.heartbeat import Command
from stages.fetcher.platform_loop import KEEPALIVE_S, PlatformLoop, keepalives_due
from stages.uploader import Uploader
from tests.fakeplatform import ENGINE_CODE, ENGINE_SECRET, FakePlatform
from tests.fakes import FakeClock, FakeMailbox, Sent, envelope
from tests.stages.uploader.test_delivery import reported, result, spec_for

UPLOAD = "/openapi/engine/result/upload"
COMPLETE = "/openapi/engine/task/complete"


@pytest.fixture(scope="module")
def platform() -> Iterator[FakePlatform]:
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET) as p:
        yield p


@dataclass
class FetcherDouble:
    """What PlatformLoop reads of its fetcher: the spec, the tasks handed over, the mailbox."""
    spec: RunSpec
    submitted: dict[str, dict[str, Any]] = field(default_factory=dict)
    mailbox: FakeMailbox = field(default_factory=lambda: FakeMailbox("fetcher"))


def loop_for(spec: RunSpec, *tasks: str) -> tuple[PlatformLoop, FetcherDouble, FakeClock]:
    fetcher = FetcherDouble(spec, {t: {"msg_id": f"submit-{t}", "acked": True, "released": False} for t in tasks})
    loop = PlatformLoop(fetcher)             # not started: no WebSocket, no worker thread; tick() is the stage's
    clock = FakeClock()
    loop.clock = clock.monotonic
    loop.tick()
    return loop, fetcher, clock


def uploader_for(spec: RunSpec) -> Uploader:
    up = Uploader("uploader", 0, spec)
    up.mailbox = FakeMailbox("uploader")  # type: ignore[assignment]
    up.on_start()
    return up


def deliver(up: Uploader, sent: list[Sent]) -> None:
    """Hand the fetcher's messages to the uploader as its loop would: dispatch, then ack (flush), then tick."""
    for s in sent:
        assert s.peer == "uploader"
        up.dispatch(envelope(s.kind, s.body, src="fetcher"))
    up.before_ack()


def settle(up: Uploader, task_id: str, until: float = 8.0) -> None:
    assert up.delivery is not None and up.delivery.outbox is not None
    end = time.monotonic() + until
    while time.monotonic() < end and up.delivery.outbox.pending(task_id):
        up.on_tick()
        time.sleep(0.05)


def requests_of(platform: FakePlatform, path: str, task_id: str) -> list[Any]:
    return [r.body for r in platform.state.calls(path) if isinstance(r.body, dict) and r.body.get("taskId") == task_id]


@pytest.mark.parametrize("steps, expected", [
    ([(["a"], 0.0)], [[]]),                                                 # first sight starts the clock
    ([(["a"], 0.0), (["a"], KEEPALIVE_S - 0.1)], [[], []]),
    ([(["a"], 0.0), (["a"], KEEPALIVE_S)], [[], ["a"]]),
    ([(["a"], 0.0), (["a", "b"], KEEPALIVE_S), (["a", "b"], 2 * KEEPALIVE_S)], [[], ["a"], ["a", "b"]]),
    ([(["a"], 0.0), ([], 10.0), (["a"], KEEPALIVE_S)], [[], [], []]),       # released and back: a new clock
])
def test_keepalives_due(steps: list[tuple[list[str], float]], expected: list[list[str]]) -> None:
    last: dict[str, float] = {}
    assert [keepalives_due(running, last, now) for running, now in steps] == expected


def test_a_platform_stop_reaches_the_uploader_as_a_message_rows_go_no_complete(tmp_path: Path, platform: FakePlatform) -> None:
    task_id = str(uuid.uuid4())
    spec = spec_for(tmp_path, platform.base_url)
    loop, fetcher, _ = loop_for(spec, task_id)
    loop.on_command(Command("stop", task_id))
    stopped = fetcher.mailbox.of(Kind.TASK_STOPPED, "uploader")
    assert [s.body for s in stopped] == [{"task_ids": [task_id], "reason": f"stopped by the platform (stop {task_id})"}]
    assert [s.body["task_id"] for s in fetcher.mailbox.of(Kind.TASK_STOP, "scheduler")] == [task_id]
    assert not (Path(spec.storage_root) / "state" / "stopped").exists()       # no marker files any more
    up = uploader_for(spec)
    deliver(up, stopped)
    up.dispatch(envelope(Kind.RESULT_RECORD, result(task_id, "k-1").to_wire(), src="aggregator"))
    up.dispatch(envelope(Kind.TASK_REPORTED, reported(task_id).to_wire(), src="aggregator"))
    settle(up, task_id)
    assert [r["caseId"] for r in platform.state.results[task_id]] == ["k-1"]
    assert platform.state.completions[task_id] == 0
    up.on_stop()
    again = uploader_for(spec)                       # the notice is durable: a restarted uploader still knows
    again.dispatch(envelope(Kind.TASK_REPORTED, reported(task_id).to_wire(), src="aggregator"))
    settle(again, task_id)
    assert platform.state.completions[task_id] == 0
    again.on_stop()


def test_a_stop_notice_after_the_report_withdraws_the_queued_complete(tmp_path: Path, platform: FakePlatform) -> None:
    """stopAll: every task in flight is named; a complete queued before the notice arrived is never sent."""
    t1, t2 = str(uuid.uuid4()), str(uuid.uuid4())
    spec = spec_for(tmp_path, platform.base_url)
    loop, fetcher, _ = loop_for(spec, t1, t2)
    loop.on_command(Command("stopAll"))
    [notice] = fetcher.mailbox.of(Kind.TASK_STOPPED)
    assert sorted(notice.body["task_ids"]) == sorted([t1, t2])
    up = uploader_for(spec)
    up.dispatch(envelope(Kind.TASK_REPORTED, reported(t1).to_wire(), src="aggregator"))
    assert up.delivery is not None and up.delivery.outbox is not None
    assert [i.kind for i in up.delivery.outbox.pending(t1)] == ["complete"]
    deliver(up, [notice])
    assert up.delivery.outbox.pending(t1) == []
    up.on_tick()
    assert platform.state.completions[t1] == 0
    up.on_stop()


def test_keepalives_go_from_the_fetcher_through_the_uploader(tmp_path: Path, platform: FakePlatform) -> None:
    task_id, stopped_id = str(uuid.uuid4()), str(uuid.uuid4())
    spec = spec_for(tmp_path, platform.base_url)
    loop, fetcher, clock = loop_for(spec, task_id, stopped_id)
    up = uploader_for(spec)
    loop.on_command(Command("stop", stopped_id))
    deliver(up, fetcher.mailbox.of(Kind.TASK_STOPPED))
    clock.advance(KEEPALIVE_S - 1)
    loop.tick()
    assert fetcher.mailbox.of(Kind.TASK_KEEPALIVE) == []
    clock.advance(1)
    loop.tick()
    sent = fetcher.mailbox.of(Kind.TASK_KEEPALIVE, "uploader")
    assert sorted(s.body["task_id"] for s in sent) == sorted([task_id, stopped_id])
    deliver(up, sent)
    assert [b["caseResultList"] for b in requests_of(platform, UPLOAD, task_id)] == [[]]
    assert requests_of(platform, UPLOAD, stopped_id) == []                 # the platform ended it: left alone
    assert loop.client is None                                             # the fetcher itself posted nothing
    up.on_stop()
