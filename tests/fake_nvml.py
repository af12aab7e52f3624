"""A fake ``pynvml`` that replays an NVIDIA H200 recorded with the real NVML.

:class:`FakeNvml` *is* a module object: put it in ``sys.modules["pynvml"]`` (the
``fake_nvml`` fixture in ``conftest_nvml.py`` does) or pass it as ``NvidiaBackend(nvml=...)``.
It exposes the part of the pynvml API the backend uses, the real pynvml constants and the
real ``NVMLError`` classes, so ``except pynvml.NVMLError_NotSupported`` works as on a GPU host.

Values come from ``fixtures/nvidia-h200/gpu_probe.json``:

- ``mode="idle"`` / ``"busy"``: that recording, call by call. Where NVML raised on the H200
  (fan speed NotSupported, process utilisation NotFound when idle) the same error is raised.
- ``mode="trace"``: ``h200_trace.csv`` (4 Hz, 144 s, looped) drives utilisation, memory,
  temperature, power, clocks, pstate, clock-event reasons, energy and process count over
  wall time (or over :meth:`FakeNvml.seek` positions); other calls replay ``busy``.

Processes: the recorded load is one compute process per GPU, pid ``load_pid + gpu`` (the
recorded pid 450 unless ``load_pid`` / :meth:`FakeNvml.set_load_pid` say otherwise), in
both the running-process list and the per-process utilisation samples (busy: the recorded
smUtil 86 / memUtil 19, stamped now, so every call finds a sample newer than the
``lastSeenTimeStamp`` it passes, as with a load that keeps running; the arguments land in
``util_since``).

Test hooks: ``gpus`` (N devices with distinct UUIDs, serials and PCI bus ids derived from the
recorded ones), :meth:`inject` / :meth:`clear` (an NVML error for one function on one GPU),
:meth:`lose` (every call on a GPU raises GpuIsLost), :meth:`set_mig` (MIG on with N
instances), :meth:`set_gpu_count` (a GPU appears), :meth:`remove` (a binding that lacks a
function), ``library_missing=True`` (nvmlInit raises LibraryNotFound), and call counters
``calls[name]`` / :meth:`count` so tests can prove what was (not) asked.
"""

from __future__ import annotations

import bisect
import csv
import functools
import importlib.machinery
import importlib.util
import json
import sys
import threading
import time
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "nvidia-h200"
SHIM_DIR = Path(__file__).resolve().parent / "shim"

# Facts the probe did not call but nvidia-smi -q on the same H200 printed.
_SMI_MAX_CLOCKS = {"graphics": 1980, "mem": 3201, "video": 1545}
_SMI_VIDEO_CLOCK = 765
# "ECC Errors / Volatile / DRAM Correctable : 0" in nvidia_smi_q.txt.
_SMI_ECC_CORRECTED = 0
# An H200 holds at most 7 MIG devices; a 1g profile gets one eighth of the memory.
_MIG_SLOTS = 7
_MIG_MEMORY_SHARE = 8
# What NVML puts in gpuInstanceId/computeInstanceId of a process when MIG is off.
_NO_INSTANCE = 0xFFFFFFFF
# Functions a MIG device handle answers; every other call on one raises NotSupported
# (MIG devices have no utilisation, power or clocks of their own).
_MIG_CALLS = frozenset({
    "nvmlDeviceGetUUID", "nvmlDeviceGetName", "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetGpuInstanceId", "nvmlDeviceGetComputeInstanceId",
    "nvmlDeviceGetDeviceHandleFromMigDeviceHandle", "nvmlDeviceIsMigDeviceHandle",
    "nvmlDeviceGetComputeRunningProcesses",
})
_NO_INIT_NEEDED = frozenset({"nvmlInit", "nvmlInitWithFlags", "nvmlErrorString"})

_REAL: types.ModuleType | None = None


def real_pynvml() -> types.ModuleType:
    """The real nvidia-ml-py module, even when ``tests/shim`` (whose ``pynvml`` is this fake)
    comes first on ``sys.path``. Loaded once, so every fake shares its NVMLError classes."""
    global _REAL
    if _REAL is not None:
        return _REAL
    loaded = sys.modules.get("pynvml")
    if loaded is not None and not getattr(loaded, "IS_FAKE", False) and hasattr(
            loaded, "NVMLError"):
        _REAL = loaded
        return _REAL
    path = [p for p in sys.path if Path(p or ".").resolve() != SHIM_DIR]
    spec = importlib.machinery.PathFinder.find_spec("pynvml", path)
    if spec is None or spec.loader is None:
        raise ImportError("the real pynvml (nvidia-ml-py) is needed by the fake NVML")
    module = importlib.util.module_from_spec(spec)
    # pynvml looks itself up as sys.modules["pynvml"] while it builds its error classes;
    # lend it the name for that. Where the shim (or a fake) held the name, give it back;
    # otherwise keep the real module there, so a later `import pynvml` shares its classes.
    previous = sys.modules.get("pynvml")
    sys.modules["pynvml"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        if previous is not None:
            sys.modules["pynvml"] = previous
    sys.modules["_tracklab_real_pynvml"] = module
    _REAL = module
    return module


@functools.cache
def load_probe(fixture_dir: Path = FIXTURE_DIR) -> dict[str, Any]:
    """The recorded ``gpu_probe.json``."""
    return json.loads((fixture_dir / "gpu_probe.json").read_text())


@dataclass(frozen=True)
class _Trace:
    times: list[float]  # seconds from the first row
    rows: list[dict[str, str]]
    energy_mj: list[int]  # recorded once a second; other rows carry the last value
    period: float


@functools.cache
def load_trace(fixture_dir: Path = FIXTURE_DIR) -> _Trace:
    """``h200_trace.csv`` rows with times from zero and energy filled forward."""
    with (fixture_dir / "h200_trace.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    t0 = float(rows[0]["t"])
    times = [float(r["t"]) - t0 for r in rows]
    first = next(int(r["gpu_energy_mj"]) for r in rows if r["gpu_energy_mj"])
    energy, last = [], first
    for r in rows:
        last = int(r["gpu_energy_mj"]) if r["gpu_energy_mj"] else last
        energy.append(last)
    step = (times[-1] - times[0]) / max(len(times) - 1, 1)
    return _Trace(times, rows, energy, times[-1] + step)


@dataclass(frozen=True)
class FakeHandle:
    """A device handle: a GPU, or MIG device ``mig`` of GPU ``gpu``."""

    gpu: int
    mig: int | None = None


class FakeNvml(types.ModuleType):
    """A pynvml module that replays the recorded H200 (see the module docstring)."""

    IS_FAKE = True

    def __init__(self, gpus: int = 1, mode: str = "busy", *, mig: int = 0,
                 library_missing: bool = False, init_error: int | None = None,
                 trace_stagger_s: float = 0.0, fixture_dir: Path = FIXTURE_DIR,
                 load_pid: int | None = None) -> None:
        super().__init__("pynvml", "Fake pynvml replaying a recorded NVIDIA H200")
        if mode not in ("idle", "busy", "trace"):
            raise ValueError(f"mode must be idle, busy or trace, not {mode!r}")
        real = real_pynvml()
        self._real = real
        self._copy_names(real)
        self.mode = mode
        self._probe = load_probe(fixture_dir)
        if load_pid is not None:
            # The recorded load, seen as one of this machine's processes (as NVML would
            # report a local training script): its memory is still the recorded value.
            self._probe = {**self._probe, "load_pid": load_pid}
        self._trace = load_trace(fixture_dir) if mode == "trace" else None
        self._gpu_count = gpus
        self._init_error = real.NVML_ERROR_LIBRARY_NOT_FOUND if library_missing else init_error
        self._refs = 0
        self._mig: dict[int, tuple[int, int]] = {}  # gpu -> (instances, pending mode)
        self._errors: dict[tuple[str, int | None], list[Any]] = {}
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self.trace_time: float | None = None
        self.trace_stagger_s = trace_stagger_s
        self.calls: Counter[str] = Counter()
        self.gpu_calls: Counter[tuple[str, int]] = Counter()
        #: gpu -> the lastSeenTimeStamp of its latest nvmlDeviceGetProcessUtilization call.
        self.util_since: dict[int, int] = {}
        for gpu in range(gpus):
            if mig:
                self.set_mig(gpu, mig)
        self._install()

    # -- test hooks -------------------------------------------------------------------------
    def inject(self, fn: str, gpu: int | None = None, error: int | BaseException | None = None,
               times: int | None = None) -> None:
        """Make ``fn`` raise ``error`` (an NVML code, default NotSupported, or an exception)
        on ``gpu`` (None: every GPU and system calls), ``times`` times or until cleared.
        ``"nvmlDeviceGetMemoryInfo_v2"`` targets only the v2 memory call."""
        code = self.NVML_ERROR_NOT_SUPPORTED if error is None else error
        with self._lock:
            self._errors[(fn, gpu)] = [code, times]

    def clear(self, fn: str | None = None, gpu: int | None = None) -> None:
        """Remove injected errors (all of them with no arguments, lost GPUs included)."""
        with self._lock:
            if fn is None and gpu is None:
                self._errors.clear()
                self._lost.clear()
                return
            for key in [k for k in self._errors
                        if (fn is None or k[0] == fn) and (gpu is None or k[1] == gpu)]:
                del self._errors[key]

    def set_load_pid(self, pid: int) -> None:
        """From now on, report the recorded load's process as ``pid`` (e.g. a kernel that
        started after the fake was installed); its memory stays the recorded value."""
        with self._lock:
            self._probe = {**self._probe, "load_pid": int(pid)}

    def lose(self, gpu: int) -> None:
        """GPU ``gpu`` falls off the bus: every call on it raises GpuIsLost."""
        with self._lock:
            self._lost.add(gpu)

    def set_mig(self, gpu: int, instances: int, *, pending: bool | None = None) -> None:
        """MIG mode on ``gpu`` with ``instances`` MIG devices (0 turns it off)."""
        pend = int(instances > 0) if pending is None else int(pending)
        with self._lock:
            if instances or pend:
                self._mig[gpu] = (min(instances, _MIG_SLOTS), pend)
            else:
                self._mig.pop(gpu, None)

    def set_gpu_count(self, gpus: int) -> None:
        """Change how many GPUs NVML reports (hot-plug, or a GPU back after a reset)."""
        self._gpu_count = gpus

    def remove(self, fn: str) -> None:
        """Drop ``fn`` from the module, like an older nvidia-ml-py that lacks it."""
        if fn in self.__dict__:
            delattr(self, fn)

    def seek(self, seconds: float | None) -> None:
        """Freeze the trace at ``seconds`` from its start (None: follow the wall clock)."""
        self.trace_time = seconds

    def count(self, fn: str, gpu: int | None = None) -> int:
        """Calls of ``fn`` so far (on one GPU when ``gpu`` is given)."""
        return self.calls[fn] if gpu is None else self.gpu_calls[(fn, gpu)]

    def reset_counts(self) -> None:
        self.calls.clear()
        self.gpu_calls.clear()

    @property
    def initialized(self) -> bool:
        return self._refs > 0

    # -- identity derived per GPU -------------------------------------------------------------
    def uuid(self, gpu: int) -> str:
        """GPU 0 keeps the recorded UUID; others change its first group, so short prefixes
        tell them apart (as real UUIDs do)."""
        base = self._rec(0, "uuid", "busy")
        head = (int(base[4:12], 16) + gpu * 0x11111111) & 0xFFFFFFFF
        return f"GPU-{head:08x}{base[12:]}"

    def mig_uuid(self, gpu: int, slot: int) -> str:
        gpu_uuid = self.uuid(gpu)
        return f"MIG-{gpu_uuid[4:13]}{slot:04x}{gpu_uuid[17:]}"

    def _serial(self, gpu: int) -> str:
        return str(int(self._rec(0, "serial", "busy")) + gpu)

    def _pci(self, gpu: int) -> types.SimpleNamespace:
        pci = dict(self._rec(0, "pci", "busy"))
        device = pci["device"] + gpu
        pci.update(device=device, busId=f"00000000:00:{device:02X}.0",
                   busIdLegacy=f"0000:00:{device:02X}.0")
        return types.SimpleNamespace(**pci)

    # -- replay ---------------------------------------------------------------------------
    def _rec(self, gpu: int, key: str, mode: str | None = None) -> Any:
        """The recorded value of ``key`` (raising the recorded error, if any)."""
        mode = mode or ("busy" if self.mode == "trace" else self.mode)
        rec = self._probe[mode][0][key]
        if rec.get("error"):
            raise self._error_from_text(rec["error"])
        return rec["value"]

    def _error_from_text(self, text: str) -> BaseException:
        # "NVMLError_NotSupported: Not Supported" -> the real NVMLError_NotSupported.
        cls = getattr(self._real, text.split(":", 1)[0], None)
        return cls() if cls is not None else self.NVMLError(self.NVML_ERROR_UNKNOWN)

    def _row(self, gpu: int) -> tuple[dict[str, str], int]:
        trace = self._trace
        assert trace is not None
        now = self.trace_time if self.trace_time is not None else time.monotonic() - self._t0
        at = (now + gpu * self.trace_stagger_s) % trace.period
        i = max(bisect.bisect_right(trace.times, at) - 1, 0)
        return trace.rows[i], i

    def _value(self, gpu: int, key: str) -> Any:
        """``key`` for ``gpu`` in the current mode: the trace where it has the field."""
        if self._trace is not None:
            traced = self._traced(gpu, key)
            if traced is not None:
                return traced
        return self._rec(gpu, key)

    def _traced(self, gpu: int, key: str) -> Any:
        row, i = self._row(gpu)
        simple = {"temp_gpu": "gpu_temp", "power_mw": "gpu_power_mw", "clock_sm": "gpu_sm_clock",
                  "clock_graphics": "gpu_sm_clock", "clock_mem": "gpu_mem_clock",
                  "pstate": "gpu_pstate", "throttle": "gpu_throttle"}
        if key in simple:
            return int(row[simple[key]])
        if key == "energy_mj":
            assert self._trace is not None
            return self._trace.energy_mj[i]
        if key == "utilization":
            return {"gpu": int(row["gpu_util"]), "memory": int(row["gpu_mem_util"])}
        if key in ("memory", "memory_v2"):
            # The trace recorded v1 "used", which counts driver-reserved memory.
            v2 = self._rec(gpu, "memory_v2")
            used_v1 = int(row["gpu_mem_used"])
            free = v2["total"] - used_v1
            if key == "memory":
                return {"total": v2["total"], "free": free, "used": used_v1}
            return {**v2, "free": free, "used": max(used_v1 - v2["reserved"], 0)}
        if key == "compute_procs":
            return int(row["gpu_procs"])
        return None

    # -- the API ----------------------------------------------------------------------------
    def _copy_names(self, real: types.ModuleType) -> None:
        # Constants, error classes and structs of the real binding, so code that reads
        # pynvml.NVML_CLOCK_SM or catches pynvml.NVMLError_GpuIsLost behaves as on a GPU host.
        for name in dir(real):
            if name.startswith(("NVML", "nvmlMemory_v", "c_nvml", "nvmlFriendlyObject")):
                setattr(self, name, getattr(real, name))

    def _install(self) -> None:
        for attr in dir(type(self)):
            if attr.startswith("_api_"):
                name = attr[len("_api_"):]
                setattr(self, name, self._wrap(name, getattr(self, attr)))

    def _wrap(self, name: str, impl: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(impl)
        def call(*args: Any, **kwargs: Any) -> Any:
            handle = args[0] if args and isinstance(args[0], FakeHandle) else None
            self.calls[name] += 1
            if handle is not None:
                self.gpu_calls[(name, handle.gpu)] += 1
            self._check(name, handle)
            return impl(*args, **kwargs)

        call.__name__ = name
        call.__qualname__ = name
        return call

    def _raise(self, code: int) -> None:
        raise self.NVMLError(code)

    def _check(self, name: str, handle: FakeHandle | None) -> None:
        """Raise what NVML would before answering: uninitialised, injected, lost, MIG."""
        if name not in _NO_INIT_NEEDED and name != "nvmlShutdown" and not self._refs:
            self._raise(self.NVML_ERROR_UNINITIALIZED)
        gpu = handle.gpu if handle is not None else None
        self._injected(name, gpu)
        if gpu is not None and gpu in self._lost:
            self._raise(self.NVML_ERROR_GPU_IS_LOST)
        if handle is not None and handle.mig is not None and name not in _MIG_CALLS:
            self._raise(self.NVML_ERROR_NOT_SUPPORTED)

    def _injected(self, name: str, gpu: int | None) -> None:
        with self._lock:
            key = (name, gpu) if (name, gpu) in self._errors else (name, None)
            entry = self._errors.get(key)
            if entry is None:
                return
            error, times = entry
            if times is not None:
                entry[1] = times - 1
                if entry[1] <= 0:
                    del self._errors[key]
        if isinstance(error, BaseException):
            raise error
        self._raise(error)

    def _mig_state(self, gpu: int) -> tuple[int, int]:
        return self._mig.get(gpu, (0, 0))

    # System
    def _api_nvmlInit(self) -> None:
        if self._init_error is not None:
            self._raise(self._init_error)
        self._refs += 1

    def _api_nvmlShutdown(self) -> None:
        if not self._refs:
            self._raise(self.NVML_ERROR_UNINITIALIZED)
        self._refs -= 1

    def _api_nvmlSystemGetDriverVersion(self) -> str:
        return str(self._probe["driver"])

    def _api_nvmlSystemGetNVMLVersion(self) -> str:
        return str(self._probe["nvml_version"])

    def _api_nvmlSystemGetCudaDriverVersion(self) -> int:
        return int(self._probe["cuda_driver_version"])

    def _api_nvmlDeviceGetCount(self) -> int:
        return self._gpu_count

    def _api_nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        if not 0 <= int(index) < self._gpu_count:
            self._raise(self.NVML_ERROR_INVALID_ARGUMENT)
        if int(index) in self._lost:
            self._raise(self.NVML_ERROR_GPU_IS_LOST)
        return FakeHandle(int(index))

    def _api_nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> FakeHandle:
        want = uuid.decode() if isinstance(uuid, bytes) else uuid
        for gpu in range(self._gpu_count):
            if self.uuid(gpu) == want:
                return FakeHandle(gpu)
            for slot in range(self._mig_state(gpu)[0]):
                if self.mig_uuid(gpu, slot) == want:
                    return FakeHandle(gpu, slot)
        self._raise(self.NVML_ERROR_NOT_FOUND)
        raise AssertionError  # unreachable

    # Identity
    def _api_nvmlDeviceGetIndex(self, h: FakeHandle) -> int:
        return h.gpu

    def _api_nvmlDeviceGetName(self, h: FakeHandle) -> str:
        name = self._rec(h.gpu, "name")
        return f"{name} MIG 1g.18gb" if h.mig is not None else name

    def _api_nvmlDeviceGetUUID(self, h: FakeHandle) -> str:
        return self.uuid(h.gpu) if h.mig is None else self.mig_uuid(h.gpu, h.mig)

    def _api_nvmlDeviceGetSerial(self, h: FakeHandle) -> str:
        self._rec(h.gpu, "serial")
        return self._serial(h.gpu)

    def _api_nvmlDeviceGetPciInfo(self, h: FakeHandle) -> types.SimpleNamespace:
        return self._pci(h.gpu)

    def _api_nvmlDeviceGetCudaComputeCapability(self, h: FakeHandle) -> tuple[int, int]:
        major, minor = self._rec(h.gpu, "cuda_cc")
        return int(major), int(minor)

    def _api_nvmlDeviceGetComputeMode(self, h: FakeHandle) -> int:
        return int(self._rec(h.gpu, "compute_mode"))

    # Memory
    def _api_nvmlDeviceGetMemoryInfo(self, h: FakeHandle,
                                     version: int | None = None) -> types.SimpleNamespace:
        if version:
            # The binding calls the C symbol nvmlDeviceGetMemoryInfo_v2 for this; an old
            # driver lacks it (FunctionNotFound): inject under that name to test it.
            self.calls["nvmlDeviceGetMemoryInfo_v2"] += 1
            self._injected("nvmlDeviceGetMemoryInfo_v2", h.gpu)
        if h.mig is not None:
            return types.SimpleNamespace(**self._mig_memory(h, bool(version)))
        return types.SimpleNamespace(**self._value(h.gpu, "memory_v2" if version else "memory"))

    def _mig_memory(self, h: FakeHandle, v2: bool) -> dict[str, int]:
        full = self._value(h.gpu, "memory_v2")
        total = full["total"] // _MIG_MEMORY_SHARE
        reserved = full["reserved"] // _MIG_MEMORY_SHARE
        # The recorded process's memory sits on MIG device 0; the others are empty.
        used = full["used"] if h.mig == 0 else 0
        if not v2:
            return {"total": total, "free": total - used - reserved, "used": used + reserved}
        return {"version": full["version"], "total": total, "reserved": reserved,
                "free": total - used - reserved, "used": used}

    def _api_nvmlDeviceGetBAR1MemoryInfo(self, h: FakeHandle) -> types.SimpleNamespace:
        return types.SimpleNamespace(**self._rec(h.gpu, "bar1"))

    # Utilisation, temperature, power, clocks
    def _api_nvmlDeviceGetUtilizationRates(self, h: FakeHandle) -> types.SimpleNamespace:
        if self._mig_state(h.gpu)[0]:
            self._raise(self.NVML_ERROR_NOT_SUPPORTED)  # MIG: no whole-GPU utilisation
        return types.SimpleNamespace(**self._value(h.gpu, "utilization"))

    def _api_nvmlDeviceGetEncoderUtilization(self, h: FakeHandle) -> list[int]:
        return list(self._rec(h.gpu, "encoder"))

    def _api_nvmlDeviceGetDecoderUtilization(self, h: FakeHandle) -> list[int]:
        return list(self._rec(h.gpu, "decoder"))

    def _api_nvmlDeviceGetTemperature(self, h: FakeHandle, sensor: int) -> int:
        if sensor != self.NVML_TEMPERATURE_GPU:
            self._raise(self.NVML_ERROR_INVALID_ARGUMENT)
        return int(self._value(h.gpu, "temp_gpu"))

    def _api_nvmlDeviceGetTemperatureThreshold(self, h: FakeHandle, threshold: int) -> int:
        if threshold == self.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
            return int(self._rec(h.gpu, "temp_threshold_slowdown"))
        self._raise(self.NVML_ERROR_NOT_SUPPORTED)  # other thresholds were not recorded
        raise AssertionError  # unreachable

    def _api_nvmlDeviceGetPowerUsage(self, h: FakeHandle) -> int:
        return int(self._value(h.gpu, "power_mw"))

    def _api_nvmlDeviceGetEnforcedPowerLimit(self, h: FakeHandle) -> int:
        return int(self._rec(h.gpu, "power_limit_mw"))

    def _api_nvmlDeviceGetPowerManagementLimit(self, h: FakeHandle) -> int:
        return int(self._rec(h.gpu, "power_limit_mw"))

    def _api_nvmlDeviceGetTotalEnergyConsumption(self, h: FakeHandle) -> int:
        return int(self._value(h.gpu, "energy_mj"))

    def _api_nvmlDeviceGetClockInfo(self, h: FakeHandle, clock: int) -> int:
        keys = {self.NVML_CLOCK_GRAPHICS: "clock_graphics", self.NVML_CLOCK_SM: "clock_sm",
                self.NVML_CLOCK_MEM: "clock_mem"}
        if clock == self.NVML_CLOCK_VIDEO:
            return _SMI_VIDEO_CLOCK
        if clock not in keys:
            self._raise(self.NVML_ERROR_INVALID_ARGUMENT)
        return int(self._value(h.gpu, keys[clock]))

    def _api_nvmlDeviceGetMaxClockInfo(self, h: FakeHandle, clock: int) -> int:
        if clock == self.NVML_CLOCK_SM:
            return int(self._rec(h.gpu, "clock_sm_max"))
        names = {self.NVML_CLOCK_GRAPHICS: "graphics", self.NVML_CLOCK_MEM: "mem",
                 self.NVML_CLOCK_VIDEO: "video"}
        if clock not in names:
            self._raise(self.NVML_ERROR_INVALID_ARGUMENT)
        return _SMI_MAX_CLOCKS[names[clock]]

    def _api_nvmlDeviceGetFanSpeed(self, h: FakeHandle) -> int:
        return int(self._rec(h.gpu, "fan"))  # NotSupported on the H200

    def _api_nvmlDeviceGetPerformanceState(self, h: FakeHandle) -> int:
        return int(self._value(h.gpu, "pstate"))

    def _api_nvmlDeviceGetPowerState(self, h: FakeHandle) -> int:
        return int(self._value(h.gpu, "pstate"))

    def _api_nvmlDeviceGetCurrentClocksEventReasons(self, h: FakeHandle) -> int:
        return int(self._value(h.gpu, "throttle"))

    def _api_nvmlDeviceGetCurrentClocksThrottleReasons(self, h: FakeHandle) -> int:
        return int(self._value(h.gpu, "throttle"))

    # PCIe, ECC
    def _api_nvmlDeviceGetPcieThroughput(self, h: FakeHandle, counter: int) -> int:
        keys = {self.NVML_PCIE_UTIL_TX_BYTES: "pcie_tx_kbs",
                self.NVML_PCIE_UTIL_RX_BYTES: "pcie_rx_kbs"}
        if counter not in keys:
            self._raise(self.NVML_ERROR_INVALID_ARGUMENT)
        return int(self._rec(h.gpu, keys[counter]))  # KB/s

    def _api_nvmlDeviceGetCurrPcieLinkGeneration(self, h: FakeHandle) -> int:
        return int(self._rec(h.gpu, "pcie_gen"))

    def _api_nvmlDeviceGetCurrPcieLinkWidth(self, h: FakeHandle) -> int:
        return int(self._rec(h.gpu, "pcie_width"))

    def _api_nvmlDeviceGetEccMode(self, h: FakeHandle) -> list[int]:
        return list(self._rec(h.gpu, "ecc_mode"))

    def _api_nvmlDeviceGetTotalEccErrors(self, h: FakeHandle, error_type: int,
                                         counter_type: int) -> int:
        if error_type == self.NVML_MEMORY_ERROR_TYPE_UNCORRECTED and (
                counter_type == self.NVML_VOLATILE_ECC):
            return int(self._rec(h.gpu, "ecc_uncorrected_volatile"))
        return _SMI_ECC_CORRECTED  # every other ECC counter read 0 in nvidia-smi -q

    # MIG
    def _api_nvmlDeviceGetMigMode(self, h: FakeHandle) -> list[int]:
        recorded = list(self._rec(h.gpu, "mig_mode"))
        if h.gpu not in self._mig:
            return recorded
        instances, pending = self._mig[h.gpu]
        return [int(instances > 0), pending]

    def _api_nvmlDeviceGetMaxMigDeviceCount(self, h: FakeHandle) -> int:
        return _MIG_SLOTS

    def _api_nvmlDeviceGetMigDeviceHandleByIndex(self, h: FakeHandle, index: int) -> FakeHandle:
        if not 0 <= index < _MIG_SLOTS:
            self._raise(self.NVML_ERROR_INVALID_ARGUMENT)
        if index >= self._mig_state(h.gpu)[0]:
            self._raise(self.NVML_ERROR_NOT_FOUND)  # an empty slot
        return FakeHandle(h.gpu, index)

    def _api_nvmlDeviceIsMigDeviceHandle(self, h: FakeHandle) -> bool:
        return h.mig is not None

    def _api_nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, h: FakeHandle) -> FakeHandle:
        return FakeHandle(h.gpu)

    def _api_nvmlDeviceGetGpuInstanceId(self, h: FakeHandle) -> int:
        if h.mig is None:
            self._raise(self.NVML_ERROR_INVALID_ARGUMENT)
        return 7 + int(h.mig)  # illustrative: one 1g GPU instance per MIG device

    def _api_nvmlDeviceGetComputeInstanceId(self, h: FakeHandle) -> int:
        if h.mig is None:
            self._raise(self.NVML_ERROR_INVALID_ARGUMENT)
        return 0

    # Processes
    def _api_nvmlDeviceGetComputeRunningProcesses(self, h: FakeHandle) -> list[Any]:
        if self._trace is not None:
            count = int(self._traced(h.gpu, "compute_procs"))
        else:
            # The busy recording stored its one process as an unreadable repr
            # ("<pynvml.nvmlFriendlyObject ...>"). Replay it as the load the recording ran:
            # pid "load_pid" using the v2 "used" memory (with one process, all of it).
            count = len(self._rec(h.gpu, "compute_procs"))
        if count == 0 or (h.mig is not None and h.mig != 0):
            return []
        used = int(self._value(h.gpu, "memory_v2")["used"])
        return [self.nvmlFriendlyObject({
            "pid": pid, "usedGpuMemory": used // count,
            "gpuInstanceId": _NO_INSTANCE if h.mig is None else 7 + h.mig,
            "computeInstanceId": _NO_INSTANCE if h.mig is None else 0,
        }) for pid in self._load_pids(h.gpu, count)]

    def _load_pids(self, gpu: int, count: int) -> list[int]:
        # One process per GPU, each its own pid (a data-parallel job): load_pid on GPU 0.
        pid = int(self._probe["load_pid"]) + gpu
        return [pid + n for n in range(count)]

    def _api_nvmlDeviceGetGraphicsRunningProcesses(self, h: FakeHandle) -> list[Any]:
        return []

    def _api_nvmlDeviceGetProcessUtilization(self, h: FakeHandle, last_seen: int = 0
                                             ) -> list[Any]:
        self.util_since[h.gpu] = int(last_seen)
        if self._mig_state(h.gpu)[0]:
            self._raise(self.NVML_ERROR_NOT_SUPPORTED)  # MIG: no per-process utilisation
        if self._trace is not None:
            row, _ = self._row(h.gpu)
            count = int(row["gpu_procs"])
            if not count or not int(row["gpu_util"]):
                self._raise(self.NVML_ERROR_NOT_FOUND)  # nothing ran: no samples
            recorded = [{"smUtil": int(row["gpu_util"]), "memUtil": int(row["gpu_mem_util"]),
                         "encUtil": 0, "decUtil": 0}] * count
        else:
            # Idle: raises the recorded NotFound. Busy: the recorded process (pid 450), which
            # the running-process list reports as load_pid + gpu: the same pid here.
            recorded = list(self._rec(h.gpu, "process_utilization"))
        stamp = max(int(time.time() * 1e6), int(last_seen) + 1)
        pids = self._load_pids(h.gpu, len(recorded))
        return [self.nvmlFriendlyObject({**rec, "pid": pid, "timeStamp": stamp})
                for pid, rec in zip(pids, recorded, strict=True)]


def fake_from_env(env: dict[str, str]) -> FakeNvml:
    """The fake configured by ``TRACKLAB_FAKE_NVML_*`` variables (see ``shim/pynvml.py``)."""
    return FakeNvml(
        gpus=int(env.get("TRACKLAB_FAKE_NVML_GPUS", "1")),
        mode=env.get("TRACKLAB_FAKE_NVML_MODE", "busy"),
        mig=int(env.get("TRACKLAB_FAKE_NVML_MIG", "0")),
        library_missing=env.get("TRACKLAB_FAKE_NVML_NO_LIBRARY", "") not in ("", "0"),
        trace_stagger_s=float(env.get("TRACKLAB_FAKE_NVML_STAGGER_S", "0")),
        load_pid=int(env["TRACKLAB_FAKE_NVML_LOAD_PID"])
        if env.get("TRACKLAB_FAKE_NVML_LOAD_PID") else None,
    )
