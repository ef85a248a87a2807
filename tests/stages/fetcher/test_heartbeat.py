from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from stages.fetcher.heartbeat import Command, HeartbeatChannel, parse_command, ws_url
from tests.fakeplatform import ENGINE_CODE, ENGINE_SECRET, FakePlatform, wait_until


@pytest.fixture(scope="module")
def platform() -> Iterator[FakePlatform]:
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET, inactivity_timeout=0.3, inactivity_period=0.1) as p:
        yield p


@pytest.fixture
def channel(platform: FakePlatform) -> Iterator[HeartbeatChannel]:
    ch = HeartbeatChannel(platform.base_url, ENGINE_CODE, ENGINE_SECRET, interval=0.2, max_backoff=0.5)
    ch.start()
    assert wait_until(platform.session_open)
    yield ch
    ch.stop()
    assert wait_until(lambda: not platform.session_open())


def commands(ch: HeartbeatChannel, want: int, timeout: float = 3.0) -> list[Command]:
    got: list[Command] = []
    wait_until(lambda: got.extend(c for c in ch.poll() if not c.synthetic) or len(got) >= want, timeout)
    return got


@pytest.mark.parametrize("url, expected", [
    ("http://10.0.0.1:8080", "ws://10.0.0.1:8080/websocket/engine/heartbeat?engineCode=c&engineSecret=s"),
    ("https://liuma.example/", "wss://liuma.example/websocket/engine/heartbeat?engineCode=c&engineSecret=s"),
    ("http://httphost:80/liuma", "ws://httphost:80/liuma/websocket/engine/heartbeat?engineCode=c&engineSecret=s"),
])
def test_ws_url_changes_only_the_scheme(url: str, expected: str) -> None:
    assert ws_url(url, "c", "s") == expected


def test_ws_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError, match="ftp://x"):
        ws_url("ftp://x", "c", "s")


@pytest.mark.parametrize("frame, expected", [
    ('{"type":"start"}', Command("start")),
    ('{"type":"stop","data":"t-1"}', Command("stop", "t-1")),
    ('{"type":"stopAll"}', Command("stopAll")),
    ('{"type":"stop"}', None),
    ('{"type":"completed","data":"t-1"}', None),
    ("[1, 2]", None),
    ("not json", None),
])
def test_parse_command(frame: str, expected: Command | None) -> None:
    assert parse_command(frame) == expected


def test_commands_delivered_and_heartbeats_sent(platform: FakePlatform, channel: HeartbeatChannel) -> None:
    assert any(c.synthetic and c.type == "start" for c in channel.poll())   # fetch on connect
    frames_before = len(platform.state.ws_frames)
    for message in ({"type": "start"}, {"type": "stop", "data": "t-42"}, {"type": "stopAll"}):
        assert platform.push(message)
    assert commands(channel, 3) == [Command("start"), Command("stop", "t-42"), Command("stopAll")]
    assert wait_until(lambda: len(platform.state.ws_frames) >= frames_before + 2, timeout=2)
    assert set(platform.state.ws_frames[frames_before:]) == {""}            # empty text frames


def test_non_json_frame_ignored_and_logged(platform: FakePlatform, channel: HeartbeatChannel,
                                           caplog: pytest.LogCaptureFixture) -> None:
    channel.poll()
    with caplog.at_level(logging.WARNING, logger="stages.fetcher.heartbeat"):
        assert platform.push("hello <not json>")
        assert platform.push({"type": "bogus"})
        assert platform.push({"type": "stop", "data": "t-1"})
        assert commands(channel, 1) == [Command("stop", "t-1")]
    assert "non-JSON frame" in caplog.text and "unknown frame" in caplog.text
    assert channel.connects == 1                                           # the connection survived


def test_reconnects_after_platform_restart_and_refetches(platform: FakePlatform, channel: HeartbeatChannel) -> None:
    channel.poll()
    connects = platform.ws_connects
    platform.restart()
    assert wait_until(lambda: platform.ws_connects > connects and platform.session_open(), timeout=5)
    # the server sees the session open before the client's reader has handled the connect: poll until it has
    assert wait_until(lambda: any(c.synthetic for c in channel.poll()), timeout=5)
    assert platform.push({"type": "stopAll"})
    assert commands(channel, 1) == [Command("stopAll")]


def test_reconnects_after_outage_with_backoff(platform: FakePlatform, channel: HeartbeatChannel) -> None:
    connects = channel.connects
    platform.outage(0.8)
    assert wait_until(lambda: not platform.session_open(), timeout=2)
    assert wait_until(platform.session_open, timeout=6)
    assert channel.connects == connects + 1          # one session at a time: the old one was closed first


def test_wrong_secret_keeps_retrying_without_crashing(platform: FakePlatform, caplog: pytest.LogCaptureFixture) -> None:
    ch = HeartbeatChannel(platform.base_url, ENGINE_CODE, "wrong-secret-value", interval=0.2, max_backoff=0.2)
    with caplog.at_level(logging.WARNING, logger="stages.fetcher.heartbeat"):
        ch.start()
        assert wait_until(lambda: caplog.text.count("500") >= 2, timeout=5)
        ch.stop()
    assert ch.connects == 0 and not platform.session_open()
    assert "wrong-secret-value" not in caplog.text


def test_inactivity_rule_discontinues_and_pushes_stop(platform: FakePlatform, channel: HeartbeatChannel) -> None:
    task = platform.enqueue({"testCollectionList": []}, push_start=False)
    assert platform.state.claim_task() == task
    assert commands(channel, 1, timeout=3) == [Command("stop", task["taskId"])]
    assert platform.state.tasks[task["taskId"]].state == "discontinue"


def test_callback_delivery(platform: FakePlatform) -> None:
    seen: list[Command] = []
    ch = HeartbeatChannel(platform.base_url, ENGINE_CODE, ENGINE_SECRET, seen.append, interval=0.2)
    ch.start()
    try:
        assert wait_until(platform.session_open)
        assert platform.push({"type": "stop", "data": "t-7"})
        assert wait_until(lambda: Command("stop", "t-7") in seen)
    finally:
        ch.stop()
    assert seen[0] == Command("start", synthetic=True)
