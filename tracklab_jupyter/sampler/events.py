"""Hardware-change detection from consecutive samples.

Collectors report the changes only they can see (a GPU lost or appeared, MIG mode flipped);
this module finds the ones visible in the numbers: throttling starting or stopping, new ECC
errors, and a GPU temperature crossing the card's own slowdown threshold.
"""

from __future__ import annotations

import re
from typing import Any

# Clock-event reasons that are not throttling: the GPU is idle (0x1), or the user pinned
# application clocks (0x2) or display clocks (0x100).
_NOT_THROTTLING = 0x1 | 0x2 | 0x100

_REASONS = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x10: "sync boost",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "power brake",
}

_GPU_METRIC = re.compile(r"gpu\.(\d+)\.(throttle_reasons|ecc_uncorrected_errors|"
                         r"ecc_corrected_errors|temp_c)\Z")


def describe_throttle(mask: int) -> list[str]:
    """Readable names of the throttling bits set in an NVML clock-event mask."""
    return [name for bit, name in _REASONS.items() if mask & bit]


class HardwareWatcher:
    """Compares each sample with the previous one and returns event dicts
    (``kind``, ``message``, ``data``) for changes worth telling people about."""

    def __init__(self) -> None:
        self._prev: dict[str, float] = {}
        self._slowdown_c: dict[int, float] = {}

    def set_info(self, info: dict[str, Any]) -> None:
        """Take the slowdown temperature of each GPU from collector info."""
        self._slowdown_c = {
            int(dev["index"]): float(dev["temp_slowdown_c"])
            for dev in info.get("gpu", {}).get("devices", [])
            if dev.get("temp_slowdown_c") is not None
        }

    def check(self, metrics: dict[str, float]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        prev = self._prev
        for name, value in metrics.items():
            match = _GPU_METRIC.match(name)
            if match is None:
                continue
            gpu, field = int(match.group(1)), match.group(2)
            old = prev.get(name)
            if field == "throttle_reasons":
                events += self._throttle(gpu, old, value)
            elif field.startswith("ecc_") and old is not None and value > old:
                kind = "uncorrected" if "uncorrected" in field else "corrected"
                events.append({
                    "kind": "ecc_errors",
                    "message": f"GPU {gpu}: {int(value - old)} new {kind} ECC error(s)",
                    "data": {"gpu": gpu, "type": kind, "new": value - old, "total": value},
                })
            elif field == "temp_c":
                events += self._temperature(gpu, old, value)
        self._prev = metrics
        return events

    def _throttle(self, gpu: int, old: float | None, value: float) -> list[dict[str, Any]]:
        now_mask = int(value) & ~_NOT_THROTTLING
        old_mask = int(old) & ~_NOT_THROTTLING if old is not None else 0
        if bool(now_mask) == bool(old_mask):
            return []
        if now_mask:
            reasons = describe_throttle(now_mask)
            return [{"kind": "throttle_start",
                     "message": f"GPU {gpu} throttling: {', '.join(reasons)}",
                     "data": {"gpu": gpu, "reasons": reasons, "mask": int(value)}}]
        return [{"kind": "throttle_stop", "message": f"GPU {gpu} stopped throttling",
                 "data": {"gpu": gpu, "mask": int(value)}}]

    def _temperature(self, gpu: int, old: float | None, value: float) -> list[dict[str, Any]]:
        limit = self._slowdown_c.get(gpu)
        if limit is None or old is None:
            return []
        if old < limit <= value:
            return [{"kind": "temp_high",
                     "message": f"GPU {gpu} at {value:.0f} °C reached its slowdown "
                                f"temperature ({limit:.0f} °C)",
                     "data": {"gpu": gpu, "temp_c": value, "slowdown_c": limit}}]
        if value < limit <= old:
            return [{"kind": "temp_normal",
                     "message": f"GPU {gpu} back below its slowdown temperature "
                                f"({value:.0f} °C)",
                     "data": {"gpu": gpu, "temp_c": value, "slowdown_c": limit}}]
        return []
