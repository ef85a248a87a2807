"""What a plain local ``run`` loads before its stages fork: never the libraries only ``/metrics`` and CURVE or
encrypted secrets need, and the start-up's pause of the cyclic GC ends whatever the command does."""
from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli

ROOT = Path(__file__).resolve().parents[2]


def test_a_plain_run_imports_neither_prometheus_client_nor_cryptography() -> None:
    code = ("import sys, pipeline.cli, pipeline.supervisor, pipeline.suite, pipeline.console, pipeline.progress\n"
            "import pipeline.launcher as l\n"
            "assert not l.preload()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'prometheus_client', 'cryptography'}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_metrics_import_prometheus_client_at_the_first_scrape() -> None:
    code = ("import sys\n"
            "from pipeline.metrics import EngineMetrics\n"
            "m = EngineMetrics()\n"
            "before = 'prometheus_client' in sys.modules\n"
            "names = [f.name for f in m.collect()]\n"
            "print(before, 'prometheus_client' in sys.modules, 'liuma_cases' in names)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True"]


def test_the_gc_pause_of_run_ends_when_run_fails_before_the_stages(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert gc.isenabled()
    assert cli.main(["run", str(tmp_path / "no-such-suite"), "--report-dir", str(tmp_path / "r")]) == 2
    assert gc.isenabled()
    assert "no-such-suite" in capsys.readouterr().err
