"""A faithful fake LiuMa platform 1.4.1 for tests (HTTP + WebSocket on one 127.0.0.1 port).

Use the ``fake_platform`` fixture (import it into a test module or a conftest) or
``with FakePlatform(code, secret) as p: ...``. See ``server.py`` for the failure switches.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.fakeplatform.server import FakePlatform
from tests.fakeplatform.state import PlatformState, Recorded, build_package, validate_row

__all__ = ["PNG", "module_platform", "FakePlatform", "PlatformState", "Recorded", "build_package", "validate_row", "fake_platform",
           "wait_until", "ENGINE_CODE", "ENGINE_SECRET"]

ENGINE_CODE = "3f9a0c7e5b2d4e81a6c9d0b1e2f3a4b5"
ENGINE_SECRET = "9b1c2d3e4f5a46b7889900aabbccddee"


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; returns its last truthiness."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# The smallest byte string the client and the fake accept as a complete PNG (signature ... IEND).
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16 + b"IEND\xaeB`\x82"


@pytest.fixture(scope="module", name="platform")
def module_platform() -> Iterator[FakePlatform]:
    """One fake platform shared by a test module (import it as ``platform``)."""
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET) as p:
        yield p


@pytest.fixture
def fake_platform() -> Iterator[FakePlatform]:
    """A started fake platform (``.base_url``), stopped after the test."""
    with FakePlatform(ENGINE_CODE, ENGINE_SECRET) as platform:
        yield platform
