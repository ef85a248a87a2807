"""A project-local Appium server for tests: ``AppiumServer`` (context manager) and the ``appium_server`` fixture.

The server runs from ``tools/appium`` (Appium 3.8.0 + @appium/fake-driver 6.2.4 installed there with
``npm ci --prefix tools/appium``; ``APPIUM_HOME`` points at that folder so nothing lands in ``$HOME``),
binds 127.0.0.1 on a free port, lives in its own process group and is stopped with ``killpg``: the fake
driver runs inside the node process, so nothing is left behind (reference env.md §3.2, §5.4).

Use from another test module::

    from tests.appium_server import appium_server, fake_app   # noqa: F401  (module-scoped fixtures)

    def test_x(appium_server: AppiumServer) -> None:
        ...  appium_server.url ...
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["AppiumServer", "APPIUM_HOME", "APPIUM_BIN", "FAKE_APPS", "appium_server", "fake_app",
           "appium_available", "fake_caps"]

ROOT = Path(__file__).resolve().parent.parent
APPIUM_HOME = ROOT / "tools" / "appium"
APPIUM_BIN = APPIUM_HOME / "node_modules" / ".bin" / "appium"
FAKE_APPS = ROOT / "tests" / "fixtures" / "apps"


def appium_available() -> bool:
    """True when ``npm ci --prefix tools/appium`` has been run (the binary and the fake driver exist)."""
    return APPIUM_BIN.exists() and (APPIUM_HOME / "node_modules" / "@appium" / "fake-driver").is_dir()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_caps(app: str | Path) -> dict[str, object]:
    """Capabilities for a fake-driver session on the XML app ``app`` (absolute path: the server reads it)."""
    return {"platformName": "Fake", "appium:automationName": "Fake",
            "appium:app": str(Path(app).resolve()), "appium:newCommandTimeout": 60}


class AppiumServer:
    """One Appium server process on 127.0.0.1. ``start()`` returns when ``/status`` says ready."""

    def __init__(self, port: int | None = None, *, ready_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AppiumServer:
        if not appium_available():
            raise RuntimeError(f"Appium is not installed in {APPIUM_HOME}: run `npm ci --prefix tools/appium`")
        env = dict(os.environ, APPIUM_HOME=str(APPIUM_HOME))
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(APPIUM_BIN), "--address", "127.0.0.1", "--port", str(self.port), "--log-level", "warn"],
            env=env, cwd=str(APPIUM_HOME), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready(t0)
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self, t0: float) -> None:
        assert self.proc is not None
        while time.monotonic() - t0 < self.ready_timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Appium exited with {self.proc.returncode} before it was ready on {self.url}")
            if self.is_ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Appium not ready on {self.url} after {self.ready_timeout} s")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/status", timeout=1) as r:
                return b'"ready":true' in r.read()
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL after 10 s; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> AppiumServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def appium_server() -> Iterator[AppiumServer]:
    """One Appium server per test module. Fails (never skips) when Appium is not installed: run
    ``npm ci --prefix tools/appium`` (the CI setup does)."""
    with AppiumServer() as server:
        yield server


@pytest.fixture(scope="module")
def fake_app() -> Path:
    """The default fake XML app (tests/fixtures/apps/login.xml), absolute."""
    return (FAKE_APPS / "login.xml").resolve()
