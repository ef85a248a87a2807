"""The device registry: ``[Device:<name>]`` sections of config.ini -> ``Device`` objects, and device selection.

One executor process owns exactly one device (its Appium session is not shared between processes), so
the per-device ports Appium drivers open on the host (UiAutomator2 ``systemPort``, ``chromedriverPort``,
``mjpegServerPort``, XCUITest ``wdaLocalPort``) must be distinct across the whole registry: two devices
with the same port would steal each other's forwarding. ``parse_devices`` rejects that, and any unknown
key, with a ``ConfigError`` naming the section and key.

Selection (``select_device``) follows the platform's precedence: a collection's ``deviceId`` (the device
chosen for the plan; the original ignored it, reference §9.1) beats the case's ``deviceUrl``, which beats
its ``deviceSystem``. ``ctx.device`` carries a ``Device`` as a plain dict (``to_dict``/``from_dict``).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.secrets import redact_urls

__all__ = ["Device", "Requirement", "parse_devices", "parse_device", "select_device", "SECTION_PREFIX", "PLATFORMS"]

SECTION_PREFIX = "Device:"
PLATFORMS = ("android", "apple")
PORT_KEYS = ("system_port", "chromedriver_port", "mjpeg_server_port", "wda_local_port")
KNOWN_KEYS = frozenset({"name", "platform", "appium_url", "udid", "automation_name", "capabilities", *PORT_KEYS})
DEFAULT_AUTOMATION = {"android": "UiAutomator2", "apple": "XCUITest"}
# port key -> Appium capability it feeds (UiAutomator2 / XCUITest driver docs)
PORT_CAPS = {"system_port": "appium:systemPort", "chromedriver_port": "appium:chromedriverPort",
             "mjpeg_server_port": "appium:mjpegServerPort", "wda_local_port": "appium:wdaLocalPort"}
W3C_STANDARD_CAPS = frozenset({"platformName", "browserName", "browserVersion", "acceptInsecureCerts",
                               "pageLoadStrategy", "proxy", "setWindowRect", "timeouts", "strictFileInteractability",
                               "unhandledPromptBehavior", "webSocketUrl"})


@dataclass(frozen=True, slots=True)
class Device:
    """One registered device: where its Appium server is and how to open a session on it."""

    name: str
    platform: str                          # android | apple: selects the operation semantics (stepType)
    appium_url: str
    udid: str = ""
    automation_name: str = ""
    capabilities: dict[str, Any] = field(default_factory=dict)   # extra capabilities, override the built ones
    system_port: int | None = None
    chromedriver_port: int | None = None
    mjpeg_server_port: int | None = None
    wda_local_port: int | None = None

    @property
    def step_type(self) -> str:
        """The transaction ``stepType`` of this device's steps (``android`` / ``ios``)."""
        return "android" if self.platform == "android" else "ios"

    def session_capabilities(self) -> dict[str, Any]:
        """W3C capabilities for a new session: platform defaults, udid and ports, then the configured extras."""
        caps: dict[str, Any] = {
            "platformName": "Android" if self.platform == "android" else "iOS",
            "appium:automationName": self.automation_name or DEFAULT_AUTOMATION[self.platform],
            "appium:newCommandTimeout": 300,
        }
        if self.udid:
            caps["appium:udid"] = self.udid
        for key, cap in PORT_CAPS.items():
            port = getattr(self, key)
            if port is not None:
                caps[cap] = port
        for key, value in self.capabilities.items():
            prefixed = key if ":" in key or key in W3C_STANDARD_CAPS else f"appium:{key}"
            caps[prefixed] = value
        return caps

    def matches_url(self, device_url: str) -> bool:
        """A case's ``deviceUrl`` (``host:port`` of the platform's device agent, no scheme) names this device
        when it equals its name, its udid or the host:port of its Appium server."""
        wanted = device_url.strip().rstrip("/")
        if "://" in wanted:
            wanted = urlsplit(wanted).netloc
        return wanted.rsplit("@", 1)[-1] in {self.name, self.udid, self.server} - {""}

    @property
    def server(self) -> str:
        """``host:port`` of the Appium server, never its credentials (cloud farms put them in the URL)."""
        return urlsplit(self.appium_url).netloc.rsplit("@", 1)[-1]

    def describe(self) -> str:
        """For error messages and ``status``: ``phone-a (android, udid emulator-5554, 127.0.0.1:4723)``."""
        return f"{self.name} ({', '.join(p for p in (self.platform, self.udid and f'udid {self.udid}', self.server) if p)})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Device:
        return cls(**{k: v for k, v in data.items() if k in KNOWN_KEYS})


def _port(section: str, key: str, text: str) -> int:
    try:
        port = int(text.strip())
    except ValueError:
        raise ConfigError(f"must be a port number, got {text!r}", section=section, key=key) from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"port {port} is outside 1-65535", section=section, key=key)
    return port


def _capabilities(section: str, text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})",
                          section=section, key="capabilities") from None
    if not isinstance(value, dict):
        raise ConfigError("must be a JSON object of capabilities", section=section, key="capabilities")
    return value


def parse_device(section: str, values: Mapping[str, str]) -> Device:
    """One ``[Device:<name>]`` section -> ``Device``; ``name`` defaults to the part after ``Device:``."""
    unknown = sorted(set(values) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"unknown key (known: {', '.join(sorted(KNOWN_KEYS))})", section=section, key=unknown[0])
    name = (values.get("name") or section[len(SECTION_PREFIX):]).strip()
    if not name:
        raise ConfigError("device name is empty", section=section, key="name")
    platform = values.get("platform", "").strip().lower()
    if platform not in PLATFORMS:
        raise ConfigError(f"must be one of {', '.join(PLATFORMS)}, got {platform!r}", section=section, key="platform")
    url = values.get("appium_url", "").strip()
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ConfigError(f"must be an http(s) URL of an Appium server, got {redact_urls(url)!r}", section=section,
                          key="appium_url")
    ports = {k: _port(section, k, values[k]) for k in PORT_KEYS if values.get(k, "").strip()}
    return Device(name=name, platform=platform, appium_url=url.rstrip("/"), udid=values.get("udid", "").strip(),
                  automation_name=values.get("automation_name", "").strip(),
                  capabilities=_capabilities(section, values.get("capabilities", "")), **ports)


def _check_collisions(parsed: list[tuple[str, Device]]) -> None:
    """Every per-device port is used once across the registry; a udid names one device; names are unique."""
    ports: dict[int, tuple[str, str]] = {}
    udids: dict[str, str] = {}
    names: dict[str, str] = {}
    for section, dev in parsed:
        if dev.name in names:
            raise ConfigError(f"device name {dev.name!r} is also used by [{names[dev.name]}]", section=section, key="name")
        names[dev.name] = section
        if dev.udid:
            if dev.udid in udids:
                raise ConfigError(f"udid {dev.udid!r} is also used by [{udids[dev.udid]}]", section=section, key="udid")
            udids[dev.udid] = section
        for key in PORT_KEYS:
            port = getattr(dev, key)
            if port is None:
                continue
            if port in ports:
                other_section, other_key = ports[port]
                raise ConfigError(f"port {port} is also used by [{other_section}] {other_key}; every device needs "
                                  "its own ports", section=section, key=key)
            ports[port] = (section, key)


def parse_devices(sections: Mapping[str, Mapping[str, str]]) -> dict[str, Device]:
    """All ``Device:<name>`` sections of a parsed config (other sections are ignored) -> {name: Device}."""
    parsed = [(s, parse_device(s, v)) for s, v in sections.items() if s.startswith(SECTION_PREFIX)]
    _check_collisions(parsed)
    return {dev.name: dev for _, dev in parsed}


def select_device(devices: Mapping[str, Device], case: Mapping[str, Any],
                  collection_device_id: str | None) -> Device | None:
    """The device a case must run on, or None when no registered device fits.

    Precedence: collection ``deviceId`` (device name or udid) > case ``deviceUrl`` > case ``deviceSystem``
    (first device of that platform by name). A case with none of these runs on the first device by name.
    ``deviceSystem``, when given, must match the chosen device's platform.
    """
    req = Requirement.of(case, collection_device_id)
    return next((devices[n] for n in sorted(devices) if req.admits(devices[n])), None)


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a case asks of its device, in ``select_device``'s precedence: ``device_id`` (the collection's
    ``deviceId``: a device name or udid) beats ``device_url`` (the case's ``deviceUrl``); ``system`` (the
    case's ``deviceSystem``) always has to match too. All empty = any APP device."""

    device_id: str = ""
    device_url: str = ""
    system: str = ""

    @classmethod
    def of(cls, case: Mapping[str, Any], collection_device_id: str | None) -> Requirement:
        return cls(str(collection_device_id or "").strip(), str(case.get("deviceUrl") or "").strip(),
                   str(case.get("deviceSystem") or "").strip().lower())

    def admits(self, device: Device) -> bool:
        if self.system and device.platform != self.system:
            return False
        if self.device_id:
            return self.device_id in (device.name, device.udid)
        if self.device_url:
            return device.matches_url(self.device_url)
        return True

    def describe(self) -> str:
        """For error messages, e.g. ``deviceId 'emulator-5554' and deviceSystem 'apple'``."""
        parts = [f"deviceId {self.device_id!r}" if self.device_id else "",
                 f"deviceUrl {redact_urls(self.device_url)!r}" if self.device_url and not self.device_id else "",
                 f"deviceSystem {self.system!r}" if self.system else ""]
        return " and ".join(p for p in parts if p) or "any APP device"
