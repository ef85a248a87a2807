"""The supervisor's policy without processes or sockets, xdist-style: feed it events (messages, process exits,
control requests, the passing of time on a FakeClock), run ``tick()``, check what it sent and signalled."""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config_text
from pipeline.messages import Kind
from pipeline.supervisor import Supervisor
from pipeline.topology import RunSpec
from pipeline.watcher import StageWatcher
from tests.fakes import FakeClock, FakeControl, FakeMailbox, FakeProcess, envelope

INI = """
[Pipeline]
kill-grace = 3
stop-grace = 10
restart-max = 2
restart-window = 60
"""


class Rig:
    """A Supervisor with every stage "running" as a FakeProcess, a FakeMailbox and a FakeClock."""

    def __init__(self, tmp_path: Path, mode: str = "start", executors: int = 2, hb_timeout: float = 1000.0) -> None:
        cfg = load_config_text(INI)
        cfg.values["Pipeline"]["heartbeat-timeout"] = hb_timeout
        spec = RunSpec(str(tmp_path / "run"), mode, cfg.values, storage_root=str(tmp_path / "storage"),
                       executors=[{"name": f"executor-{i}", "kinds": ["API"]} for i in range(1, executors + 1)])
        self.clock = FakeClock()
        self.swept: list[set[int]] = []
        self.sup = Supervisor(spec, clock=self.clock, processes=FakeProcess, sweep=self.swept.append)
        self.mail = FakeMailbox("supervisor")
        self.control = FakeControl()
        self.sup.mailbox, self.sup.control = self.mail, self.control  # type: ignore[assignment]
        self.sup.spawn_all()

    def w(self, name: str) -> StageWatcher:
        return self.sup.watchers[name]

    def proc(self, name: str) -> FakeProcess:
        p = self.w(name).proc
        assert isinstance(p, FakeProcess)
        return p

    def tick(self, *events: Any, after: float = 0.0) -> None:
        """Advance the clock by ``after`` s, deliver ``events`` (envelopes), run one tick."""
        self.clock.advance(after)
        self.mail.deliver(*events)
        self.sup.tick()

    def msg(self, kind: Kind, body: dict[str, Any], src: str, inc: int | None = None) -> Any:
        return envelope(kind, body, src=src, inc=self.w(src).inc if inc is None and src in self.sup.watchers else (inc or 0),
                        clock=self.clock)

    def heartbeat(self, src: str, current: dict[str, Any] | None = None, inc: int | None = None) -> Any:
        return self.msg(Kind.STAGE_HEARTBEAT, {"pid": 1, "state": "running", "current": current, "stats": {}}, src, inc)

    def sent(self, kind: Kind, peer: str | None = None) -> list[dict[str, Any]]:
        return [s.body for s in self.mail.of(kind, peer)]


TOTALS = {"cases": 1, "passed": 1, "failed": 0, "error": 0, "skipped": 0, "flaky": 0, "attempts": 1}
CASE = {"task_id": "t1", "case_id": "c1", "index": 1, "run_times": 1, "case": "login", "deadline_s": 30.0, "elapsed_s": 0.0}


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_every_stage_is_spawned_once_at_start(rig: Rig) -> None:
    assert sorted(rig.sup.watchers) == ["aggregator", "executor-1", "executor-2", "fetcher", "janitor", "scheduler", "uploader"]
    assert all(w.state == "running" and w.inc == 0 and w.proc is not None for w in rig.sup.watchers.values())


def test_a_heartbeat_of_an_older_incarnation_is_ignored(rig: Rig) -> None:
    rig.tick(after=5)
    rig.tick(rig.heartbeat("scheduler", inc=7))
    assert rig.w("scheduler").heartbeat == {} and rig.w("scheduler").last_heartbeat == 1000.0
    rig.tick(rig.heartbeat("scheduler"))
    assert rig.w("scheduler").last_heartbeat == 1005.0 and rig.w("scheduler").heartbeat["state"] == "running"


def test_a_case_past_its_deadline_is_terminated_then_killed_and_reported_by_name(rig: Rig) -> None:
    rig.tick(rig.msg(Kind.CASE_DEADLINE, CASE, "executor-1"))
    rig.tick(after=29.9)
    assert rig.proc("executor-1").signals == []
    rig.tick(after=0.2)                                                   # 30.1 s: past the 30 s budget
    assert rig.proc("executor-1").signals == [signal.SIGTERM]
    rig.tick(after=2.9)
    assert rig.proc("executor-1").signals == [signal.SIGTERM]            # kill-grace 3 s not over yet
    rig.tick(after=0.2)
    assert rig.proc("executor-1").signals[-1] == signal.SIGKILL
    rig.tick()                                                            # reaped
    died = rig.sent(Kind.STAGE_DIED, "scheduler")
    assert len(died) == 1 and died[0]["stage"] == "executor-1"
    assert died[0]["reason"].startswith("timeout after 30 s: case login (c1#1, attempt 1)")
    assert died[0]["case"] == {"case_id": "c1", "index": 1, "run_times": 1, "started_ms": int(rig.clock.epoch * 1000 + 1000_000)}
    assert rig.w("executor-1").state == "running" and rig.w("executor-1").inc == 1     # a case's fault: back at once
    assert rig.w("executor-1").restarts == 1 and rig.w("executor-1").last_exit.startswith("timeout after 30 s")
    assert rig.swept                                                        # orphans of the dead group are swept


def test_a_stage_without_heartbeats_is_terminated_as_hung(tmp_path: Path) -> None:
    rig = Rig(tmp_path, hb_timeout=15)
    rig.tick(*(rig.heartbeat(n) for n in rig.sup.watchers if n != "janitor"), after=10)
    rig.tick(after=10)                                 # janitor silent for 20 s > 15 s; the others 10 s
    hung = [n for n, w in rig.sup.watchers.items() if w.proc is not None and w.proc.term_sent_at is not None]
    assert hung == ["janitor"]
    assert rig.w("janitor").kill_reason.startswith("hung: no heartbeat from janitor for 20 s")


def test_a_crashed_stage_restarts_after_its_backoff_and_is_given_up_when_it_flaps(rig: Rig) -> None:
    starts = []
    for _ in range(3):                                            # restart-max = 2: the third crash in 60 s gives up
        rig.proc("janitor").exit(1)
        rig.tick(after=1)
        if rig.w("janitor").state == "failed":
            break
        assert rig.w("janitor").state == "backoff"
        rig.tick(after=rig.w("janitor").next_start - rig.clock.now - 0.01)
        assert rig.w("janitor").state == "backoff"              # not a moment before its delay
        rig.tick(after=0.02)
        assert rig.w("janitor").state == "running"
        starts.append(rig.w("janitor").inc)
    assert starts == [1, 2] and rig.w("janitor").state == "failed"
    assert "gave up after 3 exits within 60 s" in rig.w("janitor").last_exit
    assert rig.sup.shutdown_at is None and not rig.sup.fatal          # the janitor is not critical


def test_giving_up_a_critical_stage_ends_the_engine(rig: Rig) -> None:
    rig.proc("scheduler").exit(78)                                   # EX_CONFIG: no restart
    rig.tick()
    assert rig.w("scheduler").state == "failed"
    assert rig.sup.fatal.startswith("stage scheduler given up") and rig.sup.shutdown_at == rig.clock.now
    assert {s.peer for s in rig.mail.of(Kind.STAGE_STOP)} == set(rig.sup.watchers) - {"scheduler"}


def test_stop_in_start_mode_waits_for_the_running_case_within_the_grace(rig: Rig) -> None:
    """The bug: ``stop`` against ``start`` used to begin the shutdown at once, killing running cases."""
    rig.tick(rig.msg(Kind.CASE_DEADLINE, CASE, "executor-1"))
    rig.control.ask({"cmd": "stop"})
    rig.tick()
    assert rig.control.replies == [{"status": "ok", "reason": "stopping"}]
    assert [s.peer for s in rig.mail.of(Kind.TASK_STOP)] == ["scheduler", "executor-1", "executor-2"]
    rig.tick(after=5)
    assert rig.sup.shutdown_at is None and not rig.mail.of(Kind.STAGE_STOP)     # the case still runs
    assert rig.proc("executor-1").signals == []
    rig.tick(rig.heartbeat("executor-1", current=None), after=1)                # the case ended within the grace
    assert rig.sup.shutdown_at == rig.clock.now
    assert {s.peer for s in rig.mail.of(Kind.STAGE_STOP)} == set(rig.sup.watchers)
    assert rig.proc("executor-1").signals == []                                  # nobody was killed


def test_stop_in_start_mode_with_nothing_running_shuts_down_at_once(rig: Rig) -> None:
    rig.control.ask({"cmd": "stop"})
    rig.tick()
    assert rig.sup.shutdown_at == rig.clock.now


def test_a_case_outliving_the_stop_grace_is_killed_then_the_engine_stops(rig: Rig) -> None:
    rig.tick(rig.msg(Kind.CASE_DEADLINE, dict(CASE, deadline_s=600.0), "executor-2"))
    rig.control.ask({"cmd": "stop"})
    rig.tick()
    rig.tick(after=10)
    assert rig.proc("executor-2").signals == []
    rig.tick(after=0.1)
    assert rig.proc("executor-2").signals == [signal.SIGKILL]
    assert rig.w("executor-2").kill_reason == "stopped: engine shutting down (stop requested); case killed after 10 s grace"
    rig.tick()                                                        # reaped: its case no longer runs
    assert rig.sup.shutdown_at is not None
    assert rig.w("executor-2").state == "stopped"                     # no executor comes back during a stop


def test_a_second_signal_skips_the_grace(rig: Rig) -> None:
    rig.tick(rig.msg(Kind.CASE_DEADLINE, CASE, "executor-1"))
    rig.sup._on_signal(signal.SIGINT, None)
    rig.tick()
    assert rig.sup.draining_since is not None and rig.proc("executor-1").signals == []
    rig.sup._on_signal(signal.SIGINT, None)
    rig.tick(after=0.5)
    assert rig.proc("executor-1").signals == [signal.SIGKILL]
    assert rig.w("executor-1").kill_reason.endswith("second stop signal: no grace")


def test_run_mode_shuts_down_once_its_task_is_reported_and_ignores_a_duplicate(tmp_path: Path) -> None:
    rig = Rig(tmp_path, mode="run", executors=1)
    tasks: list[dict[str, Any]] = []
    rig.sup.on_task = tasks.append
    report = {"task_id": "t1", "report_dir": "r", "totals": TOTALS, "storage_faults": ["report.xml: [Errno 28] No space left on device"]}
    rig.tick(rig.msg(Kind.TASK_REPORTED, report, "aggregator"), rig.msg(Kind.TASK_REPORTED, report, "aggregator"))
    assert [t["task_id"] for t in tasks] == ["t1"] and rig.sup.shutdown_reason == "run complete"
    assert rig.sup.storage_faults == ["aggregator: report.xml: [Errno 28] No space left on device"]


def test_run_mode_stop_waits_for_the_report(tmp_path: Path) -> None:
    rig = Rig(tmp_path, mode="run", executors=1)
    rig.control.ask({"cmd": "stop"})
    rig.tick()
    rig.tick(after=5)
    assert rig.sup.draining_since is not None and rig.sup.shutdown_at is None
    rig.tick(rig.msg(Kind.TASK_REPORTED, {"task_id": "t1", "report_dir": "r", "totals": TOTALS}, "aggregator"))
    assert rig.sup.shutdown_at is not None


def test_stage_kill_terminates_only_the_named_incarnation(rig: Rig) -> None:
    rig.tick(rig.msg(Kind.STAGE_KILL, {"stage": "executor-1", "inc": 3, "reason": "stopped: task t1"}, "scheduler"))
    assert rig.proc("executor-1").signals == []
    rig.tick(rig.msg(Kind.STAGE_KILL, {"stage": "executor-1", "inc": 0, "reason": "stopped: task t1"}, "scheduler"))
    assert rig.proc("executor-1").signals == [signal.SIGTERM] and rig.w("executor-1").kill_reason == "stopped: task t1"


def test_stage_fatal_gives_the_stage_up_at_its_exit(rig: Rig) -> None:
    rig.tick(rig.msg(Kind.STAGE_FATAL, {"reason": "cannot open the journal"}, "uploader"))
    rig.proc("uploader").exit(1)
    rig.tick()
    assert rig.w("uploader").state == "failed" and rig.w("uploader").last_exit == "cannot open the journal"


def test_a_handler_that_raises_does_not_kill_the_supervisor(rig: Rig, caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(sup: Supervisor, env: Any) -> None:
        raise KeyError("stage")
    monkeypatch.setitem(Supervisor.HANDLERS, Kind.STAGE_KILL, boom)
    rig.tick(rig.msg(Kind.STAGE_KILL, {"stage": "executor-1", "inc": 0, "reason": "r"}, "scheduler"), rig.heartbeat("fetcher"))
    assert "stage.kill from scheduler failed" in caplog.text
    assert rig.w("fetcher").heartbeat                                   # the next message was still handled


def test_every_kind_the_supervisor_handles_is_in_its_table() -> None:
    assert set(Supervisor.HANDLERS) == {Kind.STAGE_HEARTBEAT, Kind.CASE_DEADLINE, Kind.CASE_REPORTED, Kind.CASES_REPORTED, Kind.TASK_REPORTED,
                                        Kind.STAGE_FATAL, Kind.STAGE_KILL}


def test_a_case_deadline_is_aged_by_the_time_its_message_travelled(rig: Rig) -> None:
    sent = rig.msg(Kind.CASE_DEADLINE, CASE, "executor-1")
    rig.tick(sent, after=2)                                      # handled 2 s after it was sent (by the wall clock)
    rig.clock.advance(10)
    st = rig.sup.status()
    assert st["uptime_s"] == 12.0
    ex = next(s for s in st["stages"] if s["name"] == "executor-1")
    assert ex["deadline_in_s"] == 18.0 and ex["retiring"] is False and ex["kinds"] == ["API"]


def reload_rig(tmp_path: Path, api_workers: int) -> tuple[Rig, Path]:
    ini = tmp_path / "config.ini"
    ini.write_text(INI.replace("[Pipeline]", f"[Pipeline]\napi-workers = {api_workers}\nbrowsers = 0"))
    rig = Rig(tmp_path)
    Path(rig.sup.spec.run_dir).mkdir(parents=True, exist_ok=True)
    rig.sup.spec.config_path = str(ini)
    return rig, ini


def test_reload_grows_the_pool_at_once(tmp_path: Path) -> None:
    rig, _ = reload_rig(tmp_path, api_workers=3)
    rig.control.ask({"cmd": "reload"})
    rig.tick()
    reply = rig.control.replies[0]
    assert reply["status"] == "ok" and reply["started"] == ["executor-3"] and reply["generation"] == 1
    assert rig.w("executor-3").state == "running"
    assert {s.peer for s in rig.mail.of(Kind.CONFIG_RELOAD)} == set(rig.sup.watchers)


def test_reload_keeps_the_busy_executor_and_retires_an_idle_one(tmp_path: Path) -> None:
    rig, _ = reload_rig(tmp_path, api_workers=1)
    rig.tick(rig.msg(Kind.CASE_DEADLINE, CASE, "executor-2"))
    rig.control.ask({"cmd": "reload"})
    rig.tick()
    assert rig.control.replies[0]["retiring"] == ["executor-1"] and rig.mail.of(Kind.STAGE_STOP, "executor-1")


def test_reload_retires_an_executor_only_once_it_is_idle(tmp_path: Path) -> None:
    rig, _ = reload_rig(tmp_path, api_workers=1)
    rig.tick(rig.msg(Kind.CASE_DEADLINE, CASE, "executor-1"), rig.msg(Kind.CASE_DEADLINE, CASE, "executor-2"))
    rig.control.ask({"cmd": "reload"})
    rig.tick()
    assert rig.control.replies[0]["retiring"] == ["executor-2"]
    rig.tick(after=5)
    assert not rig.mail.of(Kind.STAGE_STOP, "executor-2")               # mid-case: never stopped
    rig.tick(rig.heartbeat("executor-2", current=None))
    assert rig.mail.of(Kind.STAGE_STOP, "executor-2") and rig.w("executor-2").state == "stopping"
    rig.proc("executor-2").exit(0)
    rig.tick()
    assert "executor-2" not in rig.sup.watchers
    assert rig.sent(Kind.STAGE_DIED, "scheduler")[-1] == {"stage": "executor-2", "inc": 0,
                                                          "reason": "executor-2 removed by config reload"}


def test_an_invalid_config_is_refused_whole(tmp_path: Path) -> None:
    rig, ini = reload_rig(tmp_path, api_workers=3)
    ini.write_text("[Pipeline]\nstop-grace = -1\n")
    assert rig.sup.reloader.reload()["errno"] == 2 and rig.sup.reloader.generation == 0 and "executor-3" not in rig.sup.watchers


@pytest.mark.parametrize("hung_up, generation", [(False, 1), (True, 0)])
def test_sighup_reloads_unless_the_terminal_hung_up(tmp_path: Path, hung_up: bool, generation: int) -> None:
    rig, _ = reload_rig(tmp_path, api_workers=2)
    rig.sup.on_hangup = lambda: hung_up
    rig.sup._on_sighup(signal.SIGHUP, None)
    rig.tick()
    rig.tick()                                          # asked once: reloaded (or not) once
    assert rig.sup.reloader.generation == generation


def test_a_batch_of_case_reported_is_handled_entry_by_entry(rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.stages.aggregator.test_aggregator import make, planned, record, result
    agg, fake = make(tmp_path / "agg")                       # the real producer: an aggregator's loop turn
    planned(agg, tmp_path / "agg")
    record(agg, result("k1"))
    record(agg, result("k2", run_times=2))
    agg.before_ack()
    [sent] = fake.of(Kind.CASES_REPORTED, "supervisor")
    cases = list(sent.body["cases"])
    cases.insert(1, {"task_id": "t1", "status": 0})             # a bad entry (no case_id) between them
    seen: list[dict[str, Any]] = []
    rig.sup.on_case = seen.append
    rig.tick(rig.msg(Kind.CASES_REPORTED, {"cases": cases}, "aggregator"))
    assert [(c["case_id"], c["runTimes"]) for c in seen] == [("k1", 1), ("k2", 2)]
    assert "cases.reported from aggregator: entry 1 dropped: lacks field case_id" in caplog.text
    agg.on_stop()
