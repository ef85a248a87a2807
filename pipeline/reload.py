"""Config reload, the pure part: which new values apply live, which need a restart, and how the executor
pool changes. The supervisor does the side effects (settings.json, spawning, stopping idle executors).

Executor identity is its signature (case kinds, device): reload keeps every running executor whose
signature is still wanted, adds the missing ones (re-using a retired entry's name first, so the tcp slot
table stays stable) and retires the surplus. Retired entries stay in ``RunSpec.executors`` with
``"retired": true``: ``topology.endpoint_resolver`` numbers tcp slots by list position.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RESTART_ONLY", "PoolPlan", "changed_keys", "desired_pool", "executor_entries", "merge_live", "plan_pool"]

# Values a running engine cannot take over: they name sockets, directories and identities.
RESTART_ONLY: frozenset[tuple[str, str]] = frozenset({
    ("Pipeline", "storage-root"), ("Pipeline", "report-dir"), ("Pipeline", "run-dir"), ("Pipeline", "transport"),
    ("Pipeline", "tcp-host"), ("Pipeline", "tcp-base-port"), ("Pipeline", "curve-keys"),
    ("Logging", "file-size"), ("Logging", "backup-count"), ("Logging", "format"), ("Metrics", "listen"),
    ("Platform", "url"), ("Engine", "engine-code"), ("Engine", "engine-secret"),
})

Signature = tuple[tuple[str, ...], "str | None"]


def desired_pool(values: dict[str, dict[str, Any]], devices: dict[str, Any]) -> list[Signature]:
    """The executor signatures a config asks for, in the CLI's order: API workers, browsers, devices."""
    from .capacity_probe import browser_count
    api, browsers = int(values["Pipeline"]["api-workers"]), browser_count(values)
    return ([(("API",), None)] * api + [(("API", "WEB"), None)] * browsers
            + [(("APP",), d) for d in sorted(devices)])


def executor_entries(pool: list[Signature]) -> list[dict[str, Any]]:
    """``RunSpec.executors`` entries for a fresh pool (executor-1 ... in order)."""
    out = []
    for i, (kinds, device) in enumerate(pool, start=1):
        e: dict[str, Any] = {"name": f"executor-{i}", "kinds": list(kinds)}
        if device is not None:
            e["device"] = device
        out.append(e)
    return out


def _sig(e: dict[str, Any]) -> Signature:
    return tuple(e["kinds"]), e.get("device")


def _number(name: str) -> int:
    m = re.fullmatch(r"executor-(\d+)", name)
    return int(m.group(1)) if m else 0


@dataclass
class PoolPlan:
    executors: list[dict[str, Any]]                     # the new RunSpec.executors (retired entries kept)
    start: list[str] = field(default_factory=list)      # names to spawn
    retire: list[str] = field(default_factory=list)     # names to stop once idle


def plan_pool(current: list[dict[str, Any]], want: list[Signature], busy: frozenset[str] | set[str] = frozenset()) -> PoolPlan:
    """Change ``current`` (RunSpec.executors) into ``want``. Surplus executors are retired idle ones first
    and highest number first (``busy`` names are retired last: they stop when their case is done)."""
    entries = [dict(e) for e in current]
    plan = PoolPlan(entries)
    next_n = max((_number(e["name"]) for e in entries), default=0) + 1
    for sig in dict.fromkeys(want + [_sig(e) for e in entries]):
        n_want = want.count(sig)
        active = [e for e in entries if _sig(e) == sig and not e.get("retired")]
        if len(active) > n_want:
            surplus = sorted(active, key=lambda e: (e["name"] in busy, -_number(e["name"])))[:len(active) - n_want]
            for e in surplus:
                e["retired"] = True
                plan.retire.append(e["name"])
        for _ in range(n_want - len(active)):
            spare = next((e for e in entries if _sig(e) == sig and e.get("retired") and e["name"] not in plan.retire), None)
            if spare is None:
                spare = {"name": f"executor-{next_n}", "kinds": list(sig[0])}
                if sig[1] is not None:
                    spare["device"] = sig[1]
                next_n += 1
                entries.append(spare)
            spare.pop("retired", None)
            plan.start.append(spare["name"])
    return plan


def merge_live(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The values to run with after a reload: ``new`` except the RESTART_ONLY keys, which keep their old
    value; returns (values, ["Section.key" of ignored changes])."""
    merged = {s: dict(d) for s, d in new.items()}
    ignored = []
    for section, key in sorted(RESTART_ONLY):
        if section in old and key in old[section] and old[section][key] != new.get(section, {}).get(key):
            merged[section][key] = old[section][key]
            ignored.append(f"{section}.{key}")
    return merged, ignored


def changed_keys(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    """``Section.key`` of every value that differs."""
    out = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section, {}), new.get(section, {})
        out += [f"{section}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return out
