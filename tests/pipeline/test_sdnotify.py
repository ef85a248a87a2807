"""sd_notify over real AF_UNIX datagram sockets: a path and the abstract namespace ('@')."""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from pipeline.sdnotify import Notifier, watchdog_interval


def test_sends_one_datagram_to_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        n = Notifier(str(path))
        assert n.enabled and n.send("READY=1", "STATUS=all up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=all up"
        n.close()


def test_abstract_namespace_address_starts_with_at() -> None:
    name = f"liuma-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        n = Notifier("@" + name)
        assert n.send("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"
        n.close()


def test_no_socket_is_a_no_op_and_a_dead_socket_never_raises(tmp_path: Path) -> None:
    assert not Notifier(None).enabled and Notifier(None).send("READY=1") is False
    assert Notifier(str(tmp_path / "nobody-listens.sock")).send("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "x"}) is None
