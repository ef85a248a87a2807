from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from pipeline.errors import ConfigError
from pipeline.secrets import ENV_VAR, decrypt, encrypt, generate_key_file, load_key, redact


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_key_file_is_private_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "secret.key"
    key = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path) == key
    value = encrypt("9b1c2d3e4f5a46b7889900aabbccddee", key)
    assert value.startswith("enc:") and "9b1c2d3e" not in value
    assert decrypt(value, load_key(path)) == "9b1c2d3e4f5a46b7889900aabbccddee"


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    first = generate_key_file(path)
    with pytest.raises(ConfigError, match="already exists"):
        generate_key_file(path)
    assert load_key(path) == first


def test_env_key_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_key = Fernet.generate_key()
    monkeypatch.setenv(ENV_VAR, env_key.decode())
    assert load_key(tmp_path / "missing.key") == env_key
    assert decrypt(encrypt("token-abc")) == "token-abc"


def test_plain_values_pass_through() -> None:
    assert decrypt("plain-secret", Fernet.generate_key()) == "plain-secret"


def test_wrong_key_is_a_clear_config_error() -> None:
    value = encrypt("s3cret", Fernet.generate_key())
    with pytest.raises(ConfigError, match="wrong key"):
        decrypt(value, Fernet.generate_key())


def test_world_readable_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    generate_key_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(path)


def test_missing_key_names_env_var_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{ENV_VAR}.*") as info:
        load_key(tmp_path / "nope.key")
    assert "nope.key" in str(info.value)


def test_bad_env_key() -> None:
    os.environ[ENV_VAR] = "not-a-key"
    try:
        with pytest.raises(ConfigError, match="not a valid Fernet key"):
            load_key()
    finally:
        del os.environ[ENV_VAR]


@pytest.mark.parametrize("text, secrets, expected", [
    ("secret=abcdef token=xyz123", ["abcdef", "xyz123"], "secret=****** token=******"),
    ("url?engineSecret=abcdefgh&x", ["abcdefgh", "abcd"], "url?engineSecret=******&x"),
    ("short ab stays", ["ab", ""], "short ab stays"),
    ("nothing here", [], "nothing here"),
])
def test_redact(text: str, secrets: list[str], expected: str) -> None:
    assert redact(text, secrets) == expected


@pytest.mark.parametrize("text, want", [
    ("设备[x]无法创建Appium会话 (https://user:k3y@hub.example:443/wd/hub): boom",
     "设备[x]无法创建Appium会话 (https://******@hub.example:443/wd/hub): boom"),
    ("remote http://grid:pw@127.0.0.1:4444 and https://u:p@h/x", "remote http://******@127.0.0.1:4444 and https://******@h/x"),
    ("'https://token@h/x'", "'https://******@h/x'"),
    ("no credentials http://127.0.0.1:4723/status, mail a@b.c", "no credentials http://127.0.0.1:4723/status, mail a@b.c"),
])
def test_redact_urls(text: str, want: str) -> None:
    from pipeline.secrets import redact_urls
    assert redact_urls(text) == want


def test_url_secrets_and_redact_mask_url_credentials() -> None:
    from pipeline.secrets import redact, url_secrets
    assert url_secrets(["https://farm:s3cr3t@h/wd/hub", "http://127.0.0.1:4723"]) == ["farm:s3cr3t", "s3cr3t"]
    assert redact("at https://farm:s3cr3t@h/wd/hub", []) == "at https://******@h/wd/hub"


def test_log_filter_masks_url_credentials(tmp_path: Path) -> None:
    import logging

    from pipeline.log import RedactFilter
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "lost %s", ("https://u:key1@h/wd/hub",), None)
    assert RedactFilter([]).filter(record) and record.getMessage() == "lost https://******@h/wd/hub"
