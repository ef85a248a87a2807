"""Property-based fuzz through real stage processes (issue 22 #5): a well-formed envelope whose body has one
field of the wrong type, of every kind, pushed into the inbox of every stage of a running engine
(``liuma-pipeline start --foreground``). Each one is dead-lettered naming its kind and sender; no stage
exits, restarts or stops answering, and the supervisor stays up."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.codec import Envelope, encode
from tests.bodies import TYPED_KINDS, wrong_bodies
from tests.system.engine import BIN, ROOT, engine_processes, wait_for, write_config

pytestmark = pytest.mark.slow

TARGETS = ["supervisor", "fetcher", "scheduler", "aggregator", "uploader", "janitor", "executor-1"]
_serial = itertools.count()


class Running:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        cfg = write_config(tmp, api_workers=1, browsers=0)
        self.proc = subprocess.Popen([str(BIN), "start", "--foreground", "--config", str(cfg)], cwd=str(ROOT),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.ctx = zmq.Context()
        self.socks: dict[str, Any] = {}
        self.config = cfg

    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.tmp / "run" / "status.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return {}

    def stages(self) -> dict[str, tuple[int, int, str]]:
        return {s["name"]: (s["pid"], s["restarts"], s["state"]) for s in self.status().get("stages", [])}

    def push(self, target: str, frame: bytes) -> None:
        if target not in self.socks:
            s = self.ctx.socket(zmq.PUSH)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDTIMEO, 2000)
            s.connect(f"ipc://{self.tmp / 'run' / (target + '.sock')}")
            self.socks[target] = s
        self.socks[target].send(frame)

    def dead_letters(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.tmp / "storage" / "log").glob("dead-letter.log*"))

    def close(self) -> None:
        for s in self.socks.values():
            s.close(0)
        self.ctx.term()
        subprocess.run([str(BIN), "stop", "--config", str(self.config)], capture_output=True, cwd=str(ROOT), timeout=30)
        try:
            self.proc.wait(timeout=45)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    eng = Running(tmp_path_factory.mktemp("fuzz"))
    try:
        wait_for(lambda: len([s for s in eng.stages().values() if s[2] == "running"]) == len(TARGETS) - 1
                 or eng.proc.poll() is not None, 60, "every stage running")
        assert eng.proc.poll() is None, eng.proc.stderr.read() if eng.proc.stderr else ""
        yield eng
    finally:
        eng.close()
    assert not engine_processes(eng.tmp)


@settings(max_examples=int(os.environ.get("LIUMA_FUZZ_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(TYPED_KINDS).flatmap(lambda k: st.tuples(st.just(k), wrong_bodies(k))), st.sampled_from(TARGETS))
def test_wrongly_typed_body_of_any_kind_is_dead_lettered_and_every_stage_stays_up(engine: Running, case: Any, target: str) -> None:
    before = engine.stages()
    kind, (body, key) = case
    sender = f"fuzz-{next(_serial)}"
    engine.push(target, encode(Envelope(kind=kind, body=body, src=sender, msg_id=f"m-{sender}")))
    line = wait_for(lambda: next((ln for ln in engine.dead_letters().splitlines() if f"from '{sender}'" in ln), None),
                    15, f"{target} dead-lettering {kind.value} from {sender}")
    assert kind.value in line and f"field {key}" in line and target in line
    assert engine.proc.poll() is None
    after = engine.stages()
    assert {n: (pid, r) for n, (pid, r, _) in after.items()} == {n: (pid, r) for n, (pid, r, _) in before.items()}
    assert all(state == "running" for _, _, state in after.values())
