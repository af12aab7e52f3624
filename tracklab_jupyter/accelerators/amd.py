"""AMD GPUs: through ``amdsmi`` (AMD SMI's Python binding), else the ``amdgpu`` sysfs files.

Detection costs nothing: ``/sys/module/amdgpu/initstate`` reads ``live`` once the driver is up
(what wandb and Ray check). Only then is ``amdsmi`` imported; without it, or when its native
``libamd_smi.so`` or ``amdsmi_init`` fails, :mod:`.amd_sysfs` reads the kernel's files and
``info()["amdsmi"]`` says why amdsmi was not used (``info()["source"]`` names the source).

The ``amdsmi`` API used (read in the package's ``amdsmi_interface.py`` / ``amdsmi_exception.py``,
PyPI amdsmi 7.0.2, checked against 6.1.0; units from ``amdsmi.h``):

- ``import amdsmi`` without the native library: the wrapper prints two lines to stdout and
  raises ``KeyError('libamd_smi.so')``, not ImportError.
- ``amdsmi_init(AmdSmiInitFlags.INIT_AMD_GPUS)``, ``amdsmi_shut_down()``,
  ``amdsmi_get_processor_handles()``. Errors: ``AmdSmiLibraryException`` with
  ``get_error_code()`` (AMDSMI_STATUS_*: NOT_SUPPORTED 2, NO_PERM 10, NOT_FOUND 31,
  DRIVER_NOT_LOADED 34 ...; ``AmdSmiRetryException``/``AmdSmiTimeoutException`` subclass it),
  and ``AmdSmiParameterException`` for arguments of the wrong type.
- Values the library marks unavailable come back as the string ``"N/A"`` (7.x) or as the
  all-ones integer (6.x): both are treated as absent.
- Every tick: ``amdsmi_get_gpu_activity`` -> ``gfx_activity``/``umc_activity``/``mm_activity``
  (%); ``amdsmi_get_gpu_vram_usage`` -> ``vram_used``/``vram_total`` in MiB;
  ``amdsmi_get_power_info`` -> ``socket_power`` (7.x) or ``current_socket_power`` (MI300) or
  ``average_socket_power`` in W, ``power_limit`` in W; ``amdsmi_get_temp_metric(h,
  AmdSmiTemperatureType.EDGE|HOTSPOT|VRAM, AmdSmiTemperatureMetric.CURRENT)`` in °C;
  ``amdsmi_get_clock_info(h, AmdSmiClkType.GFX|MEM)`` -> ``clk`` (7.x) or ``cur_clk`` (6.x)
  in MHz; ``amdsmi_get_gpu_fan_speed(h, 0)`` of ``amdsmi_get_gpu_fan_speed_max(h, 0)``.
- Slow path (own thread, every :attr:`AmdBackend.slow_interval` s): ``amdsmi_get_gpu_process_list``
  (7.x: dicts with ``pid`` and ``memory_usage.vram_mem`` in bytes; 6.x: handles for
  ``amdsmi_get_gpu_process_info``), ``amdsmi_get_gpu_total_ecc_count`` ->
  ``correctable_count``/``uncorrectable_count``, ``amdsmi_get_energy_count`` ->
  ``energy_accumulator`` (6.x: ``power``) x ``counter_resolution`` µJ,
  ``amdsmi_get_pcie_info`` -> ``pcie_metric.pcie_bandwidth`` in Mb/s, and the throttle status:
  ``amdsmi_get_violation_status`` (7.x, MI300+: ``active_ppt_pwr``, ``active_socket_thrm``,
  ``active_vr_thrm``, ``active_hbm_thrm``, ``active_prochot_thrm``), else
  ``amdsmi_get_gpu_metrics_info()["indep_throttle_status"]`` folded by
  :func:`~tracklab_jupyter.accelerators.throttle.fold_amd_throttle` when the binding gives the
  64-bit value (6.1 and 7.0.2 turn it into a bool, which names no reason: then no value).
- Once, at open: ``amdsmi_get_gpu_asic_info`` (``market_name``, ``asic_serial``),
  ``amdsmi_get_gpu_board_info`` (``product_name``, ``product_serial``),
  ``amdsmi_get_gpu_device_uuid``, ``amdsmi_get_gpu_enumeration_info`` (``hip_uuid``),
  ``amdsmi_get_gpu_device_bdf``, ``amdsmi_get_power_cap_info`` (``power_cap`` in µW),
  ``amdsmi_get_temp_metric(..., EDGE, CRITICAL)`` (the slowdown temperature),
  ``amdsmi_get_gpu_driver_info``, ``amdsmi_get_lib_version``, ``amdsmi_get_rocm_version``.

Where each call goes follows what it does inside the library (a process walk, the whole
metrics table: slow path), not measurements: no AMD GPU was at hand. With the fake, read()
costs about 20-45 µs per GPU, sysfs about 12 µs per card.

Numbering: AMD GPUs follow NVIDIA's (``first_index``), in amdsmi's order (sysfs: card order).
Without an explicit selection, ``ROCR_VISIBLE_DEVICES`` and then ``HIP_VISIBLE_DEVICES`` (which
numbers the GPUs ROCR left, in ROCR's order, as the ROCm runtime does) choose the GPUs.

Failures are per field and per device, as for NVIDIA: NOT_SUPPORTED, NO_PERM, INVAL, parameter
errors and functions the installed binding lacks mark the field off for good; RETRY, BUSY, IO
and the like mean no value now; NOT_FOUND and DRIVER_NOT_LOADED on a device call mean the GPU
is lost (one ``gpu_lost`` event; the other GPUs go on).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from tracklab_jupyter.accelerators.amd_sysfs import (
    SysfsCard,
    find_cards,
    read_text,
)
from tracklab_jupyter.accelerators.amd_sysfs import is_permanent as sysfs_permanent
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
    match_selector,
    parse_selection,
    read_devices,
    visible_subset,
)
from tracklab_jupyter.accelerators.throttle import fold_amd_throttle
from tracklab_jupyter.collectors.base import FieldGuard, Reading

log = logging.getLogger("tracklab_jupyter.accelerators.amd")

INSTALL_HINT = "pip install tracklab-jupyter[amd]"

# AMDSMI_STATUS_* codes (amdsmi_wrapper.py; read from the module when it has them).
_STATUS = {
    "INVAL": 1, "NOT_SUPPORTED": 2, "NOT_YET_IMPLEMENTED": 3, "FAIL_LOAD_MODULE": 4,
    "FAIL_LOAD_SYMBOL": 5, "TIMEOUT": 8, "RETRY": 9, "NO_PERM": 10, "INIT_ERROR": 18,
    "BUSY": 30, "NOT_FOUND": 31, "DRIVER_NOT_LOADED": 34, "SETTING_UNAVAILABLE": 55,
}
# The same call will fail the same way every time: stop asking.
_PERMANENT = ("NOT_SUPPORTED", "NOT_YET_IMPLEMENTED", "NO_PERM", "INVAL", "FAIL_LOAD_SYMBOL",
              "SETTING_UNAVAILABLE")
# A device call saying this means the GPU itself is gone.
_LOST = ("NOT_FOUND", "DRIVER_NOT_LOADED")
_INIT_MESSAGES = {
    "DRIVER_NOT_LOADED": "amdsmi_init: amdgpu driver not loaded",
    "NO_PERM": "amdsmi_init: no permission to open the AMD GPUs (add the user to the render "
               "and video groups)",
    "FAIL_LOAD_MODULE": "amdsmi_init could not load a library it needs (install ROCm's "
                        "amd-smi-lib)",
}
# Integers amdsmi 6.x returns for "no value" (7.x turns them into "N/A"); 16-bit fields use
# 0xFFFF, which callers exclude with a limit (an activity over 100 %, a power of 65535 W).
_SENTINELS = frozenset({0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF})
_U16_NA = 0xFFFE
_MIB = 1024 * 1024
_THROTTLE_FLAGS = (("active_ppt_pwr", 0x1), ("active_socket_thrm", 0x4),
                   ("active_vr_thrm", 0x4), ("active_hbm_thrm", 0x4),
                   ("active_prochot_thrm", 0x4))


def amdgpu_loaded() -> bool:
    """The amdgpu kernel driver is loaded and initialised (no library needed)."""
    try:
        return host_path("/sys/module/amdgpu/initstate").read_text().strip() == "live"
    except OSError:
        return False


class _SmiUnusable(Exception):
    """amdsmi cannot be used here; the message says why (shown in ``info()["amdsmi"]``)."""


def _import_amdsmi() -> ModuleType:
    # The real wrapper prints to stdout when libamd_smi.so is missing; keep that out of
    # machine-readable output (`snapshot --json`). Imported here, not at module level, so a
    # machine without amdgpu never loads it and tests can put a fake in sys.modules first.
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            import amdsmi
    except ModuleNotFoundError as exc:
        if exc.name == "amdsmi":
            raise _SmiUnusable(f"not installed: {INSTALL_HINT}") from None
        raise _SmiUnusable(f"not importable ({exc}); {INSTALL_HINT}") from None
    except Exception as exc:  # KeyError('libamd_smi.so') when the native library is absent
        said = " ".join(printed.getvalue().split())
        raise _SmiUnusable(
            f"cannot load its native library ({type(exc).__name__}: {exc}"
            f"{'; ' + said if said else ''}); install ROCm's amd-smi-lib") from None
    return amdsmi


def _num(value: Any, limit: float | None = None) -> float | None:
    """A reading as a float, or None for "N/A", the all-ones sentinels, bools and values
    above ``limit`` (an activity over 100 % is the library's "no value")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value in _SENTINELS or value < 0 or (limit is not None and value > limit):
        return None
    return float(value)


def _text(value: Any) -> str | None:
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    if not isinstance(text, str):
        return None
    text = text.strip()
    return text if text and text != "N/A" else None


def _missing(fname: str) -> Callable[..., Any]:
    def call(*_args: Any, **_kwargs: Any) -> Any:
        raise AttributeError(f"this amdsmi has no {fname}")
    return call


class _Never(Exception):
    """Stands for an exception class the module does not define (matches nothing)."""


class _Smi:
    """The amdsmi library, initialised once per backend."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        wrapper = getattr(module, "amdsmi_wrapper", None)
        self.codes = {name: int(getattr(wrapper, f"AMDSMI_STATUS_{name}", code))
                      for name, code in _STATUS.items()}
        self.permanent_codes = {self.codes[n] for n in _PERMANENT}
        self.lost_codes = {self.codes[n] for n in _LOST}
        self.lib_error: type[BaseException] = getattr(module, "AmdSmiLibraryException", _Never)
        self.enums = _Enums.of(module)
        self._init()
        try:
            self.handles = list(module.amdsmi_get_processor_handles())
        except Exception as exc:
            self.shut_down()
            raise _SmiUnusable(f"amdsmi_get_processor_handles failed: {self.words(exc)}"
                               ) from None
        if not self.handles:
            self.shut_down()
            raise _SmiUnusable("amdsmi found no AMD GPU")

    def _init(self) -> None:
        flags = getattr(self.module, "AmdSmiInitFlags", None)
        try:
            self.module.amdsmi_init(flags.INIT_AMD_GPUS if flags is not None else 2)
        except self.lib_error as exc:
            code = self.code(exc)
            for name, message in _INIT_MESSAGES.items():
                if code == self.codes[name]:
                    raise _SmiUnusable(message) from None
            raise _SmiUnusable(f"amdsmi_init failed: {self.words(exc)}") from None
        except Exception as exc:  # a broken library can fail inside ctypes
            raise _SmiUnusable(f"amdsmi_init failed: {type(exc).__name__}: {exc}") from None

    def code(self, exc: BaseException) -> int | None:
        getter = getattr(exc, "get_error_code", None)
        code = getter() if callable(getter) else getattr(exc, "err_code", None)
        return int(code) if isinstance(code, int) else None

    def words(self, exc: BaseException) -> str:
        """One line for an amdsmi error (their str() spans two lines)."""
        info = getattr(exc, "get_error_info", None)
        text = info() if callable(info) else str(exc)
        return " ".join(str(text).split()) or type(exc).__name__

    def is_permanent(self, exc: BaseException) -> bool:
        if isinstance(exc, self.lib_error):
            return self.code(exc) in self.permanent_codes
        # Parameter errors, a function this binding lacks, a binding/library mismatch
        # (TypeError, ctypes errors): asking again would fail the same way.
        return True

    def call(self, guard: FieldGuard, key: str, fname: str, *args: Any,
             can_lose: bool = True) -> Any:
        """One amdsmi call for one field; None when there is no value. Raises
        :class:`DeviceLost` when the library says the GPU is gone (and ``can_lose``)."""
        fn = getattr(self.module, fname, None) or _missing(fname)
        try:
            return guard.call(key, fn, *args)
        except self.lib_error as exc:
            if can_lose and self.code(exc) in self.lost_codes:
                raise DeviceLost(fname, self.words(exc)) from exc
            log.debug("amd: %s: %s (asking again later)", key, self.words(exc))
            return None

    def system_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        m = self.module
        with contextlib.suppress(Exception):  # a missing fact is absent, never fatal
            version = _text(m.amdsmi_get_gpu_driver_info(self.handles[0]).get("driver_version"))
            if version:
                facts["driver_version"] = version
        with contextlib.suppress(Exception):
            ok, text = m.amdsmi_get_rocm_version()
            if ok and _text(text):
                facts["rocm_version"] = _text(text)
        with contextlib.suppress(Exception):
            lib = m.amdsmi_get_lib_version()
            facts["amdsmi_version"] = ".".join(
                str(lib[k]) for k in ("major", "minor", "release") if k in lib)
        return facts

    def shut_down(self) -> None:
        try:
            self.module.amdsmi_shut_down()
        except Exception as exc:  # shutting down must not fail the caller
            log.debug("amd: amdsmi_shut_down: %s", exc)


@dataclass(frozen=True)
class _Enums:
    """The amdsmi enum members the backend passes (the binding checks their types)."""

    edge: Any
    hotspot: Any
    vram: Any
    current: Any
    critical: Any
    gfx: Any
    mem: Any

    @classmethod
    def of(cls, m: ModuleType) -> _Enums:
        temp = getattr(m, "AmdSmiTemperatureType", None)
        metric = getattr(m, "AmdSmiTemperatureMetric", None)
        clk = getattr(m, "AmdSmiClkType", None)
        # amdsmi_wrapper values as fallback: EDGE 0, HOTSPOT 1, VRAM 2; CURRENT 0, CRITICAL 5;
        # GFX 0, MEM 4. The real binding rejects plain ints; a field then just stays off.
        return cls(getattr(temp, "EDGE", 0), getattr(temp, "HOTSPOT", 1),
                   getattr(temp, "VRAM", 2), getattr(metric, "CURRENT", 0),
                   getattr(metric, "CRITICAL", 5), getattr(clk, "GFX", 0),
                   getattr(clk, "MEM", 4))


class _SmiGpu:
    """One GPU read through amdsmi."""

    def __init__(self, smi: _Smi, handle: Any) -> None:
        self._smi = smi
        self.handle = handle
        self._fan_max: float | None = None
        self._ident: dict[str, Any] | None = None

    def _call(self, guard: FieldGuard, key: str, fname: str, *args: Any,
              can_lose: bool = True) -> Any:
        return self._smi.call(guard, key, fname, self.handle, *args, can_lose=can_lose)

    # -- once ----------------------------------------------------------------------------------
    def identity(self, guard: FieldGuard) -> dict[str, Any]:
        """Name, UUIDs, serials and PCI address (read once, cached)."""
        if self._ident is None:
            self._ident = self._read_identity(guard)
        return dict(self._ident)

    def _read_identity(self, guard: FieldGuard) -> dict[str, Any]:
        call = self._call
        facts: dict[str, Any] = {}
        asic = call(guard, "asic", "amdsmi_get_gpu_asic_info") or {}
        board = call(guard, "board", "amdsmi_get_gpu_board_info") or {}
        facts["name"] = (_text(asic.get("market_name")) or _text(board.get("product_name"))
                         or "AMD GPU")
        serial = _text(asic.get("asic_serial"))
        if serial:
            facts["serial"] = serial
        if _text(board.get("product_serial")):
            facts["board_serial"] = _text(board.get("product_serial"))
        if _text(asic.get("target_graphics_version")):
            facts["gfx_version"] = _text(asic.get("target_graphics_version"))
        bdf = _text(call(guard, "bdf", "amdsmi_get_gpu_device_bdf"))
        if bdf:
            facts["pci_bus_id"] = bdf
        enum = call(guard, "enumeration", "amdsmi_get_gpu_enumeration_info") or {}
        # The ROCm runtime's name for the GPU ("GPU-" + unique id), which HIP_VISIBLE_DEVICES
        # accepts; derived from the ASIC serial where the binding has no enumeration info.
        hip = _text(enum.get("hip_uuid")) or (
            "GPU-" + serial.lower().removeprefix("0x") if serial else None)
        if hip:
            facts["hip_uuid"] = hip
        uuid = _text(call(guard, "uuid", "amdsmi_get_gpu_device_uuid"))
        if uuid or hip:
            facts["uuid"] = uuid or hip
        return facts

    def open(self, guard: FieldGuard) -> dict[str, Any]:
        """Static facts: memory size, power cap, slowdown temperature, fan range."""
        call, k = self._call, self._smi.enums
        facts: dict[str, Any] = {}
        vram = call(guard, "vram", "amdsmi_get_gpu_vram_usage") or {}
        total = _num(vram.get("vram_total"))
        if total:
            facts["mem_total_bytes"] = int(total * _MIB)
        cap = _num((call(guard, "power_cap", "amdsmi_get_power_cap_info") or {}).get("power_cap"))
        if cap:
            facts["power_limit_w"] = cap / 1_000_000  # µW
        crit = _num(call(guard, "temp_slowdown", "amdsmi_get_temp_metric", k.edge, k.critical),
                    limit=1000)
        if crit:
            facts["temp_slowdown_c"] = crit
        fan_max = _num(call(guard, "fan_max", "amdsmi_get_gpu_fan_speed_max", 0))
        if fan_max:
            self._fan_max = fan_max
        return facts

    # -- every tick ----------------------------------------------------------------------------
    def fast(self, guard: FieldGuard) -> dict[str, float]:
        """Activity, memory, power, temperatures, clocks, fan: each a small sysfs or
        gpu_metrics read inside the library (not timed on real AMD hardware yet)."""
        g: dict[str, float] = {}
        self._activity(guard, g)
        self._memory(guard, g)
        self._power(guard, g)
        self._temperatures(guard, g)
        self._clocks(guard, g)
        self._fan(guard, g)
        return g

    def _activity(self, guard: FieldGuard, g: dict[str, float]) -> None:
        act = self._call(guard, "activity", "amdsmi_get_gpu_activity") or {}
        for key, suffix in (("gfx_activity", "util_pct"), ("umc_activity", "mem_util_pct"),
                            ("mm_activity", "mm_util_pct")):
            _put(g, suffix, _num(act.get(key), limit=100))

    def _memory(self, guard: FieldGuard, g: dict[str, float]) -> None:
        vram = self._call(guard, "vram", "amdsmi_get_gpu_vram_usage") or {}
        used, total = _num(vram.get("vram_used")), _num(vram.get("vram_total"))
        if used is not None:
            g["mem_used_bytes"] = used * _MIB
        if total:
            g["mem_total_bytes"] = total * _MIB
            if used is not None:
                g["mem_pct"] = used / total * 100.0

    def _power(self, guard: FieldGuard, g: dict[str, float]) -> None:
        power = self._call(guard, "power", "amdsmi_get_power_info") or {}
        for key in ("socket_power", "current_socket_power", "average_socket_power"):
            value = _num(power.get(key), limit=_U16_NA)
            if value is not None:
                g["power_w"] = value
                break
        limit = _num(power.get("power_limit"), limit=_U16_NA)
        if limit:
            g["power_limit_w"] = limit

    def _temperatures(self, guard: FieldGuard, g: dict[str, float]) -> None:
        k = self._smi.enums
        for key, sensor, suffix in (("temp.edge", k.edge, "temp_c"),
                                    ("temp.hotspot", k.hotspot, "junction_temp_c"),
                                    ("temp.vram", k.vram, "mem_temp_c")):
            value = self._call(guard, key, "amdsmi_get_temp_metric", sensor, k.current)
            _put(g, suffix, _num(value, limit=1000))

    def _clocks(self, guard: FieldGuard, g: dict[str, float]) -> None:
        k = self._smi.enums
        for key, clock, suffix in (("clock.gfx", k.gfx, "sm_clock_mhz"),
                                   ("clock.mem", k.mem, "mem_clock_mhz")):
            info = self._call(guard, key, "amdsmi_get_clock_info", clock) or {}
            value = info.get("clk", info.get("cur_clk"))  # 7.x / 6.x
            _put(g, suffix, _num(value, limit=_U16_NA))

    def _fan(self, guard: FieldGuard, g: dict[str, float]) -> None:
        if not self._fan_max:
            return
        speed = _num(self._call(guard, "fan", "amdsmi_get_gpu_fan_speed", 0))
        if speed is not None:
            g["fan_pct"] = speed / self._fan_max * 100.0

    # -- slow path -----------------------------------------------------------------------------
    def slow(self, guard: FieldGuard) -> dict[str, float]:
        """Processes, ECC, energy, PCIe bandwidth, throttle status."""
        g: dict[str, float] = {}
        self._processes(guard, g)
        ecc = self._call(guard, "ecc", "amdsmi_get_gpu_total_ecc_count") or {}
        _put(g, "ecc_corrected_errors", _num(ecc.get("correctable_count")))
        _put(g, "ecc_uncorrected_errors", _num(ecc.get("uncorrectable_count")))
        energy = self._call(guard, "energy", "amdsmi_get_energy_count") or {}
        count = _num(energy.get("energy_accumulator", energy.get("power")))
        resolution = _num(energy.get("counter_resolution"))
        if count is not None and resolution:
            g["energy_j"] = count * resolution / 1_000_000  # µJ
        pcie = self._call(guard, "pcie", "amdsmi_get_pcie_info") or {}
        bandwidth = _num((pcie.get("pcie_metric") or {}).get("pcie_bandwidth"))
        if bandwidth is not None:
            g["pcie_bytes_per_s"] = bandwidth * 1_000_000 / 8  # Mb/s
        _put(g, "throttle_reasons", self._throttle(guard))
        return g

    def _processes(self, guard: FieldGuard, g: dict[str, float]) -> None:
        # A process list error never means the GPU is lost: processes come and go.
        procs = self._call(guard, "procs", "amdsmi_get_gpu_process_list", can_lose=False)
        if procs is None:
            return
        per_pid: dict[int, float] = {}
        for proc in procs:
            info = proc if isinstance(proc, dict) else self._process_info(proc)
            if not isinstance(info, dict) or not isinstance(info.get("pid"), int):
                continue
            usage = info.get("memory_usage") or {}
            vram = _num(usage.get("vram_mem"))
            if vram is None:
                vram = _num(info.get("mem"))
            if vram is not None:
                per_pid[info["pid"]] = per_pid.get(info["pid"], 0.0) + vram
        g["procs"] = float(len(procs))
        for pid, used in per_pid.items():
            g[f"proc.{pid}.mem_used_bytes"] = used

    def _process_info(self, proc: Any) -> Any:
        # amdsmi 6.x lists handles; a process that exited in between has no info: skip it.
        try:
            return self._smi.module.amdsmi_get_gpu_process_info(self.handle, proc)
        except Exception:
            return None

    def _throttle(self, guard: FieldGuard) -> int | None:
        status = self._call(guard, "throttle.violation", "amdsmi_get_violation_status")
        if isinstance(status, dict):
            flags = [(status.get(key), bit) for key, bit in _THROTTLE_FLAGS]
            if any(isinstance(flag, bool) for flag, _ in flags):
                return sum({bit for flag, bit in flags if flag is True})
        if "throttle.metrics" in guard.unsupported:
            return None
        metrics = self._call(guard, "throttle.metrics", "amdsmi_get_gpu_metrics_info") or {}
        mask = metrics.get("indep_throttle_status")
        if isinstance(mask, bool):
            # The binding turned the 64-bit status into a bool: no reason to fold, and the
            # whole metrics table is costly to build; stop asking.
            guard.unsupported["throttle.metrics"] = "binding reports a bool"
            return None
        value = _num(mask)
        return None if value is None else fold_amd_throttle(int(value))


def _put(g: dict[str, float], name: str, value: float | None) -> None:
    """Store a value unless there is none: absent, never zero."""
    if value is not None:
        g[name] = float(value)


@dataclass
class _Device:
    index: int
    reader: Any  # _SmiGpu or SysfsCard
    guard: FieldGuard
    facts: dict[str, Any] = field(default_factory=dict)
    lost: bool = False

    @property
    def prefix(self) -> str:
        return f"gpu.{self.index}."


class AmdBackend(AcceleratorBackend):
    """AMD GPUs through amdsmi, or the amdgpu sysfs files when amdsmi cannot be used.
    Create with :meth:`open` (the constructor takes an ``amdsmi`` module, e.g. a fake)."""

    name = "amd"
    vendor = "amd"
    kind = "gpu"
    slow_interval = 5.0

    def __init__(self, selection: Selection | Sequence[str] | str | None = None, *,
                 first_index: int = 0, amdsmi: ModuleType | None = None) -> None:
        """Start amdsmi (else sysfs) and open the selected GPUs. Raises
        :class:`AcceleratorUnavailable` (with ``found``) when none is left."""
        self._first = first_index
        self._lock = threading.Lock()
        self._closed = False
        self._losses = DeviceLosses(self)
        self._devices: list[_Device] = []
        self._readers: list[Any] = []
        self._smi: _Smi | None = None
        self._system: dict[str, Any] = {"vendor": self.vendor, "kind": self.kind}
        try:
            self._readers = self._start(amdsmi)
            self.found = len(self._readers)
            self._setup(Selection.parse(selection))
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, selection: Selection | Sequence[str] | str | None = None,
             first_index: int = 0, *, amdsmi: ModuleType | None = None) -> AmdBackend:
        """Open the AMD GPUs named by ``selection`` (indices, UUIDs, serials or unique
        prefixes); :class:`NoDevices` when the amdgpu driver is not loaded."""
        if not amdgpu_loaded():
            raise NoDevices("amdgpu driver not loaded")
        return cls(selection, first_index=first_index, amdsmi=amdsmi)

    # -- opening -------------------------------------------------------------------------------
    def _start(self, amdsmi: ModuleType | None) -> list[Any]:
        """One unopened reader per AMD GPU present: amdsmi's, else sysfs cards."""
        try:
            self._smi = _Smi(amdsmi if amdsmi is not None else _import_amdsmi())
        except _SmiUnusable as exc:
            note = str(exc)
            log.info("amd: amdsmi not used (%s); reading the amdgpu sysfs files", note)
        else:
            self._system.update(source="amdsmi", **self._smi.system_facts())
            return [_SmiGpu(self._smi, h) for h in self._smi.handles]
        self._system.update(source="sysfs", amdsmi=note)
        version = read_text(host_path("/sys/module/amdgpu/version"))
        if version:
            self._system["driver_version"] = version
        cards = find_cards(host_path("/sys/class/drm"))
        if not cards:
            raise AcceleratorUnavailable(
                f"amdgpu is loaded but /sys/class/drm has no amdgpu card (amdsmi {note})")
        return [SysfsCard(card) for card in cards]

    def _setup(self, sel: Selection) -> None:
        indices, source = self._chosen(sel)
        if not indices:
            raise AcceleratorUnavailable(f"no AMD GPU selected by {source}", found=self.found)
        self._devices = [self._open_device(i) for i in indices]

    def _new_guard(self, index: int) -> FieldGuard:
        permanent = self._smi.is_permanent if self._smi is not None else sysfs_permanent
        return FieldGuard(f"amd gpu {index}", permanent)

    def _chosen(self, sel: Selection) -> tuple[list[int], str]:
        """The metric indices to monitor, and what chose them."""
        env = {k: os.environ.get(k) for k in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")}
        everything = [self._first + i for i in range(len(self._readers))]
        if sel.everything and not any(v is not None for v in env.values()):
            return everything, "default"
        candidates = [Candidate(self._first + i, self._ids(r))
                      for i, r in enumerate(self._readers)]
        if not sel.everything:
            return sel.pick(self.kind, candidates), f"selection {sel.selectors!r}"
        words = ", ".join(f"{k}={v!r}" for k, v in env.items() if v is not None)
        return _visible(candidates), words

    def _ids(self, reader: Any) -> tuple[str, ...]:
        """What a user may call a GPU: UUIDs (with and without "GPU-"), serials, PCI address."""
        try:
            facts = reader.identity(self._new_guard(-1))
        except DeviceLost:
            return ()
        ids = [str(facts[k]) for k in ("uuid", "hip_uuid", "serial", "board_serial",
                                       "pci_bus_id") if facts.get(k)]
        ids += [i[4:] for i in ids if i.lower().startswith("gpu-")]
        return tuple(dict.fromkeys(ids))

    def _open_device(self, index: int) -> _Device:
        reader = self._readers[index - self._first]
        dev = _Device(index, reader, self._new_guard(index))
        dev.facts = device_facts(self, index)
        dev.facts.pop("state")  # set by info() from dev.lost
        try:
            dev.facts.update(reader.identity(dev.guard))
            dev.facts.update(reader.open(dev.guard))
        except DeviceLost as exc:
            self._mark_lost(dev, exc.call, exc.error)
        return dev

    # -- reading -------------------------------------------------------------------------------
    def read(self) -> Reading:
        """Cheap per-tick values of every live GPU."""
        out = Reading()
        if not self._closed:
            self._each_device(lambda dev: dev.reader.fast(dev.guard), out)
            out.events.extend(self._losses.take())
        return out

    def read_slow(self) -> Reading:
        """Processes, ECC, energy, PCIe and throttle status (amdsmi); presence (sysfs)."""
        out = Reading()
        if not self._closed:
            self._each_device(lambda dev: dev.reader.slow(dev.guard), out)
            out.events.extend(self._losses.take())
        return out

    def _each_device(self, read: Callable[[_Device], dict[str, float]], out: Reading) -> None:
        out.gauges.update(read_devices(
            self._devices, lambda dev: {dev.prefix + k: v for k, v in read(dev).items()},
            self._mark_lost))

    def _mark_lost(self, dev: _Device, call: str, error: Any) -> None:
        """Mark ``dev`` lost and queue one ``gpu_lost`` event (whichever thread saw it)."""
        if self._losses.lose(dev, error, call):
            log.warning("amd: GPU %d lost: %s: %s; other GPUs go on", dev.index, call, error)

    # -- info and closing ----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Source, driver/ROCm/amdsmi versions and one dict per GPU (state ``ok``/``lost``)."""
        out = dict(self._system)
        out["devices"] = [self._device_info(dev) for dev in self._devices]
        return out

    @staticmethod
    def _device_info(dev: _Device) -> dict[str, Any]:
        return device_info(dev.facts, dev.lost, dev.guard)

    def close(self) -> None:
        """Close the sysfs files and shut amdsmi down (once; later calls do nothing)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for reader in self._readers:
            if isinstance(reader, SysfsCard):
                reader.close()
        if self._smi is not None:
            self._smi.shut_down()


def _visible(candidates: list[Candidate]) -> list[int]:
    """The GPUs ``ROCR_VISIBLE_DEVICES`` keeps, then those of them ``HIP_VISIBLE_DEVICES``
    keeps, HIP numbering the ROCR-visible GPUs 0, 1, ... in ROCR's order (as the runtime)."""
    rocr = visible_subset("ROCR_VISIBLE_DEVICES", candidates)
    if rocr is not None:
        order = _listed_order(os.environ.get("ROCR_VISIBLE_DEVICES", ""), candidates, rocr)
        by_index = {c.index: c for c in candidates}
        candidates = [by_index[i] for i in order]
    hip = visible_subset("HIP_VISIBLE_DEVICES", candidates)  # numbers them 0, 1, ... as listed
    return hip if hip is not None else sorted(c.index for c in candidates)


def _listed_order(value: str, candidates: list[Candidate], kept: list[int]) -> list[int]:
    """``kept`` in the order the variable lists them (``"2,0"`` -> GPU 2 first)."""
    first: dict[int, int] = {}
    for pos, sel in enumerate(parse_selection(value) or []):
        if sel.isdigit():
            number = int(sel)
            index = candidates[number].index if number < len(candidates) else None
        else:
            index = match_selector(sel, "", candidates)
        if index is not None and index in kept:
            first.setdefault(index, pos)
    return sorted(kept, key=lambda i: first.get(i, len(first)))
