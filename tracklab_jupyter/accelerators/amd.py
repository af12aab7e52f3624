"""AMD GPUs: through ``amdsmi`` (AMD SMI's Python binding), else the ``amdgpu`` sysfs files.

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


def amdgpu_loaded() -> bool:
    """The amdgpu kernel driver is loaded and initialised (no library needed)."""
    try:
        return host_path("/sys/module/amdgpu/initstate").read_text().strip() == "live"
    except OSError:
        return False


class AmdBackend(AcceleratorBackend):
    name = "amd"
    vendor = "amd"
    kind = "gpu"

    @classmethod
    def open(cls, selection: Selection, first_index: int = 0) -> AmdBackend:
        if not amdgpu_loaded():
            raise NoDevices("amdgpu driver not loaded")
        raise AcceleratorUnavailable("AMD backend not implemented yet")
