"""Safe extraction of task packages (zip files) downloaded from the platform or given as a local suite.

The platform's ``ZipUtils`` writes a directory entry per folder and a leading ``/`` on every entry name
(reference §3.2, §10). A package comes from the network, so it is treated as hostile: this module never
writes outside ``dest`` and refuses, with a ``SuiteError`` that names the zip and the entry,

- anything that is not a readable zip (an error envelope saved as a zip, a truncated download);
- path escapes: ``..`` components, names that are still absolute after stripping one leading ``/``,
  drive letters, backslashes, NUL characters;
- symlinks and other non-regular entries (devices, FIFOs);
- zip bombs: more than ``max_files`` entries, a declared total above ``max_total_bytes``, and (checked
  while streaming, so a lying header does not help) more actual bytes than declared or than the limit.

Everything is validated before the first byte is written; only a lying size header can stop the
extraction midway, and then the partly written file is removed.
"""
from __future__ import annotations

import io
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

from pipeline.errors import SuiteError

__all__ = ["safe_extract", "is_zip_bytes", "DEFAULT_MAX_TOTAL_BYTES", "DEFAULT_MAX_FILES"]

DEFAULT_MAX_TOTAL_BYTES = 128 * 2**20     # case JSON is at most 16 MiB a file; a 500 MiB package is a bomb
DEFAULT_MAX_FILES = 20000
_CHUNK = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


def is_zip_bytes(data: bytes) -> bool:
    """True if ``data`` is a readable zip archive (local header magic and a central directory)."""
    if not data.startswith(b"PK"):
        return False
    return zipfile.is_zipfile(io.BytesIO(data))


def safe_extract(
    zip_source: Path | bytes,
    dest: Path,
    *,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    label: str = "",
) -> list[Path]:
    """Extract ``zip_source`` (a path or the zip's bytes) under ``dest``; return the files written, in
    archive order. ``label`` names the archive in errors when bytes are given (e.g. ``task <taskId>``)."""
    name = label or (str(zip_source) if isinstance(zip_source, Path) else "<zip bytes>")
    source: Path | io.BytesIO = zip_source if isinstance(zip_source, Path) else io.BytesIO(zip_source)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise SuiteError(f"not a valid zip archive ({e})", file=name) from e
    with archive:
        plan = _plan(archive, name, max_total_bytes, max_files)
        root = dest.resolve()
        root.mkdir(parents=True, exist_ok=True)
        return _write(archive, plan, root, name, max_total_bytes)


def _plan(
    archive: zipfile.ZipFile, name: str, max_total_bytes: int, max_files: int,
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Validate every entry before anything is written; return (entry, safe path parts) pairs."""
    infos = archive.infolist()
    if len(infos) > max_files:
        raise SuiteError(f"{len(infos)} entries exceed the limit of {max_files}", file=name)
    declared = 0
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    for info in infos:
        parts = _safe_parts(info.filename, name)
        _check_type(info, name)
        declared += info.file_size
        if declared > max_total_bytes:
            raise SuiteError(
                f"entry {info.filename!r}: declared uncompressed size brings the total to {declared} bytes, "
                f"above the limit of {max_total_bytes}", file=name)
        plan.append((info, parts))
    return plan


def _safe_parts(entry: str, name: str) -> tuple[str, ...]:
    """Path components of ``entry`` relative to the destination, or SuiteError for an escaping name."""
    def refuse(why: str) -> SuiteError:
        return SuiteError(f"entry {entry!r} refused: {why}", file=name)

    if "\\" in entry:
        raise refuse("backslash in the name")
    if "\x00" in entry:
        raise refuse("NUL character in the name")
    relative = entry[1:] if entry.startswith("/") else entry  # the platform's leading slash (§3.2)
    if relative.startswith("/"):
        raise refuse("absolute path")
    if _DRIVE.match(relative):
        raise refuse("drive letter")
    parts = tuple(p for p in PurePosixPath(relative).parts if p not in ("", "."))
    if ".." in relative.split("/"):
        raise refuse("'..' path component")
    return parts


def _check_type(info: zipfile.ZipInfo, name: str) -> None:
    """Only regular files and directories; the unix mode sits in the high 16 bits of external_attr."""
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == 0 or kind in (stat.S_IFREG, stat.S_IFDIR):
        return
    what = "symbolic link" if kind == stat.S_IFLNK else f"special file (mode {oct(mode)})"
    raise SuiteError(f"entry {info.filename!r} refused: {what}", file=name)


def _write(
    archive: zipfile.ZipFile,
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    root: Path,
    name: str,
    max_total_bytes: int,
) -> list[Path]:
    written: list[Path] = []
    total = 0
    for info, parts in plan:
        if not parts:
            continue  # "/" alone: the destination itself
        target = root.joinpath(*parts)
        _check_inside(target, root, info.filename, name)
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            _check_inside(target.parent.resolve() / target.name, root, info.filename, name)
            total = _copy(archive, info, target, total, max_total_bytes, name)
        except (OSError, zipfile.BadZipFile, RuntimeError, EOFError) as e:
            raise SuiteError(f"entry {info.filename!r}: cannot extract ({e})", file=name) from e
        written.append(target)
    return written


def _check_inside(target: Path, root: Path, entry: str, name: str) -> None:
    """Resolve symlinks already present under ``root`` too: a directory link must not lead outside."""
    resolved = target.resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise SuiteError(f"entry {entry!r} refused: resolves outside the destination", file=name)


def _copy(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, total: int, limit: int, name: str,
) -> int:
    """Stream one entry, counting actual bytes against its declared size and the archive limit."""
    size = 0
    try:
        with archive.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                total += len(chunk)
                if size > info.file_size or total > limit:
                    raise SuiteError(
                        f"entry {info.filename!r}: more data than declared or above the limit of {limit} bytes "
                        "(zip bomb?)", file=name)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return total
