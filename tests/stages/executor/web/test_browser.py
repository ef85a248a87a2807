"""Browser start under a deep TMPDIR: Chromium's singleton socket must stay under the sun_path limit."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from stages.executor.web import browser as browser_mod
from stages.executor.web.browser import BrowserConfig, start_browser, sweep_scratch

pytestmark = pytest.mark.browser


def test_deep_tmpdir_gets_a_short_scratch_dir_removed_on_quit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 60) / "executor-1"
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    b = start_browser(BrowserConfig())
    try:
        assert b.scratch_dir and b.scratch_dir.startswith(f"/tmp/lmc-{os.getpid()}-") and os.path.isdir(b.scratch_dir)
        assert b.profile_dir and b.profile_dir.startswith(str(deep))      # the profile stays in the run's tmp
        b.driver.get("data:text/html,<title>ok</title>")
        assert b.driver.title == "ok"
    finally:
        b.quit()
    assert not os.path.exists(b.scratch_dir) and not os.path.exists(b.profile_dir)


def test_short_tmpdir_needs_no_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/tmp")
    assert browser_mod.short_tmpdir() is None
    assert browser_mod.driver_env(None)["LIUMA_TMPDIR"] == "/tmp"


def test_sweep_removes_scratch_of_dead_owners_only() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tempfile.mkdtemp(prefix=f"lmc-{dead.pid}-", dir="/tmp")
    mine = tempfile.mkdtemp(prefix=f"lmc-{os.getpid()}-", dir="/tmp")
    try:
        sweep_scratch()
        assert not os.path.exists(stale) and os.path.isdir(mine)
    finally:
        os.rmdir(mine)


def test_config_ini_key_spellings_are_read() -> None:
    from stages.executor.context import RunContext, RunSettings
    from stages.executor.web import WebRunner
    assert BrowserConfig.from_settings({"window-size": "800,600"}).window_size == "800,600"
    remote = BrowserConfig.from_settings({"options": "remote", "remote-url": "http://127.0.0.1:4444", "path": "/usr/bin/chromedriver"})
    assert remote.driver_path == "http://127.0.0.1:4444"
    with pytest.raises(browser_mod.BrowserStartError, match="remote-url"):
        BrowserConfig.from_settings({"options": "remote", "remote-url": "", "path": "/usr/bin/chromedriver"})
    ctx = lambda reset: RunContext(task_id="t", collection_id="c", storage_root=Path("/tmp"), data_dir=Path("/tmp"),  # noqa: E731
                                   settings=RunSettings(webdriver={"reset": reset}))
    assert WebRunner()._reuse(ctx("clear")) is True and WebRunner()._reuse(ctx("session")) is False
