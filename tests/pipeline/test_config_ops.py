"""The operations keys: [Metrics] listen and [Logging] format, validated with file, section and key named."""
from __future__ import annotations

import pytest

from pipeline.config import load_config_text
from pipeline.errors import ConfigError


def test_defaults_are_off_and_text() -> None:
    cfg = load_config_text("")
    assert cfg.get("Metrics", "listen") == "" and cfg.get("Logging", "format") == "text"


@pytest.mark.parametrize("value", ["127.0.0.1:9464", "0.0.0.0:9464", "[::1]:9464", "localhost:0"])
def test_listen_accepts_host_port(value: str) -> None:
    assert load_config_text(f"[Metrics]\nlisten = {value}\n").get("Metrics", "listen") == value


@pytest.mark.parametrize("value", ["9464", ":9464"])
def test_a_bare_port_listens_on_loopback(value: str) -> None:
    assert load_config_text(f"[Metrics]\nlisten = {value}\n").get("Metrics", "listen") == "127.0.0.1:9464"


@pytest.mark.parametrize("value", ["127.0.0.1:http", "127.0.0.1:70000", "[]:9464", "host:"])
def test_bad_listen_names_section_and_key(value: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config_text(f"[Metrics]\nlisten = {value}\n", "lab.ini")
    assert "lab.ini" in str(e.value) and "[Metrics]" in str(e.value) and "listen" in str(e.value) and "HOST:PORT" in str(e.value)


def test_log_format_json_or_refused() -> None:
    assert load_config_text("[Logging]\nformat = JSON\n").get("Logging", "format") == "json"
    with pytest.raises(ConfigError) as e:
        load_config_text("[Logging]\nformat = xml\n", "lab.ini")
    assert "[Logging]" in str(e.value) and "format" in str(e.value) and "xml" in str(e.value)
