"""A ctypes binding of the part of Huawei's DCMI library (``libdcmi.so``, shipped with the
Ascend driver) that the Ascend backend reads.

The C API, as declared in ``dcmi_interface_api.h`` (Ascend/mind-cluster,
``component/ascend-common/devmanager/dcmi/dcmi_interface_api.h`` at ec1f2f66; the same
prototypes in Ray's ``pynpudcmi``, ray-project/ray PR #56755). Every call returns 0 or a
negative error code::

    int dcmi_init(void);
    int dcmi_get_driver_version(char *driver_ver, unsigned int len);
    int dcmi_get_card_list(int *card_num, int *card_list, int list_len);
    int dcmi_get_device_id_in_card(int card_id, int *device_id_max, int *mcu_id, int *cpu_id);
    int dcmi_get_device_logic_id(int *device_logic_id, int card_id, int device_id);
    int dcmi_get_device_chip_info(int card_id, int device_id, struct dcmi_chip_info *chip_info);
    int dcmi_get_device_pcie_info_v2(int card_id, int device_id, struct dcmi_pcie_info_all *);
    int dcmi_get_device_pcie_info(int card_id, int device_id, struct dcmi_pcie_info *);
    int dcmi_get_device_elabel_info(int card_id, int device_id, struct dcmi_elabel_info *);
    int dcmi_get_device_health(int card_id, int device_id, unsigned int *health);
    int dcmi_get_device_utilization_rate(int card_id, int device_id, int input_type,
                                         unsigned int *utilization_rate);
    int dcmi_get_device_hbm_info(int card_id, int device_id, struct dcmi_hbm_info *hbm_info);
    int dcmi_get_device_power_info(int card_id, int device_id, int *power);
    int dcmi_get_device_temperature(int card_id, int device_id, int *temperature);
    int dcmi_get_device_resource_info(int card_id, int device_id,
                                      struct dcmi_proc_mem_info *proc_info, int *proc_num);

Numbering is two-level, as ``npu-smi`` shows it: a *card* (npu-smi's NPU id) holds
``device_id_max`` NPU chips (device ids ``0 .. device_id_max-1``; ``mcu_id`` is the board's
MCU, not a chip). Units and codes, from Huawei's DCMI API reference
(verylucky01/driver ``docs/zh/Ascend_910_93_DCMI_API``): power in 0.1 W; temperature in °C;
HBM ``memory_size``/``memory_usage`` in MB (MiB; the npu-exporter of mind-cluster exports
them as MB); ``proc_mem_usage`` in bytes (mind-cluster ``dcmiv2`` divides it by 1024*1024 to
get MB; at most 32 processes per chip); health 0 ok, 1 minor alarm, 2 major alarm,
3 critical alarm, 0xFFFFFFFF "the device does not exist"; utilisation ``input_type`` 1 memory,
2 AI Core, 3 AI CPU, 4 control CPU, 5 memory bandwidth, 6 HBM, 8 DDR, 10 HBM bandwidth,
12 vector core, 13 whole NPU.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

# Return codes (dcmi_interface_api.h: DCMI_ERROR_CODE_BASE -8000 minus n).
OK = 0
INVALID_PARAMETER = -8001
OPER_NOT_PERMITTED = -8002
INNER_ERR = -8005
TIME_OUT = -8006
INVALID_DEVICE_ID = -8007
DEVICE_NOT_EXIST = -8008
NOT_READY = -8012
NOT_SUPPORT_IN_CONTAINER = -8013
RESOURCE_OCCUPIED = -8020
NOT_SUPPORT = -8255
#: Not DCMI's: the library lacks the symbol (an older driver).
FUNCTION_NOT_FOUND = -99998

NAMES = {
    INVALID_PARAMETER: "invalid parameter", OPER_NOT_PERMITTED: "operation not permitted",
    INNER_ERR: "internal error", TIME_OUT: "timed out", INVALID_DEVICE_ID: "invalid device id",
    DEVICE_NOT_EXIST: "device does not exist", NOT_READY: "not ready",
    NOT_SUPPORT_IN_CONTAINER: "not supported in a container",
    RESOURCE_OCCUPIED: "device resources occupied", NOT_SUPPORT: "not supported",
    FUNCTION_NOT_FOUND: "function not in this libdcmi",
}

# dcmi_get_device_utilization_rate input types.
UTIL_AICORE = 2
UTIL_AICPU = 3
UTIL_HBM_BANDWIDTH = 10

HEALTH_ABSENT = 0xFFFFFFFF
MAX_CARDS = 64
MAX_PROCS = 32
_CHIP_NAME_LEN = 32
_ELABEL_LEN = 256
_VERSION_LEN = 256


class DcmiError(Exception):
    """A DCMI call returned an error code."""

    def __init__(self, function: str, code: int) -> None:
        super().__init__(f"{function}: {NAMES.get(code, 'error')} ({code})")
        self.function = function
        self.code = code


class ChipInfo(ctypes.Structure):
    _fields_ = [("chip_type", ctypes.c_ubyte * _CHIP_NAME_LEN),
                ("chip_name", ctypes.c_ubyte * _CHIP_NAME_LEN),
                ("chip_ver", ctypes.c_ubyte * _CHIP_NAME_LEN),
                ("aicore_cnt", ctypes.c_uint)]


class PcieInfoAll(ctypes.Structure):
    _fields_ = [("venderid", ctypes.c_uint), ("subvenderid", ctypes.c_uint),
                ("deviceid", ctypes.c_uint), ("subdeviceid", ctypes.c_uint),
                ("domain", ctypes.c_int), ("bdf_busid", ctypes.c_uint),
                ("bdf_deviceid", ctypes.c_uint), ("bdf_funcid", ctypes.c_uint),
                ("reserve", ctypes.c_ubyte * 32)]


class PcieInfo(ctypes.Structure):
    # The older struct: note the order (device id before vendor id), unlike PcieInfoAll.
    _fields_ = [("deviceid", ctypes.c_uint), ("venderid", ctypes.c_uint),
                ("subvenderid", ctypes.c_uint), ("subdeviceid", ctypes.c_uint),
                ("bdf_deviceid", ctypes.c_uint), ("bdf_busid", ctypes.c_uint),
                ("bdf_funcid", ctypes.c_uint)]


class ElabelInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_char * _ELABEL_LEN) for name in (
        "product_name", "model", "manufacturer", "manufacturer_date", "serial_number")]


class HbmInfo(ctypes.Structure):
    _fields_ = [("memory_size", ctypes.c_ulonglong), ("freq", ctypes.c_uint),
                ("memory_usage", ctypes.c_ulonglong), ("temp", ctypes.c_int),
                ("bandwith_util_rate", ctypes.c_uint)]  # sic: the header's spelling


class ProcMemInfo(ctypes.Structure):
    _fields_ = [("proc_id", ctypes.c_int), ("proc_mem_usage", ctypes.c_ulong)]


_P = ctypes.POINTER
_INT, _UINT = ctypes.c_int, ctypes.c_uint
_ARGTYPES: dict[str, list[Any]] = {
    "dcmi_init": [],
    "dcmi_get_driver_version": [ctypes.c_char_p, _UINT],
    "dcmi_get_card_list": [_P(_INT), _P(_INT), _INT],
    "dcmi_get_device_id_in_card": [_INT, _P(_INT), _P(_INT), _P(_INT)],
    "dcmi_get_device_logic_id": [_P(_INT), _INT, _INT],
    "dcmi_get_device_chip_info": [_INT, _INT, _P(ChipInfo)],
    "dcmi_get_device_pcie_info_v2": [_INT, _INT, _P(PcieInfoAll)],
    "dcmi_get_device_pcie_info": [_INT, _INT, _P(PcieInfo)],
    "dcmi_get_device_elabel_info": [_INT, _INT, _P(ElabelInfo)],
    "dcmi_get_device_health": [_INT, _INT, _P(_UINT)],
    "dcmi_get_device_utilization_rate": [_INT, _INT, _INT, _P(_UINT)],
    "dcmi_get_device_hbm_info": [_INT, _INT, _P(HbmInfo)],
    "dcmi_get_device_power_info": [_INT, _INT, _P(_INT)],
    "dcmi_get_device_temperature": [_INT, _INT, _P(_INT)],
    "dcmi_get_device_resource_info": [_INT, _INT, _P(ProcMemInfo), _P(_INT)],
}


def _text(raw: Any) -> str:
    data = bytes(raw)
    return data.split(b"\0", 1)[0].decode(errors="replace").strip()


class Dcmi:
    """``libdcmi.so`` loaded from ``path`` (raises OSError when it cannot be loaded).

    Each method makes one DCMI call and raises :class:`DcmiError` on a non-zero code; a
    function missing from the library raises it with :data:`FUNCTION_NOT_FOUND`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lib = ctypes.CDLL(path)
        self._fns: dict[str, Callable[..., int]] = {}

    def _fn(self, name: str) -> Callable[..., int]:
        fn = self._fns.get(name)
        if fn is None:
            try:
                fn = getattr(self._lib, name)
            except AttributeError:
                raise DcmiError(name, FUNCTION_NOT_FOUND) from None
            fn.argtypes = _ARGTYPES[name]
            fn.restype = ctypes.c_int
            self._fns[name] = fn
        return fn

    def _call(self, name: str, *args: Any) -> None:
        code = self._fn(name)(*args)
        if code != OK:
            raise DcmiError(name, code)

    # -- the library --------------------------------------------------------------------
    def init(self) -> None:
        self._call("dcmi_init")

    def driver_version(self) -> str:
        buf = ctypes.create_string_buffer(_VERSION_LEN)
        self._call("dcmi_get_driver_version", buf, _VERSION_LEN)
        return _text(buf.raw)

    def card_list(self) -> list[int]:
        count, cards = _INT(0), (_INT * MAX_CARDS)()
        self._call("dcmi_get_card_list", ctypes.byref(count), cards, MAX_CARDS)
        return list(cards[:max(0, min(count.value, MAX_CARDS))])

    def chips_in_card(self, card: int) -> int:
        """How many NPU chips the card holds (``device_id_max``; the MCU not counted)."""
        chips, mcu, cpu = _INT(0), _INT(0), _INT(0)
        self._call("dcmi_get_device_id_in_card", card, ctypes.byref(chips), ctypes.byref(mcu),
                   ctypes.byref(cpu))
        return max(0, chips.value)

    # -- static facts --------------------------------------------------------------------
    def logic_id(self, card: int, chip: int) -> int:
        out = _INT(0)
        self._call("dcmi_get_device_logic_id", ctypes.byref(out), card, chip)
        return out.value

    def chip_info(self, card: int, chip: int) -> tuple[str, str, str, int]:
        """(chip type, chip name, chip version, AI Core count): ("Ascend", "910B3", ...)."""
        info = ChipInfo()
        self._call("dcmi_get_device_chip_info", card, chip, ctypes.byref(info))
        return (_text(info.chip_type), _text(info.chip_name), _text(info.chip_ver),
                int(info.aicore_cnt))

    def pci_bus_id(self, card: int, chip: int) -> str:
        """``0000:C1:00.0``: the v2 call (with the PCI domain), else the old one."""
        try:
            full = PcieInfoAll()
            self._call("dcmi_get_device_pcie_info_v2", card, chip, ctypes.byref(full))
            domain, bus, dev, fn = full.domain, full.bdf_busid, full.bdf_deviceid, full.bdf_funcid
        except DcmiError as exc:
            if exc.code not in (FUNCTION_NOT_FOUND, NOT_SUPPORT):
                raise
            old = PcieInfo()
            self._call("dcmi_get_device_pcie_info", card, chip, ctypes.byref(old))
            domain, bus, dev, fn = 0, old.bdf_busid, old.bdf_deviceid, old.bdf_funcid
        return f"{domain:04X}:{bus:02X}:{dev:02X}.{fn:X}"

    def serial(self, card: int, chip: int) -> str:
        info = ElabelInfo()
        self._call("dcmi_get_device_elabel_info", card, chip, ctypes.byref(info))
        return _text(info.serial_number)

    # -- values --------------------------------------------------------------------------
    def health(self, card: int, chip: int) -> int:
        out = _UINT(0)
        self._call("dcmi_get_device_health", card, chip, ctypes.byref(out))
        return out.value

    def utilization(self, card: int, chip: int, kind: int) -> int:
        out = _UINT(0)
        self._call("dcmi_get_device_utilization_rate", card, chip, kind, ctypes.byref(out))
        return out.value

    def hbm(self, card: int, chip: int) -> tuple[int, int]:
        """(used MiB, total MiB)."""
        info = HbmInfo()
        self._call("dcmi_get_device_hbm_info", card, chip, ctypes.byref(info))
        return int(info.memory_usage), int(info.memory_size)

    def power_deciwatts(self, card: int, chip: int) -> int:
        out = _INT(0)
        self._call("dcmi_get_device_power_info", card, chip, ctypes.byref(out))
        return out.value

    def temperature(self, card: int, chip: int) -> int:
        out = _INT(0)
        self._call("dcmi_get_device_temperature", card, chip, ctypes.byref(out))
        return out.value

    def processes(self, card: int, chip: int) -> list[tuple[int, int]]:
        """(host pid, device memory in bytes) of each process on the chip."""
        procs, count = (ProcMemInfo * MAX_PROCS)(), _INT(0)
        self._call("dcmi_get_device_resource_info", card, chip, procs, ctypes.byref(count))
        return [(int(p.proc_id), int(p.proc_mem_usage))
                for p in procs[:max(0, min(count.value, MAX_PROCS))]]
