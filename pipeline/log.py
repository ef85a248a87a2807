"""Logging: one rotating log per stage under ``<storage>/log/``, a dead-letter log, and a filter that
redacts secrets (engine secret, token, credentials in URLs) from every record before it is written anywhere."""
from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path
from typing import Iterable

from pipeline.secrets import redact_urls

__all__ = ["setup_logging", "RedactFilter", "LIFECYCLE_FORMAT"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Supervisor lifecycle lines are greppable: "LIFECYCLE <event> stage=<name> ..." (event in start|exit|restart|giveup|timeout)
LIFECYCLE_FORMAT = "LIFECYCLE %s stage=%s %s"


class RedactFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        red = redact_urls(msg)
        for s in self.secrets:
            red = red.replace(s, "******")
        if red != msg or record.args:
            record.msg, record.args = red, ()
        return True


def setup_logging(log_dir: Path, name: str, *, level: str = "info", file_size_mb: int = 10, backups: int = 5,
                  secrets: Iterable[str] = (), console: bool = False) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    redact = RedactFilter(secrets)
    fh = logging.handlers.RotatingFileHandler(log_dir / f"{name}.log", maxBytes=max(1, file_size_mb) * 2**20,
                                              backupCount=backups, encoding="utf-8")
    fh.setFormatter(logging.Formatter(FORMAT))
    fh.addFilter(redact)
    root.addHandler(fh)
    dl = logging.handlers.RotatingFileHandler(log_dir / "dead-letter.log", maxBytes=max(1, file_size_mb) * 2**20,
                                              backupCount=backups, encoding="utf-8")
    dl.setFormatter(logging.Formatter(FORMAT))
    dl.addFilter(redact)
    logging.getLogger("pipeline.deadletter").addHandler(dl)
    if console:
        ch = logging.StreamHandler()
        ch.setLevel(logging.WARNING)
        ch.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        ch.addFilter(redact)
        root.addHandler(ch)
