"""Janitor rules on real files with mtimes set by os.utime, and orphan detection with a real process."""
from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pipeline.config import load_config_text
from pipeline.topology import RunSpec
from stages.janitor import DAY, Janitor, archive_rotated_logs, expired_entries, find_orphans
from tests.fakes import FakeMailbox

NOW = time.time()


def aged(p: Path, days: float, *, content: str | None = None) -> Path:
    """Create ``p`` (a dir when content is None) and set its mtime ``days`` ago."""
    if content is None:
        p.mkdir(parents=True, exist_ok=True)
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    t = NOW - days * DAY
    os.utime(p, (t, t))
    return p


def test_expired_entries_dirs_or_files(tmp_path: Path) -> None:
    aged(tmp_path / "old", 8)
    aged(tmp_path / "young", 6.9)
    aged(tmp_path / ".hidden-old", 30)
    aged(tmp_path / "old-file.txt", 30, content="x")
    assert [p.name for p in expired_entries(tmp_path, 7 * DAY, NOW)] == ["old"]
    assert [p.name for p in expired_entries(tmp_path, 7 * DAY, NOW, files=True)] == ["old-file.txt"]
    assert expired_entries(tmp_path / "absent", 0, NOW) == []


def test_archive_rotated_logs(tmp_path: Path) -> None:
    log = tmp_path / "log"
    old = aged(log / "scheduler.log.1", 40, content="old lines\n")
    aged(log / "scheduler.log.2", 5, content="recent\n")
    aged(log / "scheduler.log", 40, content="current file, never archived\n")
    aged(log / "scheduler.log.bak", 40, content="not a rotation\n")
    mtime = old.stat().st_mtime
    [(src, dest)] = archive_rotated_logs(log, 30 * DAY, NOW)
    assert src == old and not old.exists()
    assert dest == log / "archive" / time.strftime("%Y-%m", time.localtime(mtime)) / f"scheduler.log.1.{int(mtime)}.gz"
    assert gzip.decompress(dest.read_bytes()) == b"old lines\n"
    assert sorted(p.name for p in log.iterdir()) == ["archive", "scheduler.log", "scheduler.log.2", "scheduler.log.bak"]
    assert archive_rotated_logs(tmp_path / "nolog", 0, NOW) == []


def make(tmp_path: Path, ini: str = "") -> Janitor:
    cfg = load_config_text(ini)
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    spec = RunSpec(str(run), "start", cfg.values, report_dir=str(tmp_path / "reports"), storage_root=str(tmp_path / "storage"))
    j = Janitor("janitor", 0, spec)
    j.mailbox = FakeMailbox("janitor")  # type: ignore[assignment]
    return j


def test_sweep_applies_every_rule_and_keeps_young_things(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    j = make(tmp_path, "[Retention]\ndata-days = 7\nscreenshot-hours = 24\nreport-days = 30\n[Logging]\narchive-days = 30\n")
    st, rep = tmp_path / "storage", tmp_path / "reports"
    aged(st / "data" / "t-old" / "c1", 1)             # inner content is young: the task folder's own mtime decides
    aged(st / "data" / "t-old", 8)
    aged(st / "data" / "t-young", 6)
    aged(st / "image" / "t-old", 25 / 24)
    aged(st / "image" / "t-young", 23 / 24)
    aged(rep / "t-old", 31)
    aged(rep / "t-young", 29)
    aged(st / "log" / "executor-1.log.3", 31, content="x")
    outside = aged(tmp_path / "precious", 365)
    (st / "data" / "link-out").symlink_to(outside)     # a link in data/ must not lead the janitor outside
    os.utime(st / "data" / "link-out", (NOW - 100 * DAY,) * 2, follow_symlinks=False)
    with caplog.at_level(logging.INFO, logger="stage.janitor"):
        j.sweep(NOW)
    assert sorted(p.name for p in (st / "data").iterdir()) == ["t-young"]          # the old link itself went
    assert [p.name for p in (st / "image").iterdir()] == ["t-young"]
    assert [p.name for p in rep.iterdir()] == ["t-young"]
    assert [p.name for p in (st / "log").iterdir()] == ["archive"]
    assert outside.is_dir()                                                         # its target did not
    assert j.deleted == 4
    text = caplog.text
    assert f"deleted {st / 'data' / 't-old'} (task data older than 7.0 days)" in text
    assert "screenshots older than 24.0 h" in text and "report older than 30.0 days" in text
    assert "archived " in text


@pytest.fixture
def fake_browser(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real process named like a browser ("chromium-fake"), in its own process group, whose command line
    carries the run directory as Chromium's --user-data-dir would."""
    link = tmp_path / "chromium-fake"
    link.symlink_to(sys.executable)
    marker = str((tmp_path / "run").resolve())
    proc = subprocess.Popen([str(link), "-c", "import time; time.sleep(60)", f"--user-data-dir={marker}/tmp/executor-1/profile"],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while "chromium-fake" not in psutil.Process(proc.pid).name():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield proc, marker
    finally:
        proc.kill()
        proc.wait(10)


def test_find_orphans_by_marker_and_process_group(fake_browser: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, marker = fake_browser
    assert [p.pid for p in find_orphans(marker, {os.getpgid(0)})] == [proc.pid]
    assert find_orphans(marker, {proc.pid}) == []                     # its group is a live stage's
    assert find_orphans(marker + "-other-run", set()) == []


def test_reap_orphans_uses_the_supervisor_status(tmp_path: Path, fake_browser: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, _ = fake_browser
    (tmp_path / "run").mkdir(exist_ok=True)
    j = make(tmp_path)
    status = tmp_path / "run" / "status.json"
    j.reap_orphans()                                                  # no status yet: cannot tell, touch nothing
    assert proc.poll() is None
    status.write_text(json.dumps({"stages": [{"name": "executor-1", "pid": proc.pid, "state": "running"}]}))
    j.reap_orphans()
    assert proc.poll() is None and j.reaped == 0
    status.write_text(json.dumps({"stages": [{"name": "executor-1", "pid": proc.pid, "state": "stopped"},
                                             {"name": "executor-2", "pid": 999999, "state": "running"}]}))
    j.reap_orphans()
    assert proc.wait(10) == -9 and j.reaped == 1


def test_a_failed_deletion_is_logged_as_such(tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    j = make(tmp_path)
    aged(tmp_path / "storage" / "data" / "t-old", 30)

    def refuse(path: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr("stages.janitor.shutil.rmtree", refuse)
    with caplog.at_level(logging.INFO, logger="stage.janitor"):
        j.sweep(NOW)
    assert j.deleted == 0 and "could not delete" in caplog.text and "deleted " not in caplog.text


def test_sweep_vacuums_the_run_history_past_history_days(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.history import Attempt, HistoryStore, history_path
    path = history_path(tmp_path / "storage")
    store = HistoryStore(path)
    store.record([Attempt("r-old", "t", "c", "old", 1, 1, "API", 0, "passed", 1.0, NOW - 11 * DAY),
                  Attempt("r-new", "t", "c", "new", 1, 1, "API", 0, "passed", 1.0, NOW - 9 * DAY)])
    store.close()
    j = make(tmp_path, "[Retention]\nhistory-days = 10\n")
    with caplog.at_level(logging.INFO):
        j.sweep(NOW)
    left = HistoryStore(path, readonly=True)
    assert left.case_attempts("old") == [] and len(left.case_attempts("new")) == 1
    assert "deleted 1 run history rows older than 10.0 days" in caplog.text
    j.sweep(NOW)                                   # nothing left to delete: nothing logged twice
    assert caplog.text.count("run history rows") == 1


def test_sweep_without_history_creates_none(tmp_path: Path) -> None:
    from pipeline.history import history_path
    make(tmp_path).sweep(NOW)
    assert not history_path(tmp_path / "storage").exists()


def test_sweep_litter_removes_what_dead_executors_browsers_left_but_not_what_a_live_process_holds(tmp_path: Path) -> None:
    import subprocess
    import sys
    j = make(tmp_path)
    ex = tmp_path / "run" / "tmp" / "executor-1"
    dead, held = ex / "liuma-chrome-dead", ex / "liuma-chrome-held"
    for d in (dead, held):
        d.mkdir(parents=True)
    (held / "Cookies").write_bytes(b"x")
    helper = subprocess.Popen([sys.executable, "-c", "import sys, time; f = open(sys.argv[1]); print('ready', flush=True);"
                               " time.sleep(120)", str(held / "Cookies")], stdout=subprocess.PIPE)
    try:
        assert helper.stdout is not None and helper.stdout.readline() == b"ready\n"
        for d in (dead, held):
            os.utime(d, (time.time() - 600,) * 2)
        j.sweep_litter()
        assert not dead.exists() and held.is_dir() and j.deleted >= 1      # (and whatever /tmp held of the kind)
    finally:
        helper.kill()
        helper.wait()
