"""A fake ``amdsmi`` that replays AMD GPUs recorded with AMD's own tools.

:class:`FakeAmdSmi` *is* a module object: put it in ``sys.modules["amdsmi"]`` (the fixtures in
``conftest_amd.py`` do) or pass it as ``AmdBackend(amdsmi=...)``. It has the part of the
amdsmi 7.0.2 Python API the backend uses, with the same function names, arguments, enum values
(``AmdSmiTemperatureType.EDGE`` is 0 ...), returned dict keys, the ``"N/A"`` strings the binding
puts where the library has no value, type checks of arguments (``AmdSmiParameterException``),
and ``AmdSmiLibraryException`` carrying the real AMDSMI_STATUS_* numbers (``amdsmi_wrapper``
below, copied from amdsmi 7.0.2's ``amdsmi_wrapper.py``).

Values come from ``fixtures/amd-mi/`` (its README names the sources), read at load time:

- ``mode="mi250"``: ``rocm-smi -a --json`` of an AMD Instinct MI250 (ROCm 6).
- ``mode="r9700"``: ``amd-smi`` default view, metric and process outputs of two AMD Radeon AI
  PRO R9700 (ROCm 7.2.0).

A call whose values the recording does not hold raises AMDSMI_STATUS_NOT_SUPPORTED, and a value
it does not hold inside a returned dict is ``"N/A"``: nothing here is made up.

Test hooks: ``gpus`` (N devices; beyond the recorded ones, copies with distinct serials and PCI
addresses), :meth:`inject` / :meth:`clear` (an AMDSMI status or exception for one function on
one GPU), :meth:`lose` (every call on a GPU answers AMDSMI_STATUS_NOT_FOUND), :meth:`set_violation`
(MI300-style violation flags, for throttle tests), :meth:`set_metrics` (fields of
``amdsmi_get_gpu_metrics_info``), ``init_error`` (amdsmi_init fails with that status), and call
counters ``calls[name]`` / :meth:`count` so tests can prove what was (not) asked.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "amd-mi"
MODES = ("mi250", "r9700")
NA = "N/A"

# amdsmi_wrapper.py (amdsmi 7.0.2): the status codes.
STATUS: dict[str, int] = {
    "SUCCESS": 0, "INVAL": 1, "NOT_SUPPORTED": 2, "NOT_YET_IMPLEMENTED": 3,
    "FAIL_LOAD_MODULE": 4, "FAIL_LOAD_SYMBOL": 5, "DRM_ERROR": 6, "API_FAILED": 7,
    "TIMEOUT": 8, "RETRY": 9, "NO_PERM": 10, "INTERRUPT": 11, "IO": 12, "ADDRESS_FAULT": 13,
    "FILE_ERROR": 14, "OUT_OF_RESOURCES": 15, "INTERNAL_EXCEPTION": 16,
    "INPUT_OUT_OF_BOUNDS": 17, "INIT_ERROR": 18, "REFCOUNT_OVERFLOW": 19,
    "DIRECTORY_NOT_FOUND": 20, "BUSY": 30, "NOT_FOUND": 31, "NOT_INIT": 32, "NO_SLOT": 33,
    "DRIVER_NOT_LOADED": 34, "MORE_DATA": 39, "NO_DATA": 40, "INSUFFICIENT_SIZE": 41,
    "UNEXPECTED_SIZE": 42, "UNEXPECTED_DATA": 43, "NON_AMD_CPU": 44, "NO_ENERGY_DRV": 45,
    "NO_MSR_DRV": 46, "NO_HSMP_DRV": 47, "NO_HSMP_SUP": 48, "NO_HSMP_MSG_SUP": 49,
    "HSMP_TIMEOUT": 50, "NO_DRV": 51, "FILE_NOT_FOUND": 52, "ARG_PTR_NULL": 53,
    "AMDGPU_RESTART_ERR": 54, "SETTING_UNAVAILABLE": 55, "CORRUPTED_EEPROM": 56,
    "MAP_ERROR": 4294967294, "UNKNOWN_ERROR": 4294967295,
}
# The short texts of amdsmi_exception.py's table (the ones tests meet).
_STATUS_TEXT = {
    1: "Invalid parameters", 2: "Feature not supported", 8: "Timeout in API call",
    9: "Retry operation", 10: "Permission Denied", 12: "I/O Error", 30: "Device busy",
    31: "Device Not found", 32: "Device not initialized", 34: "Driver not loaded",
}
amdsmi_wrapper = types.SimpleNamespace(**{f"AMDSMI_STATUS_{k}": v for k, v in STATUS.items()})


# -- exceptions, shaped like amdsmi_exception.py ----------------------------------------------
class AmdSmiException(Exception):
    """Base smi exception class"""


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        name = next((k for k, v in STATUS.items() if v == err_code), "UNKNOWN_ERROR")
        self.err_info = f"AMDSMI_STATUS_{name} - {_STATUS_TEXT.get(err_code, name.title())}"

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_info(self, detailed: bool = True) -> str:
        return self.err_info if detailed else self.err_info.split(" - ")[0]

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiRetryException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(STATUS["RETRY"])


class AmdSmiTimeoutException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(STATUS["TIMEOUT"])


class AmdSmiParameterException(AmdSmiException):
    def __init__(self, received: Any, expected: Any, msg: str | None = None) -> None:
        super().__init__(msg)
        self.err_code = None
        self.err_msg = msg or (f"Invalid parameter:\nActual type: {type(received)}\n"
                               f"Expected type: {expected}")

    def __str__(self) -> str:
        return self.err_msg


# -- enums, with amdsmi_wrapper's values ----------------------------------------------------
class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1
    INIT_AMD_GPUS = 2
    INIT_AMD_APUS = 3
    INIT_NON_AMD_CPUS = 4
    INIT_NON_AMD_GPUS = 8


class AmdSmiTemperatureType(IntEnum):
    EDGE = 0
    HOTSPOT = 1
    JUNCTION = 1
    VRAM = 2
    HBM_0 = 3
    HBM_1 = 4
    HBM_2 = 5
    HBM_3 = 6
    PLX = 7


class AmdSmiTemperatureMetric(IntEnum):
    CURRENT = 0
    MAX = 1
    MIN = 2
    MAX_HYST = 3
    MIN_HYST = 4
    CRITICAL = 5
    CRITICAL_HYST = 6
    EMERGENCY = 7
    EMERGENCY_HYST = 8
    CRIT_MIN = 9
    CRIT_MIN_HYST = 10
    OFFSET = 11
    LOWEST = 12
    HIGHEST = 13


class AmdSmiClkType(IntEnum):
    SYS = 0
    GFX = 0
    DF = 1
    DCEF = 2
    SOC = 3
    MEM = 4
    PCIE = 5
    VCLK0 = 6
    VCLK1 = 7
    DCLK0 = 8
    DCLK1 = 9


# -- the recordings ---------------------------------------------------------------------------
@dataclass
class Card:
    """What a recording says about one GPU; None: not recorded (the call is NOT_SUPPORTED)."""

    market_name: str = NA
    asic_serial: str = NA
    device_id: str | None = None
    board_serial: str = NA
    product_name: str = NA
    bdf: str | None = None
    activity: dict[str, Any] | None = None
    vram_mib: tuple[int, int] | None = None  # (total, used)
    power: dict[str, Any] | None = None
    power_cap_uw: int | None = None
    temps: dict[AmdSmiTemperatureType, int] = field(default_factory=dict)
    clocks: dict[AmdSmiClkType, dict[str, Any]] = field(default_factory=dict)
    energy: tuple[int, float] | None = None  # (accumulator, resolution µJ)
    fan: tuple[int, int] | None = None  # (speed, max)
    ecc: dict[str, int] | None = None
    processes: list[dict[str, Any]] | None = None


@dataclass
class Recording:
    cards: list[Card]
    driver_version: str | None = None
    rocm_version: str | None = None
    lib_version: dict[str, Any] | None = None


def _mhz(text: str) -> int:
    return int(re.search(r"(\d+)\s*Mhz", text, re.IGNORECASE).group(1))  # type: ignore[union-attr]


def _range(text: str) -> tuple[int, int]:
    low, high = (int(v) for v in re.findall(r"(\d+)\s*Mhz", text, re.IGNORECASE))
    return low, high


@functools.cache
def load_mi250(fixture_dir: Path = FIXTURE_DIR) -> Recording:
    """``rocm_smi_mi250_rocm6.json`` as amdsmi would report it."""
    raw = json.loads((fixture_dir / "rocm_smi_mi250_rocm6.json").read_text())
    rec = raw["card0"]
    sclk_min, sclk_max = _range(rec["Valid sclk range"])
    mclk_min, mclk_max = _range(rec["Valid mclk range"])
    watts = int(float(rec["Average Graphics Package Power (W)"]))
    accumulator = int(rec["Energy counter"])
    card = Card(
        market_name=rec["Device Name"],
        # asic_info formats the unique id as "0x{:016X}" (amdsmi_interface.py).
        asic_serial="0x{:016X}".format(int(rec["Unique ID"], 16)),
        device_id=rec["Device ID"],
        board_serial=rec["Serial Number"],
        product_name=rec["Card Series"],
        bdf=rec["PCI Bus"].lower(),
        activity={"gfx_activity": int(rec["GPU use (%)"]),
                  "umc_activity": int(rec["GPU Memory Read/Write Activity (%)"]),
                  "mm_activity": NA},
        power={"socket_power": watts, "current_socket_power": NA,
               "average_socket_power": watts, "gfx_voltage": int(rec["Voltage (mV)"]),
               "soc_voltage": NA, "mem_voltage": NA,
               "power_limit": int(float(rec["Max Graphics Package Power (W)"]))},
        power_cap_uw=int(float(rec["Max Graphics Package Power (W)"])) * 1_000_000,
        temps={
            AmdSmiTemperatureType.EDGE: int(float(rec["Temperature (Sensor edge) (C)"])),
            AmdSmiTemperatureType.HOTSPOT: int(float(rec["Temperature (Sensor junction) (C)"])),
            AmdSmiTemperatureType.VRAM: int(float(rec["Temperature (Sensor memory) (C)"])),
            **{getattr(AmdSmiTemperatureType, f"HBM_{n}"):
               int(float(rec[f"Temperature (Sensor HBM {n}) (C)"])) for n in range(4)},
        },
        clocks={
            AmdSmiClkType.GFX: {"clk": _mhz(rec["sclk clock speed:"]), "min_clk": sclk_min,
                                "max_clk": sclk_max, "clk_locked": NA, "clk_deep_sleep": NA},
            AmdSmiClkType.MEM: {"clk": _mhz(rec["mclk clock speed:"]), "min_clk": mclk_min,
                                "max_clk": mclk_max, "clk_locked": NA, "clk_deep_sleep": NA},
        },
        # rocm-smi prints the raw counter and the µJ it makes; their ratio is the resolution.
        energy=(accumulator, float(rec["Accumulated Energy (uJ)"]) / accumulator),
    )
    return Recording([card], driver_version=raw["system"]["Driver version"])


_ROW1 = re.compile(r"\|\s*([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.\d)\s+(.*?)\s*\|\s*(\d+) %"
                   r"\s+\d+ °C\s+(\d+)\s+(\d+)/(\d+) W\s*\|")
_ROW2 = re.compile(r"\|\s*(\d+)\s+\d+\s+\S+\s+\S+\s*\|\s*(\d+) %\s+([\d.]+)(?: %)?"
                   r"\s+(\d+)/(\d+) MB\s*\|")


@functools.cache
def load_r9700(fixture_dir: Path = FIXTURE_DIR) -> Recording:
    """The ``r9700_amd_smi_*`` files as amdsmi would report them."""
    table = (fixture_dir / "r9700_amd_smi_default.txt").read_text()
    head = (fixture_dir / "r9700_amd_smi_metric_head.txt").read_text()
    processes = json.loads((fixture_dir / "r9700_amd_smi_process.json").read_text())
    acts = {key: [int(v) for v in re.findall(rf'"{key}": {{\s*"value": (\d+)', head)]
            for key in ("gfx_activity", "umc_activity", "mm_activity")}
    cards = []
    for n, (row1, row2) in enumerate(zip(_ROW1.findall(table), _ROW2.findall(table),
                                         strict=True)):
        bdf, _name, _mem_util, uec, watts, cap = row1
        _gpu, _gfx, fan_pct, used, total = row2
        cards.append(Card(
            # The table cuts the name ("...Radeon AI PRO R9700"); rocminfo in the same issue
            # prints the model's full marketing name.
            market_name="AMD Radeon AI PRO R9700",
            bdf=bdf,
            activity={key: values[n] for key, values in acts.items()},
            vram_mib=(int(total), int(used)),
            power={"socket_power": int(watts), "current_socket_power": NA,
                   "average_socket_power": int(watts), "gfx_voltage": NA, "soc_voltage": NA,
                   "mem_voltage": NA, "power_limit": int(cap)},
            power_cap_uw=int(cap) * 1_000_000,
            # amd-smi prints fan speed as a share of 255 (AMDSMI_MAX_FAN_SPEED).
            fan=(round(float(fan_pct) / 100 * 255), 255),
            ecc={"uncorrectable_count": int(uec)},
            processes=[_proc_info(p["process_info"]) for p in processes[n]["process_list"]],
        ))
    versions = re.search(r"AMD-SMI (\d+)\.(\d+)\.(\d+)\+(\S+)\s+amdgpu version: (\S+)\s+"
                         r"ROCm version: (\S+)", table)
    assert versions is not None, "r9700_amd_smi_default.txt lost its header"
    major, minor, release, build, driver, rocm = versions.groups()
    return Recording(cards, driver_version=driver, rocm_version=rocm,
                     lib_version={"major": int(major), "minor": int(minor),
                                  "release": int(release), "build": build})


def _proc_info(p: dict[str, Any]) -> dict[str, Any]:
    """amd-smi's process JSON entry as ``amdsmi_get_gpu_process_list`` returns it."""
    usage = p["memory_usage"]
    return {
        "name": p["name"], "pid": p["pid"], "mem": p["mem_usage"]["value"],
        "engine_usage": {k: p["usage"][k]["value"] for k in ("gfx", "enc")},
        "memory_usage": {k: usage[k]["value"] for k in ("gtt_mem", "cpu_mem", "vram_mem")},
        "cu_occupancy": p["cu_occupancy"],
    }


def load(mode: str, fixture_dir: Path = FIXTURE_DIR) -> Recording:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return load_mi250(fixture_dir) if mode == "mi250" else load_r9700(fixture_dir)


@dataclass(frozen=True)
class FakeHandle:
    """A processor handle: GPU ``gpu`` of the fake."""

    gpu: int


_NO_INIT_NEEDED = frozenset({"amdsmi_init", "amdsmi_get_lib_version", "amdsmi_get_rocm_version"})


class FakeAmdSmi(types.ModuleType):
    """An amdsmi module replaying recorded AMD GPUs (see the module docstring)."""

    IS_FAKE = True
    amdsmi_wrapper = amdsmi_wrapper
    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiRetryException = AmdSmiRetryException
    AmdSmiTimeoutException = AmdSmiTimeoutException
    AmdSmiParameterException = AmdSmiParameterException
    AmdSmiInitFlags = AmdSmiInitFlags
    AmdSmiTemperatureType = AmdSmiTemperatureType
    AmdSmiTemperatureMetric = AmdSmiTemperatureMetric
    AmdSmiClkType = AmdSmiClkType

    def __init__(self, gpus: int = 1, mode: str = "mi250", *, init_error: int | str | None = None,
                 fixture_dir: Path = FIXTURE_DIR) -> None:
        super().__init__("amdsmi", f"Fake amdsmi replaying recorded AMD GPUs ({mode})")
        self.mode = mode
        self._rec = load(mode, fixture_dir)
        self._gpu_count = gpus
        self._init_error = STATUS[init_error] if isinstance(init_error, str) else init_error
        self._refs = 0
        self._errors: dict[tuple[str, int | None], list[Any]] = {}
        self._lost: set[int] = set()
        self._violation: dict[int, dict[str, Any]] = {}
        self._metrics: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.gpu_calls: Counter[tuple[str, int]] = Counter()
        self._install()

    # -- test hooks -----------------------------------------------------------------------------
    def inject(self, fn: str, gpu: int | None = None,
               error: int | str | BaseException | None = None, times: int | None = None) -> None:
        """Make ``fn`` fail with ``error`` (an AMDSMI status number or name, default
        NOT_SUPPORTED, or an exception) on ``gpu`` (None: every GPU), ``times`` times or until
        cleared."""
        code = STATUS["NOT_SUPPORTED"] if error is None else error
        if isinstance(code, str):
            code = STATUS[code]
        with self._lock:
            self._errors[(fn, gpu)] = [code, times]

    def clear(self) -> None:
        """Remove injected errors and lost GPUs."""
        with self._lock:
            self._errors.clear()
            self._lost.clear()

    def lose(self, gpu: int) -> None:
        """GPU ``gpu`` falls off the bus: every call on it answers AMDSMI_STATUS_NOT_FOUND."""
        with self._lock:
            self._lost.add(gpu)

    def set_violation(self, gpu: int, **active: bool) -> None:
        """``amdsmi_get_violation_status`` of ``gpu`` answers as an MI300 does, with these
        ``active_*`` flags set (the others False); its counters are "N/A" here."""
        self._violation[gpu] = dict(active)

    def set_metrics(self, gpu: int, **fields: Any) -> None:
        """``amdsmi_get_gpu_metrics_info`` of ``gpu`` answers with these fields."""
        self._metrics[gpu] = dict(fields)

    def set_gpu_count(self, gpus: int) -> None:
        self._gpu_count = gpus

    def remove(self, fn: str) -> None:
        """Drop ``fn``, like an older amdsmi that lacks it."""
        if fn in self.__dict__:
            delattr(self, fn)

    def count(self, fn: str, gpu: int | None = None) -> int:
        """Calls of ``fn`` so far (on one GPU when ``gpu`` is given)."""
        return self.calls[fn] if gpu is None else self.gpu_calls[(fn, gpu)]

    def reset_counts(self) -> None:
        self.calls.clear()
        self.gpu_calls.clear()

    @property
    def initialized(self) -> bool:
        return self._refs > 0

    # -- identity of GPUs beyond the recorded ones ------------------------------------------------
    def card(self, gpu: int) -> Card:
        """The recorded card ``gpu``; past the recorded ones, a copy of the last with its own
        serials and PCI address (the top 32 bits of the unique id and the bus number move)."""
        cards = self._rec.cards
        if gpu < len(cards):
            return cards[gpu]
        base, step = cards[-1], gpu - len(cards) + 1
        serial = base.asic_serial
        if serial != NA:
            head = (int(serial[2:10], 16) + step * 0x11111111) & 0xFFFFFFFF
            serial = f"0x{head:08X}{serial[10:]}"
        board = base.board_serial if base.board_serial == NA else f"{base.board_serial}-{step}"
        bdf = base.bdf
        if bdf is not None:
            domain, bus, rest = bdf.split(":")
            bdf = f"{domain}:{(int(bus, 16) + step) % 256:02x}:{rest}"
        return Card(**{**base.__dict__, "asic_serial": serial, "board_serial": board,
                       "bdf": bdf})

    # -- plumbing ---------------------------------------------------------------------------------
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

        call.__name__ = call.__qualname__ = name
        return call

    @staticmethod
    def _raise(code: int | str) -> None:
        raise AmdSmiLibraryException(STATUS[code] if isinstance(code, str) else code)

    def _check(self, name: str, handle: FakeHandle | None) -> None:
        if name not in _NO_INIT_NEEDED and not self._refs:
            self._raise("NOT_INIT")
        gpu = handle.gpu if handle is not None else None
        self._injected(name, gpu)
        if gpu is not None and (gpu in self._lost or gpu >= self._gpu_count):
            self._raise("NOT_FOUND")

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

    def _value(self, value: Any) -> Any:
        if value is None:
            self._raise("NOT_SUPPORTED")
        return value

    @staticmethod
    def _handle(h: Any) -> FakeHandle:
        if not isinstance(h, FakeHandle):
            raise AmdSmiParameterException(h, FakeHandle)
        return h

    # -- the API ----------------------------------------------------------------------------------
    def _api_amdsmi_init(self, flag: Any = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiParameterException(flag, AmdSmiInitFlags)
        if self._init_error is not None:
            self._raise(self._init_error)
        self._refs += 1

    def _api_amdsmi_shut_down(self) -> None:
        self._refs -= 1

    def _api_amdsmi_get_processor_handles(self) -> list[FakeHandle]:
        return [FakeHandle(n) for n in range(self._gpu_count)]

    def _api_amdsmi_get_lib_version(self) -> dict[str, Any]:
        return dict(self._value(self._rec.lib_version))

    def _api_amdsmi_get_rocm_version(self) -> tuple[bool, str]:
        # What the real function answers where it cannot find librocm-core.so.
        if self._rec.rocm_version is None:
            return False, "Could not find librocm-core.so"
        return True, self._rec.rocm_version

    def _api_amdsmi_get_gpu_driver_info(self, h: Any) -> dict[str, str]:
        self._handle(h)
        return {"driver_name": "amdgpu", "driver_version": self._value(self._rec.driver_version),
                "driver_date": NA}

    def _api_amdsmi_get_gpu_asic_info(self, h: Any) -> dict[str, Any]:
        c = self.card(self._handle(h).gpu)
        return {"market_name": c.market_name, "vendor_id": "0x1002", "vendor_name": NA,
                "subvendor_id": NA, "device_id": c.device_id or NA, "rev_id": NA,
                "asic_serial": c.asic_serial, "oam_id": NA, "num_compute_units": NA,
                "target_graphics_version": NA, "subsystem_id": NA}

    def _api_amdsmi_get_gpu_board_info(self, h: Any) -> dict[str, str]:
        c = self.card(self._handle(h).gpu)
        return {"model_number": NA, "product_serial": c.board_serial, "fru_id": NA,
                "product_name": c.product_name, "manufacturer_name": NA}

    def _api_amdsmi_get_gpu_device_uuid(self, h: Any) -> str:
        self._handle(h)
        return self._value(None)  # no recording holds amdsmi's UUID

    def _api_amdsmi_get_gpu_enumeration_info(self, h: Any) -> dict[str, Any]:
        self._handle(h)
        return self._value(None)

    def _api_amdsmi_get_gpu_device_bdf(self, h: Any) -> str:
        return self._value(self.card(self._handle(h).gpu).bdf)

    def _api_amdsmi_get_gpu_bdf_id(self, h: Any) -> int:
        domain, bus, rest = self._value(self.card(self._handle(h).gpu).bdf).split(":")
        device, function = rest.split(".")
        return (int(domain, 16) << 32) | (int(bus, 16) << 8) | (int(device, 16) << 3) | int(
            function, 16)

    def _api_amdsmi_get_gpu_activity(self, h: Any) -> dict[str, Any]:
        return dict(self._value(self.card(self._handle(h).gpu).activity))

    def _api_amdsmi_get_gpu_vram_usage(self, h: Any) -> dict[str, int]:
        total, used = self._value(self.card(self._handle(h).gpu).vram_mib)
        return {"vram_total": total, "vram_used": used}

    def _api_amdsmi_get_power_info(self, h: Any) -> dict[str, Any]:
        return dict(self._value(self.card(self._handle(h).gpu).power))

    def _api_amdsmi_get_power_cap_info(self, h: Any) -> dict[str, Any]:
        cap = self._value(self.card(self._handle(h).gpu).power_cap_uw)
        # Only the current cap was recorded; the binding returns the others as raw integers.
        return {"power_cap": cap}

    def _api_amdsmi_get_temp_metric(self, h: Any, sensor: Any, metric: Any) -> int:
        c = self.card(self._handle(h).gpu)
        if not isinstance(sensor, AmdSmiTemperatureType):
            raise AmdSmiParameterException(sensor, AmdSmiTemperatureType)
        if not isinstance(metric, AmdSmiTemperatureMetric):
            raise AmdSmiParameterException(metric, AmdSmiTemperatureMetric)
        if metric != AmdSmiTemperatureMetric.CURRENT:
            self._raise("NOT_SUPPORTED")  # no limits were recorded
        return self._value(c.temps.get(sensor))

    def _api_amdsmi_get_clock_info(self, h: Any, clock: Any) -> dict[str, Any]:
        c = self.card(self._handle(h).gpu)
        if not isinstance(clock, AmdSmiClkType):
            raise AmdSmiParameterException(clock, AmdSmiClkType)
        return dict(self._value(c.clocks.get(clock)))

    def _api_amdsmi_get_gpu_fan_speed(self, h: Any, sensor: int) -> int:
        return self._value(self.card(self._handle(h).gpu).fan)[0]

    def _api_amdsmi_get_gpu_fan_speed_max(self, h: Any, sensor: int) -> int:
        return self._value(self.card(self._handle(h).gpu).fan)[1]

    def _api_amdsmi_get_energy_count(self, h: Any) -> dict[str, Any]:
        accumulator, resolution = self._value(self.card(self._handle(h).gpu).energy)
        # No timestamp was recorded; the real dict also holds 'timestamp'.
        return {"energy_accumulator": accumulator, "counter_resolution": resolution}

    def _api_amdsmi_get_gpu_total_ecc_count(self, h: Any) -> dict[str, int]:
        # Only the counts the recording shows (R9700: uncorrectable); the real dict has all three.
        return dict(self._value(self.card(self._handle(h).gpu).ecc))

    def _api_amdsmi_get_pcie_info(self, h: Any) -> dict[str, Any]:
        self._handle(h)
        return self._value(None)

    def _api_amdsmi_get_gpu_process_list(self, h: Any) -> list[dict[str, Any]]:
        procs = self._value(self.card(self._handle(h).gpu).processes)
        return [json.loads(json.dumps(p)) for p in procs]  # callers may not alter the recording

    def _api_amdsmi_get_violation_status(self, h: Any) -> dict[str, Any]:
        flags = self._value(self._violation.get(self._handle(h).gpu))
        names = ("prochot_thrm", "ppt_pwr", "socket_thrm", "vr_thrm", "hbm_thrm",
                 "gfx_clk_below_host_limit")
        return {f"active_{n}": bool(flags.get(f"active_{n}", False)) for n in names}

    def _api_amdsmi_get_gpu_metrics_info(self, h: Any) -> dict[str, Any]:
        return dict(self._value(self._metrics.get(self._handle(h).gpu)))


def fake_from_env(env: dict[str, str] | Any) -> FakeAmdSmi:
    """The fake configured by ``TRACKLAB_FAKE_AMD_*`` variables (see ``shim/amdsmi.py``)."""
    return FakeAmdSmi(
        gpus=int(env.get("TRACKLAB_FAKE_AMD_GPUS", "1")),
        mode=env.get("TRACKLAB_FAKE_AMD_MODE", "mi250"),
        init_error=env.get("TRACKLAB_FAKE_AMD_INIT_ERROR") or None,
    )


def shim_env(gpus: int = 1, mode: str = "mi250") -> dict[str, str]:
    """Environment variables for a subprocess that should see fake AMD GPUs (add
    ``tests/shim`` to its ``PYTHONPATH`` too): the fake's settings, and the recorded sysfs
    tree as host root, whose ``sys/module/amdgpu/initstate`` says the driver is live."""
    root = Path(__file__).resolve().parent / "fixtures" / "amdgpu-sysfs"
    return {"TRACKLAB_FAKE_AMD_GPUS": str(gpus), "TRACKLAB_FAKE_AMD_MODE": mode,
            "TRACKLAB_HOST_ROOT": str(root)}
