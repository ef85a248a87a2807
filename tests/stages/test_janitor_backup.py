"""Daily backup zips of config/data/log under ``<storage>/backup/`` with rotation, on real files."""
from __future__ import annotations

import logging
import os
import time
import zipfile
from pathlib import Path

import pytest

from pipeline.config import load_config_text
from pipeline.topology import RunSpec
from stages.janitor import DAY, Janitor, backup_due, create_backup, prune_backups
from tests.fakes import FakeMailbox

NOW = time.time()


def storage(tmp_path: Path) -> Path:
    st = tmp_path / "storage"
    (st / "data" / "t-1" / "c1").mkdir(parents=True)
    (st / "data" / "t-1" / "c1" / "case.json").write_text('{"caseId": "case"}')
    (st / "data" / "t-1" / "metadata.json").write_text('{"status": "finished"}')
    (st / "log" / "archive" / "2024-01").mkdir(parents=True)
    (st / "log" / "archive" / "2024-01" / "x.log.1.gz").write_bytes(b"old")
    (st / "log" / "scheduler.log").write_text("line\n")
    (st / "log" / "scheduler.log.1").write_text("rotated\n")
    os.symlink("/etc/passwd", st / "data" / "t-1" / "link")
    return st


def janitor(tmp_path: Path, ini: str) -> Janitor:
    cfg_file = tmp_path / "config.ini"
    cfg_file.write_text(ini)
    cfg = load_config_text(ini)
    (tmp_path / "run").mkdir(exist_ok=True)
    spec = RunSpec(str(tmp_path / "run"), "start", cfg.values, config_path=str(cfg_file),
                   report_dir=str(tmp_path / "reports"), storage_root=str(tmp_path / "storage"))
    j = Janitor("janitor", 0, spec)
    j.mailbox = FakeMailbox("janitor")  # type: ignore[assignment]
    return j


def test_create_backup_holds_config_data_and_logs_but_no_archive_or_links(tmp_path: Path) -> None:
    st = storage(tmp_path)
    cfg = tmp_path / "config.ini"
    cfg.write_text("[Pipeline]\napi-workers = 1\n")
    dest = create_backup(st, str(cfg), NOW)
    assert dest.parent == st / "backup" and dest.name == time.strftime("backup_%Y%m%d_%H%M%S.zip", time.localtime(NOW))
    with zipfile.ZipFile(dest) as z:
        assert sorted(z.namelist()) == ["config/config.ini", "data/t-1/c1/case.json", "data/t-1/metadata.json",
                                        "log/scheduler.log", "log/scheduler.log.1"]
        assert z.read("config/config.ini") == cfg.read_bytes()
        assert z.read("data/t-1/c1/case.json") == b'{"caseId": "case"}'
    assert not list((st / "backup").glob("*.tmp"))


def test_prune_keeps_the_newest_and_due_follows_the_newest_mtime(tmp_path: Path) -> None:
    b = tmp_path / "backup"
    b.mkdir()
    names = [f"backup_2024010{d}_030000.zip" for d in range(1, 6)]
    for n in names:
        (b / n).write_bytes(b"z")
    (b / "backup_20240109_030000.tmp").write_bytes(b"half")          # an interrupted one is not a backup
    (b / "notes.zip").write_bytes(b"mine")                            # nor is anything else
    assert [p.name for p in prune_backups(b, 3)] == names[1::-1]
    assert sorted(p.name for p in b.iterdir()) == sorted(names[2:] + ["backup_20240109_030000.tmp", "notes.zip"])
    newest = b / names[-1]
    os.utime(newest, (NOW - 2 * 3600, NOW - 2 * 3600))
    assert not backup_due(b, NOW)
    os.utime(newest, (NOW - DAY - 1, NOW - DAY - 1))
    assert backup_due(b, NOW) and backup_due(tmp_path / "none", NOW)


def test_janitor_sweep_backs_up_daily_and_rotates_logging_each_deletion(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage(tmp_path)
    j = janitor(tmp_path, "[Retention]\nbackup = true\nbackup-keep = 2\n")
    b = tmp_path / "storage" / "backup"
    b.mkdir()
    for d in (1, 2):
        old = b / f"backup_2020010{d}_000000.zip"
        old.write_bytes(b"z")
        os.utime(old, (NOW - 10 * DAY, NOW - 10 * DAY))
    with caplog.at_level(logging.INFO):
        j.sweep(NOW)
        j.sweep(NOW + 60)                                             # the same day: no second backup
    made = sorted(p.name for p in b.iterdir())
    assert made == ["backup_20200102_000000.zip", time.strftime("backup_%Y%m%d_%H%M%S.zip", time.localtime(NOW))]
    deleted = [r.getMessage() for r in caplog.records if r.getMessage().startswith("deleted")]
    assert deleted == [f"deleted {b / 'backup_20200101_000000.zip'} (older than the newest 2 backups)"]
    assert any("backup written" in r.getMessage() for r in caplog.records)


def test_backup_off_by_default(tmp_path: Path) -> None:
    storage(tmp_path)
    janitor(tmp_path, "").sweep(NOW)
    assert not (tmp_path / "storage" / "backup").exists()
