"""Entry point of every stage process: ``python -m pipeline.stage_main <run_dir> <kind> <name> <inc>``.

Exit code 78 (EX_CONFIG) means "cannot run with this configuration": the supervisor does not restart it.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

from .errors import ConfigError, StageError
from .log import setup_logging
from .orphans import SUPERVISOR_ENV, die_with_parent
from .profiling import profiled
from .topology import STAGE_KINDS, RunSpec

EX_CONFIG = 78


def main(argv: list[str]) -> int:
    run_dir, kind, name, inc = argv[0], argv[1], argv[2], int(argv[3])
    die_with_parent(int(os.environ.get(SUPERVISOR_ENV) or 0))
    if kind not in STAGE_KINDS:
        print(f"unknown stage kind {kind!r}; known: {', '.join(STAGE_KINDS)}", file=sys.stderr)
        return EX_CONFIG
    spec = RunSpec.load(run_dir)
    storage = Path(spec.storage_root)
    from .platform import redaction_secrets
    secrets = redaction_secrets(str(spec.setting("Engine", "engine-secret") or ""), spec.headers.get("token", ""), spec.config_path)
    setup_logging(storage / "log", name, level=spec.setting("Logging", "level"),
                  file_size_mb=spec.setting("Logging", "file-size"), backups=spec.setting("Logging", "backup-count"),
                  secrets=secrets, fmt=spec.config.get("Logging", {}).get("format", "text"))
    crash_at = os.environ.get("LIUMA_TEST_CRASH_ON_START")   # tests: a stage that crashes on start
    if crash_at and crash_at == kind:
        logging.getLogger(name).error("crashing on start as asked by LIUMA_TEST_CRASH_ON_START")
        return 3
    module = importlib.import_module(f"stages.{kind}")
    stage = module.STAGE(name, inc, spec)
    try:
        profiled(stage.run_forever, name)()        # LIUMA_PROFILE_DIR: a cProfile of the stage's loop
    except (ConfigError, StageError) as e:
        logging.getLogger(name).error("%s cannot run: %s", name, e)
        print(f"{name}: {e}", file=sys.stderr)
        return EX_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
