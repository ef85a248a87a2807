"""What a plain local ``run`` loads before its stages fork: never the libraries only ``/metrics`` and CURVE or
encrypted secrets need."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
