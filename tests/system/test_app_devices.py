"""APP routing and device health through the whole engine (``bin/liuma-pipeline run``) on three fake-driver
devices, each its own real Appium server: two android (phone-a, phone-b), one apple (ipad).

- every kind of binding (udid, name, deviceUrl, deviceSystem, none) runs on the device it names, and a
  binding nothing satisfies ends at once with an error naming it and the devices;
- a binding holds whichever device announces credit last (its warm-up is held back by a relay);
- a device's server killed mid-case: the case is broken, retried on a device satisfying the same
  requirement, the device quarantined; the server restarted: the device is re-admitted by its probe while
  the engine keeps running.
"""
from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.appium_server import AppiumServer, free_port
from tests.system.devices import PHONES, HoldProxy, app_case, device_section, executor_of, servers_fixture, wait_until, write_task_suite
from tests.system.engine import results, run_dir_status, start_run, write_config
from tests.system.test_app import cli_status_lines, finish, left_behind, session_ms, summary_details

pytestmark = [pytest.mark.slow, pytest.mark.appium]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, AppiumServer]]:
    yield from servers_fixture()


def config(tmp: Path, urls: dict[str, str], probe: float | None = None) -> Path:
    retry = f"[Retry]\nquarantine-probe = {probe}\n" if probe is not None else ""
    return write_config(tmp, "".join(device_section(n, u) for n, u in urls.items()) + retry, api_workers=0, browsers=0)


def ran_on(tmp: Path) -> dict[str, set[str]]:
    """collection -> executors that ran an attempt of it."""
    out: dict[str, set[str]] = {}
    for d in summary_details(tmp):
        if d["executor"]:
            out.setdefault(d["collection_id"], set()).add(d["executor"])
    return out


def test_every_binding_runs_on_its_device_and_an_unmatched_one_ends_at_once(
        tmp_path: Path, servers: dict[str, AppiumServer]) -> None:
    ipad_server = f"127.0.0.1:{servers['ipad'].port}"
    suite = write_task_suite(tmp_path / "suite", [
        ("by-udid", "emulator-5554", [app_case("u1", "udid 1"), app_case("u2", "udid 2")]),
        ("by-name", "phone-b", [app_case("n1", "name 1")]),
        ("by-url", None, [app_case("r1", "url 1", deviceUrl=ipad_server)]),
        ("by-system", None, [app_case("s1", "system 1", deviceSystem="apple")]),
        ("android", None, [app_case("a1", "android 1", deviceSystem="android")]),
        ("unmatched", "pixel-9", [app_case("x1", "无处可去")]),
        ("mixed", None, [app_case("m1", "m 1", deviceSystem="android"), app_case("m2", "m 2", deviceSystem="apple")]),
    ])
    code, out, err = finish(start_run(suite, config(tmp_path, {n: s.url for n, s in servers.items()})))
    assert code == 1, (out, err)                          # the unroutable cases are errors; the run ends, no timeout
    on = ran_on(tmp_path)
    assert on["by-udid"] == {executor_of("phone-a")} and on["by-name"] == {executor_of("phone-b")}
    assert on["by-url"] == on["by-system"] == {executor_of("ipad")}
    assert on["android"] <= {executor_of("phone-a"), executor_of("phone-b")}
    assert "unmatched" not in on and "mixed" not in on   # never given to any executor
    rows = {r["caseId"]: r for r in results(tmp_path)}
    assert all(rows[c]["status"] == 0 for c in ("u1", "u2", "n1", "r1", "s1", "a1"))
    x1, reason = rows["x1"], {d["case_id"]: d["reason"] for d in summary_details(tmp_path)}
    assert (x1["status"], x1["runTimes"], x1["caseName"]) == (2, 1, "无处可去")
    assert reason["x1"].startswith("not run: no device satisfies deviceId 'pixel-9'; devices: ")
    assert reason["x1"] in x1["transactionList"][0]["log"]             # what the platform shows
    for name, (platform, udid) in PHONES.items():
        assert f"{name} ({platform}, udid {udid}, 127.0.0.1:{servers[name].port})" in reason["x1"]
    assert "no single device satisfies deviceSystem 'android' and deviceSystem 'apple'" in reason["m1"]
    # every collection's session was made before its first case's deadline (warm-up, then the check before
    # each unit: sessions are per collection), never inside a case
    ran = [r for r in rows.values() if r["status"] == 0]
    assert session_ms(ran, "会话已创建") == []
    assert {r["caseId"] for r in ran if session_ms([r], "会话已预热")} == {"u1", "n1", "r1", "s1", "a1"}
    assert not left_behind(tmp_path)


@pytest.mark.parametrize("late", sorted(PHONES))
def test_a_binding_holds_when_its_device_announces_last(tmp_path: Path, servers: dict[str, AppiumServer], late: str) -> None:
    """``late``'s executor cannot finish its warm-up (so cannot announce credit) until the other devices
    are running cases; the collections bound to it still wait for it."""
    proxy = HoldProxy(servers[late].port)
    urls = {n: (proxy.url if n == late else s.url) for n, s in servers.items()}
    colls = [(f"on-{n}", n, [app_case(f"{n}-1", f"{n} 1", wait=0.5), app_case(f"{n}-2", f"{n} 2")]) for n in PHONES]
    colls += [(f"also-{n}", n, [app_case(f"{n}-3", f"{n} 3")]) for n in PHONES]
    suite = write_task_suite(tmp_path / "suite", colls)
    proc = start_run(suite, config(tmp_path, urls))
    try:
        others = {executor_of(n) for n in PHONES if n != late}

        def others_busy() -> bool:
            st = run_dir_status(tmp_path) or {}
            busy = {s["name"] for s in st.get("stages", []) if (s.get("current") or {}).get("case_id")}
            return others <= busy
        wait_until(others_busy, 60, "the on-time devices running cases")
        st = run_dir_status(tmp_path) or {}
        assert not any(s["name"] == executor_of(late) and s.get("current") for s in st.get("stages", []))
        proxy.release()
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.close()
    assert code == 0, (out, err)
    on = ran_on(tmp_path)
    assert on == {f"{kind}-{n}": {executor_of(n)} for n in PHONES for kind in ("on", "also")}
    assert not left_behind(tmp_path)


def test_killed_server_breaks_the_case_retries_on_a_matching_device_quarantines_and_readmits(
        tmp_path: Path, servers: dict[str, AppiumServer], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Both android collections start with a 2 s case, so each phone is in one when the test kills the
    server of the first phone it sees mid-case (the victim); the other phone is the only other device
    satisfying deviceSystem android."""
    def android(prefix: str, n: int) -> list[dict[str, Any]]:
        return [app_case(f"{prefix}{i}", f"android {prefix}{i}", wait=2.0 if i == 1 else 0.3, deviceSystem="android")
                for i in range(1, n + 1)]
    suite = write_task_suite(tmp_path / "suite", [
        ("android-1", None, android("a", 3)), ("android-2", None, android("b", 3)),
        # keeps the run going while the victim is quarantined and comes back
        ("apple", None, [app_case(f"i{i}", f"apple {i}", wait=1.5, deviceSystem="apple") for i in range(1, 16)]),
    ])
    phones = {executor_of(n): n for n in ("phone-a", "phone-b")}
    proc = start_run(suite, config(tmp_path, {n: s.url for n, s in servers.items()}, probe=1))
    try:
        def phone_mid_first_case() -> Any:
            st = run_dir_status(tmp_path) or {}
            return next(((s["name"], s["current"]["case_id"]) for s in st.get("stages", [])
                         if s["name"] in phones and (s.get("current") or {}).get("case_id", "").endswith("1")), None)
        victim, killed_case = wait_until(phone_mid_first_case, 60, "a phone's executor in its first case")
        dead, other = phones[victim], next(n for e, n in phones.items() if e != victim)
        port = servers[dead].port
        servers[dead].stop()

        def device(state: str) -> Any:
            d = (((run_dir_status(tmp_path) or {}).get("queues") or {}).get("devices") or {}).get(dead) or {}
            return d if d.get("state") == state else None
        held = wait_until(lambda: device("quarantined"), 60, f"{dead} quarantined in status")
        status = run_dir_status(tmp_path) or {}
        servers[dead] = AppiumServer(port=port).start()           # the same URL comes back
        back = wait_until(lambda: device("healthy"), 60, f"{dead} re-admitted in status")
        assert proc.poll() is None                                 # while the engine keeps running
        code, out, err = finish(proc, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, (out, err)                                   # every final attempt passed
    assert held["executor"] == victim and dead in held["last_error"] and held["next_probe_at"]
    assert back["state"] == "healthy" and dead in back["last_error"]          # the last error stays visible
    details = summary_details(tmp_path)
    first = next(d for d in details if d["case_id"] == killed_case and d["attempt"] == 1)
    assert (first["outcome"], first["executor"], first["name"]) == ("broken", victim, f"android {killed_case}")
    retried = [d for d in details if d["case_id"] == killed_case and d["attempt"] == 2]
    assert [(d["outcome"], d["executor"]) for d in retried] == [("flaky", executor_of(other))]
    assert all(d["executor"] != executor_of("ipad") for d in details if d["collection_id"].startswith("android"))
    log = (tmp_path / "storage" / "log" / "scheduler.log").read_text()
    assert f"{victim} (device {dead}) quarantined: " in log and f"{victim} (device {dead}) passed its probe: re-admitted" in log
    printed = cli_status_lines(status, monkeypatch, capsys)
    row = next(line for line in printed if line.startswith(f"{dead} "))
    assert victim in row and "quarantined" in row and dead in row.split("quarantined", 1)[1]
    assert any(line.startswith("ipad ") and "healthy" in line for line in printed)
    assert not left_behind(tmp_path)


def test_quarantine_survives_a_scheduler_restart(tmp_path: Path, servers: dict[str, AppiumServer]) -> None:
    """The scheduler is SIGKILLed while phone-a is quarantined: the supervisor restarts it and it still
    holds phone-a (from <run_dir>/state/quarantine.json), so phone-a gets no more work (its probe is far off),
    though a collection is waiting that it could run."""
    dead = f"http://127.0.0.1:{free_port()}"                     # phone-a's server never answers
    two = ("phone-a", "phone-b")
    suite = write_task_suite(tmp_path / "suite", [
        (f"c{k}", None, [app_case(f"c{k}-{i}", f"c{k} {i}", wait=1.0, deviceSystem="android") for i in (1, 2, 3)])
        for k in (1, 2, 3)], max_thread=2)
    proc = start_run(suite, config(tmp_path, {"phone-a": dead, "phone-b": servers["phone-b"].url}, probe=600))
    try:
        def quarantined_scheduler() -> Any:
            st = run_dir_status(tmp_path) or {}
            d = ((st.get("queues") or {}).get("devices") or {}).get("phone-a") or {}
            s = next((s for s in st.get("stages", []) if s["name"] == "scheduler"), None)
            return s if d.get("state") == "quarantined" and s and s.get("pid") else None
        before = wait_until(quarantined_scheduler, 60, "phone-a quarantined")
        os.kill(int(before["pid"]), signal.SIGKILL)
        code, out, err = finish(proc, timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, (out, err)
    log = (tmp_path / "storage" / "log" / "scheduler.log").read_text()
    assert "restarted: rebuilt" in log and f"{executor_of('phone-a', two)} (device phone-a) still quarantined after the restart" in log
    # phone-a handed its first collection back unrun when its ladder failed (no attempt used up) and was
    # held once: a scheduler that forgot would have given it the waiting collection and held it again
    assert log.count("(device phone-a) quarantined: ") == 1
    assert not [d for d in summary_details(tmp_path) if d["executor"] == executor_of("phone-a", two)]
    finals = [d for d in summary_details(tmp_path) if d["final"]]
    assert len(finals) == 9 and {d["executor"] for d in finals} == {executor_of("phone-b", two)}
    assert not left_behind(tmp_path)


def test_credentials_in_a_device_url_never_leave_the_engine(tmp_path: Path, servers: dict[str, AppiumServer]) -> None:
    """A cloud-farm style ``https://user:key@host/wd/hub`` URL (here: nothing listens behind it) appears in
    errors, logs, reports, platform rows, stdout and ``status`` only as ``******@``."""
    secret = "Sup3rS3cretKey"
    urls = {"phone-a": f"http://farmuser:{secret}@127.0.0.1:{free_port()}/wd/hub", "phone-b": servers["phone-b"].url}
    suite = write_task_suite(tmp_path / "suite", [
        (f"c{k}", None, [app_case(f"c{k}-1", f"c{k} 1", wait=1.0, deviceSystem="android")]) for k in (1, 2)])
    proc = start_run(suite, config(tmp_path, urls))
    try:
        status = wait_until(lambda: (lambda st: st if (((st.get("queues") or {}).get("devices") or {}).get("phone-a") or {})
                                     .get("state") == "quarantined" else None)(run_dir_status(tmp_path) or {}),
                            60, "phone-a quarantined")
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, (out, err)                   # phone-b ran both collections in the end
    assert {d["executor"] for d in summary_details(tmp_path)} == {executor_of("phone-b", urls)}
    text = json.dumps(status, ensure_ascii=False)
    assert "farmuser:******" not in text and "******@127.0.0.1" in text     # status: device_info, last error
    held = status["queues"]["devices"]["phone-a"]
    assert "设备[phone-a]" in held["last_error"] and "127.0.0.1" in held["last_error"]    # the error names the server
    seen = [out, err, text] + [p.read_text(errors="replace") for p in (tmp_path / "reports").rglob("*") if p.is_file()]
    seen += [p.read_text(errors="replace") for p in (tmp_path / "storage" / "log").rglob("*.log")]
    assert not [s[max(0, s.find(secret) - 80):s.find(secret) + 20] for s in seen if secret in s]
    assert not left_behind(tmp_path)
