"""When a parked Grid session goes back to the Grid (``remote.release_due``, pure) and how its queue is read."""
from __future__ import annotations

from stages.executor.web.remote import grid_queue_length, release_due
from tests.appium_server import free_port


def test_a_session_nobody_waits_for_is_kept_until_its_idle_limit() -> None:
    assert release_due(held_s=500, idle_s=10, queued=0, between_units=True, hold=60, idle=60) == ""
    assert "idle 60 s" in release_due(held_s=500, idle_s=60, queued=0, between_units=False, hold=60, idle=60)


def test_between_units_a_queued_request_takes_the_session_at_once() -> None:
    assert "1 request(s) in the Grid's queue" == release_due(held_s=1, idle_s=0, queued=1, between_units=True)


def test_within_a_unit_a_queued_request_waits_until_the_hold_is_over() -> None:
    assert release_due(held_s=59, idle_s=0, queued=2, between_units=False, hold=60) == ""
    assert "held 61 s" in release_due(held_s=61, idle_s=0, queued=2, between_units=False, hold=60)


def test_a_remote_end_that_does_not_answer_has_no_queue() -> None:
    assert grid_queue_length(f"http://127.0.0.1:{free_port()}", timeout=1) == 0


def test_timeouts_of_a_browser_on_another_machine_are_not_judged_on_this_hosts_load(tmp_path: object) -> None:
    from pathlib import Path

    from stages.executor.context import RunContext, RunSettings
    from stages.executor.web.runner import _limits

    def ctx(webdriver: dict[str, str], capacity: dict[str, float]) -> RunContext:
        return RunContext(task_id="t", collection_id="c", storage_root=Path("."), data_dir=Path("."),
                          settings=RunSettings(webdriver=webdriver, capacity=capacity))
    cap = {"max-load": 2.0}
    assert _limits(ctx({"options": "remote", "remote-url": "http://grid.lab:4444"}, cap)) is None
    assert _limits(ctx({"options": "remote", "remote-url": "http://127.0.0.1:4444"}, cap)) is not None
    assert _limits(ctx({}, cap)).max_load == 2.0  # type: ignore[union-attr]
    assert _limits(ctx({}, {})) is None                              # no [Capacity] given: never judged
