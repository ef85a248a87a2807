"""``liuma-pipeline history``: reads what the store holds (rows written by HistoryStore.record, as the
aggregator writes them); a corrupt database is an error naming the file, exit 1."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.history import Attempt, HistoryStore, history_path


def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.ini"
    cfg.write_text(f"[Pipeline]\nstorage-root = {tmp_path / 'storage'}\n")
    return cfg


def seed(tmp_path: Path) -> None:
    store = HistoryStore(history_path(tmp_path / "storage"))
    rows = []
    for i in range(4):
        t = 1_700_000_000.0 + i * 100
        flaky = i % 2 == 1
        rows.append(Attempt(f"r{i}", "t-1", "c", "wobbly", 1, 1, "API", 1 if flaky else 0, "failed" if flaky else "passed",
                            0.5, t, name="Wobbly", executor="executor-1", reason_class="assertion" if flaky else ""))
        if flaky:
            rows.append(Attempt(f"r{i}", "t-1", "c", "wobbly", 1, 2, "API", 0, "flaky", 0.5, t + 1, name="Wobbly",
                                executor="executor-2"))
        rows.append(Attempt(f"r{i}", "t-1", "c", "slow", 2, 1, "API", 0, "passed", 9.0, t, name="Slow one"))
    store.record(rows)
    store.close()


def test_case_view_lists_attempts_newest_first_with_the_flake_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path)
    assert main(["history", "wobbly", "--config", str(config(tmp_path))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("case wobbly Wobbly: flake rate 50% over 4 runs (2 flaky); last outcomes (oldest first): "
                      "passed flaky passed flaky")
    assert out[2].split()[3:6] == ["2", "flaky", "0.50"] and out[3].split()[3:7] == ["1", "failed", "0.50", "executor-1"]
    assert main(["history", "wobbly", "--json", "--limit", "2", "--config", str(config(tmp_path))]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["attempts"]) == 2 and data["flake"]["rate"] == 0.5


def test_overview_has_the_slowest_and_the_flakiest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed(tmp_path)
    assert main(["history", "--json", "--config", str(config(tmp_path))]) == 0
    data = json.loads(capsys.readouterr().out)
    # slowest over the last 30 days: these rows are from 2023, so none; the flakiest does not age out
    assert [f["case_id"] for f in data["flakiest"]] == ["wobbly"]
    assert main(["history", "--min-runs", "5", "--config", str(config(tmp_path))]) == 0
    assert "flakiest cases: none" in capsys.readouterr().out


def test_corrupt_database_is_an_error_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = history_path(tmp_path / "storage")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage" * 100)
    assert main(["history", "--config", str(config(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "unusable" in err
