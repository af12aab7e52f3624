"""Google TPUs: chips found on the PCI bus, values from the TPU runtime's metrics service.

Chips are found in ``/sys/bus/pci/devices`` (vendor ``0x1ae0``; the PCI device id names the
generation, as in tpu-info's ``device.py``), never by loading ``libtpu``: on a machine
without TPUs some libtpu versions crash the process that loads it. Google's virtual NIC
(gVNIC, ``0x1ae0:0x0042``) shares the vendor id and is not a chip.

Values come from the ``RuntimeMetricService`` that libtpu serves while a TPU program runs
(``localhost:8431`` unless ``TPU_RUNTIME_METRICS_PORTS`` names other ports; the tracklab
variable ``TRACKLAB_TPU_METRICS_ADDR=host:port[,host:port]`` overrides both), through the
generated stubs tpu-info ships (``pip install tracklab-jupyter[tpu]``), with local
credentials as tpu-info uses them. Per chip: HBM used and total (``tpu.runtime.hbm.memory.*``),
TensorCore duty cycle and, where the runtime offers it, HBM bandwidth utilisation.

Where the calls run: one ``GetRuntimeMetric`` round trip to a local server measured 0.38 to
0.44 ms wall and 0.10 to 0.12 ms of the caller's CPU here (grpcio 1.85, a fake servicer on
localhost); a refresh of four chips (three or four metrics) took 1.2 to 2.3 ms wall, 0.4 to
0.7 ms CPU. Issuing the calls as futures in one tick and collecting them in the next does not spare
the tick: each ``.future()`` call itself costs 0.09 to 0.13 ms of CPU. So every call is in
:meth:`TpuBackend.read_slow` (``slow_interval`` 1 s, on the sampler's slow thread) and
:meth:`TpuBackend.read` does nothing; values lag the tick by up to a second.

No TPU program running means nothing listens: the chips stay listed with state ``idle`` and
no values. The channel is then closed (so gRPC does not reconnect in the background) and a
fresh one is tried after a backoff (2 s, doubling to 8 s); each change of a chip's state is
logged once and published as a ``device_state_changed`` event. A metric the runtime does not
know (NOT_FOUND, UNIMPLEMENTED) is not asked again until the runtime restarts; other errors
only cost that metric this round.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tracklab_jupyter.accelerators.base import (
    AcceleratorBackend,
    AcceleratorUnavailable,
    Candidate,
    NoDevices,
    Selection,
    device_facts,
    host_path,
    visible_subset,
)
from tracklab_jupyter.collectors.base import FieldGuard, Reading

log = logging.getLogger("tracklab_jupyter.accelerators.tpu")

GOOGLE_PCI_VENDOR = "0x1ae0"
DEFAULT_ADDRESS = "localhost:8431"
ADDRESS_ENV = "TRACKLAB_TPU_METRICS_ADDR"
PORTS_ENV = "TPU_RUNTIME_METRICS_PORTS"
VISIBLE_ENV = "TPU_VISIBLE_CHIPS"
STATE_EVENT = "device_state_changed"
INSTALL_HINT = "install tracklab-jupyter[tpu]"


@dataclass(frozen=True)
class Generation:
    """A TPU generation: its name as tpu-info prints it, TensorCores (runtime devices) per
    chip, and whether the runtime reports the duty cycle per core (else per chip)."""

    name: str
    cores: int = 1
    duty_per_core: bool = False

    @property
    def label(self) -> str:
        # tpu-info: "TPU v5e chip", but "TPU7x chip" (Google writes that generation so).
        return "TPU7x" if self.name == "7x" else f"TPU {self.name}"


# PCI device id -> generation (tpu-info's TpuChip.from_pci_device_id).
_BY_DEVICE_ID = {
    "0x005e": Generation("v4"),
    "0x0063": Generation("v5e"),
    "0x0062": Generation("v5p"),
    "0x006f": Generation("v6e"),
    "0x0076": Generation("7x", cores=2, duty_per_core=True),
}
# v2 and v3 share device id 0x0027; the subsystem device id tells them apart.
_SHARED_ID = "0x0027"
_BY_SUBSYSTEM = {"0x004e": Generation("v2", cores=2), "0x004f": Generation("v3", cores=2)}
# An unknown Google device id is taken for a TPU only with a class a TPU has (v5e: 0xff0000
# vendor specific) or that of a processing accelerator; gVNIC is a network class (0x02).
_TPU_CLASS_PREFIXES = ("0xff", "0x12")


@dataclass(frozen=True)
class PciChip:
    """One TPU chip on the PCI bus (its PCI functions grouped as tpu-info groups them)."""

    bus_id: str
    device_id: str
    generation: Generation
    iommu_group: int | None = None

    @property
    def name(self) -> str:
        return self.generation.label

    @property
    def dev_path(self) -> str | None:
        return f"/dev/vfio/{self.iommu_group}" if self.iommu_group is not None else None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip().lower()
    except OSError:
        return ""


def _generation(dev: Path) -> Generation | None:
    device_id = _read(dev / "device")
    if device_id == _SHARED_ID:
        return _BY_SUBSYSTEM.get(_read(dev / "subsystem_device"))
    known = _BY_DEVICE_ID.get(device_id)
    if known is not None:
        return known
    if device_id and _read(dev / "class").startswith(_TPU_CLASS_PREFIXES):
        return Generation(f"(PCI device {device_id})")
    return None


def _iommu_group(dev: Path) -> int | None:
    try:
        return int(os.readlink(dev / "iommu_group").rsplit("/", 1)[-1])
    except (OSError, ValueError):
        return None


def find_chips() -> list[PciChip]:
    """The TPU chips on this host's PCI bus, in libtpu's order (by ``/dev/vfio`` group, then
    PCI address), without loading libtpu. Functions of one PCI device (domain:bus:device)
    are one chip."""
    chips: dict[str, PciChip] = {}
    for dev in sorted(host_path("/sys/bus/pci/devices").glob("*")):
        if _read(dev / "vendor") != GOOGLE_PCI_VENDOR:
            continue
        generation = _generation(dev)
        if generation is None:
            continue
        base = dev.name.rsplit(".", 1)[0]
        if base not in chips:
            chips[base] = PciChip(dev.name, _read(dev / "device"), generation, _iommu_group(dev))
    def order(chip: PciChip) -> tuple[int, str]:
        return (chip.iommu_group if chip.iommu_group is not None else 1 << 30, chip.bus_id)
    return sorted(chips.values(), key=order)


_ADDRESS_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def _valid_address(address: str) -> bool:
    match = _ADDRESS_RE.match(address)
    return match is not None and 0 < int(match.group(2)) < 65536


def metrics_addresses() -> list[str]:
    """Where the runtime serves metrics: ``TRACKLAB_TPU_METRICS_ADDR`` (host:port, comma
    separated), else ``localhost:P`` for each port of libtpu's ``TPU_RUNTIME_METRICS_PORTS``
    (one per TPU process), else ``localhost:8431``. Raises :class:`ValueError` on a bad
    value."""
    value = os.environ.get(ADDRESS_ENV, "").strip()
    if value:
        out = [a.strip() for a in value.split(",") if a.strip()]
        bad = [a for a in out if not _valid_address(a)]
        if bad or not out:
            raise ValueError(f"{ADDRESS_ENV}={value!r}: expected host:port[,host:port]")
        return out
    ports = os.environ.get(PORTS_ENV, "").strip()
    if ports:
        items = [p.strip() for p in ports.split(",") if p.strip()]
        if not items or not all(p.isdigit() and 0 < int(p) < 65536 for p in items):
            raise ValueError(f"{PORTS_ENV}={ports!r}: expected port[,port]")
        return [f"localhost:{p}" for p in items]
    return [DEFAULT_ADDRESS]


@dataclass(frozen=True)
class _Metric:
    """A runtime metric and how its per-device entries fold into one value per chip."""

    suffix: str
    runtime_name: str
    per_core: Callable[[Generation], bool]
    combine: Callable[[list[float]], float]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _always(_gen: Generation) -> bool:
    return True


# Names as tpu-info's metrics.MetricName has them. HBM is reported per core (device); the
# duty cycle per chip, except on generations whose runtime reports it per core (7x).
METRICS = (
    _Metric("mem_total_bytes", "tpu.runtime.hbm.memory.total.bytes", _always, sum),
    _Metric("mem_used_bytes", "tpu.runtime.hbm.memory.usage.bytes", _always, sum),
    _Metric("util_pct", "tpu.runtime.tensorcore.dutycycle.percent",
            lambda gen: gen.duty_per_core, _mean),
    _Metric("hbm_bw_util_pct", "tpu.runtime.hbm.utilization.percent", _always, _mean),
)


def _import_grpc(found: int) -> tuple[ModuleType, ModuleType, ModuleType]:
    # Imported when a backend opens, so a host without TPUs never imports grpc.
    try:
        import grpc
        from tpu_info.proto import tpu_metric_service_pb2 as pb
        from tpu_info.proto import tpu_metric_service_pb2_grpc as pb_grpc
    except Exception as exc:  # ImportError, or a protobuf/grpc version clash at import
        raise AcceleratorUnavailable(
            f"TPU chips found but the TPU runtime client is not importable "
            f"({type(exc).__name__}: {exc}); {INSTALL_HINT}", found=found) from None
    return grpc, pb, pb_grpc


def _device_id(attribute: Any) -> int | None:
    """The device number of one reply entry: ``int_attr`` (memory, duty cycle), or a
    ``device_ordinal`` / ``device-id`` key in a key-value list (newer metrics)."""
    value = attribute.value
    kind = value.WhichOneof("attr")
    if kind == "int_attr":
        return int(value.int_attr)
    if kind == "string_attr" and value.string_attr.isdigit():
        return int(value.string_attr)
    if kind == "kvlist_attr":
        for item in value.kvlist_attr.attributes:
            if item.key in ("device_ordinal", "device-id", "device_id"):
                return _device_id(item)
    return None


def _gauge(metric: Any) -> float | None:
    if metric.WhichOneof("measure") != "gauge":
        return None
    kind = metric.gauge.WhichOneof("value")
    if kind in ("as_int", "as_double"):
        return float(getattr(metric.gauge, kind))
    return None


def entries(response: Any) -> list[tuple[int, float]]:
    """``(device id, value)`` of each gauge in a ``MetricResponse`` (others skipped)."""
    out = []
    for metric in response.metric.metrics:
        dev, value = _device_id(metric.attribute), _gauge(metric)
        if dev is not None and value is not None:
            out.append((dev, value))
    return out


def assign(keys: Sequence[tuple[int, int]], unit: int, chips: int,
           visible: Sequence[int] | None) -> dict[tuple[int, int], int]:
    """Which chip each reply entry belongs to. ``keys`` are (endpoint, device id), ``unit``
    the entries per chip (cores, or 1). The runtime numbers devices from 0 on one host, but
    globally in a multi-host slice (devices 8, 9, 12, 13 on one host of tpu-info's README),
    and from 0 over the chips ``TPU_VISIBLE_CHIPS`` leaves it; so: onto the visible chips in
    order when the count matches them, by id when the ids fit the host, else in order."""
    keys = sorted(keys)
    ids = [k[1] for k in keys]
    if visible is not None and len(keys) == len(visible) * unit:
        return {k: visible[n // unit] for n, k in enumerate(keys)}
    if len(set(ids)) == len(ids) and all(i < chips * unit for i in ids):
        return {k: k[1] // unit for k in keys}
    return {k: n // unit for n, k in enumerate(keys)}  # beyond this host: ignored


@dataclass
class _Endpoint:
    """One metrics address and its connection state."""

    address: str
    guard: FieldGuard
    channel: Any = None
    stub: Any = None
    up: bool | None = None  # None: not tried yet
    next_try: float = 0.0
    delay: float = 0.0
    why_down: str = ""


@dataclass
class _Chip:
    index: int
    pci: PciChip
    facts: dict[str, Any] = field(default_factory=dict)
    state: str = "idle"
    reason: str = ""


class TpuBackend(AcceleratorBackend):
    """Google TPU chips. Create with :meth:`open` (or the constructor, which takes the
    metrics addresses and a clock for tests)."""

    name = "tpu"
    vendor = "google"
    kind = "tpu"
    slow_interval = 1.0
    #: Deadline of one call: a local runtime answers in under a millisecond.
    rpc_timeout_s = 0.5
    #: Seconds before the first reconnect after the runtime went away, and the cap of the
    #: doubling backoff while nothing listens.
    retry_min_s = 2.0
    retry_max_s = 8.0

    def __init__(self, selection: Selection | Sequence[str] | str | None = None, *,
                 addresses: Sequence[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Find the chips, choose the selected ones and try the runtime once. Raises
        :class:`NoDevices` without TPU chips, :class:`AcceleratorUnavailable` otherwise."""
        pci = find_chips()
        if not pci:
            raise NoDevices("no TPU chip on the PCI bus")
        self.found = len(pci)
        self._grpc, self._pb, self._pb_grpc = _import_grpc(len(pci))
        self._clock = clock
        self._poll_lock = threading.Lock()  # one poll at a time; close() waits for it
        self._lock = threading.Lock()  # chip states and facts: info() never waits on a call
        self._closed = False
        try:
            addrs = list(addresses) if addresses else metrics_addresses()
        except ValueError as exc:
            raise AcceleratorUnavailable(str(exc), found=len(pci)) from None
        self._visible = visible_subset(VISIBLE_ENV, [Candidate(i) for i in range(len(pci))])
        indices, source = self._chosen(Selection.parse(selection), pci)
        if not indices:
            raise AcceleratorUnavailable(f"no TPU chip selected by {source}", found=len(pci))
        self._pci = pci
        self._chips = [self._new_chip(i, pci[i]) for i in indices]
        self._endpoints = [_Endpoint(a, self._new_guard(a)) for a in addrs]
        self._refresh(first=True)

    @classmethod
    def open(cls, selection: Selection | Sequence[str] | str | None = None,
             first_index: int = 0, **options: Any) -> TpuBackend:
        """Open the TPU chips ``selection`` names (``tpu.N`` or a PCI bus id; all, within
        ``TPU_VISIBLE_CHIPS``, when None). TPU chips count from 0 whatever ``first_index``."""
        return cls(selection, **options)

    def _chosen(self, sel: Selection, pci: list[PciChip]) -> tuple[list[int], str]:
        candidates = [Candidate(i, (chip.bus_id,)) for i, chip in enumerate(pci)]
        if not sel.everything:
            return sel.pick(self.kind, candidates), f"selection {sel.selectors!r}"
        if self._visible is not None:
            return self._visible, f"{VISIBLE_ENV}={os.environ.get(VISIBLE_ENV)!r}"
        return list(range(len(pci))), "default"

    def _new_chip(self, index: int, pci: PciChip) -> _Chip:
        facts = device_facts(self, index, name=pci.name, pci_bus_id=pci.bus_id,
                             generation=pci.generation.name,
                             cores=pci.generation.cores, pci_device_id=pci.device_id)
        if pci.dev_path:
            facts["dev_path"] = pci.dev_path
        return _Chip(index, pci, facts)

    def _new_guard(self, address: str) -> FieldGuard:
        unsupported = {self._grpc.StatusCode.NOT_FOUND, self._grpc.StatusCode.UNIMPLEMENTED,
                       self._grpc.StatusCode.INVALID_ARGUMENT}

        def permanent(exc: BaseException) -> bool:
            return isinstance(exc, self._grpc.RpcError) and exc.code() in unsupported
        return FieldGuard(f"tpu runtime {address}", permanent)

    # -- the paths ---------------------------------------------------------------------------
    def read(self) -> Reading:
        """Nothing: every runtime call costs ~0.4 ms, so all of them run in read_slow."""
        return Reading()

    def read_slow(self) -> Reading:
        """Ask the runtime for each metric (1 to 2 ms); values of the selected chips, and a
        ``device_state_changed`` event when chips went idle or became active."""
        with self._poll_lock:
            if self._closed:
                return Reading()
            gauges, events = self._refresh()
        return Reading(gauges=gauges, events=events)

    # -- polling -----------------------------------------------------------------------------
    def _refresh(self, first: bool = False) -> tuple[dict[str, float], list[dict[str, Any]]]:
        now = self._clock()
        answers: list[tuple[int, dict[str, list[tuple[int, float]]]]] = []
        for n, ep in enumerate(self._endpoints):
            if ep.up is False and now < ep.next_try:
                continue
            replies = self._poll(ep, now)
            if replies is not None:
                answers.append((n, replies))
        values = self._fold(answers)
        gauges: dict[str, float] = {}
        with self._lock:
            for chip in self._chips:
                gauges.update(self._chip_gauges(chip, values.get(chip.index, {})))
            return gauges, self._update_states(values, first)

    def _poll(self, ep: _Endpoint, now: float) -> dict[str, list[tuple[int, float]]] | None:
        """Every metric from one endpoint, or None when nothing answers there."""
        grpc = self._grpc
        if ep.channel is None:
            ep.channel = grpc.secure_channel(ep.address, grpc.local_channel_credentials())
            ep.stub = self._pb_grpc.RuntimeMetricServiceStub(ep.channel)
            ep.guard = self._new_guard(ep.address)  # a new runtime may know other metrics
        replies: dict[str, list[tuple[int, float]]] = {}
        for metric in METRICS:
            call = functools.partial(ep.stub.GetRuntimeMetric, timeout=self.rpc_timeout_s,
                                     wait_for_ready=False)
            request = self._pb.MetricRequest(metric_name=metric.runtime_name)
            try:
                response = ep.guard.call(metric.suffix, call, request)
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    self._down(ep, now, exc)
                    return None
                log.debug("tpu: %s from %s failed this time: %s", metric.runtime_name,
                          ep.address, exc.code())
                continue
            except Exception as exc:  # a broken reply must not stop the other metrics
                log.debug("tpu: %s from %s: %s", metric.runtime_name, ep.address, exc)
                continue
            if response is not None:
                replies[metric.suffix] = entries(response)
        ep.up, ep.delay, ep.why_down = True, 0.0, ""
        return replies

    def _down(self, ep: _Endpoint, now: float, exc: Any) -> None:
        """Nothing answers at ``ep``: close the channel, try again after the backoff."""
        self._close_channel(ep)
        ep.delay = (self.retry_min_s if ep.up is not False
                    else min(max(ep.delay, self.retry_min_s) * 2, self.retry_max_s))
        ep.up, ep.next_try = False, now + ep.delay
        if exc.code() == self._grpc.StatusCode.DEADLINE_EXCEEDED:
            ep.why_down = (f"runtime metrics service at {ep.address} did not answer within "
                           f"{self.rpc_timeout_s:g} s")
        else:
            ep.why_down = f"runtime metrics service not listening on {ep.address}"

    @staticmethod
    def _close_channel(ep: _Endpoint) -> None:
        if ep.channel is not None:
            try:
                ep.channel.close()
            except Exception as exc:  # closing must not fail the caller
                log.debug("tpu: closing the channel to %s: %s", ep.address, exc)
        ep.channel = ep.stub = None

    def _fold(self, answers: list[tuple[int, dict[str, list[tuple[int, float]]]]]
              ) -> dict[int, dict[str, float]]:
        """Per chip (position on the PCI bus), one value per metric suffix."""
        gen = self._pci[0].generation  # one generation per host (as tpu-info assumes)
        out: dict[int, dict[str, float]] = {}
        for metric in METRICS:
            found = {(n, dev): value for n, replies in answers
                     for dev, value in replies.get(metric.suffix, [])}
            if not found:
                continue
            unit = gen.cores if metric.per_core(gen) else 1
            per_chip: dict[int, list[float]] = {}
            for key, chip in assign(list(found), unit, len(self._pci), self._visible).items():
                per_chip.setdefault(chip, []).append(found[key])
            for chip, values in per_chip.items():
                out.setdefault(chip, {})[metric.suffix] = metric.combine(values)
        return out

    def _chip_gauges(self, chip: _Chip, values: dict[str, float]) -> dict[str, float]:
        p = self.prefix(chip.index)
        g = {p + suffix: value for suffix, value in values.items()}
        used, total = values.get("mem_used_bytes"), values.get("mem_total_bytes")
        if used is not None and total:
            g[p + "mem_pct"] = used / total * 100.0
        if total:
            chip.facts["mem_total_bytes"] = int(total)  # hardware size: kept once known
        return g

    # -- states ------------------------------------------------------------------------------
    def _update_states(self, values: dict[int, dict[str, float]], first: bool
                       ) -> list[dict[str, Any]]:
        serving = [ep for ep in self._endpoints if ep.up]
        if serving:
            nothing = ("the TPU runtime reports no metrics for this chip (the running "
                       "program does not use it)")
        else:
            why = "; ".join(dict.fromkeys(ep.why_down for ep in self._endpoints))
            nothing = f"no TPU program running ({why})"
        changes: dict[tuple[str, str, str], list[int]] = {}
        for chip in self._chips:
            state, reason = ("ok", "") if values.get(chip.index) else ("idle", nothing)
            if first or (state, reason) != (chip.state, chip.reason):
                key = ("new" if first else chip.state, state, reason)
                changes.setdefault(key, []).append(chip.index)
            chip.state, chip.reason = state, reason
        events = []
        for (before, state, reason), indices in changes.items():
            event = self._state_event(indices, before, state, reason)
            if first:  # the starting state is a fact to log, not a change to publish
                (log.info if state == "idle" else log.debug)("%s", event["message"])
            else:
                log.info("%s", event["message"])
                events.append(event)
        return events

    def _state_event(self, indices: list[int], before: str, state: str, reason: str
                     ) -> dict[str, Any]:
        label = ", ".join(f"TPU {i}" for i in indices)
        message = (f"{label}: idle: {reason}" if state == "idle"
                   else f"{label}: active (the TPU runtime reports metrics)")
        return {"kind": STATE_EVENT, "message": message,
                "data": {"kind": self.kind, "vendor": self.vendor, "state": state,
                         "previous": before, "reason": reason, "tpu": indices,
                         "devices": [f"{self.kind}.{i}" for i in indices]}}

    # -- info and closing --------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The metrics addresses and one dict per chip (state ``ok`` or ``idle``)."""
        with self._lock:
            # tuple(): the poll thread may be adding to the dict meanwhile
            unsupported = sorted({k for ep in self._endpoints if ep.up
                                  for k in tuple(ep.guard.unsupported)})
            devices = []
            for chip in self._chips:
                dev = {**chip.facts, "state": chip.state}
                if chip.reason:
                    dev["idle_reason"] = chip.reason
                if unsupported and chip.state == "ok":
                    dev["unsupported"] = unsupported
                devices.append(dev)
            return {"vendor": self.vendor, "kind": self.kind,
                    "metrics_addresses": [ep.address for ep in self._endpoints],
                    "runtime_serving": any(ep.up for ep in self._endpoints),
                    "devices": devices}

    def close(self) -> None:
        """Close the channels (once; later calls do nothing). Reads then return nothing."""
        with self._poll_lock:
            if self._closed:
                return
            self._closed = True
            for ep in self._endpoints:
                self._close_channel(ep)
