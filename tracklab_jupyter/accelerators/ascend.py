"""Huawei Ascend NPUs: through the DCMI library, else ``npu-smi info`` at a low cadence.

(Skeleton: detection only; the readers follow.)
"""

from __future__ import annotations

from tracklab_jupyter.accelerators.base import (
    AcceleratorBackend,
    AcceleratorUnavailable,
    NoDevices,
    Selection,
    host_path,
)


def davinci_devices() -> list[str]:
    """``/dev/davinci0`` ... (the NPU device files; ``davinci_manager`` is not one)."""
    dev = host_path("/dev")
    try:
        return sorted(p.name for p in dev.glob("davinci*") if p.name[7:].isdigit())
    except OSError:
        return []


class AscendBackend(AcceleratorBackend):
    name = "ascend"
    vendor = "huawei"
    kind = "npu"

    @classmethod
    def open(cls, selection: Selection, first_index: int = 0) -> AscendBackend:
        if not davinci_devices():
            raise NoDevices("no Ascend NPU (/dev/davinci*)")
        raise AcceleratorUnavailable("Ascend backend not implemented yet")
