"""Storage faults: described with file and errno; the min-free-mb policy; a journal that cannot write
reports through ``on_error`` instead of raising into a handler."""
from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pipeline.journal import AppendLog
from pipeline.storage import fault_text, short_of_space


def test_fault_text_names_file_and_errno() -> None:
    e = OSError(errno.ENOSPC, "No space left on device", "/r/t-1/junit.xml")
    assert fault_text(e) == "/r/t-1/junit.xml: [Errno 28 ENOSPC] No space left on device"
    assert fault_text(OSError(errno.EIO, "Input/output error"), "/j") == "/j: [Errno 5 EIO] Input/output error"
    assert fault_text(ValueError("bad"), "/r") == "/r: ValueError: bad"


@pytest.mark.parametrize("free_mib, min_mb, short", [(10, 0, False), (10, 5, False), (4, 5, True), (0, 0.5, True)])
def test_short_of_space(tmp_path: Path, free_mib: float, min_mb: float, short: bool) -> None:
    usage = lambda p: (100 * 2**20, 0, int(free_mib * 2**20))  # noqa: E731
    why = short_of_space([tmp_path / "not-yet" / "created"], min_mb, usage)
    assert bool(why) is short
    if why:
        assert "min-free-mb" in why and str(tmp_path / "not-yet" / "created") in why


def test_journal_write_failure_goes_to_on_error(tmp_path: Path) -> None:
    seen: list[str] = []
    log = AppendLog(tmp_path / "j", on_error=seen.append)
    log.open()
    log._fh.close()
    log._fh = open("/dev/full", "ab")                  # every write: ENOSPC
    log.append(["result", {"x": 1}])
    assert seen and "[Errno 28 ENOSPC]" in seen[0]
    with pytest.raises(OSError):
        strict = AppendLog(tmp_path / "k")
        strict.open()
        strict._fh.close()
        strict._fh = open("/dev/full", "ab")
        strict.append(["x"])
