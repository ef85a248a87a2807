"""Device routing (pure): which devices may run a unit, decided once when the task is planned.

Each APP case asks for a device (``pipeline.devices.Requirement``: the collection's ``deviceId`` as a device
name or udid, else the case's ``deviceUrl``, and its ``deviceSystem``; none = any APP device). A unit runs
on one device (its cases share the session and variables), so the unit's devices are those admitting every
APP case of it. The answer is a set of device *names*; ``FifoPolicy`` then gives the unit only to an
executor owning one of them, whatever order executors announce credit in, so a binding holds from the
first dispatch. A requirement nothing satisfies is ``Unroutable``: the scheduler ends those cases at once
with its message (the requirement and the devices that exist) instead of leaving them to the task timeout.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pipeline.devices import Device, Requirement, parse_devices

__all__ = ["Router", "Unroutable", "registry_from_spec", "unit_requirements"]


class Unroutable(Exception):
    """No registered device with an executor satisfies the requirement (the message says which and why)."""


def registry_from_spec(devices: Mapping[str, Mapping[str, str]]) -> dict[str, Device]:
    """``RunSpec.devices`` ({name: raw section}) -> {name: Device}; the config was validated at start-up."""
    try:
        return parse_devices({f"Device:{name}": dict(values) for name, values in devices.items()})
    except Exception:                        # noqa: BLE001 - a registry the CLI accepted; keep what parses
        out: dict[str, Device] = {}
        for name, values in devices.items():
            try:
                out.update(parse_devices({f"Device:{name}": dict(values)}))
            except Exception:                # noqa: BLE001
                continue
        return out


@dataclass
class Router:
    """``devices``: the registry; ``owned``: names of devices an executor runs (only those can take work).
    A device an executor announces without a registry entry is known by name only."""

    devices: dict[str, Device] = field(default_factory=dict)
    owned: set[str] = field(default_factory=set)

    def announce(self, device: str | None) -> None:
        if device:
            self.owned.add(device)

    def candidates(self) -> list[Device]:
        return [self.devices.get(n) or Device(name=n, platform="", appium_url="") for n in sorted(self.owned)]

    def resolve(self, requirements: Iterable[Requirement]) -> frozenset[str]:
        """The devices that satisfy every requirement; raises ``Unroutable`` when there is none."""
        reqs = list(dict.fromkeys(requirements))
        fits = {d.name for d in self.candidates()}
        for r in reqs:
            fits &= {d.name for d in self.candidates() if self._admits(r, d)}
        if fits:
            return frozenset(fits)
        wanted = " and ".join(r.describe() for r in reqs) or "any APP device"
        exist = "; ".join(d.describe() if d.platform else d.name for d in self.candidates()) or "none"
        if len(reqs) > 1 and all(any(self._admits(r, d) for d in self.candidates()) for r in reqs):
            raise Unroutable(f"no single device satisfies {wanted} (a collection runs on one device); devices: {exist}")
        raise Unroutable(f"no device satisfies {wanted}; devices: {exist}")

    @staticmethod
    def _admits(req: Requirement, device: Device) -> bool:
        if not device.platform:              # known by name only: only name requirements can be judged
            return not req.system and not req.device_url and req.device_id in ("", device.name)
        return req.admits(device)


def unit_requirements(collection_device_id: str | None, cases: Iterable[Mapping[str, object]],
                      read_case: Callable[[str], Mapping[str, object] | None]) -> list[Requirement]:
    """The requirements of a unit's APP cases; ``read_case(case_id)`` gives a case's data (None when it cannot
    be read: the executor reports that case's own error, the collection's ``deviceId`` still binds it)."""
    out = []
    for c in cases:
        if c.get("case_type") != "APP":
            continue
        data = read_case(str(c["case_id"])) or {}
        out.append(Requirement.of(data, collection_device_id))
    return out or [Requirement.of({}, collection_device_id)]
