"""The oracle (the original LiuMa engine in its own Python 3.8 venv), installed once per machine."""
from __future__ import annotations

import pytest

from tests.conformance import oracle_env


@pytest.fixture(scope="session")
def oracle() -> oracle_env.Oracle:
    found = oracle_env.ensure()
    if found is None:
        pytest.skip("the original LiuMa engine cannot run here (no oracle tarball or no Python 3.8)")
    return found
