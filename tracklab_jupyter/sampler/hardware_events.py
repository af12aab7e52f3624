"""Hardware-change detection from consecutive samples.

Collectors report the changes only they can see (a device lost or appeared, MIG mode
flipped); this module finds the ones visible in the numbers, for every accelerator of every
vendor that reports them: throttling starting or stopping, new ECC errors, a temperature
crossing the device's own slowdown threshold, and a device's health changing (Ascend).
"""

from __future__ import annotations

import re
from typing import Any

from tracklab_jupyter.accelerators.registry import devices_in
from tracklab_jupyter.accelerators.throttle import describe_throttle, throttling_bits

_DEVICE_METRIC = re.compile(r"(gpu|npu|tpu)\.(\d+)\.(throttle_reasons|ecc_uncorrected_errors|"
                            r"ecc_corrected_errors|temp_c|health)\Z")

#: ``npu.N.health`` values (DCMI's and npu-smi's scale).
HEALTH_WORDS = {0: "ok", 1: "warning", 2: "alarm", 3: "critical"}


class HardwareWatcher:
    """Compares each sample with the previous one and returns event dicts
    (``kind``, ``message``, ``data``) for changes worth telling people about."""

    def __init__(self) -> None:
        self._prev: dict[str, float] = {}
        self._slowdown_c: dict[tuple[str, int], float] = {}
        self._vendor: dict[tuple[str, int], str] = {}

    def set_info(self, info: dict[str, Any]) -> None:
        """Take each device's vendor and slowdown temperature from collector info."""
        devices = devices_in(info)
        self._vendor = {(d["kind"], int(d["index"])): str(d.get("vendor", "")) for d in devices}
        self._slowdown_c = {(d["kind"], int(d["index"])): float(d["temp_slowdown_c"])
                            for d in devices if d.get("temp_slowdown_c") is not None}

    def check(self, metrics: dict[str, float]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        prev = self._prev
        for name, value in metrics.items():
            match = _DEVICE_METRIC.match(name)
            if match is None:
                continue
            dev = _Device(match.group(1), int(match.group(2)))
            field = match.group(3)
            old = prev.get(name)
            if field == "throttle_reasons":
                events += self._throttle(dev, old, value)
            elif field.startswith("ecc_") and old is not None and value > old:
                kind = "uncorrected" if "uncorrected" in field else "corrected"
                events.append({
                    "kind": "ecc_errors",
                    "message": f"{dev.label}: {int(value - old)} new {kind} ECC error(s)",
                    "data": {**dev.data, "type": kind, "new": value - old, "total": value},
                })
            elif field == "temp_c":
                events += self._temperature(dev, old, value)
            elif field == "health" and old is not None and value != old:
                events.append(_health_event(dev, old, value))
        self._prev = metrics
        return events

    def _throttle(self, dev: _Device, old: float | None, value: float
                  ) -> list[dict[str, Any]]:
        vendor = self._vendor.get(dev.key, "nvidia")
        now_mask = throttling_bits(value, vendor)
        old_mask = throttling_bits(old, vendor) if old is not None else 0
        if bool(now_mask) == bool(old_mask):
            return []
        if now_mask:
            reasons = describe_throttle(value, vendor)
            return [{"kind": "throttle_start",
                     "message": f"{dev.label} throttling: {', '.join(reasons)}",
                     "data": {**dev.data, "reasons": reasons, "mask": int(value)}}]
        return [{"kind": "throttle_stop", "message": f"{dev.label} stopped throttling",
                 "data": {**dev.data, "mask": int(value)}}]

    def _temperature(self, dev: _Device, old: float | None, value: float
                     ) -> list[dict[str, Any]]:
        limit = self._slowdown_c.get(dev.key)
        if limit is None or old is None:
            return []
        data = {**dev.data, "temp_c": value, "slowdown_c": limit}
        if old < limit <= value:
            return [{"kind": "temp_high",
                     "message": f"{dev.label} at {value:.0f} °C reached its slowdown "
                                f"temperature ({limit:.0f} °C)",
                     "data": data}]
        if value < limit <= old:
            return [{"kind": "temp_normal",
                     "message": f"{dev.label} back below its slowdown temperature "
                                f"({value:.0f} °C)",
                     "data": data}]
        return []


class _Device:
    """A device named in a metric: ``gpu`` 0 is "GPU 0", data ``{"gpu": 0, ...}``."""

    def __init__(self, kind: str, index: int) -> None:
        self.key = (kind, index)
        self.label = f"{kind.upper()} {index}"
        self.data: dict[str, Any] = {kind: index, "device": f"{kind}.{index}"}


def _health_event(dev: _Device, old: float, value: float) -> dict[str, Any]:
    now, before = HEALTH_WORDS.get(int(value), str(value)), HEALTH_WORDS.get(int(old), str(old))
    return {"kind": "health_changed",
            "message": f"{dev.label} health: {now} (was {before})",
            "data": {**dev.data, "health": now, "previous": before}}
