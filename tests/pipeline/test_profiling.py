"""LIUMA_PROFILE: a per-process profile and timeline when asked, nothing at all otherwise."""
from __future__ import annotations

import json
import os
import pstats
from pathlib import Path

import pytest

from pipeline.profiling import ENV, Profile, mark


def _work() -> int:
    return sum(i * i for i in range(20000))


def test_unset_writes_nothing_and_keeps_no_marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with Profile("stage"):
        mark("ready")
        _work()
    assert list(tmp_path.iterdir()) == []


def test_profile_and_timeline_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "prof"))
    with Profile("scheduler"):
        mark("ready")
        _work()
    base = tmp_path / "prof" / f"scheduler-{os.getpid()}"
    data = json.loads(base.with_suffix(".json").read_text())
    assert data["name"] == "scheduler" and data["pid"] == os.getpid()
    assert [m[0] for m in data["marks"]] == ["enter", "ready", "exit"]
    times = [m[1] for m in data["marks"]]
    assert times == sorted(times) and all(len(m) == 3 for m in data["marks"])       # wall time, CPU so far
    assert data["user"] + data["system"] >= data["marks"][-1][2]               # whole-process CPU, read after the last mark
    stats = pstats.Stats(f"{base}.prof")
    assert any(func[2] == "_work" for func in stats.stats)                            # type: ignore[attr-defined]


def test_cpu_mode_writes_the_timeline_without_a_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, f"cpu:{tmp_path}")
    with Profile("fetcher"):
        _work()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"fetcher-{os.getpid()}.json"]


def test_an_unwritable_directory_never_fails_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(ENV, str(blocker / "prof"))
    with Profile("janitor"):
        _work()
