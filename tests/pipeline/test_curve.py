from __future__ import annotations

import logging
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import zmq

from pipeline.curve import (
    configure_server,
    generate_keys,
    load_keypair,
    load_public,
    load_secret,
    server_setup,
    stop_authenticator,
)
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

SENDER = textwrap.dedent("""
    import sys, zmq
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from pipeline.curve import configure_client, load_keypair, load_public
    keys, name, endpoint, text = Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    public, secret = (load_keypair(keys, name) if name != "intruder" else zmq.curve_keypair())
    configure_client(sock, public, secret, load_public(keys, "server"))
    sock.setsockopt(zmq.LINGER, 1500)
    sock.connect(endpoint)
    sock.send(text.encode())
    sock.close()
    ctx.term()
""")


def test_generated_keys_are_private_and_stable(tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys", clients=["executor", "fetcher"])
    assert set(keys) == {"server", "executor", "fetcher"}
    for f in (tmp_path / "keys").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert load_keypair(tmp_path / "keys", "executor") == keys["executor"]
    assert generate_keys(tmp_path / "keys", clients=["executor"])["server"] == keys["server"]
    assert zmq.curve_public(keys["server"][1]) == keys["server"][0]


def test_open_secret_file_and_bad_key_refused(tmp_path: Path) -> None:
    generate_keys(tmp_path)
    (tmp_path / "client.secret").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret(tmp_path, "client")
    (tmp_path / "server.public").write_text("short")
    with pytest.raises(ConfigError, match="server.public.*40 characters"):
        load_public(tmp_path, "server")
    with pytest.raises(ConfigError, match="nobody.public"):
        load_public(tmp_path, "nobody")


def send_from_child(keys: Path, name: str, endpoint: str, text: str) -> subprocess.Popen[Any]:
    return subprocess.Popen([sys.executable, "-c", SENDER, str(ROOT), str(keys), name, endpoint, text])


def receive_all(sock: zmq.Socket[Any], seconds: float) -> list[bytes]:
    got: list[bytes] = []
    while sock.poll(int(seconds * 1000)):
        got.append(sock.recv())
        seconds = 0.3
    return got


def test_authorised_client_delivers_and_intruder_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys = generate_keys(tmp_path / "keys")
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        with caplog.at_level(logging.WARNING, logger="pipeline.curve"):
            server_setup(tmp_path / "keys")(sock)
            port = sock.bind_to_random_port("tcp://127.0.0.1")
            endpoint = f"tcp://127.0.0.1:{port}"
            intruder = send_from_child(tmp_path / "keys", "intruder", endpoint, "from-intruder")
            client = send_from_child(tmp_path / "keys", "client", endpoint, "from-client")
            assert client.wait(timeout=20) == 0 and intruder.wait(timeout=20) == 0
            received = receive_all(sock, 3.0)
        assert received == [b"from-client"]
        assert "CURVE: refused peer with unknown public key" in caplog.text
        assert keys["client"][0][:8].decode() not in caplog.text
    finally:
        sock.close()
        stop_authenticator(ctx)
        ctx.term()


def test_one_authenticator_per_context(tmp_path: Path) -> None:
    keys = generate_keys(tmp_path, clients=["a", "b"])
    ctx: zmq.Context[Any] = zmq.Context()
    s1, s2 = ctx.socket(zmq.PULL), ctx.socket(zmq.PULL)
    try:
        a1 = configure_server(s1, keys["server"][1], [keys["a"][0]])
        a2 = configure_server(s2, keys["server"][1], [keys["b"][0]])
        assert a1 is a2 and a1.is_alive()
    finally:
        s1.close(0)
        s2.close(0)
        stop_authenticator(ctx)
        ctx.term()
