"""Hostile inputs and hard faults through the real ``bin/liuma-pipeline run`` (issue 22): each test is one
probe that used to break the engine."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.engine import BIN, ROOT, alive, engine_processes, results, run_dir_status, start_run, wait_for, write_config
from tests.system.suites import api_case, write_suite

pytestmark = pytest.mark.slow




def _finish(proc, timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_30_digit_integer_in_a_response_travels_as_text(tmp_path: Path, demo_url: str) -> None:
    big = "123456789012345678901234567890"
    case = api_case("big", demo_url, "/api/echo", method="POST",
                    relations=[{"from": "resBody", "method": "jsonpath", "expression": "$.json.n", "name": "n"}],
                    assertions=[{"from": "resBody", "method": "jsonpath", "expression": "$.json.n", "assertion": "equals", "expect": big}])
    case["apiList"][0]["body"] = {"type": "json", "form": [], "raw": "", "file": [], "json": '{"n": %s}' % big}
    suite = write_suite(tmp_path / "suite", {"c1": [case, api_case("next", demo_url, "/api/health")]}, max_thread=1)
    code, out, err = _finish(start_run(suite, write_config(tmp_path, api_workers=1, browsers=0)))
    rows = {r["caseId"]: r for r in results(tmp_path)}
    assert code == 0, (out, err, rows)
    assert rows["big"]["status"] == 0 and rows["next"]["status"] == 0
    assert "exit code" not in out
    assert not engine_processes(tmp_path)


@pytest.mark.parametrize("mutate, expect", [
    (lambda t, root: t.update(maxThread=10**30), ["task.json", "'maxThread'", "must be between 1 and 1000"]),
    (lambda t, root: t["testCollectionList"][0]["testCaseList"][0].update(priority=10**30), ["testCaseList[0].priority"]),
    (lambda t, root: t.update(debugData="DEEP"), ["task.json", "nested"]),
    (lambda t, root: [r.update(dependencies=[("b" if r["caseId"] == "a" else "a")]) for r in t["testCollectionList"][0]["testCaseList"]],
     ["dependency cycle: a -> b -> a"]),
    (lambda t, root: t["testCollectionList"][0]["testCaseList"][0].update(dependencies=["a"]), ["dependency cycle: a -> a"]),
    (lambda t, root: t["testCollectionList"][0]["testCaseList"][1].update(timeout=-3), ["testCaseList[1].timeout", "positive"]),
    (lambda t, root: (root / "c1" / "b.json").write_text(json.dumps(dict(json.loads((root / "c1" / "b.json").read_text()), caseId="zzz"))),
     ["c1/b.json", "'zzz'", "'b'"]),
    (lambda t, root: (root / "c1" / "b.json").write_text(json.dumps(dict(json.loads((root / "c1" / "b.json").read_text()),
                                                                         apiList=[{"apiId": "s", "headers": "x: 1"}]))),
     ["c1/b.json", "'apiList[0].headers'", "must be an object"]),
], ids=["maxThread-1e30", "priority-1e30", "nested", "cycle-ab", "cycle-aa", "negative-timeout", "caseId-mismatch", "step-type"])
def test_bad_task_json_exits_2_naming_file_and_field_without_a_traceback(tmp_path: Path, demo_url: str, mutate, expect) -> None:
    root = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health"), api_case("b", demo_url, "/api/health")]})
    task = json.loads((root / "task.json").read_text())
    mutate(task, root)
    (root / "task.json").write_text(json.dumps(task).replace('"DEEP"', "[" * 100_000 + "]" * 100_000))
    code, out, err = _finish(start_run(root, write_config(tmp_path)), timeout=60)
    assert code == 2, (out, err)
    assert all(e in err for e in expect), err
    assert "Traceback" not in err + out
    assert not engine_processes(tmp_path)


def test_enc_engine_secret_is_redacted_from_every_log_in_its_clear_form(tmp_path: Path, demo_url: str) -> None:
    clear = "s3cr3t-engine-value-42"
    enc = subprocess.run([str(BIN), "encrypt-secret", "--key-file", str(tmp_path / "secret.key"), clear],
                         capture_output=True, text=True, cwd=str(ROOT), check=True).stdout.strip()
    assert enc.startswith("enc:")
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health")]}, task_id=clear)   # logged everywhere
    cfg = write_config(tmp_path, f"[Engine]\nengine-secret = {enc}\n", api_workers=1, browsers=0)
    code, out, err = _finish(start_run(suite, cfg, env={"LIUMA_SECRET_KEY": ""}))
    assert code == 0, (out, err)
    logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "storage" / "log").iterdir() if p.is_file()}
    assert any("******" in text for text in logs.values())          # the task id was logged, masked
    assert not [name for name, text in logs.items() if clear in text]


def test_tcp_without_curve_refuses_off_loopback_and_warns_loudly_on_loopback(tmp_path: Path, demo_url: str) -> None:
    from tests.system.test_platform import free_base_port
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health")]})
    cfg = write_config(tmp_path, api_workers=1, browsers=0, transport="tcp", tcp_host="0.0.0.0", tcp_base_port=free_base_port())
    code, out, err = _finish(start_run(suite, cfg), timeout=60)
    assert code == 2 and "curve-keys" in err and "liuma-pipeline keys" in err, (out, err)
    assert not engine_processes(tmp_path)
    cfg = write_config(tmp_path, api_workers=1, browsers=0, transport="tcp", tcp_host="127.0.0.1", tcp_base_port=free_base_port())
    code, out, err = _finish(start_run(suite, cfg), timeout=90)
    assert code == 0 and "UNAUTHENTICATED TRANSPORT" in err and "liuma-pipeline keys" in err, (out, err)


def _stage_pids(tmp: Path) -> dict[str, int]:
    out = {}
    for p in engine_processes(tmp):
        cmd = p.info["cmdline"] if hasattr(p, "info") else p.cmdline()
        if "pipeline.stage_main" in cmd:
            out[cmd[cmd.index("pipeline.stage_main") + 3]] = p.pid
    return out


def test_sigkill_of_the_supervisor_takes_every_stage_with_it(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("slow", demo_url, "/api/slow?ms=30000")],
                                             "c2": [api_case("ok", demo_url, "/api/health")]})
    proc = start_run(suite, write_config(tmp_path, api_workers=2, browsers=0))
    try:
        wait_for(lambda: any((s.get("current") or {}).get("case_id") == "slow" for s in (run_dir_status(tmp_path) or {}).get("stages", [])),
                 30, "the slow case running")
        stages = _stage_pids(tmp_path)
        assert {"fetcher", "scheduler", "aggregator", "uploader", "janitor", "executor-1", "executor-2"} <= set(stages)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(lambda: not alive(stages.values()), 20, f"every stage gone after the supervisor died (left: {alive(stages.values())})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in engine_processes(tmp_path):
            p.kill()


def test_a_new_run_ends_the_leftovers_of_a_dead_engine_on_its_storage_root(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("slow", demo_url, "/api/slow?ms=30000")]})
    cfg = write_config(tmp_path, api_workers=1, browsers=0)
    proc = start_run(suite, cfg)
    stuck = 0
    try:
        wait_for(lambda: len(_stage_pids(tmp_path)) >= 6, 30, "the stages started")
        stuck = _stage_pids(tmp_path)["janitor"]
        os.kill(stuck, signal.SIGSTOP)                 # a stage that cannot act on its parent's death (SIGTERM stays pending)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(lambda: set(_stage_pids(tmp_path)) == {"janitor"}, 20, "only the stopped janitor left")
        code, out, err = _finish(start_run(write_suite(tmp_path / "suite2", {"c1": [api_case("ok", demo_url, "/api/health")]}, task_id="t-2"), cfg))
        assert code == 0, (out, err)
        assert stuck not in alive([stuck])
        assert not engine_processes(tmp_path)
        assert "leftover stage" in (tmp_path / "storage" / "log" / "supervisor.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in engine_processes(tmp_path):
            p.kill()


def test_a_case_holding_the_gil_is_killed_at_its_deadline_named_and_counted(tmp_path: Path, demo_url: str) -> None:
    hog = api_case("hog", demo_url, "/api/health", name="占住GIL", controller={
        "pre": [{"name": "preScript", "value": "import itertools\nsum(itertools.count())", "index": 0, "edit": False, "desc": ""}]})
    suite = write_suite(tmp_path / "suite", {"c1": [hog], "c2": [api_case("ok", demo_url, "/api/health")]},
                        extra={"hog": {"timeout": 3}})
    code, out, err = _finish(start_run(suite, write_config(tmp_path, api_workers=1, browsers=0, heartbeat_timeout=60)), timeout=120)
    rows = {r["caseId"]: r for r in results(tmp_path)}
    assert code == 1, (out, err)
    assert rows["ok"]["status"] == 0 and rows["hog"]["status"] == 2 and rows["hog"]["runTimes"] == 2
    line = next(ln for ln in out.splitlines() if "[c1/hog#1]" in ln)
    assert "timeout after 3 s" in line and "占住GIL" in line, out
    assert "attempt 2" in out and "(3 attempts)" in out                  # each attempt counted: retried once, then final
    sup_log = (tmp_path / "storage" / "log" / "supervisor.log").read_text()
    assert "LIFECYCLE timeout stage=executor-1" in sup_log and "hung" not in sup_log
    assert not engine_processes(tmp_path)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root only: mount -t tmpfs), nearly filled so reports and journals hit ENOSPC."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path, leave_kib: int) -> None:
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    (mnt / "ballast").write_bytes(b"\0" * max(0, free - leave_kib * 1024))


def test_a_full_disk_fails_the_run_loudly_naming_the_file_and_errno(tmp_path: Path, demo_url: str, small_fs: Path) -> None:
    suite = write_suite(tmp_path / "suite", {f"c{i}": [api_case(f"k{i}", demo_url, "/api/items?size=300")] for i in range(20)})
    cfg = write_config(tmp_path, api_workers=2, browsers=0, storage_root=small_fs / "storage", report_dir=small_fs / "reports")
    (small_fs / "storage").mkdir()
    _fill(small_fs, 400)
    code, out, err = _finish(start_run(suite, cfg), timeout=120)
    assert code == 1, (out, err)
    assert "storage fault" in err and "[Errno 28 ENOSPC] No space left on device" in err, err
    assert str(small_fs / "reports") in err
    assert not engine_processes(tmp_path)


def test_a_full_disk_under_the_run_dir_never_hangs_the_run(tmp_path: Path, demo_url: str, small_fs: Path) -> None:
    suite = write_suite(tmp_path / "suite", {f"c{i}": [api_case(f"k{i}", demo_url, "/api/items?size=300")] for i in range(20)})
    cfg = write_config(tmp_path, api_workers=2, browsers=0, storage_root=small_fs / "storage", report_dir=small_fs / "reports",
                       run_dir=small_fs / "run")
    (small_fs / "run").mkdir()
    _fill(small_fs, 600)
    code, out, err = _finish(start_run(suite, cfg), timeout=120)
    assert code != 0, (out, err)
    assert "No space left on device" in err and "Traceback" not in err, err
    assert not engine_processes(tmp_path)


def test_terminal_escapes_in_a_case_name_are_printed_escaped(tmp_path: Path, demo_url: str) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health", name="x\x1b[2J\x1b]0;owned\x07y")]})
    code, out, err = _finish(start_run(suite, write_config(tmp_path, api_workers=1, browsers=0)))
    assert code == 0, (out, err)
    assert "\x1b" not in out and "x\\x1b[2J\\x1b]0;owned\\x07y" in out


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in [root, *root.rglob("*")] if not p.is_symlink()}


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(None, 0o600, 0o700), ("027", 0o640, 0o750)])
def test_reports_logs_and_copied_cases_are_private_unless_umask_shares_them(tmp_path: Path, demo_url: str, umask, file_mode, dir_mode) -> None:
    suite = write_suite(tmp_path / "suite", {"c1": [api_case("a", demo_url, "/api/health")]})
    for p in [suite, *suite.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    extra = {"umask": umask} if umask else {}
    code, out, err = _finish(start_run(suite, write_config(tmp_path, api_workers=1, browsers=0, **extra)))
    assert code == 0, (out, err)
    checked = {**{f"reports/{k}": v for k, v in _modes(tmp_path / "reports").items()},
               **{f"storage/{k}": v for k, v in _modes(tmp_path / "storage").items()}}
    assert any(k.endswith("results.json") for k in checked) and any(k.endswith("c1/a.json") for k in checked)
    assert any(k.endswith(".log") for k in checked)
    wrong = {k: oct(m) for k, m in checked.items() if m != ((tmp_path / k).is_dir() and dir_mode or file_mode)}
    assert not wrong, wrong
