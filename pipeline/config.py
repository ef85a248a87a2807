"""config.ini -> frozen, typed settings. Keeps LiuMa's sections (Platform, Engine, Header, WebDriver,
RunSetting) so an existing engine's file works, and adds the pipeline's own (Pipeline, Logging, Retention,
Retry, Upload, Metrics, Evidence, Capacity, Device:<name>). Unknown sections or keys and bad values raise ``ConfigError`` naming file,
section and key. Values are read once; reload re-reads and validates before anything changes.
"""
from __future__ import annotations

import configparser
import ipaddress
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["DEFAULT_CONFIG_PATH", "SCHEMA", "Config", "load_config"]

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "config.ini"


def _bool(v: str) -> bool:
    low = v.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {v!r}")


def _pos_int(v: str) -> int:
    n = int(v)
    if n < 0:
        raise ValueError(f"must be >= 0, got {n}")
    return n


def _pos_float(v: str) -> float:
    x = float(v)
    if not math.isfinite(x):          # nan would disable every comparison (a case timeout that never fires)
        raise ValueError(f"must be a finite number, got {v!r}")
    if x < 0:
        raise ValueError(f"must be >= 0, got {x}")
    return x


def _gt0_float(v: str) -> float:
    x = _pos_float(v)
    if x == 0:                        # a zero timeout would end every case (or task) before it starts
        raise ValueError("must be > 0")
    return x


def _browsers(v: str) -> int | str:
    """A number of browser executors, ``auto`` (from the host's capacity) or ``grid`` (the Grid's slots)."""
    low = v.strip().lower()
    if low in ("auto", "grid"):
        return low
    try:
        return _pos_int(low)
    except ValueError:
        raise ValueError(f"expected a number >= 0, auto or grid, got {v!r}") from None


def _umask(v: str) -> int:
    n = int(v.strip(), 8)
    if not 0 <= n <= 0o777:
        raise ValueError(f"must be an octal mode 000..777, got {v!r}")
    return n


def _choice(*options: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        if v.strip().lower() not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {v!r}")
        return v.strip().lower()
    return parse


def _str(v: str) -> str:
    return v.strip()


# section -> key -> (parser, default). Keys are the ini spellings (configparser lower-cases them).
SCHEMA: dict[str, dict[str, tuple[Callable[[str], Any], Any]]] = {
    "Platform": {"url": (_str, ""), "enable-stderr": (_bool, False), "timeout": (_pos_float, 30.0),
                 "fetch-interval": (_pos_float, 15.0), "heartbeat-interval": (_pos_float, 30.0)},
    "Engine": {"engine-code": (_str, ""), "engine-secret": (_str, "")},
    "WebDriver": {"options": (_choice("headless", "normal", "remote"), "headless"), "path": (_str, "/usr/bin/chromedriver"),
                  "binary": (_str, "/usr/bin/chromium"), "window-size": (_str, "1280,800"),
                  "remote-url": (_str, ""), "reset": (_choice("session", "clear"), "clear"),
                  # a parked Grid session: kept at most this long while others queue / while idle (s)
                  "grid-hold": (_pos_float, 60.0), "grid-idle": (_pos_float, 60.0)},
    "RunSetting": {"max-run": (_pos_int, 2)},
    "Pipeline": {
        "api-workers": (_pos_int, 2), "browsers": (_browsers, 1), "case-timeout": (_gt0_float, 300.0),
        "task-timeout": (_gt0_float, 3600.0), "kill-grace": (_pos_float, 3.0), "stop-grace": (_pos_float, 10.0),
        "storage-root": (_str, "storage"), "report-dir": (_str, "reports"), "run-dir": (_str, ""),
        "transport": (_choice("ipc", "tcp"), "ipc"), "tcp-host": (_str, "127.0.0.1"), "tcp-base-port": (_pos_int, 47100),
        "curve-keys": (_str, ""), "heartbeat-interval": (_pos_float, 1.0), "heartbeat-timeout": (_pos_float, 15.0),
        "restart-backoff-cap": (_pos_float, 60.0), "restart-max": (_pos_int, 5), "restart-window": (_pos_float, 60.0),
        "strict-templates": (_bool, True), "faker-locale": (_str, "zh_CN"), "screenshot-every-step": (_bool, False),
        "step-timeout": (_gt0_float, 60.0), "launcher": (_choice("exec", "fork"), "fork"), "min-free-mb": (_pos_float, 0.0),
        # reports, logs and copied case files carry whatever a case carries: private unless shared on purpose
        "umask": (_umask, 0o077),
    },
    "Logging": {"level": (_choice("debug", "info", "warning", "error"), "info"), "file-size": (_pos_int, 10),
                "backup-count": (_pos_int, 5), "archive-days": (_pos_int, 30)},
    "Retention": {"data-days": (_pos_float, 7.0), "screenshot-hours": (_pos_float, 24.0), "report-days": (_pos_float, 30.0),
                  "backup": (_bool, False), "backup-keep": (_pos_int, 7), "disk-warn-percent": (_pos_float, 90.0),
                  "interval": (_pos_float, 600.0), "history-days": (_pos_float, 90.0)},
    "Retry": {"max-attempts": (_pos_int, 2), "retry-failures": (_bool, True), "budget": (_pos_int, 100),
              # device quarantine: this many broken cases within the window (s) hold a device; probe after (s)
              "quarantine-after": (_pos_int, 2), "quarantine-window": (_pos_float, 300.0),
              "quarantine-probe": (_pos_float, 60.0)},
    "Upload": {"batch-size": (_pos_int, 20), "interval": (_pos_float, 3.0)},
    # failure evidence per WEB/APP attempt (pipeline/evidence.py): which attempts keep their bundle, and its cap
    "Evidence": {"keep": (_choice("failure", "first-retry", "always", "never"), "failure"),
                 "max-mb": (_pos_float, 25.0), "video": (_bool, True)},
}
# -- operations (issue 20): log format, metrics/health endpoint ---------------------------------------------
def _listen(v: str) -> str:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6), ``PORT`` or ``:PORT`` (loopback: 127.0.0.1), or empty (off)."""
    v = v.strip()
    if not v:
        return ""
    host, _sep, port = v.rpartition(":")
    if not host:
        host = "127.0.0.1"                     # a bare port never exposes the endpoint beyond this machine
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or int(port) > 65535 or not bare:
        raise ValueError(f"expected HOST:PORT or PORT (e.g. 127.0.0.1:9464), got {v!r}")
    return f"{host}:{int(port)}"


SCHEMA["Logging"]["format"] = (_choice("text", "json"), "text")
# browser capacity (issue 17, pipeline/capacity.py): sizing for browsers = auto, admission limits, recycling
SCHEMA["Capacity"] = {
    "cores-per-browser": (_gt0_float, 0.5), "max-load": (_gt0_float, 6.0), "min-free-mb": (_pos_float, 512.0),
    "browser-mb": (_gt0_float, 350.0), "shm-per-browser-mb": (_pos_float, 64.0), "max-browsers": (_pos_int, 16),
    "hold": (_pos_float, 3.0),
    # a browser is replaced by a fresh one after this many cases (0: never) or above this RSS in MB (0: never)
    "recycle-cases": (_pos_int, 100), "recycle-rss-mb": (_pos_float, 1500.0),
    # the replacement of a browser due for recycling or lost is started in the background (when memory allows)
    "spare": (_bool, True),
    # a retried WEB attempt waits (s, outside its clock) for the run queue to fall below max-load first
    "retry-wait": (_pos_float, 20.0),
}
# -- run history (issue 18): pipeline/history.py, longest-first dispatch, flake rate, mutes ----------------------
def _mute(v: str) -> str:
    """``CASE until YYYY-MM-DD, ...`` (pipeline/mute.py); kept as text (settings travel as JSON), checked here."""
    from .mute import parse_mutes
    parse_mutes(v)
    return v.strip()


SCHEMA["Pipeline"]["dispatch"] = (_choice("longest-first", "fifo"), "longest-first")
SCHEMA["History"] = {"enabled": (_bool, True), "flaky-runs": (_pos_int, 20)}
SCHEMA["Flaky"] = {"mute": (_mute, "")}
SCHEMA["Metrics"] = {"listen": (_listen, "")}

FREE_SECTIONS = ("Header",)            # every key is an HTTP header for platform calls (reference §1.1)
DEVICE_PREFIX = "Device:"              # one section per device, parsed by the APP executor's registry


@dataclass(frozen=True)
class Config:
    """Parsed configuration. ``values[section][key]`` holds typed values for every SCHEMA key."""

    path: str
    values: dict[str, dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)
    devices: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    def with_overrides(self, section: str, **kv: Any) -> Config:
        """A copy with ``kv`` (e.g. command-line options) applied, validated like the file's values."""
        if section not in SCHEMA:
            raise ConfigError("unknown section", file=self.path, section=section)
        vals = {s: dict(d) for s, d in self.values.items()}
        for k, v in kv.items():
            key = k.replace("_", "-")
            if key not in vals[section]:
                raise ConfigError(f"unknown key {key!r}", file=self.path, section=section)
            parse, _ = SCHEMA[section][key]
            try:
                vals[section][key] = parse(str(v))
            except ValueError as e:
                raise ConfigError(f"bad override {v!r}: {e}", file=self.path, section=section, key=key) from None
        _check_whole(vals, self.devices, self.path)
        return Config(self.path, vals, dict(self.headers), dict(self.devices))

    @property
    def platform_mode(self) -> bool:
        return bool(self.get("Platform", "url"))


def _parser() -> configparser.ConfigParser:
    # [DEFAULT] would otherwise leak its keys into every section (and into the headers); no section of
    # ours has that meaning, so it is an ordinary (unknown) section here.
    return configparser.ConfigParser(interpolation=None, default_section="\x00no-default")


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate ``path`` (default ``config/config.ini``; a missing default file means all defaults)."""
    p = Path(path) if path else DEFAULT_CONFIG_PATH
    parser = _parser()
    if path is not None and not p.is_file():
        raise ConfigError("config file not found", file=str(p))
    try:
        if p.is_file():
            parser.read(p, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot parse: {e}", file=str(p)) from e
    return _validate(parser, str(p))


def load_config_text(text: str, name: str = "<string>") -> Config:
    parser = _parser()
    try:
        parser.read_string(text, source=name)
    except configparser.Error as e:
        raise ConfigError(f"cannot parse: {e}", file=name) from e
    return _validate(parser, name)


def _validate(parser: configparser.ConfigParser, file: str) -> Config:
    values = {s: {k: d for k, (_, d) in keys.items()} for s, keys in SCHEMA.items()}
    headers: dict[str, str] = {}
    devices: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        if section in FREE_SECTIONS:
            headers.update({k: v for k, v in parser.items(section)})
            continue
        if section.startswith(DEVICE_PREFIX):
            if not section[len(DEVICE_PREFIX):].strip():
                raise ConfigError("device section needs a name: [Device:<name>]", file=file, section=section)
            devices[section[len(DEVICE_PREFIX):].strip()] = dict(parser.items(section))
            continue
        if section not in SCHEMA:
            known = ", ".join(list(SCHEMA) + list(FREE_SECTIONS) + [DEVICE_PREFIX + "<name>"])
            raise ConfigError(f"unknown section (known: {known})", file=file, section=section)
        for key, raw in parser.items(section):
            if key not in SCHEMA[section]:
                raise ConfigError(f"unknown key (known: {', '.join(SCHEMA[section])})", file=file, section=section, key=key)
            parse, _ = SCHEMA[section][key]
            try:
                values[section][key] = parse(raw)
            except ValueError as e:
                raise ConfigError(f"bad value {raw!r}: {e}", file=file, section=section, key=key) from None
    _check_whole(values, devices, file)
    return Config(file, values, headers, devices)


def _check_whole(values: dict[str, dict[str, Any]], devices: dict[str, Any], file: str) -> None:
    """Checks across keys, shared by the file and by ``with_overrides``; normalises the platform url."""
    browsers = values["Pipeline"]["browsers"]
    if values["Pipeline"]["api-workers"] + (1 if isinstance(browsers, str) else browsers) + len(devices) == 0:
        raise ConfigError("no executors: set api-workers or browsers > 0", file=file, section="Pipeline", key="api-workers")
    _check_transport(values["Pipeline"], file)
    url = values["Platform"]["url"]
    if url:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"must start with http:// or https://, got {url!r}", file=file, section="Platform", key="url")
        values["Platform"]["url"] = url.rstrip("/")


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_unauthenticated(pipeline: dict[str, Any]) -> None:
    """Said loudly at every start: tcp on loopback without CURVE keys is allowed, but not safe."""
    if unauthenticated_tcp(pipeline):
        logging.getLogger("pipeline.supervisor").warning(
            "UNAUTHENTICATED TRANSPORT: transport = tcp on %s without CURVE keys: any local user can forge messages to "
            "the stages (e.g. end a run as passed). Create keys with `liuma-pipeline keys` and set [Pipeline] curve-keys, "
            "or use transport = ipc.", pipeline.get("tcp-host"))


def unauthenticated_tcp(pipeline: dict[str, Any]) -> bool:
    """tcp without CURVE keys: any local user can connect to the stages' inboxes and forge messages."""
    return pipeline["transport"] == "tcp" and not pipeline["curve-keys"]


def _check_transport(pipeline: dict[str, Any], file: str) -> None:
    """tcp means CURVE: without keys the stages would accept anyone who can reach the port. On loopback the
    engine still starts (the supervisor warns loudly); on any other host it refuses."""
    if unauthenticated_tcp(pipeline) and not is_loopback(pipeline["tcp-host"]):
        raise ConfigError(f"transport = tcp on {pipeline['tcp-host']} without CURVE keys would let anyone who reaches the "
                          "port forge messages: create keys with `liuma-pipeline keys --dir config/curve` and set "
                          "[Pipeline] curve-keys = config/curve", file=file, section="Pipeline", key="curve-keys")
