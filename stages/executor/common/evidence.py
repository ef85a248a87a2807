"""One attempt's evidence bundle: the parts a recorder produced, written under the task's report directory.

Shared by the WEB and APP recorders. ``Bundle.save`` writes ``<report-dir>/<taskId>/attachments/<case>/<attempt>/``
(pipeline.evidence.bundle_dir) and returns what goes on the attempt's result (``CaseResult.evidence``): the
files with kind and size, and notes on what was not recorded. The run's secrets (``EvidenceSpec.secrets``,
the list the reports mask) are masked as ``******`` in every text part (JSON parts value by value, so they
stay valid JSON), and so are credentials in URLs (pipeline.secrets.redact). ``[Evidence] max-mb`` bounds the directory:
parts are written in the order they were added (small logs first, the video last) and a part that would
pass the bound is left out with a note. Saving never raises: a write error becomes a note.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.evidence import MANIFEST, bundle_dir
from pipeline.secrets import redact, redact_value

__all__ = ["Bundle", "EvidenceSpec"]

log = logging.getLogger("stages.executor.evidence")


@dataclass(frozen=True, slots=True)
class EvidenceSpec:
    """What the host tells a runner about the attempt: the policy in force and where bundles go."""

    keep: str = "never"
    max_mb: float = 25.0
    task_report_dir: Path | None = None      # <report-dir>/<taskId>; None = nowhere to keep a bundle
    collection_id: str = ""
    case_id: str = ""
    index: int = 0
    attempt: int = 1
    video: bool = True                       # [Evidence] video: the screen recording (the costly part)
    secrets: tuple[str, ...] = ()            # masked in every text part (pipeline.secrets.spec_secrets)


@dataclass(frozen=True, slots=True)
class Text:
    """A text part (a log, a DOM, XML): its secrets are masked when it is written."""

    text: str


@dataclass(frozen=True, slots=True)
class Json:
    """A JSON part (console rows, a HAR): masked value by value, then serialised."""

    value: Any


Part = bytes | Text | Json | Callable[[Path], None]


@dataclass
class Bundle:
    """Parts are ``Text``, ``Json``, bytes (binary, written as they are), or a callable writing the part itself
    to the given path (the video encoder)."""

    parts: list[tuple[str, str, Part]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, kind: str, data: Part) -> None:
        self.parts.append((name, kind, data))

    def note(self, text: str) -> None:
        log.info("evidence: %s", text)
        self.notes.append(text)

    def save(self, spec: EvidenceSpec, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the parts; with ``manifest`` (a killed attempt: no result will carry the bundle) also
        ``evidence.json``, rewritten after every part so a SIGKILL mid-way leaves the parts written so far
        listed (``manifest`` holds ``started_ms`` and any extra keys, e.g. the report's summary rows)."""
        if spec.task_report_dir is None:
            return {"dir": "", "files": [], "notes": self.notes + ["no report directory: bundle not kept"]}
        rel = bundle_dir(spec.collection_id, spec.case_id, spec.index, spec.attempt)
        target = spec.task_report_dir / rel
        budget = int(spec.max_mb * 2**20)
        files: list[dict[str, Any]] = []
        try:
            if target.exists():                       # a previous run of the same taskId: not this attempt's
                shutil.rmtree(target)
            target.mkdir(parents=True)
        except OSError as e:
            return {"dir": "", "files": [], "notes": self.notes + [f"bundle not written: {e}"]}
        used = 0
        for name, kind, part in self.parts:
            path = target / name
            try:
                data = _encode(part, spec.secrets)
                if callable(data):
                    data(path)
                    size = path.stat().st_size
                else:
                    size = len(data)
                    if used + size <= budget:
                        path.write_bytes(data)
                if used + size > budget:
                    path.unlink(missing_ok=True)
                    self.note(f"{name} left out: {size / 2**20:.1f} MB would pass [Evidence] max-mb = {spec.max_mb:g}")
                    continue
            except Exception as e:  # noqa: BLE001 - a recorder/encoder failure is a note, never the case's result
                path.unlink(missing_ok=True)
                self.note(f"{name} not written: {type(e).__name__}: {e}")
                continue
            used += size
            files.append({"name": name, "kind": kind, "bytes": size})
            if manifest is not None:
                self._manifest(target, dict(manifest, dir=rel, files=files, notes=self.notes))
        if manifest is not None:
            self._manifest(target, dict(manifest, dir=rel, files=files, notes=self.notes))
        return {"dir": rel, "files": files, "notes": list(self.notes)}

    @staticmethod
    def _manifest(target: Path, doc: dict[str, Any]) -> None:
        tmp = target / (MANIFEST + ".tmp")
        try:
            tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
            tmp.replace(target / MANIFEST)
        except OSError as e:
            log.warning("evidence manifest not written in %s: %s", target, e)


def _encode(part: Part, secrets: tuple[str, ...]) -> bytes | Callable[[Path], None]:
    if isinstance(part, Text):
        return redact(part.text, secrets).encode("utf-8", "surrogateescape")
    if isinstance(part, Json):
        return json.dumps(redact_value(part.value, secrets), ensure_ascii=False, indent=1).encode("utf-8")
    return part
