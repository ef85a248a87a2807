"""Tasks handed over by ``liuma-pipeline submit`` (``source = submit``): an engine stop or the platform's
stopAll leaves them queued (they run after the next start), a stop naming them still stops them; the queue
gauges the metrics read (queued cases, oldest wait)."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import load_config_text
from pipeline.messages import Kind
from pipeline.models import Status
from pipeline.topology import RunSpec
from stages.scheduler import Scheduler
from tests.fakes import FakeMailbox, envelope


def make(tmp_path: Path) -> tuple[Scheduler, FakeMailbox]:
    cfg = load_config_text("")
    spec = RunSpec(str(tmp_path), "start", cfg.values, report_dir=str(tmp_path / "reports"), storage_root=str(tmp_path / "s"))
    sched = Scheduler("scheduler", 0, spec)
    fake = FakeMailbox("scheduler")
    sched.mailbox = fake  # type: ignore[assignment]
    return sched, fake


def submit(sched: Scheduler, task_id: str, source: str, *cases: str) -> None:
    task = {"taskId": task_id, "maxThread": 8,
            "testCollectionList": [{"collectionId": "c1", "testCaseList": [{"index": i, "caseId": c, "caseType": "API"}
                                                                            for i, c in enumerate(cases, start=1)]}]}
    sched.on_task_submit(envelope(Kind.TASK_SUBMIT, {"task": task, "data_dir": f"/d/{task_id}", "source": source},
                                  src="supervisor" if source == "submit" else "fetcher"))


def skipped(fake: FakeMailbox) -> list[tuple[str, str]]:
    return [(s.body["result"]["taskId"], s.body["result"]["caseId"]) for s in fake.of(Kind.RESULT_RECORD)
            if s.body["result"]["status"] == Status.SKIP]


def test_engine_stop_and_platform_stop_all_leave_submitted_tasks_queued(tmp_path: Path) -> None:
    sched, fake = make(tmp_path)
    submit(sched, "mine", "submit", "a", "b")
    submit(sched, "plat", "platform", "x")
    sched.on_task_stop(envelope(Kind.TASK_STOP, {"task_id": None, "reason": "stopAll", "drain": False}, src="fetcher"))
    assert skipped(fake) == [("plat", "x")]
    sched.on_task_stop(envelope(Kind.TASK_STOP, {"task_id": None, "reason": "engine stopping", "drain": True}, src="supervisor"))
    assert skipped(fake) == [("plat", "x")] and not sched.tasks["mine"].stopped
    assert [u.task_id for u in sched.queue] == ["mine"] and sched.stats()["queued_cases"] == 2
    sched.on_task_stop(envelope(Kind.TASK_STOP, {"task_id": "mine", "reason": "stopped by request"}, src="supervisor"))
    assert sorted(skipped(fake)) == [("mine", "a"), ("mine", "b"), ("plat", "x")]
    assert sched.stats()["queued_cases"] == 0 and sched.stats()["oldest_wait_s"] == 0.0


def test_oldest_wait_is_the_age_of_the_longest_queued_unit(tmp_path: Path) -> None:
    sched, _ = make(tmp_path)
    submit(sched, "t1", "submit", "a")
    sched.queue[0].queued_at -= 42.0
    submit(sched, "t2", "submit", "b", "c")
    st = sched.stats()
    assert st["queued_cases"] == 3 and 42.0 <= st["oldest_wait_s"] < 50.0
