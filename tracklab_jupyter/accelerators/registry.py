"""Every accelerator backend, in one list, and the host-wide view over them.

Order matters: GPU indices are handed out in this order (NVIDIA's NVML indices first, then
AMD's), so a host's ``gpu.N`` names do not depend on which libraries happen to load. Each
entry is imported only when opened: a machine without a vendor's library never imports it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

from tracklab_jupyter.accelerators.base import (
    AcceleratorBackend,
    AcceleratorUnavailable,
    NoDevices,
    Selection,
)

log = logging.getLogger("tracklab_jupyter.accelerators")

#: (collector name, metric kind of its devices, module, class): the backends, in numbering
#: order. The kind is here so the numbering is known without importing a backend.
BACKENDS: tuple[tuple[str, str, str, str], ...] = (
    ("nvidia", "gpu", "tracklab_jupyter.accelerators.nvidia", "NvidiaBackend"),
    ("amd", "gpu", "tracklab_jupyter.accelerators.amd", "AmdBackend"),
    ("ascend", "npu", "tracklab_jupyter.accelerators.ascend", "AscendBackend"),
    ("tpu", "tpu", "tracklab_jupyter.accelerators.tpu", "TpuBackend"),
)
BACKEND_NAMES = tuple(entry[0] for entry in BACKENDS)
# Facts written by versions before the vendor backends, kept readable in old stores.
_LEGACY_NAME = "gpu"


def backend_class(name: str) -> type[AcceleratorBackend]:
    for entry, _kind, module, cls in BACKENDS:
        if entry == name:
            return getattr(importlib.import_module(module), cls)
    raise KeyError(f"no accelerator backend named {name!r}; known: {', '.join(BACKEND_NAMES)}")


def open_backends(
    selection: str | Sequence[str] | Selection | None = None,
    only: Sequence[str] | None = None,
) -> tuple[list[AcceleratorBackend], list[str]]:
    """Open every backend that finds devices; return them and a one-line note for each
    that did not. A backend that raises anything at all is noted and skipped: one vendor's
    broken library never hides another vendor's devices."""
    sel = Selection.parse(selection)
    backends: list[AcceleratorBackend] = []
    notes: list[str] = []
    next_gpu = 0
    for name, kind, _, _ in BACKENDS:
        if only is not None and name not in only:
            continue
        found = 0
        try:
            cls = backend_class(name)
            backend = cls.open(sel, first_index=next_gpu if kind == "gpu" else 0)
        except NoDevices as exc:
            log.debug("no %s accelerators: %s", name, exc)
        except AcceleratorUnavailable as exc:
            notes.append(f"{name}: {exc}")
            log.info("no %s accelerators: %s", name, exc)
            found = exc.found
        except Exception as exc:  # a vendor library failing in a way we did not foresee
            notes.append(f"{name}: failed to open: {type(exc).__name__}: {exc}")
            log.warning("%s accelerators failed to open: %s: %s", name, type(exc).__name__, exc)
        else:
            backends.append(backend)
            found = backend.found
        if kind == "gpu":
            next_gpu += found
    for sel_text in sel.unmatched():
        notes.append(f"selection: {sel_text!r} matches no single accelerator")
        log.warning("accelerator selection %r matches no single device; skipped", sel_text)
    return backends, notes


def devices_in(info: dict[str, Any]) -> list[dict[str, Any]]:
    """Every accelerator in a sampler's ``info`` (any vendor, any kind), GPUs first, each
    in index order. Facts stored by older versions (``info["gpu"]``, NVIDIA only) count."""
    out: list[dict[str, Any]] = []
    for name in (*BACKEND_NAMES, _LEGACY_NAME):
        facts = info.get(name)
        if not isinstance(facts, dict):
            continue
        for dev in facts.get("devices", []):
            dev = dict(dev)
            dev.setdefault("kind", facts.get("kind", "gpu"))
            dev.setdefault("vendor", facts.get("vendor", "nvidia"))
            out.append(dev)
    order = {kind: n for n, kind in enumerate(("gpu", "npu", "tpu"))}
    out.sort(key=lambda d: (order.get(d["kind"], 9), int(d.get("index", 0))))
    return out


def drivers_in(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per backend, its facts other than the devices (driver and library versions)."""
    out: dict[str, dict[str, Any]] = {}
    for name in (*BACKEND_NAMES, _LEGACY_NAME):
        facts = info.get(name)
        if isinstance(facts, dict):
            out[facts.get("vendor", "nvidia") if name == _LEGACY_NAME else name] = {
                k: v for k, v in facts.items() if k != "devices"}
    return out


def device_label(dev: dict[str, Any]) -> str:
    """``GPU 0``, ``NPU 1``, ``TPU 3``."""
    return f"{str(dev.get('kind', 'gpu')).upper()} {dev.get('index')}"


#: The facts an accelerator card shows (js/accelerator_card.ts), whatever the vendor.
CARD_FACTS = ("index", "kind", "vendor", "name", "uuid", "state", "mem_total_bytes",
              "power_limit_w", "temp_slowdown_c")


def card_facts(dev: dict[str, Any]) -> dict[str, Any]:
    """The part of a device dict the widget's accelerator card needs."""
    return {k: dev[k] for k in CARD_FACTS if dev.get(k) is not None}
