"""Janitor stage: housekeeping on the seed's lifecycle rules. Every deletion and every reaped process is
logged (what, where, why).

- task data ``data/<taskId>/`` after ``[Retention] data-days``; screenshots after ``screenshot-hours``;
  report folders after ``report-days``; run history rows (``history.sqlite``) after ``history-days``, vacuumed;
- rotated logs (``*.log.N``) older than ``[Logging] archive-days`` gzipped into ``log/archive/<YYYY-MM>/``;
- orphan browsers: chromium/chromedriver processes of this run (their profile lives under the run
  directory) whose executor is gone are killed; what killed browsers left (``/dev/shm`` segments,
  Chromium's singleton dirs, chromedriver's and our profiles) is deleted once no live process holds it;
- disk and memory watch: a warning before the disk fills;
- ``[Retention] backup = true``: a daily ``backup/backup_<YYYYmmdd_HHMMSS>.zip`` of the config file, ``data/``
  and ``log/`` (not ``log/archive/``), keeping the newest ``backup-keep``.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import psutil

from pipeline.chromium_litter import default_roots
from pipeline.chromium_litter import sweep as litter_sweep
from pipeline.history import HistoryStore, history_path
from pipeline.stage import Stage

__all__ = ["Janitor", "STAGE", "expired_entries", "archive_rotated_logs", "find_orphans", "create_backup", "prune_backups",
           "backup_due"]

DAY = 86400.0


def expired_entries(root: Path, max_age_s: float, now: float, *, files: bool = False) -> list[Path]:
    """Children of ``root`` (dirs, or files when ``files``) whose mtime is older than ``max_age_s``."""
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        if p.name.startswith(".") or (files and not p.is_file()) or (not files and not p.is_dir()):
            continue
        try:
            if now - p.lstat().st_mtime > max_age_s:     # a link's own age, not its target's
                out.append(p)
        except FileNotFoundError:
            continue
    return out


def archive_rotated_logs(log_dir: Path, max_age_s: float, now: float) -> list[tuple[Path, Path]]:
    """Gzip rotated logs older than ``max_age_s`` into ``archive/<YYYY-MM>/``; returns (source, archive) pairs."""
    done: list[tuple[Path, Path]] = []
    if not log_dir.is_dir():
        return done
    for p in log_dir.glob("*.log.*"):
        if not p.is_file() or not p.suffix.lstrip(".").isdigit():
            continue
        mtime = p.stat().st_mtime
        if now - mtime <= max_age_s:
            continue
        dest_dir = log_dir / "archive" / time.strftime("%Y-%m", time.localtime(mtime))
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"{p.name}.{int(mtime)}.gz"
        with open(p, "rb") as src, gzip.open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        p.unlink()
        done.append((p, dest))
    return done


BACKUP_PREFIX, BACKUP_SUFFIX = "backup_", ".zip"


def _backups(backup_dir: Path) -> list[Path]:
    """Finished backups, newest first (the name carries the time; a half-written ``.tmp`` is not one)."""
    if not backup_dir.is_dir():
        return []
    found = [p for p in backup_dir.iterdir() if p.is_file() and p.name.startswith(BACKUP_PREFIX) and p.name.endswith(BACKUP_SUFFIX)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def backup_due(backup_dir: Path, now: float, every_s: float = DAY) -> bool:
    """True when no backup was made within ``every_s`` (by the newest one's mtime)."""
    newest = _backups(backup_dir)
    return not newest or now - newest[0].stat().st_mtime >= every_s


def create_backup(storage: Path, config_path: str | None, now: float) -> Path:
    """Zip the config file, ``data/`` and ``log/`` (without ``log/archive/``, already compressed history) into
    ``<storage>/backup/backup_<YYYYmmdd_HHMMSS>.zip``, written to a temporary name first. Links are not
    followed; a file that vanishes while we walk (a task expiring) is skipped."""
    backup_dir = storage / "backup"
    backup_dir.mkdir(parents=True, exist_ok=True)
    dest = backup_dir / f"{BACKUP_PREFIX}{time.strftime('%Y%m%d_%H%M%S', time.localtime(now))}{BACKUP_SUFFIX}"
    tmp = dest.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        if config_path and Path(config_path).is_file():
            z.write(config_path, f"config/{Path(config_path).name}")
        for top in ("data", "log"):
            base = storage / top
            for dirpath, dirnames, filenames in os.walk(base):
                if top == "log" and Path(dirpath) == base:
                    dirnames[:] = [d for d in dirnames if d != "archive"]
                for f in sorted(filenames):
                    p = Path(dirpath) / f
                    if p.is_symlink() or not p.is_file():
                        continue
                    try:
                        z.write(p, f"{top}/{p.relative_to(base)}")
                    except FileNotFoundError:
                        continue
    tmp.replace(dest)
    return dest


def prune_backups(backup_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups; returns what was deleted."""
    doomed = _backups(backup_dir)[max(0, keep):]
    for p in doomed:
        p.unlink()
    return doomed


def find_orphans(marker: str, live_pgids: set[int]) -> list[psutil.Process]:
    """Browser/driver processes whose command line contains ``marker`` (our run directory) and whose
    process group is no live stage's."""
    out = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            name = (p.info["name"] or "").lower()
            if not any(n in name for n in ("chrom", "appium", "node")):
                continue
            cmd = " ".join(p.info["cmdline"] or [])
            if marker not in cmd:
                continue
            if os.getpgid(p.pid) in live_pgids:
                continue
            out.append(p)
        except (psutil.Error, ProcessLookupError):
            continue
    return out


LITTER_EVERY_S = 60.0         # browser leftovers: swept this often ...
LITTER_MIN_AGE_S = 60.0       # ... once this old (a starting browser has made its dir, not yet opened it)


class Janitor(Stage):
    POLL_MS = 1000

    def __init__(self, name: str, inc: int, spec: Any) -> None:
        super().__init__(name, inc, spec)
        self.root = Path(spec.storage_root)
        self._last_sweep = 0.0
        self._last_reap = 0.0
        self._last_litter = 0.0
        self.deleted = 0
        self.reaped = 0

    def on_tick(self) -> None:
        now = self.clock.monotonic()
        if now - self._last_reap >= 5.0 and not self.stopping:   # stopping: the supervisor sweeps orphans as it closes
            self._last_reap = now
            self.reap_orphans()
        if now - self._last_litter >= LITTER_EVERY_S:
            self._last_litter = now
            self.sweep_litter()
        if now - self._last_sweep >= float(self.spec.setting("Retention", "interval")) or self._last_sweep == 0.0:
            self._last_sweep = now
            self.sweep(self.clock.wall())

    def sweep(self, now: float) -> None:
        r = self.spec.config["Retention"]
        for path, why in ([(p, f"task data older than {r['data-days']} days") for p in expired_entries(self.root / "data", r["data-days"] * DAY, now)]
                          + [(p, f"screenshots older than {r['screenshot-hours']} h") for p in expired_entries(self.root / "image", r["screenshot-hours"] * 3600, now)]
                          + [(p, f"report older than {r['report-days']} days") for p in expired_entries(Path(self.spec.report_dir), r["report-days"] * DAY, now)]):
            try:                      # a link is removed itself: rmtree would refuse it, and must not follow it
                path.unlink() if path.is_symlink() else shutil.rmtree(path)
            except OSError as e:
                self.log.warning("could not delete %s (%s): %s", path, why, e)
                continue
            self.deleted += 1
            self.log.info("deleted %s (%s)", path, why)
        self.vacuum_history(now - r["history-days"] * DAY)
        for src, dest in archive_rotated_logs(self.root / "log", self.spec.setting("Logging", "archive-days") * DAY, now):
            self.log.info("archived %s -> %s", src, dest)
        usage = psutil.disk_usage(str(self.root if self.root.exists() else Path.cwd()))
        if usage.percent >= r["disk-warn-percent"]:
            self.log.warning("disk %.1f%% full under %s (warn at %.0f%%): free %.1f GB", usage.percent, self.root,
                             r["disk-warn-percent"], usage.free / 2**30)
        mem = psutil.virtual_memory()
        if mem.percent >= 90:
            self.log.warning("memory %.1f%% used (%.1f GB available)", mem.percent, mem.available / 2**30)
        if r["backup"]:
            self.backup(now)

    def vacuum_history(self, older_than: float) -> None:
        """``[Retention] history-days``: run history rows older than that go, and their pages are given back."""
        path = history_path(self.root)
        if not path.exists():
            return
        store = HistoryStore(path, warn=self.log.warning)
        try:
            n = store.vacuum(older_than)
        finally:
            store.close()
        if n:
            self.deleted += n
            self.log.info("deleted %d run history rows older than %s days from %s", n,
                          self.spec.setting("Retention", "history-days"), path)

    def backup(self, now: float) -> None:
        """The daily backup and its rotation; a failure is logged and retried at the next sweep."""
        backup_dir = self.root / "backup"
        if not backup_due(backup_dir, now):
            return
        try:
            dest = create_backup(self.root, self.spec.config_path, now)
        except OSError as e:
            self.log.error("backup into %s failed: %s", backup_dir, e)
            return
        self.log.info("backup written: %s (%.1f MB)", dest, dest.stat().st_size / 2**20)
        keep = int(self.spec.setting("Retention", "backup-keep"))
        try:
            for p in prune_backups(backup_dir, keep):
                self.deleted += 1
                self.log.info("deleted %s (older than the newest %d backups)", p, keep)
        except OSError as e:
            self.log.warning("could not prune backups in %s: %s", backup_dir, e)

    def reap_orphans(self) -> None:
        live = self._live_pgids()
        if live is None:          # no status from the supervisor yet: we cannot tell live from orphaned
            return
        for p in find_orphans(str(Path(self.spec.run_dir).resolve()), live):
            try:
                cmd = " ".join(p.cmdline()[:2])
                p.kill()
                self.reaped += 1
                self.log.warning("reaped orphan process %d (%s): its executor is gone", p.pid, cmd)
            except psutil.Error:
                pass

    def sweep_litter(self) -> None:
        """What browsers of dead executors left (``pipeline.chromium_litter``): ``/dev/shm`` segments and
        Chromium's singleton, chromedriver's and our profile dirs in every stage's temp dir and /tmp, older
        than a minute and held by no live process (another tenant's live browser included)."""
        tmp = Path(self.spec.run_dir) / "tmp"
        roots = [str(p) for p in sorted(tmp.glob("*")) if p.is_dir()] + default_roots()
        try:
            removed = litter_sweep(roots, min_age=LITTER_MIN_AGE_S)
        except OSError as e:
            self.log.warning("sweeping browser leftovers failed: %s", e)
            return
        self.deleted += len(removed)
        for path in removed:
            self.log.info("deleted %s (left by a killed browser, held by no live process)", path)

    def _live_pgids(self) -> set[int] | None:
        status = Path(self.spec.run_dir) / "status.json"
        try:
            data = json.loads(status.read_text())
        except (OSError, ValueError):
            return None
        return {s["pid"] for s in data.get("stages", []) if s.get("pid") and s.get("state") != "stopped"} | {os.getpgid(0)}

    def stats(self) -> dict[str, Any]:
        base = super().stats()
        base.update({"deleted": self.deleted, "reaped": self.reaped})
        return base


STAGE = Janitor
