"""The device registry lives in ``pipeline.devices`` (the scheduler routes by it and may not import a stage);
re-exported here for the APP runner and its tests."""
from pipeline.devices import PLATFORMS, SECTION_PREFIX, Device, parse_device, parse_devices, select_device  # noqa: F401

__all__ = ["Device", "parse_devices", "parse_device", "select_device", "SECTION_PREFIX", "PLATFORMS"]
