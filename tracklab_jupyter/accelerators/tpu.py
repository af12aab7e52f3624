"""Google TPUs: chips found on the PCI bus, values from the TPU runtime's metrics service.

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

GOOGLE_PCI_VENDOR = "0x1ae0"


def tpu_pci_devices() -> list[str]:
    """PCI addresses of Google devices (TPU chips), without loading libtpu."""
    out = []
    for dev in sorted(host_path("/sys/bus/pci/devices").glob("*")):
        try:
            if (dev / "vendor").read_text().strip().lower() == GOOGLE_PCI_VENDOR:
                out.append(dev.name)
        except OSError:
            continue
    return out


class TpuBackend(AcceleratorBackend):
    name = "tpu"
    vendor = "google"
    kind = "tpu"

    @classmethod
    def open(cls, selection: Selection, first_index: int = 0) -> TpuBackend:
        if not tpu_pci_devices():
            raise NoDevices("no TPU chip on the PCI bus")
        raise AcceleratorUnavailable("TPU backend not implemented yet")
