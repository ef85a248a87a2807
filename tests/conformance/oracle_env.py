"""Install the original LiuMa engine 1.4.1 (the test oracle, ../shared/oracle/) outside the repository.

The original is AGPL: it is *run* beside ours, never copied into the project. This module extracts its tarball
into a cache directory (``$LIUMA_ORACLE_CACHE``, default ``~/.cache/liuma-oracle/<tarball sha>``), creates a
Python 3.8 venv there (pyenv's: the original breaks on 3.11) and installs its pinned requirements. Idempotent:
a ``ready`` marker is written last, so a second call costs one stat. ``./dev test`` calls
``python -m tests.conformance.oracle_env``; tests call ``ensure()`` and skip when it returns None
(no tarball or no Python 3.8 on this machine), unless ``LIUMA_ORACLE_REQUIRED=1`` makes that an error.
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Oracle", "ensure", "locate_tarball", "find_python38"]

ROOT = Path(__file__).resolve().parents[2]
_TARBALL_NAMES = ("liuma-engine-1.4.1.tar.gz",)


@dataclass(frozen=True)
class Oracle:
    python: Path        # the venv's interpreter
    tree: Path          # the extracted engine tree (read-only template: copy it before running startup.py)

    @property
    def answers(self) -> Path:
        """Where the original's answers to a corpus are cached (keyed by the corpus hash by the caller)."""
        return self.tree.parent.parent / "answers"


def locate_tarball() -> Path | None:
    """``$LIUMA_ORACLE_TARBALL``, else the shared oracle directory next to the worktrees."""
    env = os.environ.get("LIUMA_ORACLE_TARBALL")
    if env:
        return Path(env) if Path(env).is_file() else None
    for base in (ROOT.parent / "shared" / "oracle", ROOT.parent.parent / "shared" / "oracle", Path("/work/shared/oracle")):
        for name in _TARBALL_NAMES:
            if (base / name).is_file():
                return base / name
    return None


def find_python38() -> Path | None:
    """pyenv's 3.8 (``$PYENV_ROOT`` or ``~/.pyenv``), else a ``python3.8`` on PATH."""
    roots = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv")]
    for root in filter(None, roots):
        found = sorted(glob.glob(os.path.join(root, "versions", "3.8.*", "bin", "python")))
        if found:
            return Path(found[-1])
    exe = shutil.which("python3.8")
    return Path(exe) if exe else None


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def ensure(verbose: bool = False) -> Oracle | None:
    """The installed oracle, installing it first if needed; None when this machine cannot run it."""
    tarball = locate_tarball()
    python38 = find_python38()
    if tarball is None or python38 is None:
        if os.environ.get("LIUMA_ORACLE_REQUIRED") == "1":
            raise RuntimeError(f"oracle unavailable: tarball={tarball} python3.8={python38}")
        return None
    cache = Path(os.environ.get("LIUMA_ORACLE_CACHE") or Path.home() / ".cache" / "liuma-oracle") / _sha(tarball)
    venv_python = cache / "venv" / "bin" / "python"
    if (cache / "ready").is_file():
        trees = [p for p in (cache / "tree").iterdir() if (p / "startup.py").is_file()]
        return Oracle(venv_python, trees[0])
    if verbose:
        print(f"installing the LiuMa oracle into {cache} (Python 3.8 venv + pinned requirements)...", file=sys.stderr)
    if cache.exists():
        shutil.rmtree(cache)
    (cache / "tree").mkdir(parents=True)
    with tarfile.open(tarball) as tf:
        for member in tf.getmembers():
            target = (cache / "tree" / member.name).resolve()
            if not str(target).startswith(str((cache / "tree").resolve())):
                raise RuntimeError(f"oracle tarball member escapes the cache: {member.name}")
        tf.extractall(cache / "tree")
    trees = [p for p in (cache / "tree").iterdir() if (p / "startup.py").is_file()]
    if len(trees) != 1:
        raise RuntimeError(f"oracle tarball {tarball}: expected one engine tree with startup.py, found {trees}")
    subprocess.run([str(python38), "-m", "venv", str(cache / "venv")], check=True)
    subprocess.run([str(venv_python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-r", str(trees[0] / "requirements.txt")], check=True, stdout=subprocess.DEVNULL)
    (cache / "ready").write_text(str(tarball) + "\n")
    return Oracle(venv_python, trees[0])


if __name__ == "__main__":
    oracle = ensure(verbose=True)
    print(f"oracle: {oracle.python} {oracle.tree}" if oracle else "oracle: unavailable on this machine (skipped)",
          file=sys.stderr)
