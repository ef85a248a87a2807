"""config.ini validation: every error names file, [section] and key; defaults; overrides; fuzz."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import SCHEMA, load_config, load_config_text
from pipeline.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.ini"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text, section, key, message", [
    ("[Pipline]\nbrowsers = 1\n", "Pipline", "", "unknown section (known: Platform, Engine"),
    ("[DEFAULT]\nbrowsers = 1\n", "DEFAULT", "", "unknown section"),
    ("[Pipeline]\nbrowser = 1\n", "Pipeline", "browser", "unknown key (known: api-workers, browsers"),
    ("[Pipeline]\nstrict-templates = maybe\n", "Pipeline", "strict-templates", "bad value 'maybe': expected true/false"),
    ("[Pipeline]\nbrowsers = two\n", "Pipeline", "browsers", "bad value 'two': expected a number >= 0, auto or grid"),
    ("[Pipeline]\nbrowsers = 1.5\n", "Pipeline", "browsers", "bad value '1.5'"),
    ("[RunSetting]\nmax-run = -1\n", "RunSetting", "max-run", "must be >= 0, got -1"),
    ("[Pipeline]\ncase-timeout = -3\n", "Pipeline", "case-timeout", "must be >= 0"),
    ("[Pipeline]\ncase-timeout = nan\n", "Pipeline", "case-timeout", "must be a finite number"),
    ("[Pipeline]\ntask-timeout = inf\n", "Pipeline", "task-timeout", "must be a finite number"),
    ("[Pipeline]\ntransport = udp\n", "Pipeline", "transport", "expected one of ipc, tcp, got 'udp'"),
    ("[WebDriver]\noptions = fancy\n", "WebDriver", "options", "expected one of headless, normal, remote"),
    ("[Platform]\nurl = liuma.example.com\n", "Platform", "url", "must start with http:// or https://"),
    ("[Pipeline]\napi-workers = 0\nbrowsers = 0\n", "Pipeline", "api-workers", "no executors"),
    ("[Device:]\nudid = x\n", "Device:", "", "device section needs a name"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_errors_name_file_section_and_key(tmp_path: Path, text: str, section: str, key: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    e = ei.value
    assert (e.file, e.section, e.key) == (str(path), section, key)
    where = f"{path}:[{section}]" + (f":{key}" if key else "")
    assert str(e).startswith(where + ": ") and message in str(e)


@pytest.mark.parametrize("text, message", [
    ("browsers = 1\n", "cannot parse: File contains no section headers"),
    ("[Pipeline]\nbrowsers = 1\n[Pipeline]\n", "cannot parse: .*section 'Pipeline' already exists"),
    ("[Pipeline]\nbrowsers\n", "cannot parse"),
])
def test_unparsable_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{path}: {message}"):
        load_config(path)


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'nope.ini'}: config file not found"):
        load_config(tmp_path / "nope.ini")
    bad = tmp_path / "latin1.ini"
    bad.write_bytes("[Header]\nx = caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=f"^{bad}: cannot parse"):
        load_config(bad)


def test_defaults_for_every_schema_key() -> None:
    cfg = load_config_text("")
    assert set(cfg.values) == set(SCHEMA)
    for section, keys in SCHEMA.items():
        assert cfg.values[section] == {k: default for k, (_, default) in keys.items()}
    assert (cfg.headers, cfg.devices, cfg.platform_mode) == ({}, {}, False)


@pytest.mark.parametrize("raw, value", [("yes", True), ("On", True), ("1", True), ("false", False), ("off", False), ("", False)])
def test_bool_spellings(raw: str, value: bool) -> None:
    assert load_config_text(f"[Pipeline]\nstrict-templates = {raw}\n").get("Pipeline", "strict-templates") is value


def test_typed_values_headers_devices_and_url_normalised() -> None:
    cfg = load_config_text(
        "[Platform]\nurl = https://liuma.example.com/\ntimeout = 2.5\n"
        "[Pipeline]\napi-workers = 0\nbrowsers = 0\ntransport = TCP\n"
        "[Header]\ntoken = secret\nX-Trace = 1\n"
        "[Device:Pixel 7 ]\nudid = emulator-5554\n")
    assert cfg.get("Platform", "url") == "https://liuma.example.com" and cfg.platform_mode
    assert cfg.get("Platform", "timeout") == 2.5 and cfg.get("Pipeline", "transport") == "tcp"
    assert cfg.headers == {"token": "secret", "x-trace": "1"}
    assert cfg.devices == {"Pixel 7": {"udid": "emulator-5554"}}     # a device is an executor: none else needed


def test_with_overrides_copies_and_validates() -> None:
    cfg = load_config_text("[Pipeline]\nbrowsers = 1\n", "c.ini")
    over = cfg.with_overrides("Pipeline", api_workers=4, **{"case-timeout": 12.5})
    assert (over.get("Pipeline", "api-workers"), over.get("Pipeline", "case-timeout")) == (4, 12.5)
    assert (cfg.get("Pipeline", "api-workers"), cfg.get("Pipeline", "case-timeout")) == (2, 300.0)   # untouched
    assert over.get("Pipeline", "browsers") == 1
    with pytest.raises(ConfigError, match=r"^c.ini:\[Pipeline\]: unknown key 'nope'"):
        cfg.with_overrides("Pipeline", nope=1)
    with pytest.raises(ConfigError, match=r"^c.ini:\[Nope\]: unknown section"):
        cfg.with_overrides("Nope", x=1)
    with pytest.raises(ConfigError, match=r"^c.ini:\[Pipeline\]:case-timeout: bad override nan"):
        cfg.with_overrides("Pipeline", case_timeout=float("nan"))
    with pytest.raises(ConfigError, match=r"^c.ini:\[Pipeline\]:api-workers: bad override -1"):
        cfg.with_overrides("Pipeline", api_workers=-1)
    with pytest.raises(ConfigError, match=r"^c.ini:\[Pipeline\]:api-workers: no executors"):
        cfg.with_overrides("Pipeline", api_workers=0, browsers=0)


def test_repository_config_file_is_valid() -> None:
    cfg = load_config()
    assert cfg.path.endswith("config/config.ini")


ini_line = st.one_of(
    st.sampled_from(["[Pipeline]", "[Platform]", "[Header]", "[Device:x]", "[DEFAULT]", "[Retry]", "[", "]", "[]"]),
    st.builds(lambda s: f"[{s}]", st.text(max_size=10)),
    st.builds(lambda k, sep, v: f"{k}{sep}{v}",
              st.one_of(st.sampled_from([k for keys in SCHEMA.values() for k in keys]), st.text(max_size=8)),
              st.sampled_from([" = ", ":", "=", " "]),
              st.one_of(st.sampled_from(["1", "-1", "0", "nan", "yes", "http://x", "ipc", "1e400", "%(x)s"]), st.text(max_size=12))),
    st.text(max_size=20))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ini_line, max_size=12))
def test_fuzz_random_ini_text_only_raises_config_error(lines: list[str]) -> None:
    try:
        cfg = load_config_text("\n".join(lines))
    except ConfigError:
        return
    assert set(cfg.values) == set(SCHEMA)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "engine.example.com"])
def test_tcp_off_loopback_without_curve_keys_is_refused_saying_how_to_make_keys(host: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config_text(f"[Pipeline]\ntransport = tcp\ntcp-host = {host}\n", "c.ini")
    assert "c.ini:[Pipeline]:curve-keys" in str(e.value) and "liuma-pipeline keys" in str(e.value) and host in str(e.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_tcp_on_loopback_without_keys_and_any_host_with_keys_load(host: str) -> None:
    assert load_config_text(f"[Pipeline]\ntransport = tcp\ntcp-host = {host}\n").get("Pipeline", "tcp-host") == host
    assert load_config_text("[Pipeline]\ntransport = tcp\ntcp-host = 0.0.0.0\ncurve-keys = k\n").get("Pipeline", "curve-keys") == "k"
