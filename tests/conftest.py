"""Shared fixtures: the demo server (one per test session) and the project root on sys.path."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("SE_OFFLINE", "true")


@pytest.fixture(scope="session")
def demo_url() -> Iterator[str]:
    from examples.demo_server import serve
    server, url = serve(0)
    yield url
    server.shutdown()
    server.server_close()
