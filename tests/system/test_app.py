"""APP cases through the whole engine (``bin/liuma-pipeline run``): two fake devices, each its own real Appium
server, one executor per device running in parallel; killing one device's Appium server mid-run gets its
cases reported broken and retried on the other device, and the device quarantined."""
from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from pipeline import cli
from tests.appium_server import FAKE_APPS, AppiumServer, free_port
from tests.stages.executor.app.appcases import by_id, case, op
from tests.system.engine import engine_processes, results, run_dir_status, start_run, wait_for, write_config

pytestmark = [pytest.mark.slow, pytest.mark.appium]

WAIT_S = 0.6          # each case idles this long on the device, so parallel runs overlap and a kill lands mid-case


def device_section(name: str, url: str) -> str:
    caps = {"platformName": "Fake", "app": str((FAKE_APPS / "login.xml").resolve()), "newCommandTimeout": 60}
    return (f"[Device:{name}]\nplatform = android\nappium_url = {url}\nautomation_name = Fake\n"
            f"capabilities = {json.dumps(caps)}\n")


def app_cases(prefix: str, first_wait: float = WAIT_S) -> list[dict[str, Any]]:
    """Four self-contained cases (input, click, assert text, screenshot): each works on a fresh or reused session."""
    wait = op("system", "强制等待", data={"second": ("Float", str(WAIT_S))})
    first = op("system", "强制等待", data={"second": ("Float", str(first_wait))})
    equals = {"assertion": "equals", "continue": ("Boolean", "false")}
    return [
        case([op("view", "清空", {"element": by_id("username")}), first,
              op("view", "输入", {"element": by_id("username")}, {"text": f"{prefix}-user"}),
              op("assertion", "断言元素文本", {"element": by_id("username")}, dict(equals, expect=f"{prefix}-user"))],
             caseId=f"{prefix}-input", caseName=f"{prefix} 输入"),
        case([op("view", "单击", {"element": by_id("loginBtn")}), wait,
              op("assertion", "断言元素存在", {"element": by_id("menu")}, {"assertion": "isTrue", "expect": ("Boolean", "true")})],
             caseId=f"{prefix}-click", caseName=f"{prefix} 单击"),
        case([op("view", "清空", {"element": by_id("password")}), wait,
              op("view", "输入", {"element": by_id("password")}, {"text": "secret"}),
              op("assertion", "断言元素文本", {"element": by_id("password")}, dict(equals, expect="secret"))],
             caseId=f"{prefix}-text", caseName=f"{prefix} 文本"),
        case([wait, op("system", "屏幕截图", data={"name": "home"})], caseId=f"{prefix}-shot", caseName=f"{prefix} 截图"),
    ]


def write_app_suite(root: Path, first_wait: float = WAIT_S) -> Path:
    colls = []
    for cid in ("c1", "c2"):
        (root / cid).mkdir(parents=True)
        refs = []
        for i, c in enumerate(app_cases(cid, first_wait), start=1):
            (root / cid / f"{c['caseId']}.json").write_text(json.dumps(c, ensure_ascii=False))
            refs.append({"index": i, "caseId": c["caseId"], "caseType": "APP"})
        colls.append({"collectionId": cid, "deviceId": None, "testCaseList": refs})
    (root / "task.json").write_text(json.dumps({"taskId": "t-1", "taskType": "run", "maxThread": 4, "reRun": False,
                                                "testCollectionList": colls, "downloadUrl": None, "debugData": None}))
    return root


@pytest.fixture()
def phones() -> Iterator[dict[str, AppiumServer]]:
    """phone-a and phone-b: one Appium server each, started side by side."""
    servers = {"phone-a": AppiumServer(), "phone-b": AppiumServer()}
    threads = [threading.Thread(target=s.start) for s in servers.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert all(s.is_ready() for s in servers.values())
        yield servers
    finally:
        for s in servers.values():
            s.stop()


def config(tmp: Path, servers: dict[str, str], **pipeline: Any) -> Path:
    sections = "".join(device_section(n, url) for n, url in servers.items())
    return write_config(tmp, sections, api_workers=0, browsers=0, **pipeline)


def summary_details(tmp: Path) -> list[dict[str, Any]]:
    """Every attempt's detail: each case's final one and the earlier ones nested in its ``retries``."""
    details = json.loads((tmp / "reports" / "t-1" / "summary.json").read_text())["details"]
    return [x for d in details for x in (*d["retries"], d)]


def window(d: dict[str, Any]) -> tuple[float, float]:
    start = datetime.fromisoformat(d["time"]["start_at"]).timestamp()
    return start, start + float(d["time"].get("duration", 0))


def session_ms(rows: list[dict[str, Any]], note: str = "会话已(?:创建|预热)") -> list[int]:
    """Session start times the runner noted in first-step logs ("设备[x]会话已创建 (NNms)" inside the case,
    "设备[x]会话已预热 (NNms, 不计入用例时间)" when the warm-up made it before the first case)."""
    return [int(m) for r in rows for m in re.findall(note + r" \((\d+)ms", r["transactionList"][0]["log"])]


def left_behind(tmp: Path) -> list[Any]:
    """Stage processes of this test's run still alive (other runs on the machine are not ours to judge)."""
    out = []
    for p in engine_processes():
        try:
            if str(tmp) in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:            # exited meanwhile
            pass
    return out


def finish(proc: Any, timeout: float = 90) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_two_devices_run_app_cases_in_parallel_one_executor_each(tmp_path: Path, phones: dict[str, AppiumServer]) -> None:
    suite = write_app_suite(tmp_path / "suite")
    t0 = time.monotonic()
    code, out, err = finish(start_run(suite, config(tmp_path, {n: s.url for n, s in phones.items()})))
    wall = time.monotonic() - t0
    assert code == 0, (out, err)
    assert "8 case(s), 2 executor(s)" in out and "8 cases: 8 passed, 0 failed, 0 error" in out
    rows = results(tmp_path)
    assert {r["caseId"]: (r["status"], r["runTimes"]) for r in rows} == {
        f"{c}-{k}": (0, 1) for c in ("c1", "c2") for k in ("input", "click", "text", "shot")}
    shot = next(r for r in rows if r["caseId"] == "c1-shot")["transactionList"][-1]["screenShotList"]
    assert len(shot) == 1
    details = summary_details(tmp_path)
    by_exec: dict[str, list[dict[str, Any]]] = {}
    for d in details:
        by_exec.setdefault(d["executor"], []).append(d)
    # one executor per device, each ran one whole collection (the unit), and the two ran at the same time
    assert sorted(by_exec) == ["executor-1", "executor-2"]
    assert sorted({d["collection_id"] for d in ds}.pop() for ds in by_exec.values()) == ["c1", "c2"]
    spans = {e: (min(window(d)[0] for d in ds), max(window(d)[1] for d in ds)) for e, ds in by_exec.items()}
    (a0, a1), (b0, b1) = spans["executor-1"], spans["executor-2"]
    overlap = min(a1, b1) - max(a0, b0)
    assert overlap > 2 * WAIT_S, spans
    starts = session_ms(rows)
    assert len(starts) == 2, starts                   # one session per device, reused by the unit's four cases
    assert session_ms(rows, "会话已预热") == starts     # both made by the warm-up, before the first case
    print(f"\ntwo devices: wall {wall:.1f} s, device spans {a1 - a0:.1f} s / {b1 - b0:.1f} s overlapping "
          f"{overlap:.1f} s, session start {starts} ms")
    assert not left_behind(tmp_path)


def test_one_device_takes_the_whole_suite_serially(tmp_path: Path, phones: dict[str, AppiumServer]) -> None:
    suite = write_app_suite(tmp_path / "suite")
    t0 = time.monotonic()
    code, out, err = finish(start_run(suite, config(tmp_path, {"phone-a": phones["phone-a"].url})))
    wall = time.monotonic() - t0
    assert code == 0 and "8 cases: 8 passed" in out, (out, err)
    spans = sorted(window(d) for d in summary_details(tmp_path))
    assert all(later[0] >= earlier[1] - 0.05 for earlier, later in zip(spans, spans[1:]))   # never two at once
    print(f"\none device: wall {wall:.1f} s, cases {spans[-1][1] - spans[0][0]:.1f} s")


def test_killed_appium_server_breaks_its_case_retries_on_the_other_device_and_quarantines(
        tmp_path: Path, phones: dict[str, AppiumServer], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_app_suite(tmp_path / "suite", first_wait=2.0)     # the kill lands in this wait
    proc = start_run(suite, config(tmp_path, {n: s.url for n, s in phones.items()}))
    try:
        def phone_a_mid_case() -> Any:
            """executor-1 (phone-a: devices are sorted by name) in the first case of its unit, so the rest
            of the unit breaks too (quarantine) and its retries keep the run going while we look at status."""
            st = run_dir_status(tmp_path) or {}
            return next((s for s in st.get("stages", []) if s["name"] == "executor-1"
                         and (s.get("current") or {}).get("case_id", "").endswith("-input")), None)

        victim = wait_for(phone_a_mid_case, 60, "phone-a's executor in the middle of a case")
        phones["phone-a"].stop()                       # SIGTERM/SIGKILL to the whole Appium process group
        held = wait_for(lambda: ((run_dir_status(tmp_path) or {}).get("queues") or {}).get("quarantined"), 30,
                        "phone-a quarantined in status")
        status = run_dir_status(tmp_path)
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, (out, err)                       # every final attempt passed (flaky)
    assert set(held) == {"executor-1"} and held["executor-1"]["device"] == "phone-a"
    assert "phone-a" in held["executor-1"]["reason"] and held["executor-1"]["probe_in_s"] > 0
    killed_case = victim["current"]["case_id"]
    details = summary_details(tmp_path)
    first = next(d for d in details if d["case_id"] == killed_case and d["attempt"] == 1)
    assert (first["outcome"], first["executor"]) == ("broken", "executor-1")
    assert "phone-a" in first["reason"] and ("会话已丢失" in first["reason"] or "无法创建Appium会话" in first["reason"])
    retried = [d for d in details if d["attempt"] == 2]
    assert killed_case in {d["case_id"] for d in retried}
    assert all((d["outcome"], d["executor"], d["final"]) == ("flaky", "executor-2", True) for d in retried)
    broken = [d for d in details if d["outcome"] == "broken"]
    assert broken and all(d["executor"] == "executor-1" for d in broken)
    finals = {d["case_id"]: d["outcome"] for d in details if d["final"]}
    assert len(finals) == 8 and set(finals.values()) <= {"passed", "flaky"}
    assert re.search(rf"BROKEN .*\[\w+/{killed_case}#\d\] .*executor-1 — .*phone-a", out)
    # `status` (same dict as `status --json`) prints the quarantined device
    printed = cli_status_lines(status, monkeypatch, capsys)
    assert any(line.startswith("QUARANTINED executor-1 device phone-a since ") and "probe in" in line for line in printed)
    log = (tmp_path / "storage" / "log" / "scheduler.log").read_text()
    assert "executor-1 (device phone-a) quarantined: broken: 设备[phone-a]" in log
    assert not left_behind(tmp_path)


def cli_status_lines(status: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """``cmd_status`` rendering of a status dict captured from the run directory."""
    monkeypatch.setattr(cli, "_request", lambda args, req: status)
    capsys.readouterr()
    assert cli.cmd_status(argparse.Namespace(json=False, config=None)) == 0
    return capsys.readouterr().out.splitlines()


def test_only_device_unreachable_cases_end_broken_with_the_reason_and_the_run_finishes(tmp_path: Path) -> None:
    suite = write_app_suite(tmp_path / "suite")
    dead = f"http://127.0.0.1:{free_port()}"          # nothing listens there
    code, out, err = finish(start_run(suite, config(tmp_path, {"phone-a": dead})))
    assert code == 1, (out, err)
    details = summary_details(tmp_path)
    finals = [d for d in details if d["final"]]
    assert len(finals) == 8 and all(d["outcome"] == "broken" for d in finals)
    stranded = [d for d in finals if d["reason"].startswith("no healthy device: phone-a quarantined: ")]
    unreachable = ("无法创建Appium会话", "Appium服务不可用")          # the ladder's rung 1 (/status) or 3 (new session)
    assert stranded and all(any(u in d["reason"] for u in unreachable) for d in stranded)
    assert all("Connection refused" in d["reason"] or any(u in d["reason"] for u in unreachable) for d in details)
    assert {d["name"] for d in details} == {f"{c} {k}" for c in ("c1", "c2") for k in ("输入", "单击", "文本", "截图")}
    assert "8 cases: 0 passed, 0 failed, 0 error, 8 broken" in out      # broken counted apart from error
    assert not left_behind(tmp_path)


@pytest.mark.parametrize("section, key, needle", [
    ("[Device:phone-a]\nplatform = android\nappium_url = ftp://x\n", "appium_url", "http(s) URL"),
    ("[Device:phone-a]\nplatform = android\nappium_url = http://127.0.0.1:1\nserial = 5\n", "serial", "unknown key"),
    ("[Device:phone-a]\nplatform = android\nappium_url = http://127.0.0.1:1\nsystem_port = 8200\n"
     "[Device:phone-b]\nplatform = android\nappium_url = http://127.0.0.1:2\nsystem_port = 8200\n", "system_port",
     "also used by [Device:phone-a]"),
])
def test_bad_device_section_exits_2_naming_file_section_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                section: str, key: str, needle: str) -> None:
    suite = write_app_suite(tmp_path / "suite")
    cfg = write_config(tmp_path, section, api_workers=0, browsers=0)
    assert cli.main(["run", str(suite), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}:[Device:phone-" in err and f"]:{key}: " in err and needle in err, err
    assert not (tmp_path / "reports").exists() and not left_behind(tmp_path)
