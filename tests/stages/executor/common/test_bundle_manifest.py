"""The manifest a killed attempt's bundle leaves (``Bundle.save(..., manifest)``) as the report builder reads it
(``pipeline.evidence.left_bundle``): this attempt's, never an earlier run's; masked; parts written so far."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pipeline.evidence import MANIFEST, left_bundle
from stages.executor.common.evidence import Bundle, EvidenceSpec, Json, Text

SECRET = "hunter2-secret"


def _save(tmp: Path, started_ms: int, max_mb: float = 25.0) -> dict[str, Any]:
    spec = EvidenceSpec(keep="failure", max_mb=max_mb, task_report_dir=tmp, collection_id="c", case_id="k", index=1,
                        attempt=2, secrets=(SECRET,))
    b = Bundle()
    b.add("console.json", "console", Json([{"text": f"token {SECRET}"}]))
    b.add("chromedriver.log", "driver-log", Text(f"Navigate https://u:{SECRET}@127.0.0.1/x"))
    b.add("video.webm", "video", b"\x1aE\xdf\xa3" + b"0" * 5000)
    b.note("attempt killed (test)")
    return b.save(spec, {"started_ms": started_ms, "killed": "test", "console": [{"text": "token ******"}]})


def test_a_killed_attempt_left_bundle_is_found_for_its_result(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    saved = _save(tmp_path, now)
    found = left_bundle(tmp_path, "c", "k", 1, 2, now - 100, now + 3000)
    assert found is not None and found["dir"] == saved["dir"] == "attachments/k@c.1/2"
    assert [f["name"] for f in found["files"]] == ["console.json", "chromedriver.log", "video.webm"]
    assert found["notes"] == ["attempt killed (test)"] and found["console"] == [{"text": "token ******"}]
    d = tmp_path / "attachments" / "k@c.1" / "2"
    assert all(SECRET.encode() not in p.read_bytes() for p in d.iterdir())
    assert json.loads((d / "console.json").read_text()) == [{"text": "token ******"}]
    assert (d / "chromedriver.log").read_text() == "Navigate https://******@127.0.0.1/x"


def test_not_this_attempt_or_no_manifest_is_none(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    _save(tmp_path, now - 3_600_000)                           # an earlier run of the same taskId
    assert left_bundle(tmp_path, "c", "k", 1, 2, now - 100, now + 3000) is None
    assert left_bundle(tmp_path, "c", "k", 1, 3, now - 100, now + 3000) is None        # another attempt: no dir
    (tmp_path / "attachments" / "k@c.1" / "2" / MANIFEST).write_text("{not json")
    assert left_bundle(tmp_path, "c", "k", 1, 2, 0, now) is None


def test_manifest_lists_only_the_parts_written(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    saved = _save(tmp_path, now, max_mb=0.001)                 # the video does not fit
    found = left_bundle(tmp_path, "c", "k", 1, 2, now, now)
    assert found is not None and [f["name"] for f in found["files"]] == [f["name"] for f in saved["files"]]
    assert "video.webm" not in [f["name"] for f in found["files"]]
    assert any(n.startswith("video.webm left out") for n in found["notes"])
