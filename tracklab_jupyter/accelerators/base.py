"""The accelerator backend interface.

A backend is a :class:`~tracklab_jupyter.collectors.base.Collector` for one vendor's devices.
The sampler only sees collectors, so adding AMD (ROCm SMI), Intel (Level Zero), NPU or TPU
backends means writing a subclass and listing it in :data:`BACKENDS`; nothing else changes.

Device metrics use the ``gpu.{index}.`` prefix of the catalogue. A backend reports each
device's facts in ``info()["devices"]`` (one dict per device with at least ``index``,
``name``, ``uuid``, ``vendor`` and ``state``: ``"ok"`` or ``"lost"``) and publishes
``gpu_lost`` / ``gpu_appeared`` events in its readings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tracklab_jupyter.collectors.base import Collector

log = logging.getLogger("tracklab_jupyter.accelerators")


class AcceleratorBackend(Collector):
    """One vendor's devices. Subclasses implement :meth:`open`."""

    name = "gpu"
    vendor = "unknown"

    @classmethod
    def open(cls, selection: Sequence[str] | None = None) -> AcceleratorBackend:
        """Connect to the vendor library and the chosen devices.

        Raises :class:`AcceleratorUnavailable` with a one-line reason when there is no
        library, no driver or no device; the caller logs it and goes on without.
        """
        raise NotImplementedError

    def devices(self) -> list[dict[str, Any]]:
        return list(self.info().get("devices", []))


class AcceleratorUnavailable(RuntimeError):
    """No library, driver or device for a backend: a fact to log once, not a failure."""


def parse_selection(value: str | Sequence[str] | None) -> list[str] | None:
    """Turn ``"0,2"``, ``["GPU-ab..", "1"]`` or None into a list of selectors.

    Selectors are indices or UUIDs (full or a unique prefix, as CUDA_VISIBLE_DEVICES allows).
    An empty string selects nothing (``CUDA_VISIBLE_DEVICES=""`` hides every GPU).
    """
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def open_backends(
    selection: Sequence[str] | None = None,
) -> tuple[list[AcceleratorBackend], list[str]]:
    """Open every backend that finds devices; return them and a note for each that did not."""
    from tracklab_jupyter.accelerators.nvidia import NvidiaBackend

    backends: list[AcceleratorBackend] = []
    notes: list[str] = []
    for backend_cls in (NvidiaBackend,):
        try:
            backends.append(backend_cls.open(selection))
        except AcceleratorUnavailable as exc:
            notes.append(f"{backend_cls.vendor}: {exc}")
            log.info("no %s accelerators: %s", backend_cls.vendor, exc)
    return backends, notes
