"""What a device's ``throttle_reasons`` mask means, per vendor.

NVIDIA's mask is NVML's clock-event reasons as NVML reports them. AMD's is folded by the AMD
backend from the SMU's 64-bit "independent throttler" status (which a float cannot hold
exactly, and a browser cannot mask) into one bit per kind of limit. ``js/charts.ts`` decodes
the same tables for the widget and the sidebar.
"""

from __future__ import annotations

#: Bits that are set on a healthy device and mean no slowdown: NVIDIA's idle (0x1), user
#: application clocks (0x2) and display clock setting (0x100).
NOT_THROTTLING: dict[str, int] = {"nvidia": 0x1 | 0x2 | 0x100, "amd": 0}

REASONS: dict[str, dict[int, str]] = {
    "nvidia": {
        0x4: "software power cap",
        0x8: "hardware slowdown",
        0x10: "sync boost",
        0x20: "software thermal slowdown",
        0x40: "hardware thermal slowdown",
        0x80: "power brake",
    },
    "amd": {
        0x1: "power limit",
        0x2: "current limit",
        0x4: "temperature limit",
        0x8: "platform or reliability limit",
    },
}

# AMD's SMU throttler bits (linux drivers/gpu/drm/amd/pm/swsmu/inc/amdgpu_smu.h,
# SMU_THROTTLER_*_BIT): power (PPT) 0-15, current (TDC) 16-31, temperature 32-47, and from
# 56 the platform power manager and reliability (FIT) limits.
_AMD_GROUPS = ((0x1, 0, 16), (0x2, 16, 16), (0x4, 32, 16), (0x8, 56, 8))


def fold_amd_throttle(status: int) -> int:
    """AMD's 64-bit independent throttler status as the four bits of ``REASONS["amd"]``."""
    out = 0
    for bit, shift, width in _AMD_GROUPS:
        if (status >> shift) & ((1 << width) - 1):
            out |= bit
    return out


def throttling_bits(mask: float | int, vendor: str) -> int:
    """The bits of ``mask`` that mean a slowdown (0: not throttling)."""
    return int(mask) & ~NOT_THROTTLING.get(vendor, 0)


def describe_throttle(mask: float | int, vendor: str = "nvidia") -> list[str]:
    """Readable names of the throttling bits set in a device's mask."""
    bits = throttling_bits(mask, vendor)
    return [name for bit, name in REASONS.get(vendor, {}).items() if bits & bit]
