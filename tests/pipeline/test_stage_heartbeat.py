"""Stage heartbeats: one with stats every ``heartbeat-interval``; a forced one in between (a case ended)
carries only state and current case, unless it must carry the stats (a storage fault)."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import load_config_text
from pipeline.messages import Kind, body_problem
from pipeline.stage import Stage
from pipeline.topology import RunSpec
from tests.fakes import FakeMailbox


def make(tmp_path: Path) -> tuple[Stage, FakeMailbox]:
    cfg = load_config_text("[Pipeline]\nheartbeat-interval = 3600\n")
    spec = RunSpec(str(tmp_path), "run", cfg.values, report_dir=str(tmp_path / "reports"), storage_root=str(tmp_path / "storage"))
    stage = Stage("janitor", 0, spec)
    fake = FakeMailbox("janitor")
    stage.mailbox = fake  # type: ignore[assignment]
    return stage, fake


def beats(fake: FakeMailbox) -> list[dict[str, object]]:
    out = [s.body for s in fake.of(Kind.STAGE_HEARTBEAT, "supervisor")]
    for body in out:
        assert body_problem(Kind.STAGE_HEARTBEAT, body) is None, body
    return out


def test_forced_heartbeats_between_regular_ones_are_light(tmp_path: Path) -> None:
    stage, fake = make(tmp_path)
    stage.heartbeat(force=True)              # the first one (start): full
    stage.heartbeat(force=True)              # a case ended a moment later: light
    stage.heartbeat()                        # not due: nothing
    first, second = beats(fake)
    assert "stats" in first and first["stats"]["outbox"] == 0          # type: ignore[index]
    assert "stats" not in second
    assert second["state"] == first["state"] and second.get("current") == first.get("current")   # None travels as absent


def test_a_storage_fault_is_reported_at_once_with_the_stats(tmp_path: Path) -> None:
    stage, fake = make(tmp_path)
    stage.heartbeat(force=True)
    stage.storage_fault("journal.bin: [Errno 28] No space left on device")
    last = beats(fake)[-1]
    assert last["stats"]["storage_faults"] == ["journal.bin: [Errno 28] No space left on device"]  # type: ignore[index]


def test_a_regular_heartbeat_is_full_again_when_due(tmp_path: Path) -> None:
    stage, fake = make(tmp_path)
    stage.heartbeat(force=True)
    stage._last_hb -= 3601                   # the interval has passed
    stage.heartbeat(force=True)
    assert ["stats" in b for b in beats(fake)] == [True, True]
