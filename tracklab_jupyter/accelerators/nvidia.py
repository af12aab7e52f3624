"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` binding, imported as ``pynvml``).

Costs measured on a real H200 (``tests/fixtures/nvidia-h200/gpu_probe.json``) decide where
each call goes:

- :meth:`NvidiaBackend.read` (every tick) makes only calls of a few microseconds: utilisation,
  memory, temperature, power, clocks, performance state, clock-event reasons, encoder/decoder,
  volatile ECC totals, compute processes, fan, MIG devices' memory. A whole read() took
  a median 66 µs (busy) to 75 µs (idle) per GPU on the H200 (tests/gpu_check).
- :meth:`NvidiaBackend.read_slow` (own thread, every :attr:`slow_interval` s): total energy
  (3.3 ms), PCIe TX/RX throughput (20.9 ms each: NVML waits for a sample window), utilisation
  per process (2.0 to 2.6 ms: ``nvmlDeviceGetProcessUtilization``, the samples NVML took
  since the previous call), the MIG-mode check and the device count (a GPU that appeared).
- Once, at open: names, UUIDs, PCI ids, limits and the maximum clocks (1.5 ms each).

NVML is initialised once per backend (13.6 ms) and shut down once by :meth:`close`.

Metric indices: ``gpu.{i}.*`` uses the device's **NVML index** (the order of
``nvidia-smi``), not its position in a selection or in ``CUDA_VISIBLE_DEVICES``. NVML indices
are stable for a host and match what ``nvidia-smi`` shows beside the charts; CUDA's own
numbering depends on each process's ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER`` and
would make the same GPU appear under different names in different processes. NVIDIA comes
first in the registry, so its GPUs are ``gpu.0`` up; other vendors' GPUs follow.

Failures are per field and per device. NotSupported, FunctionNotFound, NoPermission (and a
function the installed binding lacks) mark that one field off for good; NotFound and other
passing errors mean "no value now" and the field is asked again next time. GpuIsLost, Unknown
and ResetRequired mark the whole device lost: its metrics stop, the other GPUs go on, and one
``gpu_lost`` event is emitted.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from tracklab_jupyter.accelerators.base import (
    AcceleratorBackend,
    AcceleratorUnavailable,
    Candidate,
    DeviceLosses,
    DeviceLost,
    NoDevices,
    Selection,
    device_facts,
    device_info,
    host_path,
    names_by_id,
    parse_selection,
    read_devices,
    visible_subset,
)
from tracklab_jupyter.collectors.base import FieldGuard, Reading

log = logging.getLogger("tracklab_jupyter.accelerators.nvidia")

# NVML return codes (stable across NVML versions; read from the module when it has them).
_ERR = {
    "NOT_SUPPORTED": 3, "NO_PERMISSION": 4, "NOT_FOUND": 6, "DRIVER_NOT_LOADED": 9,
    "LIBRARY_NOT_FOUND": 12, "FUNCTION_NOT_FOUND": 13, "GPU_IS_LOST": 15,
    "RESET_REQUIRED": 16, "LIB_RM_VERSION_MISMATCH": 18, "ARGUMENT_VERSION_MISMATCH": 25,
    "INVALID_ARGUMENT": 2, "DEPRECATED": 26, "UNKNOWN": 999,
}
# The same call will fail the same way every time: stop asking. InvalidArgument counts
# because our arguments never change (e.g. a clock type a MIG device does not have).
_PERMANENT = ("NOT_SUPPORTED", "FUNCTION_NOT_FOUND", "NO_PERMISSION",
              "ARGUMENT_VERSION_MISMATCH", "INVALID_ARGUMENT", "DEPRECATED")
# The device itself is gone (fell off the bus, Xid 79, needs a reset).
_LOST = ("GPU_IS_LOST", "UNKNOWN", "RESET_REQUIRED")

# Why nvmlInit failed, in words a user can act on.
_INIT_MESSAGES = {
    "LIBRARY_NOT_FOUND": "NVML library not found (no NVIDIA driver installed)",
    "DRIVER_NOT_LOADED": "NVIDIA driver not loaded",
    "NO_PERMISSION": "no permission to open the NVIDIA devices (/dev/nvidia*)",
    "LIB_RM_VERSION_MISMATCH": "NVML/driver version mismatch (reload the driver or reboot "
                               "after a driver upgrade)",
}

_PSTATE_UNKNOWN = 32
_MIG_ENABLED = 1


@dataclass(frozen=True)
class _Consts:
    """The NVML enum values the backend passes, read from the module (with NVML's values
    as fallback for a binding that lacks a name)."""

    temp_gpu: int
    slowdown: int
    clock_sm: int
    clock_mem: int
    pcie_tx: int
    pcie_rx: int
    ecc_corrected: int
    ecc_uncorrected: int
    volatile: int

    @classmethod
    def of(cls, nvml: ModuleType) -> _Consts:
        def get(name: str, default: int) -> int:
            return int(getattr(nvml, name, default))

        return cls(
            temp_gpu=get("NVML_TEMPERATURE_GPU", 0),
            slowdown=get("NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", 1),
            clock_sm=get("NVML_CLOCK_SM", 1),
            clock_mem=get("NVML_CLOCK_MEM", 2),
            pcie_tx=get("NVML_PCIE_UTIL_TX_BYTES", 0),
            pcie_rx=get("NVML_PCIE_UTIL_RX_BYTES", 1),
            ecc_corrected=get("NVML_MEMORY_ERROR_TYPE_CORRECTED", 0),
            ecc_uncorrected=get("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1),
            volatile=get("NVML_VOLATILE_ECC", 0),
        )


@dataclass
class _MigDevice:
    """One MIG device; ``slot`` is its index under the parent (the ``{mig}`` in names)."""

    slot: int
    handle: Any
    facts: dict[str, Any]


@dataclass
class _Device:
    index: int
    handle: Any
    guard: FieldGuard
    facts: dict[str, Any] = field(default_factory=dict)
    lost: bool = False
    mig_mode: tuple[int, int] | None = None
    migs: list[_MigDevice] = field(default_factory=list)
    #: CPU timestamp (µs) of the newest per-process utilisation sample seen: the next call
    #: asks for the samples after it. 0 (the first call): every sample NVML still holds.
    proc_util_seen_us: int = 0

    @property
    def prefix(self) -> str:
        return f"gpu.{self.index}."

    @property
    def uuid(self) -> str:
        return str(self.facts.get("uuid", ""))


def _text(value: Any) -> str:
    """NVML strings are ``str`` in current bindings and ``bytes`` in old ones."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _missing(fname: str) -> Callable[..., Any]:
    def call(*_args: Any, **_kwargs: Any) -> Any:
        raise AttributeError(f"this pynvml has no {fname}")
    return call


def _import_pynvml() -> ModuleType:
    # Imported here, not at module level, so tests can put a fake in sys.modules first and
    # a machine without nvidia-ml-py still imports this module.
    try:
        import pynvml
    except ImportError as exc:
        raise AcceleratorUnavailable(
            f"pynvml not importable ({exc}); install nvidia-ml-py") from None
    return pynvml


def nvidia_hardware() -> bool | None:
    """Whether this machine has an NVIDIA GPU, asked without NVML: a display or 3D controller
    of vendor 0x10de on the PCI bus, or the driver's device and proc files. None where the
    PCI bus cannot be read (not Linux)."""
    if host_path("/dev/nvidiactl").exists() or host_path("/proc/driver/nvidia").exists():
        return True
    base = host_path("/sys/bus/pci/devices")
    if not base.is_dir():
        return None
    for dev in base.iterdir():
        try:
            if ((dev / "vendor").read_text().strip().lower() == "0x10de"
                    and (dev / "class").read_text().strip().startswith("0x03")):
                return True
        except OSError:
            continue
    return False


def unavailable(message: str) -> AcceleratorUnavailable:
    """Why NVML gave nothing: a note for the user where an NVIDIA GPU is there (a driver
    problem to fix), silence on a machine that has none (an AMD or TPU host, a laptop)."""
    if nvidia_hardware() is False:
        return NoDevices(message)
    return AcceleratorUnavailable(message)


def _cuda_version(value: int) -> str:
    """NVML's CUDA driver version integer as text: 13000 -> "13.0", 12040 -> "12.4"."""
    return f"{value // 1000}.{(value % 1000) // 10}"


class NvidiaBackend(AcceleratorBackend):
    """NVIDIA GPUs through NVML. Create with :meth:`open` (or the constructor, which can be
    given an NVML module, e.g. a fake, instead of importing ``pynvml``)."""

    name = "nvidia"
    vendor = "nvidia"
    kind = "gpu"
    slow_interval = 5.0

    def __init__(self, selection: Selection | Sequence[str] | str | None = None, *,
                 first_index: int = 0, nvml: ModuleType | None = None) -> None:
        """Initialise NVML and open the selected devices (all when ``selection`` is None
        and ``CUDA_VISIBLE_DEVICES`` is unset). Raises :class:`AcceleratorUnavailable`."""
        self._first = first_index
        self._nvml = nvml if nvml is not None else _import_pynvml()
        self._err = {name: int(getattr(self._nvml, f"NVML_ERROR_{name}", code))
                     for name, code in _ERR.items()}
        self._permanent_codes = {self._err[n] for n in _PERMANENT}
        self._lost_codes = {self._err[n] for n in _LOST}
        self._error_cls: type[BaseException] = getattr(self._nvml, "NVMLError", Exception)
        self._k = _Consts.of(self._nvml)
        self._mem_v2 = self._memory_v2_fn()
        self._lock = threading.Lock()
        self._closed = True
        self._losses = DeviceLosses(self)
        self._devices: list[_Device] = []
        self._system: dict[str, Any] = {}
        self._init_nvml()
        self._closed = False
        try:
            self._setup(selection)
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, selection: Selection | Sequence[str] | str | None = None,
             first_index: int = 0, *, nvml: ModuleType | None = None) -> NvidiaBackend:
        """Open the NVIDIA devices named by ``selection`` (indices, UUIDs or unique UUID
        prefixes; a MIG UUID selects its GPU); see the constructor."""
        return cls(selection, first_index=first_index, nvml=nvml)

    # -- opening ---------------------------------------------------------------------------
    def _init_nvml(self) -> None:
        try:
            self._nvml.nvmlInit()
        except self._error_cls as exc:
            code = getattr(exc, "value", None)
            for name, message in _INIT_MESSAGES.items():
                if code == self._err[name]:
                    raise unavailable(message) from None
            raise unavailable(f"nvmlInit failed: {exc}") from None
        except OSError as exc:  # a broken libnvidia-ml.so can fail inside ctypes
            raise unavailable(f"nvmlInit failed: {exc}") from None

    def _setup(self, selection: Selection | Sequence[str] | str | None) -> None:
        self._system = self._system_facts()
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
        except self._error_cls as exc:
            raise AcceleratorUnavailable(f"NVML could not count the GPUs: {exc}") from None
        if count == 0:
            raise unavailable("NVML found no NVIDIA GPU")
        self.found = self._seen_count = count
        sel = Selection.parse(selection)
        indices, source = self._chosen(sel, count)
        if not indices:
            raise AcceleratorUnavailable(f"no NVIDIA GPU selected by {source}", found=count)
        # Only an unrestricted backend starts monitoring a GPU that appears later.
        self._follow_new = source == "default"
        self._devices = [self._open_device(i) for i in indices]

    def _chosen(self, sel: Selection, count: int) -> tuple[list[int], str]:
        """The metric indices to monitor, and what chose them.

        ``CUDA_VISIBLE_DEVICES`` (only without an explicit selection) keeps CUDA's rule: the
        list ends at the first entry that matches nothing, so ``-1`` hides every GPU.
        """
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        if sel.everything and env is None:
            return [self._first + i for i in range(count)], "default"
        wanted = sel.selectors if sel.selectors is not None else parse_selection(env) or []
        candidates = self._candidates(count, with_ids=names_by_id(wanted))
        if not sel.everything:
            return sel.pick(self.kind, candidates), f"selection {sel.selectors!r}"
        return (visible_subset("CUDA_VISIBLE_DEVICES", candidates) or [],
                f"CUDA_VISIBLE_DEVICES={env!r}")

    def _candidates(self, count: int, with_ids: bool) -> list[Candidate]:
        """Every GPU as a selection sees it; with ``with_ids``, named by its UUID and the
        UUIDs of its MIG devices (``GPU-`` prefix optional, as CUDA allows)."""
        if not with_ids:
            return [Candidate(self._first + i) for i in range(count)]
        out: list[Candidate] = []
        for index in range(self._first, self._first + count):
            ids: list[str] = []
            dev = self._new_device(index)
            try:
                if dev.handle is not None:
                    uuid = self._call(dev, "uuid", "nvmlDeviceGetUUID", dev.handle)
                    if uuid is not None:
                        ids.append(_text(uuid))
                    mode = self._call(dev, "mig_mode", "nvmlDeviceGetMigMode", dev.handle)
                    if mode is not None and int(mode[0]) == _MIG_ENABLED:
                        ids += [m.facts["uuid"] for m in self._mig_devices(dev)
                                if m.facts.get("uuid")]
            except DeviceLost:
                pass
            ids += [i[4:] for i in ids if i.lower().startswith("gpu-")]
            out.append(Candidate(index, tuple(ids)))
        return out

    def _system_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"vendor": self.vendor, "kind": self.kind}
        for key, fname, convert in (
            ("driver_version", "nvmlSystemGetDriverVersion", _text),
            ("cuda_driver_version", "nvmlSystemGetCudaDriverVersion", _cuda_version),
            ("nvml_version", "nvmlSystemGetNVMLVersion", _text),
        ):
            try:
                facts[key] = convert(getattr(self._nvml, fname)())
            except Exception as exc:  # a missing fact is absent, never fatal
                log.debug("nvidia: %s unavailable: %s", key, exc)
        return facts

    def _new_device(self, index: int) -> _Device:
        """A device by its metric index (NVML index plus this backend's first index)."""
        dev = _Device(index, None, self._new_guard(index))
        try:
            dev.handle = self._nvml.nvmlDeviceGetHandleByIndex(index - self._first)
        except self._error_cls as exc:
            log.warning("nvidia: GPU %d cannot be opened: %s", index, exc)
        return dev

    def _new_guard(self, index: int) -> FieldGuard:
        return FieldGuard(f"nvidia gpu {index}", self._is_permanent)

    def _open_device(self, index: int) -> _Device:
        dev = self._new_device(index)
        dev.facts = device_facts(self, index)
        dev.facts.pop("state")  # set by _device_info from dev.lost
        if dev.handle is None:
            self._mark_lost(dev, "nvmlDeviceGetHandleByIndex", "cannot be opened")
            return dev
        try:
            dev.facts.update(self._static_facts(dev))
            mode = self._call(dev, "mig_mode", "nvmlDeviceGetMigMode", dev.handle)
            if mode is not None:
                dev.mig_mode = (int(mode[0]), int(mode[1]))
                if dev.mig_mode[0] == _MIG_ENABLED:
                    dev.migs = self._mig_devices(dev)
        except DeviceLost as exc:
            self._mark_lost(dev, exc.call, exc.error)
        return dev

    def _static_facts(self, dev: _Device) -> dict[str, Any]:
        """Facts read once: identity, limits and the maximum clocks (1.5 ms each)."""
        h, k, call = dev.handle, self._k, self._call
        facts: dict[str, Any] = {}
        for key, fname in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID"),
                           ("serial", "nvmlDeviceGetSerial")):
            value = call(dev, key, fname, h)
            if value is not None:
                facts[key] = _text(value)
        pci = call(dev, "pci", "nvmlDeviceGetPciInfo", h)
        if pci is not None and getattr(pci, "busId", None):
            facts["pci_bus_id"] = _text(pci.busId)
        cc = call(dev, "compute_capability", "nvmlDeviceGetCudaComputeCapability", h)
        if cc is not None:
            facts["compute_capability"] = f"{cc[0]}.{cc[1]}"
        mem = self._memory(dev, "memory", h)
        if mem is not None:
            facts["mem_total_bytes"] = int(mem[1])
        limit = call(dev, "power_limit", "nvmlDeviceGetEnforcedPowerLimit", h)
        if limit is not None:
            facts["power_limit_w"] = limit / 1000.0
        for key, clock in (("max_sm_clock_mhz", k.clock_sm), ("max_mem_clock_mhz", k.clock_mem)):
            value = call(dev, key, "nvmlDeviceGetMaxClockInfo", h, clock)
            if value is not None:
                facts[key] = int(value)
        slowdown = call(dev, "temp_slowdown", "nvmlDeviceGetTemperatureThreshold", h, k.slowdown)
        if slowdown is not None:
            facts["temp_slowdown_c"] = int(slowdown)
        ecc = call(dev, "ecc_mode", "nvmlDeviceGetEccMode", h)
        if ecc is not None:
            facts["ecc_mode"] = {"current": bool(ecc[0]), "pending": bool(ecc[1])}
        return facts

    def _mig_devices(self, dev: _Device) -> list[_MigDevice]:
        """The MIG devices that exist under ``dev`` (empty slots raise NotFound: skipped)."""
        h, call = dev.handle, self._call
        slots = call(dev, "mig_slots", "nvmlDeviceGetMaxMigDeviceCount", h) or 0
        out: list[_MigDevice] = []
        for slot in range(int(slots)):
            mh = call(dev, f"mig.{slot}.handle", "nvmlDeviceGetMigDeviceHandleByIndex", h, slot)
            if mh is None:
                continue
            facts: dict[str, Any] = {"index": slot}
            uuid = call(dev, f"mig.{slot}.uuid", "nvmlDeviceGetUUID", mh)
            if uuid is not None:
                facts["uuid"] = _text(uuid)
            for key, fname in (("gpu_instance_id", "nvmlDeviceGetGpuInstanceId"),
                               ("compute_instance_id", "nvmlDeviceGetComputeInstanceId")):
                value = call(dev, f"mig.{slot}.{key}", fname, mh)
                if value is not None:
                    facts[key] = int(value)
            mem = self._memory(dev, f"mig.{slot}.memory", mh)
            if mem is not None:
                facts["mem_total_bytes"] = int(mem[1])
            out.append(_MigDevice(slot, mh, facts))
        return out

    # -- calling NVML ---------------------------------------------------------------------
    def _is_permanent(self, exc: BaseException) -> bool:
        if isinstance(exc, self._error_cls):
            return getattr(exc, "value", None) in self._permanent_codes
        # Not an NVML error: a function the binding lacks, or a binding/driver mismatch
        # (TypeError, ctypes errors). Asking again would fail the same way.
        return True

    def _call(self, dev: _Device, key: str, fn: str | Callable[..., Any], *args: Any) -> Any:
        """One NVML call for one field of one device; None when there is no value.

        Raises :class:`DeviceLost` when NVML says the device is gone.
        """
        if isinstance(fn, str):
            fname = fn
            fn = getattr(self._nvml, fn, None) or _missing(fn)
        else:
            fname = key
        try:
            return dev.guard.call(key, fn, *args)
        except self._error_cls as exc:
            if getattr(exc, "value", None) in self._lost_codes:
                raise DeviceLost(fname, exc) from exc
            # NotFound and the like: no value now (e.g. process utilisation while idle).
            log.debug("nvidia gpu %d: %s: %s (asking again later)", dev.index, key, exc)
            return None

    def _memory_v2_fn(self) -> Callable[..., Any] | None:
        version = getattr(self._nvml, "nvmlMemory_v2", None)
        fn = getattr(self._nvml, "nvmlDeviceGetMemoryInfo", None)
        if version is None or fn is None:
            return None  # binding older than the v2 struct
        return functools.partial(fn, version=version)

    def _memory(self, dev: _Device, key: str, handle: Any
                ) -> tuple[float, float, float | None] | None:
        """(used, total, reserved) with the v2 struct, where driver-reserved memory is not
        counted as used; else (used incl. reserved, total, None) from v1."""
        v2_key = key + ".v2"
        if self._mem_v2 is not None and v2_key not in dev.guard.unsupported:
            mem = self._call(dev, v2_key, self._mem_v2, handle)
            if mem is not None:
                return float(mem.used), float(mem.total), float(mem.reserved)
            if v2_key not in dev.guard.unsupported:
                return None  # v2 exists but has no value now; v1 would disagree on "used"
        mem = self._call(dev, key + ".v1", "nvmlDeviceGetMemoryInfo", handle)
        return None if mem is None else (float(mem.used), float(mem.total), None)

    # -- lost devices -----------------------------------------------------------------------
    def _mark_lost(self, dev: _Device, fname: str, error: Any) -> None:
        """Mark ``dev`` lost and queue one ``gpu_lost`` event (whichever thread saw it)."""
        if self._losses.lose(dev, error, fname):
            log.warning("nvidia: GPU %d (%s) lost: %s: %s; other GPUs go on",
                        dev.index, dev.uuid, fname, error)

    def _each_device(self, read: Callable[[_Device], dict[str, float]], out: Reading) -> None:
        # The list is replaced, never mutated: safe to iterate while another thread adds one.
        out.gauges.update(read_devices(self._devices, read, self._mark_lost))

    # -- the fast path ----------------------------------------------------------------------
    def read(self) -> Reading:
        """Cheap per-tick values of every live device (a few µs per NVML call)."""
        out = Reading()
        if self._closed:
            return out
        self._each_device(self._read_device, out)
        out.events.extend(self._losses.take())
        return out

    def _read_device(self, dev: _Device) -> dict[str, float]:
        h, k, p, call = dev.handle, self._k, dev.prefix, self._call
        g: dict[str, float] = {}
        util = call(dev, "utilization", "nvmlDeviceGetUtilizationRates", h)
        if util is not None:
            g[p + "util_pct"] = float(util.gpu)
            g[p + "mem_util_pct"] = float(util.memory)
        self._put_memory(g, p, self._memory(dev, "memory", h))
        _put(g, p + "temp_c", call(dev, "temp", "nvmlDeviceGetTemperature", h, k.temp_gpu))
        _put(g, p + "power_w", call(dev, "power", "nvmlDeviceGetPowerUsage", h), div=1000)
        _put(g, p + "power_limit_w",
             call(dev, "power_limit", "nvmlDeviceGetEnforcedPowerLimit", h), div=1000)
        _put(g, p + "sm_clock_mhz", call(dev, "sm_clock", "nvmlDeviceGetClockInfo", h, k.clock_sm))
        _put(g, p + "mem_clock_mhz",
             call(dev, "mem_clock", "nvmlDeviceGetClockInfo", h, k.clock_mem))
        pstate = call(dev, "pstate", "nvmlDeviceGetPerformanceState", h)
        if pstate is not None and pstate != _PSTATE_UNKNOWN:
            g[p + "pstate"] = float(pstate)
        _put(g, p + "throttle_reasons", self._throttle(dev))
        for name, fname in (("enc_util_pct", "nvmlDeviceGetEncoderUtilization"),
                            ("dec_util_pct", "nvmlDeviceGetDecoderUtilization")):
            value = call(dev, name, fname, h)  # [utilisation %, sampling period µs]
            if value is not None:
                g[p + name] = float(value[0])
        for name, kind in (("ecc_corrected_errors", k.ecc_corrected),
                           ("ecc_uncorrected_errors", k.ecc_uncorrected)):
            _put(g, p + name, call(dev, name, "nvmlDeviceGetTotalEccErrors", h, kind, k.volatile))
        _put(g, p + "fan_pct", call(dev, "fan", "nvmlDeviceGetFanSpeed", h))
        self._put_procs(g, p, call(dev, "procs", "nvmlDeviceGetComputeRunningProcesses", h))
        for mig in dev.migs:
            mem = self._memory(dev, f"mig.{mig.slot}.memory", mig.handle)
            if mem is not None:
                g[f"{p}mig.{mig.slot}.mem_used_bytes"] = mem[0]
                g[f"{p}mig.{mig.slot}.mem_total_bytes"] = mem[1]
        return g

    def _throttle(self, dev: _Device) -> Any:
        # "Clocks event reasons" is the current name (NVML 12.5+); the old "throttle
        # reasons" call is the fallback for older drivers and bindings.
        value = self._call(dev, "throttle_reasons", "nvmlDeviceGetCurrentClocksEventReasons",
                           dev.handle)
        if value is None and "throttle_reasons" in dev.guard.unsupported:
            value = self._call(dev, "throttle_reasons.legacy",
                               "nvmlDeviceGetCurrentClocksThrottleReasons", dev.handle)
        return value

    @staticmethod
    def _put_memory(g: dict[str, float], p: str,
                    mem: tuple[float, float, float | None] | None) -> None:
        if mem is None:
            return
        used, total, reserved = mem
        g[p + "mem_used_bytes"] = used
        g[p + "mem_total_bytes"] = total
        if reserved is not None:
            g[p + "mem_reserved_bytes"] = reserved
        if total > 0:
            g[p + "mem_pct"] = used / total * 100.0

    @staticmethod
    def _put_procs(g: dict[str, float], p: str, procs: Any) -> None:
        if procs is None:
            return
        g[p + "procs"] = float(len(procs))
        per_pid: dict[int, float] = {}
        for proc in procs:
            # Host pids: inside a container they do not match os.getpid(). usedGpuMemory is
            # None where the driver cannot tell (WDDM, some MIG setups): no metric then.
            used = getattr(proc, "usedGpuMemory", None)
            if used is not None:
                pid = int(proc.pid)
                per_pid[pid] = per_pid.get(pid, 0.0) + float(used)
        for pid, used in per_pid.items():
            g[f"{p}proc.{pid}.mem_used_bytes"] = used

    # -- the slow path ----------------------------------------------------------------------
    def read_slow(self) -> Reading:
        """Energy, PCIe throughput and utilisation per process (milliseconds each), MIG-mode
        and new-GPU checks."""
        out = Reading()
        if self._closed:
            return out
        self._each_device(self._read_device_slow, out)
        for dev in self._devices:
            if not dev.lost:
                try:
                    out.events.extend(self._check_mig(dev))
                except DeviceLost as exc:
                    self._mark_lost(dev, exc.call, exc.error)
        out.events.extend(self._check_new_gpus())
        out.events.extend(self._losses.take())
        return out

    def _read_device_slow(self, dev: _Device) -> dict[str, float]:
        h, k, p, call = dev.handle, self._k, dev.prefix, self._call
        g: dict[str, float] = {}
        _put(g, p + "energy_j", call(dev, "energy", "nvmlDeviceGetTotalEnergyConsumption", h),
             div=1000)
        # NVML reports PCIe throughput in KB/s (KiB: NVML's "KB" is 1024 bytes).
        _put(g, p + "pcie_tx_bytes_per_s",
             call(dev, "pcie_tx", "nvmlDeviceGetPcieThroughput", h, k.pcie_tx), mul=1024)
        _put(g, p + "pcie_rx_bytes_per_s",
             call(dev, "pcie_rx", "nvmlDeviceGetPcieThroughput", h, k.pcie_rx), mul=1024)
        g.update(self._read_proc_util(dev))
        return g

    def _read_proc_util(self, dev: _Device) -> dict[str, float]:
        """``proc.{pid}.util_pct`` and ``proc.{pid}.mem_util_pct`` of the processes on
        ``dev`` since the previous call; a compute process with no sample in that window was
        idle: 0. Nothing when NVML gives no answer (unsupported, under MIG, an error)."""
        if dev.mig_mode is not None and dev.mig_mode[0] == _MIG_ENABLED:
            return {}  # NVML has no per-process utilisation under MIG: do not even ask
        samples = self._process_samples(dev)
        if samples is None:
            return {}
        sums: dict[int, list[float]] = {}  # pid -> [smUtil sum, memUtil sum, samples]
        for sample in samples:
            acc = sums.setdefault(int(sample.pid), [0.0, 0.0, 0])
            acc[0] += float(sample.smUtil)
            acc[1] += float(sample.memUtil)
            acc[2] += 1
            dev.proc_util_seen_us = max(dev.proc_util_seen_us, int(sample.timeStamp))
        p = dev.prefix
        g: dict[str, float] = {}
        # The mean, not the max: a pid's mean over the window is its average share of the
        # SMs, the same kind of figure as the device's util_pct (an average over a sample
        # period), so a kernel's sum over its processes compares with the device's; a max
        # would let one burst show a mostly idle process busy for the whole slow interval
        # (and hide it from the idle-GPU alert).
        for pid, (sm, mem, n) in sums.items():
            g[f"{p}proc.{pid}.util_pct"] = sm / n
            g[f"{p}proc.{pid}.mem_util_pct"] = mem / n
        # NVML lists only the processes that ran in the window: one holding memory without
        # a sample was idle (42 µs for the list against the 2 ms already spent).
        running = self._call(dev, "procs", "nvmlDeviceGetComputeRunningProcesses", dev.handle)
        for proc in running or ():
            pid = int(proc.pid)
            if pid not in sums:
                g[f"{p}proc.{pid}.util_pct"] = 0.0
                g[f"{p}proc.{pid}.mem_util_pct"] = 0.0
        return g

    def _process_samples(self, dev: _Device) -> list[Any] | None:
        """The per-process utilisation samples NVML took on ``dev`` since the newest one
        seen: [] when it has none (NotFound: no process ran in the window, an answer, not a
        failure), None when there is no answer (unsupported, remembered by the guard; any
        other passing error, asked again next time)."""
        fname = "nvmlDeviceGetProcessUtilization"
        fn = getattr(self._nvml, fname, None) or _missing(fname)
        try:
            samples = dev.guard.call("proc_util", fn, dev.handle, dev.proc_util_seen_us)
        except self._error_cls as exc:
            code = getattr(exc, "value", None)
            if code in self._lost_codes:
                raise DeviceLost(fname, exc) from exc
            # pynvml raises NVMLError(NVML_SUCCESS) where a driver answers "0 samples" with
            # success instead of NotFound: the same answer.
            if code in (self._err["NOT_FOUND"], int(getattr(self._nvml, "NVML_SUCCESS", 0))):
                return []
            log.debug("nvidia gpu %d: proc_util: %s (asking again later)", dev.index, exc)
            return None
        return None if samples is None else list(samples)

    def _check_mig(self, dev: _Device) -> list[dict[str, Any]]:
        """Re-read the MIG mode (and, with MIG on, its devices); events for changes."""
        mode = self._call(dev, "mig_mode", "nvmlDeviceGetMigMode", dev.handle)
        if mode is None:
            return []
        mode = (int(mode[0]), int(mode[1]))
        events: list[dict[str, Any]] = []
        before = [m.facts.get("uuid") for m in dev.migs]
        if mode != dev.mig_mode:
            old, dev.mig_mode = dev.mig_mode, mode
            # MIG hides fields (utilisation) and brings others: ask everything afresh.
            dev.guard = self._new_guard(dev.index)
            events.append(_mig_event(dev, old, mode))
        migs = self._mig_devices(dev) if mode[0] == _MIG_ENABLED else []
        after = [m.facts.get("uuid") for m in migs]
        if after != before:
            dev.migs = migs
            if not events:
                events.append({
                    "kind": "mig_devices_changed",
                    "message": f"GPU {dev.index}: MIG devices now {len(migs)}",
                    "data": {"gpu": dev.index, "uuid": dev.uuid, "mig_devices": after},
                })
        return events

    def _check_new_gpus(self) -> list[dict[str, Any]]:
        """A GPU that appeared (hot-plug, a reset that brought one back) since the last look."""
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
        except self._error_cls:
            return []
        seen, self._seen_count = self._seen_count, count
        self.found = max(self.found, count)
        events: list[dict[str, Any]] = []
        held = {d.index for d in self._devices}
        for index in range(self._first + seen, self._first + count):
            monitored = self._follow_new and index not in held
            dev = self._open_device(index) if monitored else self._identify(index)
            if monitored:
                self._devices = [*self._devices, dev]  # replace: read() may be iterating
            name, uuid = dev.facts.get("name", "GPU"), dev.facts.get("uuid", "")
            events.append({
                "kind": "gpu_appeared",
                "message": f"GPU {index} ({name}, {uuid}) appeared"
                           + ("; monitoring it" if monitored else " (not selected)"),
                "data": {"gpu": index, "uuid": uuid, "monitored": monitored},
            })
        return events

    def _identify(self, index: int) -> _Device:
        dev = self._new_device(index)
        if dev.handle is not None:
            for key, fname in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID")):
                try:
                    value = self._call(dev, key, fname, dev.handle)
                except DeviceLost:
                    value = None
                if value is not None:
                    dev.facts[key] = _text(value)
        return dev

    # -- info and closing -------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Driver, CUDA and NVML versions and one dict per device (state ``ok``/``lost``)."""
        out = dict(self._system)
        out["devices"] = [self._device_info(dev) for dev in self._devices]
        return out

    @staticmethod
    def _device_info(dev: _Device) -> dict[str, Any]:
        info = device_info(dev.facts, dev.lost, dev.guard)
        if dev.mig_mode is not None:
            info["mig_mode"] = _mig_words(dev.mig_mode)
            info["mig_devices"] = [dict(m.facts) for m in dev.migs]
        return info

    def close(self) -> None:
        """Shut NVML down (once; later calls do nothing). Reads then return nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:  # shutting down must not fail the caller
            log.debug("nvidia: nvmlShutdown: %s", exc)


def _put(g: dict[str, float], name: str, value: Any, mul: float = 1.0,
         div: float = 1.0) -> None:
    """Store ``value * mul / div`` unless NVML gave none: absent, never zero. (Dividing,
    not multiplying by 1e-3, keeps 97237 mW at exactly 97.237 W.)"""
    if value is not None:
        g[name] = float(value) * mul / div


def _mig_words(mode: tuple[int, int]) -> dict[str, bool]:
    return {"current": mode[0] == _MIG_ENABLED, "pending": mode[1] == _MIG_ENABLED}


def _mig_event(dev: _Device, old: tuple[int, int] | None,
               new: tuple[int, int]) -> dict[str, Any]:
    now = _mig_words(new)
    state = "enabled" if now["current"] else "disabled"
    pending = "enabled" if now["pending"] else "disabled"
    return {
        "kind": "mig_mode_changed",
        "message": f"GPU {dev.index}: MIG mode now {state} (pending {pending})",
        "data": {"gpu": dev.index, "uuid": dev.uuid, **now,
                 "previous": _mig_words(old) if old is not None else None},
    }
