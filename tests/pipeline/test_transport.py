"""Mailbox reliability with real processes and real ipc sockets.

The receiver runs as a separate process (this file run as a script, see ``receiver_main``): it records each
message it hands to the "stage" in ``handled.log`` and fsyncs *before* flushing acks, as the aggregator does.
The test process is the sender and SIGKILLs/restarts the receiver mid-stream.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import pytest  # noqa: E402
import zmq  # noqa: E402

from pipeline.codec import Envelope, encode  # noqa: E402
from pipeline.messages import (  # noqa: E402
    CaseDeadline,
    CaseFinished,
    ExecutorStatus,
    Kind,
    Message,
    StageStop,
    UnitDone,
    UnitRun,
)
from pipeline.transport import Mailbox  # noqa: E402

N = 2000
WINDOW = 100         # the sender keeps at most this many reliable messages unacked (what can be "in flight")
BATCH = 50           # the receiver handles at most this many per turn, then fsyncs, then acks


def resolver(d: Path) -> Callable[[str], str]:
    return lambda name: f"ipc://{d / (name + '.sock')}"


# -- the receiver process ------------------------------------------------------------------------------
def receiver_main(d: Path, inc: int, mode: str) -> None:
    """mode: reliable | crash-before-ack | bare (plain PULL, no acks)."""
    log = open(d / "handled.log", "a")
    if mode == "bare":
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        pull.bind(resolver(d)("receiver"))
        (d / f"ready-{inc}").touch()
        turn = 0
        while True:
            turn += 1
            if not pull.poll(50):
                continue
            for _ in range(BATCH):
                try:
                    frame = pull.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if frame == b"stop":
                    return
                log.write(f"{inc} {turn} - {msgpack.unpackb(frame)}\n")
            log.flush()
            os.fsync(log.fileno())
            time.sleep(0.005)
    mb = Mailbox("receiver", inc, resolver(d))
    mb.start()
    (d / f"ready-{inc}").touch()
    turn = 0
    while True:
        turn += 1
        mb.poll(50)
        batch: list[Envelope] = []
        while len(batch) < BATCH and (env := mb.recv_nowait()) is not None:
            if env.kind is Kind.STAGE_STOP:
                (d / f"stats-{inc}").write_text(str(mb.dead_lettered))
                mb.flush_acks()
                mb.close()
                return
            batch.append(env)
        for env in batch:
            log.write(f"{inc} {turn} {env.msg_id} {number(env.body)}\n")
        log.flush()
        os.fsync(log.fileno())           # durable before acknowledged
        if mode == "crash-before-ack" and batch:
            os._exit(3)
        mb.flush_acks()
        time.sleep(0.002)


# -- helpers for the test side -------------------------------------------------------------------------
@pytest.fixture
def d() -> Iterator[Path]:
    """A short run directory (ipc paths are limited to ~107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="lmpt-") as tmp:
        yield Path(tmp)


class Receiver:
    def __init__(self, d: Path) -> None:
        self.d, self.proc, self.inc = d, None, -1

    def start(self, mode: str = "reliable") -> None:
        self.inc += 1
        self.proc = subprocess.Popen([sys.executable, __file__, str(self.d), str(self.inc), mode], cwd=str(ROOT))
        wait_for(lambda: (self.d / f"ready-{self.inc}").exists(), 20, f"receiver {self.inc} ready")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def receiver(d: Path) -> Iterator[Receiver]:
    r = Receiver(d)
    yield r
    r.stop()


def wait_for(pred: Callable[[], Any], timeout: float, what: str, tick: Callable[[], None] | None = None) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        if tick:
            tick()
        else:
            time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def number(body: Message) -> str:
    """The sequence number a test message carries in its unit id (``last_unit`` for a status)."""
    return str(getattr(body, "unit_id", None) or getattr(body, "last_unit", None))


def handled(d: Path) -> list[tuple[int, int, str, int]]:
    """(incarnation, turn, msg_id, n) per line of the receiver's log."""
    p = d / "handled.log"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        inc, turn, mid, n = line.split()
        out.append((int(inc), int(turn), mid, int(n)))
    return out


def count_lines(d: Path) -> int:
    p = d / "handled.log"
    return p.read_bytes().count(b"\n") if p.exists() else 0


def pump(mb: Mailbox) -> None:
    """One sender turn: take acks in, re-send what is late."""
    mb.poll(5)
    while mb.recv_nowait() is not None:
        pass
    mb.resend_due()


@pytest.fixture
def sender(d: Path) -> Iterator[Mailbox]:
    mb = Mailbox("sender", 0, resolver(d), resend_first=0.3, resend_cap=1.0)
    mb.start()
    yield mb
    mb.close()


def stop_receiver(mb: Mailbox, r: Receiver) -> None:
    mb.send("receiver", StageStop())
    assert r.proc is not None
    assert r.proc.wait(10) == 0


# -- tests ---------------------------------------------------------------------------------------------
def test_reliable_messages_are_acked_and_not_resent(d: Path, sender: Mailbox, receiver: Receiver) -> None:
    receiver.start()
    ids = [sender.send("receiver", UnitDone(unit_id=str(i))) for i in range(20)]
    sender.send("receiver", ExecutorStatus(kinds=[], idle=True, last_unit="99"))
    assert len(sender.outbox) == 20                   # the unreliable status is not tracked
    wait_for(lambda: len(sender.outbox) == 0, 10, "acks", tick=lambda: pump(sender))
    resent = 0
    end = time.monotonic() + 1.0                      # > 3 resend intervals: nothing may be due any more
    while time.monotonic() < end:
        sender.poll(20)
        sender.recv_nowait()
        resent += sender.resend_due()
    assert resent == 0
    stop_receiver(sender, receiver)
    rows = handled(d)
    assert sorted(r[2] for r in rows if r[3] != 99) == sorted(ids)
    assert len(rows) == 21


def test_a_corked_turn_is_one_multipart_message_whose_frames_are_handed_out_and_acked_one_by_one(
        d: Path, sender: Mailbox, receiver: Receiver) -> None:
    receiver.start()
    before = sender.pushes
    sender.cork()
    ids = [sender.send("receiver", UnitDone(unit_id=str(i))) for i in range(120)]      # > BATCH: two receiver turns
    sender.send("receiver", ExecutorStatus(kinds=[], idle=True, last_unit="999"))
    assert handled(d) == [] and sender.pushes == before          # held until the turn ends
    sender.uncork()
    assert sender.pushes == before + 1
    wait_for(lambda: len(sender.outbox) == 0, 10, "acks", tick=lambda: pump(sender))
    stop_receiver(sender, receiver)
    rows = handled(d)
    assert [r[2] for r in rows if r[3] != 999] == ids             # in order, each once
    assert len(rows) == 121
    assert len({r[1] for r in rows}) >= 3                          # BATCH per turn: the rest waited in the mailbox


def test_unit_run_is_tracked_until_acked_like_every_work_carrying_kind(d: Path, sender: Mailbox) -> None:
    run = UnitRun(unit_id="u", task_id="t", collection_id="c", data_dir="/d", cases=[])
    mid = sender.send("executor-1", run)
    assert len(sender.outbox) == 1 and sender.outbox.drop_peer("executor-1") == [mid]


@pytest.mark.parametrize("corked", [False, True], ids=["frame-by-frame", "corked"])
def test_sigkilled_receiver_loses_nothing_and_duplicates_only_in_flight(d: Path, sender: Mailbox, receiver: Receiver,
                                                                        corked: bool) -> None:
    """Corked, each refill of the window leaves as one multipart message (as a stage's loop turn does): the
    receiver hands its frames out BATCH at a time and the kill strands whole batches; nothing is lost either way."""
    receiver.start()
    sent: dict[str, int] = {}
    killed = False
    in_flight_at_kill = -1
    end = time.monotonic() + 60
    pushes = sender.pushes
    while len(sent) < N or len(sender.outbox):
        assert time.monotonic() < end, f"stuck: {len(sent)} sent, {len(sender.outbox)} unacked"
        if corked:
            sender.cork()
        while len(sent) < N and len(sender.outbox) < WINDOW:
            sent[sender.send("receiver", UnitDone(unit_id=str(len(sent))))] = len(sent)
        if corked:
            sender.uncork()
        if not killed and count_lines(d) >= N // 4:     # right after a refill: a full window is unacked
            receiver.kill()
            in_flight_at_kill = len(sender.outbox)
            killed = True
            receiver.start()
        pump(sender)
    stop_receiver(sender, receiver)
    rows = handled(d)
    per_inc = {inc: Counter(mid for i, _, mid, _ in rows if i == inc) for inc in (0, 1)}
    assert killed and per_inc[0] and per_inc[1]
    for inc, c in per_inc.items():                    # within an incarnation msg_id de-dup holds
        assert max(c.values()) == 1, f"incarnation {inc} handled a message twice"
    every = Counter(mid for _, _, mid, _ in rows)
    assert set(every) == set(sent), f"lost {len(set(sent) - set(every))} of {N}"
    dups = [m for m, c in every.items() if c > 1]
    assert all(m in per_inc[0] and m in per_inc[1] for m in dups)
    assert 0 < in_flight_at_kill <= WINDOW      # the kill did strand messages the resend had to recover
    assert len(dups) <= in_flight_at_kill
    if corked:                                  # far fewer ZeroMQ messages than frames
        assert sender.pushes - pushes < N // 4
    print(f"reliable: {N} sent, 0 lost, {len(dups)} duplicate(s) across the kill ({in_flight_at_kill} in flight), "
          f"{sender.pushes - pushes} pushes")


def test_bare_push_pull_loses_what_sat_in_the_dead_receivers_pipe(d: Path, receiver: Receiver) -> None:
    """The same kill without the reliability layer: whatever the dead receiver had queued is gone."""
    receiver.start("bare")
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(resolver(d)("receiver"))
    try:
        i, killed, end = 0, False, time.monotonic() + 30
        while True:
            assert time.monotonic() < end
            while i < N:
                try:
                    push.send(msgpack.packb(i), zmq.NOBLOCK)
                    i += 1
                except zmq.Again:
                    break
            if not killed and count_lines(d) >= N // 4:
                receiver.kill()
                killed = True
                receiver.start("bare")
            if killed and i == N:
                break
            time.sleep(0.005)
        last = -1
        while (now := count_lines(d)) != last:         # until the new receiver has drained what reached it
            last = now
            time.sleep(0.5)
        push.send(b"stop")
        assert receiver.proc is not None and receiver.proc.wait(10) == 0
    finally:
        push.close(0)
        ctx.term()
    got = {n for *_, n in handled(d)}
    lost = N - len(got)
    print(f"bare PUSH/PULL: {N} sent, {lost} lost across one receiver kill")
    assert got <= set(range(N))
    assert lost > 0


def test_garbage_frames_are_dead_lettered_and_the_receiver_goes_on(d: Path, sender: Mailbox, receiver: Receiver) -> None:
    receiver.start()
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    try:
        push.connect(resolver(d)("receiver"))
        push.send(b"\xc1 definitely not msgpack")
        push.send(encode(Envelope(Kind.UNIT_DONE, {"unit_id": "u"}, src="x", v=99)))
        push.send(msgpack.packb([1, "case.explode", "m", "x", 0, 0, {}]))
        push.close(1000)
    finally:
        ctx.term()
    mid = sender.send("receiver", UnitDone(unit_id="7"))
    wait_for(lambda: len(sender.outbox) == 0, 10, "ack after garbage", tick=lambda: pump(sender))
    stop_receiver(sender, receiver)
    assert [(r[2], r[3]) for r in handled(d)] == [(mid, 7)]
    assert (d / "stats-0").read_text() == "3"


def test_receiver_crashing_before_flush_acks_gets_the_message_again(d: Path, sender: Mailbox, receiver: Receiver) -> None:
    receiver.start("crash-before-ack")
    mid = sender.send("receiver", CaseFinished(unit_id="1", task_id="t", collection_id="c", case_id="k",
                                               index=1, run_times=1, status=0, outcome="passed"))
    assert receiver.proc is not None
    wait_for(lambda: receiver.proc.poll() is not None, 10, "receiver crash", tick=lambda: pump(sender))  # type: ignore[union-attr]
    assert receiver.proc.returncode == 3
    assert len(sender.outbox) == 1                   # handled, never acked
    receiver.start()
    wait_for(lambda: len(sender.outbox) == 0, 10, "re-send and ack", tick=lambda: pump(sender))
    stop_receiver(sender, receiver)
    assert [(inc, m) for inc, _, m, _ in handled(d)] == [(0, mid), (1, mid)]


if __name__ == "__main__":
    receiver_main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])


def test_notifier_sends_from_another_thread_and_never_reopens_after_close(tmp_path: Path) -> None:
    import threading

    from pipeline.transport import Notifier
    resolve = lambda name: f"ipc://{tmp_path / (name + '.sock')}"  # noqa: E731
    sup, ex = Mailbox("supervisor", 0, resolve), Mailbox("executor-1", 3, resolve)
    sup.start()
    ex.start()
    try:
        n = Notifier(ex, "supervisor")
        body = CaseDeadline(task_id="t", case_id="k", index=1, run_times=1, deadline_s=3.0)
        t = threading.Thread(target=n.send, args=(body,))
        t.start()
        t.join()
        got = None
        for _ in range(50):
            sup.poll(100)
            got = sup.recv_nowait()
            if got:
                break
        assert got is not None and got.kind is Kind.CASE_DEADLINE and (got.src, got.inc) == ("executor-1", 3) and got.body == body
        n.close()
        n.send(body)
        assert n.sock is None
    finally:
        ex.close()
        sup.close()
