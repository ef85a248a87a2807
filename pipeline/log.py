"""Logging: one rotating log per stage under ``<storage>/log/``, a dead-letter log, and a filter that
redacts secrets (engine secret, token, credentials in URLs) from every record before it is written anywhere.

``[Logging] format = json`` writes one JSON object per line instead (for log shippers), always with the same
keys: time, level, stage, task, case, attempt, event, message (``null`` when a line has none). Call sites
give task/case/attempt/event with ``extra=fields(...)``; LIFECYCLE lines get their event and stage parsed.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.secrets import redact_urls

__all__ = ["setup_logging", "RedactFilter", "JsonFormatter", "LIFECYCLE_FORMAT", "JSON_KEYS", "fields"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Supervisor lifecycle lines are greppable: "LIFECYCLE <event> stage=<name> ..." (event in start|exit|restart|giveup|timeout)
LIFECYCLE_FORMAT = "LIFECYCLE %s stage=%s %s"


JSON_KEYS = ("time", "level", "stage", "task", "case", "attempt", "event", "message")
_LIFECYCLE = re.compile(r"^LIFECYCLE (\S+) stage=(\S+)")


def fields(*, task: Any = None, case: Any = None, attempt: Any = None, event: str | None = None) -> dict[str, Any]:
    """``extra=`` for a log call: the structured fields a JSON line carries (text lines ignore them)."""
    return {"lm_task": task, "lm_case": case, "lm_attempt": attempt, "lm_event": event}


class JsonFormatter(logging.Formatter):
    """One JSON object per record. The message is taken after ``RedactFilter`` ran; exception text is
    redacted here too (the filter only sees the message)."""

    def __init__(self, stage: str, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.stage = stage
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        for s in self.secrets:
            msg = msg.replace(s, "******")
        stage, event = self.stage, getattr(record, "lm_event", None)
        m = _LIFECYCLE.match(msg)
        if m:
            event, stage = event or m.group(1), m.group(2)
        line = {"time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "stage": stage, "task": getattr(record, "lm_task", None),
                "case": getattr(record, "lm_case", None), "attempt": getattr(record, "lm_attempt", None),
                "event": event, "message": msg, "logger": record.name}
        return json.dumps(line, ensure_ascii=False, default=str)


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
                  secrets: Iterable[str] = (), console: bool = False, fmt: str = "text") -> None:
    secrets = list(secrets)
    log_dir.mkdir(parents=True, exist_ok=True)
    # a log write that fails (full disk, closed terminal) drops that line instead of printing logging's own
    # traceback on stderr; write failures that matter (reports, journals) are reported as storage faults
    logging.raiseExceptions = False
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    redact = RedactFilter(secrets)
    fh = logging.handlers.RotatingFileHandler(log_dir / f"{name}.log", maxBytes=max(1, file_size_mb) * 2**20,
                                              backupCount=backups, encoding="utf-8")
    file_format = JsonFormatter(name, secrets) if fmt == "json" else logging.Formatter(FORMAT)
    fh.setFormatter(file_format)
    fh.addFilter(redact)
    root.addHandler(fh)
    dl = logging.handlers.RotatingFileHandler(log_dir / "dead-letter.log", maxBytes=max(1, file_size_mb) * 2**20,
                                              backupCount=backups, encoding="utf-8")
    dl.setFormatter(file_format)
    dl.addFilter(redact)
    logging.getLogger("pipeline.deadletter").addHandler(dl)
    if console:
        ch = logging.StreamHandler()
        ch.setLevel(logging.WARNING)
        ch.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        ch.addFilter(redact)
        root.addHandler(ch)
