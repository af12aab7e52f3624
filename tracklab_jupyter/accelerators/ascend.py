"""Huawei Ascend NPUs: through the DCMI library, else ``npu-smi info`` at a low cadence.

Sources, in order:

- **DCMI** (``libdcmi.so`` from the Ascend driver, through ctypes: ``ascend_dcmi.py`` lists
  the prototypes and where they come from). Looked for at ``TRACKLAB_DCMI_LIBRARY``, else
  ``/usr/local/Ascend/driver/lib64/driver/libdcmi.so``, ``/usr/local/dcmi/libdcmi.so`` and the
  loader's path. :meth:`AscendBackend.read` reads health, AI Core use, HBM, power and
  temperature; :meth:`AscendBackend.read_slow` the AI CPU and HBM-bandwidth use and the
  per-process memory. No DCMI call cost has been measured on real hardware here, so each call
  of the fast path is timed: a field whose calls take over 1 ms three times in a row moves to
  the slow path for good (logged once), keeping the 1 Hz path cheap whatever the driver does.
- **npu-smi** (``ascend_smi.py``): one ``npu-smi info`` per :attr:`slow_interval` (10 s) on
  the slow path only, with a timeout; nothing at all on the 1 Hz path. A failing or hanging
  npu-smi gives no values and one warning until it answers again.

Numbering: npu-smi's two levels (NPU id = DCMI card, chip id = DCMI device id) are facts of
each device; the metric index ``npu.N`` is the chip's **logical id** (DCMI
``dcmi_get_device_logic_id``, ``npu-smi info -m``; the numbers ``ASCEND_RT_VISIBLE_DEVICES``
and ``torch_npu`` use), or the chip's position when no logical id can be read.

Failures are per field and per chip. Not supported (-8255), not supported in a container
(-8013), not permitted (-8002), invalid parameter (-8001) and a function the library lacks
mark that one field off for good; other codes (timeout, not ready, internal error) mean
"no value now". Device does not exist (-8008), invalid device id (-8007) and a health of
0xFFFFFFFF mark the chip lost: its metrics stop, the other chips go on, one ``gpu_lost`` event.
On the npu-smi path a chip that leaves the table is lost the same way.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracklab_jupyter.accelerators import ascend_dcmi as dcmi_api
from tracklab_jupyter.accelerators import ascend_smi as smi_api
from tracklab_jupyter.accelerators.ascend_dcmi import Dcmi, DcmiError
from tracklab_jupyter.accelerators.ascend_smi import MIB, SmiError
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
    read_devices,
    visible_subset,
)
from tracklab_jupyter.collectors.base import FieldGuard, Reading

log = logging.getLogger("tracklab_jupyter.accelerators.ascend")

LIBRARY_ENV = "TRACKLAB_DCMI_LIBRARY"
VISIBLE_ENV = "ASCEND_RT_VISIBLE_DEVICES"
DEFAULT_LIBRARIES = ("/usr/local/Ascend/driver/lib64/driver/libdcmi.so",
                     "/usr/local/dcmi/libdcmi.so", "libdcmi.so")
DEFAULT_SMI = ("/usr/local/sbin/npu-smi", "/usr/local/bin/npu-smi")
#: Seconds an ``npu-smi info`` may take (it takes seconds on a busy 8-NPU host).
SMI_TIMEOUT_S = 8.0
INSTALL_HINT = ("install the Ascend NPU driver (it brings libdcmi.so and npu-smi) or set "
                f"{LIBRARY_ENV}")

_PERMANENT = frozenset({dcmi_api.NOT_SUPPORT, dcmi_api.NOT_SUPPORT_IN_CONTAINER,
                        dcmi_api.OPER_NOT_PERMITTED, dcmi_api.INVALID_PARAMETER,
                        dcmi_api.FUNCTION_NOT_FOUND})
_LOST = frozenset({dcmi_api.DEVICE_NOT_EXIST, dcmi_api.INVALID_DEVICE_ID})

#: DCMI fields read by read() (unless demoted) and by read_slow().
FAST_FIELDS = ("health", "util", "hbm", "power", "temp")
SLOW_FIELDS = ("aicpu", "hbm_bw", "procs")
#: A fast-path field slower than this this many calls in a row moves to the slow path.
SLOW_CALL_S = 1e-3
SLOW_CALL_STRIKES = 3


def davinci_devices() -> list[str]:
    """``/dev/davinci0`` ... (the NPU device files; ``davinci_manager`` is not one)."""
    dev = host_path("/dev")
    try:
        return sorted(p.name for p in dev.glob("davinci*") if p.name[7:].isdigit())
    except OSError:
        return []


@dataclass
class _Chip:
    index: int  # the metric index: logical id, else position
    npu_id: int  # npu-smi's NPU id, DCMI's card id
    chip_id: int  # npu-smi's chip id, DCMI's device id
    guard: FieldGuard
    facts: dict[str, Any] = field(default_factory=dict)
    lost: bool = False

    @property
    def prefix(self) -> str:
        return f"npu.{self.index}."

    @property
    def ids(self) -> tuple[str, ...]:
        """What a selection may name this chip by besides ``npu.N``."""
        return tuple(str(self.facts[k]) for k in ("uuid", "serial", "pci_bus_id")
                     if self.facts.get(k))


class AscendBackend(AcceleratorBackend):
    """Huawei Ascend NPU chips, read through DCMI or ``npu-smi`` (see the module docstring).

    ``library`` (a ``libdcmi.so`` path) and ``npu_smi`` (the command) override the search;
    ``smi_timeout`` bounds each ``npu-smi`` run.
    """

    name = "ascend"
    vendor = "huawei"
    kind = "npu"
    slow_interval = 5.0

    def __init__(self, selection: Selection | Sequence[str] | str | None = None, *,
                 library: str | None = None, npu_smi: str | None = None,
                 smi_timeout: float = SMI_TIMEOUT_S) -> None:
        if not davinci_devices():
            raise NoDevices("no Ascend NPU (/dev/davinci*)")
        self._closed = False
        self._losses = DeviceLosses(self)
        self._dcmi: Dcmi | None = None
        self._smi: str | None = None
        self._smi_timeout = smi_timeout
        self._smi_failing = False
        self._slow_strikes: Counter[str] = Counter()
        self._demoted: set[str] = set()
        self._system: dict[str, Any] = {"vendor": self.vendor, "kind": self.kind}
        self._chips: list[_Chip] = []
        try:
            chips = self._open_source(library, npu_smi)
            self.found = len(chips)
            self._chips = self._select(selection, chips)
        except AcceleratorUnavailable:
            raise
        except Exception as exc:  # a broken driver must not take the process with it
            raise AcceleratorUnavailable(
                f"Ascend backend failed to open: {type(exc).__name__}: {exc}") from None

    @classmethod
    def open(cls, selection: Selection | Sequence[str] | str | None = None,
             first_index: int = 0, **options: Any) -> AscendBackend:
        """Open the Ascend chips ``selection`` names (``npu.N``, a PCI bus id or serial);
        NPUs count from 0 in their own kind, so ``first_index`` is not used."""
        return cls(selection, **options)

    # -- opening ---------------------------------------------------------------------------
    def _open_source(self, library: str | None, npu_smi: str | None) -> list[_Chip]:
        problems: list[str] = []
        self._dcmi = self._load_dcmi(library, problems)
        if self._dcmi is not None:
            chips = self._dcmi_chips(problems)
            if chips:
                self._system.update(source="dcmi", library=self._dcmi.path,
                                    **self._dcmi_system())
                return chips
            self._dcmi = None
        self._smi = npu_smi or shutil.which("npu-smi") or next(
            (p for p in DEFAULT_SMI if os.access(p, os.X_OK)), None)
        if self._smi is None:
            problems.append("npu-smi not found")
        else:
            chips = self._smi_chips(problems)
            if chips:
                self.slow_interval = 10.0  # a subprocess: not more often than this
                self._system.update(source="npu-smi", npu_smi=self._smi)
                return chips
        raise AcceleratorUnavailable(
            f"neither DCMI nor npu-smi usable ({'; '.join(problems)}); {INSTALL_HINT}")

    @staticmethod
    def _load_dcmi(library: str | None, problems: list[str]) -> Dcmi | None:
        env = os.environ.get(LIBRARY_ENV)
        paths = [library] if library else [env] if env else list(DEFAULT_LIBRARIES)
        errors: list[str] = []
        for path in paths:
            try:
                lib = Dcmi(path)
            except OSError as exc:
                errors.append(str(exc))
                continue
            try:
                lib.init()
            except DcmiError as exc:
                problems.append(f"{path}: {exc}")
                return None
            return lib
        problems.append(f"libdcmi.so not loadable ({errors[-1] if errors else 'no path'})")
        return None

    def _dcmi_chips(self, problems: list[str]) -> list[_Chip]:
        lib = self._dcmi
        assert lib is not None
        try:
            cards = lib.card_list()
        except DcmiError as exc:
            problems.append(str(exc))
            return []
        places: list[tuple[int, int]] = []
        for card in cards:
            try:
                places += [(card, chip) for chip in range(lib.chips_in_card(card))]
            except DcmiError as exc:
                log.warning("ascend: NPU %d: %s; its chips are skipped", card, exc)
        if not places:
            problems.append("DCMI lists no NPU chip")
            return []
        logic: list[int | None] = []
        for card, chip in places:
            try:
                logic.append(lib.logic_id(card, chip))
            except DcmiError as exc:
                log.debug("ascend: no logical id for %d/%d: %s", card, chip, exc)
                logic.append(None)
        indices = _indices(logic)
        chips = [self._new_chip(i, card, chip) for i, (card, chip) in zip(indices, places,
                                                                         strict=True)]
        for chip, logic_id in zip(chips, logic, strict=True):
            if logic_id is not None:
                chip.facts["logic_id"] = logic_id
            self._dcmi_static(chip)
        return chips

    def _dcmi_system(self) -> dict[str, Any]:
        assert self._dcmi is not None
        try:
            return {"driver_version": self._dcmi.driver_version()}
        except DcmiError as exc:
            log.debug("ascend: no driver version: %s", exc)
            return {}

    def _dcmi_static(self, chip: _Chip) -> None:
        """Facts read once: name, PCI bus id, serial, AI Core count, HBM size."""
        lib, c, n, f = self._dcmi, chip.npu_id, chip.chip_id, chip.facts
        assert lib is not None
        try:
            info = self._call(chip, "chip_info", lib.chip_info, c, n)
            if info is not None:
                kind, name, _version, aicores = info
                f["name"] = smi_api.chip_name(name if name.lower().startswith(
                    kind.lower()) else f"{kind} {name}")
                if aicores > 0:
                    f["aicore_count"] = aicores
            for key, fn in (("pci_bus_id", lib.pci_bus_id), ("serial", lib.serial)):
                value = self._call(chip, key, fn, c, n)
                if value:
                    f[key] = value
            hbm = self._call(chip, "hbm", lib.hbm, c, n)
            if hbm is not None and hbm[1] > 0:
                f["mem_total_bytes"] = hbm[1] * MIB
        except DeviceLost as exc:
            self._mark_lost(chip, exc.call, exc.error)

    def _smi_chips(self, problems: list[str]) -> list[_Chip]:
        try:
            info = smi_api.parse_info(self._run_smi(["info"]))
        except SmiError as exc:
            problems.append(str(exc))
            return []
        try:
            logic = smi_api.parse_logic_ids(self._run_smi(["info", "-m"]))
        except SmiError as exc:
            log.debug("ascend: no logical ids from npu-smi: %s", exc)
            logic = {}
        ids: list[int | None] = []
        for row in info.chips:
            if (row.npu_id, row.chip_id) in logic:
                ids.append(logic[(row.npu_id, row.chip_id)])
            else:  # 310P's "Device" column is the logical id; A3's "Phy-ID" is not
                ids.append(row.second_id if row.second_label == "Device" else None)
        chips: list[_Chip] = []
        for index, row, logic_id in zip(_indices(ids), info.chips, ids, strict=True):
            chip = self._new_chip(index, row.npu_id, row.chip_id)
            chip.facts.update(name=row.name, pci_bus_id=row.bus_id)
            if logic_id is not None:
                chip.facts["logic_id"] = logic_id
            if row.second_label == "Phy-ID" and row.second_id is not None:
                chip.facts["phy_id"] = row.second_id
            mem = row.used_total_mib
            if mem is not None:
                chip.facts["mem_total_bytes"] = mem[1] * MIB
            chips.append(chip)
        if info.version:
            self._system["driver_version"] = info.version
        return chips

    def _new_chip(self, index: int, npu_id: int, chip_id: int) -> _Chip:
        chip = _Chip(index, npu_id, chip_id, FieldGuard(f"ascend npu {index}", _is_permanent))
        chip.facts = device_facts(self, index, npu_id=npu_id, chip_id=chip_id)
        chip.facts.pop("state")  # from chip.lost, in info()
        return chip

    def _select(self, selection: Selection | Sequence[str] | str | None,
                chips: list[_Chip]) -> list[_Chip]:
        """The chips to monitor: an explicit selection, else ``ASCEND_RT_VISIBLE_DEVICES``
        (logical ids or identifiers; the list ends at the first entry naming nothing),
        else all of them."""
        sel = Selection.parse(selection)
        env = os.environ.get(VISIBLE_ENV)
        if sel.everything and env is None:
            return chips
        candidates = [Candidate(c.index, c.ids) for c in chips]
        if not sel.everything:
            wanted, source = set(sel.pick(self.kind, candidates)), f"selection {sel.selectors!r}"
        else:
            wanted = set(visible_subset(VISIBLE_ENV, candidates,
                                        [c.index for c in chips]) or [])
            source = f"{VISIBLE_ENV}={env!r}"
        chosen = [c for c in chips if c.index in wanted]
        if not chosen:
            raise AcceleratorUnavailable(f"no Ascend NPU selected by {source}",
                                         found=len(chips))
        # events of chips lost at open but not selected are not ours
        self._losses.keep_only({c.index for c in chosen})
        return chosen

    # -- calling DCMI -----------------------------------------------------------------------
    def _call(self, chip: _Chip, key: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One DCMI call for one field of one chip; None when there is no value now.

        Raises :class:`DeviceLost` when DCMI says the chip is gone."""
        try:
            return chip.guard.call(key, fn, *args)
        except DcmiError as exc:
            if exc.code in _LOST:
                raise DeviceLost(exc.function, exc) from exc
            log.debug("ascend npu %d: %s: %s (asking again later)", chip.index, key, exc)
            return None

    def _dcmi_field(self, chip: _Chip, key: str) -> dict[str, float]:
        lib, c, n, p = self._dcmi, chip.npu_id, chip.chip_id, chip.prefix
        assert lib is not None
        g: dict[str, float] = {}
        if key == "health":
            health = self._call(chip, key, lib.health, c, n)
            if health == dcmi_api.HEALTH_ABSENT:
                raise DeviceLost("dcmi_get_device_health", "health says the chip does not exist")
            _put(g, p + "health", health)
        elif key == "util":
            _put(g, p + "util_pct", self._call(chip, key, lib.utilization, c, n,
                                               dcmi_api.UTIL_AICORE))
        elif key == "hbm":
            hbm = self._call(chip, key, lib.hbm, c, n)
            if hbm is not None and hbm[1] > 0:
                _put_memory(g, p, hbm[0] * MIB, hbm[1] * MIB)
        elif key == "power":  # DCMI reports 0.1 W steps
            _put(g, p + "power_w", self._call(chip, key, lib.power_deciwatts, c, n), div=10)
        elif key == "temp":
            _put(g, p + "temp_c", self._call(chip, key, lib.temperature, c, n))
        elif key == "aicpu":
            _put(g, p + "aicpu_util_pct", self._call(chip, key, lib.utilization, c, n,
                                                     dcmi_api.UTIL_AICPU))
        elif key == "hbm_bw":
            _put(g, p + "hbm_bw_util_pct", self._call(chip, key, lib.utilization, c, n,
                                                      dcmi_api.UTIL_HBM_BANDWIDTH))
        elif key == "procs":
            procs = self._call(chip, key, lib.processes, c, n)
            if procs is not None:
                _put_procs(g, p, procs)
        return g

    def _timed_field(self, chip: _Chip, key: str) -> dict[str, float]:
        """A fast-path field, timed: a field that keeps being slow leaves the 1 Hz path."""
        start = time.perf_counter()
        try:
            return self._dcmi_field(chip, key)
        finally:
            # Consecutive strikes only: a busy host preempts the odd call for milliseconds.
            if time.perf_counter() - start <= SLOW_CALL_S:
                self._slow_strikes[key] = 0
            else:
                self._slow_strikes[key] += 1
                if self._slow_strikes[key] == SLOW_CALL_STRIKES:
                    self._demoted.add(key)
                    log.info("ascend: DCMI %s took over %.0f ms %d times; read every %g s "
                             "from now on", key, SLOW_CALL_S * 1e3, SLOW_CALL_STRIKES,
                             self.slow_interval)

    # -- lost chips ---------------------------------------------------------------------------
    def _mark_lost(self, chip: _Chip, call: str, error: Any) -> None:
        """Mark ``chip`` lost and queue one ``gpu_lost`` event (whichever thread saw it)."""
        if self._losses.lose(chip, error, call):
            log.warning("ascend: NPU %d (npu-smi %d/%d) lost: %s: %s; other chips go on",
                        chip.index, chip.npu_id, chip.chip_id, call, error)

    def _each_chip(self, fields: Sequence[str], out: Reading, timed: bool = False) -> None:
        read = self._timed_field if timed else self._dcmi_field
        def chip_values(chip: _Chip) -> dict[str, float]:
            values: dict[str, float] = {}
            for key in fields:
                values.update(read(chip, key))
            return values

        out.gauges.update(read_devices(self._chips, chip_values, self._mark_lost))

    # -- the two paths --------------------------------------------------------------------------
    def read(self) -> Reading:
        """DCMI: health, AI Core use, HBM, power, temperature. npu-smi: nothing (events only)."""
        out = Reading()
        if self._closed:
            return out
        if self._dcmi is not None:
            fast = [k for k in FAST_FIELDS if k not in self._demoted]
            self._each_chip(fast, out, timed=True)
        out.events.extend(self._losses.take())
        return out

    def read_slow(self) -> Reading:
        """DCMI: AI CPU and HBM-bandwidth use, per-process memory (and any demoted field).
        npu-smi: everything, from one ``npu-smi info``."""
        out = Reading()
        if self._closed:
            return out
        if self._dcmi is not None:
            self._each_chip([*SLOW_FIELDS, *sorted(self._demoted)], out)
        elif self._smi is not None:
            self._read_smi(out)
        out.events.extend(self._losses.take())
        return out

    def _run_smi(self, args: list[str]) -> str:
        assert self._smi is not None
        return smi_api.run(self._smi, args, self._smi_timeout)

    def _read_smi(self, out: Reading) -> None:
        try:
            info = smi_api.parse_info(self._run_smi(["info"]))
        except SmiError as exc:
            if not self._smi_failing:
                log.warning("ascend: %s; NPU metrics absent until it answers", exc)
            self._smi_failing = True
            return
        if self._smi_failing:
            log.info("ascend: npu-smi answers again")
            self._smi_failing = False
        rows = {(r.npu_id, r.chip_id): r for r in info.chips}
        for chip in self._chips:
            if chip.lost:
                continue
            row = rows.get((chip.npu_id, chip.chip_id))
            if row is None:
                self._mark_lost(chip, "npu-smi info", "no longer listed")
                continue
            out.gauges.update(_smi_values(chip.prefix, row))
            if info.process_table:
                _put_procs(out.gauges, chip.prefix,
                           [(p.pid, p.mem_mib * MIB) for p in info.processes
                            if (p.npu_id, p.chip_id) == (chip.npu_id, chip.chip_id)])

    # -- info and closing -----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Driver version, source (``dcmi`` / ``npu-smi``) and one dict per chip."""
        out = dict(self._system)
        if self._demoted:
            out["slow_fields"] = sorted(self._demoted)
        out["devices"] = [self._chip_info(chip) for chip in self._chips]
        return out

    @staticmethod
    def _chip_info(chip: _Chip) -> dict[str, Any]:
        return device_info(chip.facts, chip.lost, chip.guard)

    def close(self) -> None:
        """Stop reading (DCMI has no shutdown call to make). Reads then return nothing."""
        self._closed = True


def _is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, DcmiError):
        return exc.code in _PERMANENT
    # Not a DCMI code: a ctypes argument error or the like, which would fail the same way.
    return True


def _indices(logic: list[int | None]) -> list[int]:
    """Metric indices: the logical ids when every chip has a distinct one, else positions."""
    known = [i for i in logic if i is not None]
    if len(known) == len(logic) and len(set(known)) == len(known):
        return [int(i) for i in known]
    return list(range(len(logic)))


def _smi_values(p: str, row: smi_api.SmiChip) -> dict[str, float]:
    g: dict[str, float] = {}
    _put(g, p + "health", row.health)
    _put(g, p + "util_pct", row.aicore_pct)
    _put(g, p + "power_w", row.power_w)
    _put(g, p + "temp_c", row.temp_c)
    mem = row.used_total_mib
    if mem is not None:
        _put_memory(g, p, mem[0] * MIB, mem[1] * MIB)
    return g


def _put(g: dict[str, float], name: str, value: Any, div: float = 1.0) -> None:
    """Store ``value / div`` unless there is none: absent, never zero. (Dividing, not
    multiplying by 0.1, keeps 994 dW at exactly 99.4 W.)"""
    if value is not None:
        g[name] = float(value) / div


def _put_memory(g: dict[str, float], p: str, used: float, total: float) -> None:
    g[p + "mem_used_bytes"] = float(used)
    g[p + "mem_total_bytes"] = float(total)
    if total > 0:
        g[p + "mem_pct"] = used / total * 100.0


def _put_procs(g: dict[str, float], p: str, procs: list[tuple[int, int]]) -> None:
    """``procs`` (distinct host pids) and each pid's device memory, summed per pid."""
    per_pid: dict[int, float] = {}
    for pid, used in procs:
        per_pid[pid] = per_pid.get(pid, 0.0) + float(used)
    g[p + "procs"] = float(len(per_pid))
    for pid, used in per_pid.items():
        g[f"{p}proc.{pid}.mem_used_bytes"] = used

