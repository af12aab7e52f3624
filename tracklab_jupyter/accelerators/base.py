"""The accelerator backend interface, and what every backend shares.

A backend is a :class:`~tracklab_jupyter.collectors.base.Collector` for one vendor's devices
(``accelerators/registry.py`` lists them). The sampler only sees collectors: each backend is
its own collector, so one that fails (a library that crashes, a device that hangs) never
stops the others.

Metric names: ``{kind}.{index}.{suffix}`` with ``kind`` one of ``gpu``, ``npu``, ``tpu``.
GPU indices run across the host and across vendors (NVIDIA's NVML indices first, then AMD's
after them), so ``gpu.*.util_pct`` covers a mixed box; NPUs and TPUs count from 0 in their
own kind. A backend reports its facts in ``info()`` (``vendor``, ``kind``, driver versions,
and ``devices``: one dict per device with at least ``index``, ``kind``, ``vendor``, ``name``,
``uuid`` and ``state``: ``"ok"``, ``"idle"`` (present, nothing to read now) or ``"lost"``)
and publishes ``gpu_lost`` / ``gpu_appeared`` (any kind) events in its readings.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracklab_jupyter.collectors.base import Collector

log = logging.getLogger("tracklab_jupyter.accelerators")

KINDS = ("gpu", "npu", "tpu")

#: Where the host's ``/sys`` and ``/dev`` are found: ``/`` unless a container mounts the
#: host's elsewhere (``TRACKLAB_HOST_ROOT=/host``). Read when a backend opens.
HOST_ROOT_ENV = "TRACKLAB_HOST_ROOT"


def host_path(path: str) -> Path:
    """``/sys/class/drm`` under ``TRACKLAB_HOST_ROOT`` (default ``/``)."""
    root = os.environ.get(HOST_ROOT_ENV) or "/"
    return Path(root) / path.lstrip("/")


#: The ``--gpus`` option's help, one text for every command.
GPUS_HELP = ("accelerators, comma separated: GPU indices (host-wide, all vendors), npu.N, tpu.N "
             "or UUIDs (default: all, within CUDA_/HIP_/ASCEND_RT_VISIBLE_DEVICES when set)")


class AcceleratorUnavailable(RuntimeError):
    """No library, driver or device for a backend: a fact to log once, not a failure.

    ``found`` is how many devices the backend saw before it gave up (say, none selected),
    so the GPUs of the next vendor keep their numbers."""

    def __init__(self, message: str, found: int = 0) -> None:
        super().__init__(message)
        self.found = found


class NoDevices(AcceleratorUnavailable):
    """The vendor's hardware is not in this machine at all (no driver module, no device
    files, nothing on the PCI bus): logged at debug level, not a note for the user."""


@dataclass(frozen=True)
class Candidate:
    """One device a backend found, as a selection sees it: its host-wide ``index`` in its
    ``kind`` and the identifiers a user may name it by (UUID, serial, bus id)."""

    index: int
    ids: tuple[str, ...] = ()


@dataclass
class Selection:
    """Which devices to monitor: ``c.TrackLab.gpus`` / ``TRACKLAB_GPUS`` parsed.

    A selector is a GPU index (``"0"``, host-wide across vendors), a kind and index
    (``"gpu.1"``, ``"npu.0"``, ``"tpu.3"``), or an identifier: a UUID or serial, in full or a
    unique prefix, of any vendor. ``None`` selects every device (each backend then applies
    its vendor's visibility variable: ``CUDA_VISIBLE_DEVICES``, ``HIP_VISIBLE_DEVICES`` ...).
    """

    selectors: list[str] | None = None
    #: The selectors some backend matched (open_backends warns about the others).
    matched: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, value: str | Sequence[str] | Selection | None) -> Selection:
        if isinstance(value, Selection):
            return value
        return cls(parse_selection(value))

    @property
    def everything(self) -> bool:
        return self.selectors is None

    def pick(self, kind: str, candidates: Sequence[Candidate]) -> list[int]:
        """The indices of ``candidates`` (devices of one backend, one kind) this selection
        names, in ascending order; records which selectors matched."""
        if self.selectors is None:
            return sorted(c.index for c in candidates)
        chosen: set[int] = set()
        for sel in self.selectors:
            index = match_selector(sel, kind, candidates)
            if index is not None:
                chosen.add(index)
                self.matched.add(sel)
        return sorted(chosen)

    def unmatched(self) -> list[str]:
        return [s for s in self.selectors or [] if s not in self.matched]


def parse_selection(value: str | Sequence[str] | None) -> list[str] | None:
    """Turn ``"0,2"``, ``["GPU-ab..", "npu.1"]`` or None into a list of selectors.

    An empty string selects nothing (``CUDA_VISIBLE_DEVICES=""`` hides every GPU).
    """
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def names_by_id(selectors: Sequence[str]) -> bool:
    """Whether any selector is an identifier (so a backend must read its devices' UUIDs)."""
    return any(not _is_number(s) for s in selectors)


def _is_number(sel: str) -> bool:
    head, _, tail = sel.strip().partition(".")
    return sel.strip().isdigit() or (head in KINDS and tail.isdigit())


def match_selector(sel: str, kind: str, candidates: Sequence[Candidate]) -> int | None:
    """The index of the one candidate ``sel`` names, or None (no match, or ambiguous).

    Plain digits name a GPU by its host-wide index; ``kind.N`` any kind; anything else is an
    identifier matched case-insensitively, exactly or as a unique prefix (as
    ``CUDA_VISIBLE_DEVICES`` accepts ``GPU-8f3``).
    """
    text = sel.strip()
    if _is_number(text):
        head, _, tail = text.partition(".")
        want_kind, number = (("gpu", text) if text.isdigit() else (head, tail))
        if want_kind != kind:
            return None
        return next((c.index for c in candidates if c.index == int(number)), None)
    want = text.lower()
    exact = {c.index for c in candidates if any(i.lower() == want for i in c.ids if i)}
    prefix = {c.index for c in candidates
              if any(i.lower().startswith(want) for i in c.ids if i)}
    found = exact or prefix
    return found.pop() if len(found) == 1 else None


def visible_subset(env_name: str, candidates: Sequence[Candidate],
                   local: Sequence[int] | None = None) -> list[int] | None:
    """Indices kept by a vendor's visibility variable (``HIP_VISIBLE_DEVICES=1,0``), or
    None when it is unset. Entries are the vendor's own device numbers (``local``, one per
    candidate; default 0, 1, ...) or identifiers; like the runtimes, the list ends at the
    first entry that names nothing (``-1`` hides every device)."""
    value = os.environ.get(env_name)
    if value is None:
        return None
    numbers = list(local) if local is not None else list(range(len(candidates)))
    kept: list[int] = []
    for sel in parse_selection(value) or []:
        if sel.isdigit():
            hits = [c.index for c, n in zip(candidates, numbers, strict=True) if n == int(sel)]
            index = hits[0] if hits else None
        else:
            index = match_selector(sel, "", candidates)
        if index is None:
            break
        if index not in kept:
            kept.append(index)
    return sorted(kept)


class AcceleratorBackend(Collector):
    """One vendor's devices. Subclasses implement :meth:`open`, :meth:`read` and
    :meth:`info`, and set the class attributes."""

    #: The collector name: unique per backend, the key of its facts in sampler info.
    name = "accelerator"
    #: Who made the devices: ``nvidia``, ``amd``, ``google``, ``huawei``.
    vendor = "unknown"
    #: Metric kind of the devices: ``gpu``, ``npu`` or ``tpu``.
    kind = "gpu"
    #: Devices this backend found on the host, selected or not: the next GPU backend's
    #: indices start after them so the numbering does not shift with a selection.
    found = 0

    @classmethod
    def open(cls, selection: Selection, first_index: int = 0) -> AcceleratorBackend:
        """Connect to the vendor library and the devices ``selection`` names, numbering
        them from ``first_index`` (GPUs) or 0 (NPUs, TPUs).

        Raises :class:`AcceleratorUnavailable` with a one-line reason when there is no
        library, no driver or no (selected) device; the caller logs it and goes on without.
        """
        raise NotImplementedError

    def devices(self) -> list[dict[str, Any]]:
        return list(self.info().get("devices", []))

    def prefix(self, index: int) -> str:
        return f"{self.kind}.{index}."


def device_facts(backend: AcceleratorBackend, index: int, **facts: Any) -> dict[str, Any]:
    """The fields every device dict starts with."""
    return {"index": index, "kind": backend.kind, "vendor": backend.vendor, "name": "unknown",
            "uuid": "", "state": "ok", **facts}


class DeviceLost(Exception):
    """Raised inside a backend when a call says the whole device is gone (fell off the bus,
    a driver reset, its sysfs files vanished)."""

    def __init__(self, call: str, error: BaseException | str) -> None:
        super().__init__(f"{call}: {error}")
        self.call = call
        self.error = error


def read_devices(devices: Sequence[Any], read: Callable[[Any], dict[str, float]],
                 mark_lost: Callable[[Any, str, Any], None]) -> dict[str, float]:
    """The values ``read(dev)`` gives for each live device. A device whose read raises
    :class:`DeviceLost` goes to ``mark_lost(dev, call, error)``, and the values read before
    the loss in this pass are dropped with it; the other devices go on."""
    values: dict[str, float] = {}
    for dev in devices:
        if dev.lost:
            continue
        try:
            got = read(dev)
        except DeviceLost as exc:
            mark_lost(dev, exc.call, exc.error)
            continue
        values.update(got)
    return values


def device_info(facts: dict[str, Any], lost: bool, guard: Any) -> dict[str, Any]:
    """A device's dict for ``info()``: its facts, its state, and the fields its driver does
    not support (``guard`` is its :class:`~tracklab_jupyter.collectors.base.FieldGuard`)."""
    info = dict(facts)
    info["state"] = "lost" if lost else "ok"
    if guard.unsupported:
        info["unsupported"] = sorted(guard.unsupported)
    return info


class DeviceLosses:
    """Marks a backend's devices lost once, whichever of its two threads (the tick, the slow
    read) saw it first, and keeps their ``gpu_lost`` events for the next read to hand over.
    A device is any object with ``index``, ``facts`` and a ``lost`` flag."""

    def __init__(self, backend: AcceleratorBackend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []

    def lose(self, dev: Any, error: Any, call: str) -> bool:
        """Mark ``dev`` lost and queue its event; False when it already was."""
        with self._lock:
            if dev.lost:
                return False
            dev.lost = True
            facts = dev.facts
            self._events.append(lost_event(
                self._backend, dev.index, str(facts.get("uuid", "")),
                str(facts.get("name", self._backend.kind.upper())), error, call))
        return True

    def keep_only(self, indices: set[int]) -> None:
        """Forget the events of devices not in ``indices`` (lost at open, then not chosen)."""
        kind = self._backend.kind
        with self._lock:
            self._events = [e for e in self._events if e["data"].get(kind) in indices]

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            events, self._events = self._events, []
        return events


def lost_event(backend: AcceleratorBackend, index: int, uuid: str, name: str,
               error: Any, call: str) -> dict[str, Any]:
    """The ``gpu_lost`` event (any kind) a backend queues once when a device stops
    answering."""
    label = f"{backend.kind.upper()} {index}"
    return {
        "kind": "gpu_lost",
        "message": f"{label} ({name}, {uuid or 'uuid unknown'}) was lost ({error}); "
                   f"its metrics stop",
        "data": {backend.kind: index, "device": f"{backend.kind}.{index}",
                 "vendor": backend.vendor, "uuid": uuid, "error": str(error), "call": call},
    }
