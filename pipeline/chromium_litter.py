"""What a killed Chromium leaves behind, and the sweep that removes it without touching a live browser's.

A Chromium that exits cleanly removes its own files; one that is killed (SIGKILL, OOM killer, a crashed
executor) leaves:
- ``/dev/shm/.org.chromium.Chromium.XXXXXX``: shared-memory segments (RAM, counted against ``/dev/shm``);
- ``$TMPDIR/org.chromium.Chromium.XXXXXX/``: the SingletonSocket directory of a browser with a profile;
- ``$TMPDIR/org.chromium.Chromium.scoped_dir.XXXXXX/``: chromedriver's profile when none was given (Grid);
- ``$TMPDIR/liuma-chrome-XXXXXX/``: our own profiles (``web.browser``), when the executor died before ``quit``.

An entry is litter only when no live process holds it: no open descriptor or mapping of it (or of a file
under it, ``/proc/<pid>/fd`` and ``/proc/<pid>/maps``), no live command line naming it
(``--user-data-dir=``) and, for a singleton directory, no bound socket at its path (``/proc/net/unix``). It
must also be older than ``min_age`` seconds: a browser being started has made its directory but not yet
opened anything in it. Every process on the host is looked at, so another tenant's browser is safe too.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SHM_DIR", "Held", "bound_sockets", "default_roots", "held_now", "litter", "sweep"]

SHM_DIR = "/dev/shm"
SHM_PREFIX = ".org.chromium.Chromium."
TMP_PREFIXES = ("org.chromium.Chromium.", "liuma-chrome-")   # singleton dirs, chromedriver's scoped dirs, ours


@dataclass(frozen=True, slots=True)
class Held:
    """What live processes hold right now: paths open or mapped, command-line words, bound unix sockets."""

    paths: frozenset[str]
    words: frozenset[str]
    sockets: frozenset[str]

    def holds(self, path: str, directory: bool) -> bool:
        if path in self.paths or path in self.sockets:
            return True
        if not directory:
            return False
        below = path.rstrip("/") + "/"
        if any(p.startswith(below) for p in self.paths) or any(s.startswith(below) for s in self.sockets):
            return True
        return any(w == path or w.endswith("=" + path) or w.startswith(below) or ("=" + below) in w
                   for w in self.words)


def held_now(proc: str = "/proc") -> Held:
    """One walk over every process (~15 ms for a hundred processes)."""
    paths: set[str] = set()
    words: set[str] = set()
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        base = f"{proc}/{pid}"
        try:
            for fd in os.listdir(f"{base}/fd"):
                try:
                    paths.add(_undeleted(os.readlink(f"{base}/fd/{fd}")))
                except OSError:
                    continue
            with open(f"{base}/maps", encoding="utf-8", errors="replace") as f:
                for line in f:
                    i = line.find("/")
                    if i > 0:
                        paths.add(_undeleted(line[i:].rstrip("\n")))
            with open(f"{base}/cmdline", "rb") as f:
                words.update(w.decode("utf-8", "replace") for w in f.read().split(b"\0") if b"/" in w)
        except OSError:               # gone, or not ours to read: nothing of it is litter we could judge
            continue
    return Held(frozenset(paths), frozenset(words), frozenset(bound_sockets(proc)))


def _undeleted(path: str) -> str:
    return path[:-len(" (deleted)")] if path.endswith(" (deleted)") else path


def bound_sockets(proc: str = "/proc") -> set[str]:
    """Paths of the unix sockets bound right now (``/proc/net/unix``)."""
    out = set()
    try:
        with open(f"{proc}/net/unix", encoding="utf-8", errors="replace") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[7].startswith("/"):
                    out.add(parts[7])
    except OSError:
        pass
    return out


def _candidates(tmp_roots: Iterable[str], shm_dir: str) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    try:
        out += [(os.path.join(shm_dir, n), False) for n in os.listdir(shm_dir) if n.startswith(SHM_PREFIX)]
    except OSError:
        pass
    for root in dict.fromkeys(tmp_roots):
        try:
            names = os.listdir(root)
        except OSError:
            continue
        out += [(os.path.join(root, n), True) for n in names if n.startswith(TMP_PREFIXES)
                and os.path.isdir(os.path.join(root, n)) and not os.path.islink(os.path.join(root, n))]
    return out


def _age(path: str, now: float) -> float:
    try:
        return now - os.lstat(path).st_mtime
    except OSError:
        return -1.0


def litter(tmp_roots: Iterable[str], shm_dir: str = SHM_DIR, min_age: float = 60.0, now: float | None = None,
           held: Held | None = None) -> list[str]:
    """Chromium leftovers under ``tmp_roots`` and in ``shm_dir`` that no live process holds."""
    now = time.time() if now is None else now
    found = [(p, d) for p, d in _candidates(tmp_roots, shm_dir) if _age(p, now) >= min_age]
    if not found:
        return []
    h = held or held_now()
    return [p for p, d in found if not h.holds(p, d)]


def sweep(tmp_roots: Iterable[str], shm_dir: str = SHM_DIR, min_age: float = 60.0, now: float | None = None) -> list[str]:
    """Delete what ``litter`` finds; returns what was removed (an entry that vanished meanwhile is skipped)."""
    removed = []
    for path in litter(tmp_roots, shm_dir, min_age, now):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError:
            continue
        removed.append(path)
    return removed


def default_roots() -> list[str]:
    """This process's temp dir and /tmp (chromedriver's scoped dirs of a Grid land in the JVM's /tmp)."""
    import tempfile
    return [tempfile.gettempdir(), "/tmp", *([str(Path(os.environ["LIUMA_TMPDIR"]))] if os.environ.get("LIUMA_TMPDIR") else [])]
