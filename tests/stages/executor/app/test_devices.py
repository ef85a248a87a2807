"""Device registry: parsing, validation (unknown keys, port collisions) and selection."""
from __future__ import annotations

import pytest

from pipeline.errors import ConfigError
from stages.executor.app.devices import Device, parse_devices, select_device

PIXEL = {"platform": "android", "appium_url": "http://127.0.0.1:4723", "udid": "emulator-5554",
         "system_port": "8200", "chromedriver_port": "9515", "mjpeg_server_port": "9100",
         "capabilities": '{"app": "/abs/app.apk", "appium:noReset": true}'}
IPHONE = {"platform": "apple", "appium_url": "http://127.0.0.1:4724/", "udid": "0000-IPHONE",
          "wda_local_port": "8100", "automation_name": "XCUITest"}


def test_parse_builds_devices_with_typed_ports_and_capabilities() -> None:
    devices = parse_devices({"Device:pixel": PIXEL, "Device:iphone": IPHONE, "Platform": {"url": "x"}})
    assert sorted(devices) == ["iphone", "pixel"]
    pixel = devices["pixel"]
    assert (pixel.platform, pixel.system_port, pixel.udid, pixel.step_type) == ("android", 8200, "emulator-5554", "android")
    assert devices["iphone"].appium_url == "http://127.0.0.1:4724"
    assert devices["iphone"].step_type == "ios"
    assert pixel.session_capabilities() == {
        "platformName": "Android", "appium:automationName": "UiAutomator2", "appium:newCommandTimeout": 300,
        "appium:udid": "emulator-5554", "appium:systemPort": 8200, "appium:chromedriverPort": 9515,
        "appium:mjpegServerPort": 9100, "appium:app": "/abs/app.apk", "appium:noReset": True}
    assert devices["iphone"].session_capabilities()["appium:wdaLocalPort"] == 8100


def test_name_key_overrides_section_suffix_and_dict_round_trip() -> None:
    devices = parse_devices({"Device:a": dict(PIXEL, name="Pixel 7")})
    dev = devices["Pixel 7"]
    assert Device.from_dict(dev.to_dict()) == dev


def test_configured_capabilities_override_platform_defaults() -> None:
    fake = {"platform": "android", "appium_url": "http://127.0.0.1:1", "automation_name": "Fake",
            "capabilities": '{"platformName": "Fake", "app": "/abs/login.xml"}'}
    caps = parse_devices({"Device:fake": fake})["fake"].session_capabilities()
    assert caps["platformName"] == "Fake" and caps["appium:automationName"] == "Fake"
    assert caps["appium:app"] == "/abs/login.xml"


@pytest.mark.parametrize("sections, where, text", [
    ({"Device:a": dict(PIXEL, colour="red")}, "[Device:a]:colour", "unknown key"),
    ({"Device:a": dict(PIXEL, platform="windows")}, "[Device:a]:platform", "android, apple"),
    ({"Device:a": dict(PIXEL, appium_url="127.0.0.1:4723")}, "[Device:a]:appium_url", "http(s) URL"),
    ({"Device:a": dict(PIXEL, system_port="eighty")}, "[Device:a]:system_port", "port number"),
    ({"Device:a": dict(PIXEL, system_port="70000")}, "[Device:a]:system_port", "outside"),
    ({"Device:a": dict(PIXEL, capabilities="{bad")}, "[Device:a]:capabilities", "not valid JSON"),
    ({"Device:a": dict(PIXEL, capabilities="[1]")}, "[Device:a]:capabilities", "JSON object"),
    ({"Device:a": PIXEL, "Device:b": dict(IPHONE, wda_local_port="8200")}, "[Device:b]:wda_local_port",
     "port 8200 is also used by [Device:a] system_port"),
    ({"Device:a": dict(PIXEL, mjpeg_server_port="8200")}, "[Device:a]:mjpeg_server_port",
     "also used by [Device:a] system_port"),
    ({"Device:a": PIXEL, "Device:b": dict(IPHONE, udid="emulator-5554")}, "[Device:b]:udid", "also used"),
    ({"Device:a": PIXEL, "Device:b": dict(IPHONE, name="a")}, "[Device:b]:name", "also used"),
])
def test_bad_sections_are_rejected_naming_section_and_key(sections: dict[str, dict[str, str]], where: str,
                                                          text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_devices(sections)
    assert str(err.value).startswith(where) and text in str(err.value)


DEVICES = parse_devices({
    "Device:pixel": PIXEL, "Device:iphone": IPHONE,
    "Device:galaxy": {"platform": "android", "appium_url": "http://127.0.0.1:4725", "udid": "R58M"},
})


@pytest.mark.parametrize("case, collection_device, expected", [
    ({}, "pixel", "pixel"),
    ({}, "0000-IPHONE", "iphone"),                                    # by udid
    ({"deviceUrl": "anything", "deviceSystem": "android"}, "galaxy", "galaxy"),   # collection beats case
    ({}, "unknown", None),
    ({"deviceSystem": "apple"}, "pixel", None),                        # chosen device has the wrong platform
    ({"deviceUrl": "127.0.0.1:4724", "deviceSystem": "apple"}, None, "iphone"),   # Appium host:port
    ({"deviceUrl": "R58M"}, None, "galaxy"),                           # udid
    ({"deviceUrl": "http://127.0.0.1:4723/"}, None, "pixel"),
    ({"deviceUrl": "192.168.1.20:7912", "deviceSystem": "android"}, None, None),
    ({"deviceSystem": "android"}, None, "galaxy"),                     # first android by name
    ({"deviceSystem": "apple"}, None, "iphone"),
    ({}, None, "galaxy"),
])
def test_select_device(case: dict[str, str], collection_device: str | None, expected: str | None) -> None:
    chosen = select_device(DEVICES, case, collection_device)
    assert (chosen.name if chosen else None) == expected


def test_select_from_empty_registry_is_none() -> None:
    assert select_device({}, {"deviceSystem": "android"}, None) is None
