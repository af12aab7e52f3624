"""AMD GPUs through the ``amdgpu`` kernel driver's sysfs files, with no library at all.

The AMD backend falls back to this reader when ``amdsmi`` is missing or cannot start (the way
Netdata and Glances read AMD GPUs). Per card, under ``/sys/class/drm/cardN/device/``
(``drivers/gpu/drm/amd/pm/amdgpu_pm.c``, ``Documentation/gpu/amdgpu/thermal.rst``)::

    uevent                     DRIVER=amdgpu, PCI_SLOT_NAME=0000:03:00.0
    gpu_busy_percent           GFX engine busy, %          -> util_pct
    mem_busy_percent           memory controller busy, %   -> mem_util_pct
    mem_info_vram_used/_total  bytes                       -> mem_used_bytes, mem_total_bytes
    pp_dpm_sclk, pp_dpm_mclk   "1: 551Mhz *": the * marks the current level -> *_clock_mhz
    unique_id, product_name    identity (server parts only)
    hwmon/hwmonM/              name "amdgpu"; temp{1,2,3}_input in m°C, labelled edge,
                               junction, mem by temp*_label; temp*_crit; power1_average or
                               power1_input and power1_cap in µW; pwm1 of pwm1_max (fan)

Each file is opened once, at :meth:`SysfsCard.open`, and re-read with ``pread`` at offset 0
(a sysfs attribute renders its text afresh on every read from offset 0), so a tick costs one
system call per file. A file the card lacks is simply not read. An attribute that answers
EOPNOTSUPP/EINVAL is marked off for good; EBUSY/EPERM/EIO (a reset, a runtime-suspended GPU)
mean "no value now". ENODEV/ENOENT, or the card's directory gone, mean the card was lost.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracklab_jupyter.accelerators.base import DeviceLost
from tracklab_jupyter.collectors.base import FieldGuard

log = logging.getLogger("tracklab_jupyter.accelerators.amd")

_CARD = re.compile(r"card(\d+)\Z")
_CLOCK = re.compile(r"(\d+)\s*mhz", re.IGNORECASE)
_READ_SIZE = 4096  # pp_dpm_* tables are a few hundred bytes
# hwmon temperature labels -> metric suffix. An unlabelled temp1 is the edge sensor.
_TEMP_LABELS = {"edge": "temp_c", "junction": "junction_temp_c", "mem": "mem_temp_c"}
_LOST_ERRNO = frozenset({errno.ENODEV, errno.ENOENT, errno.ENXIO})
_PERMANENT_ERRNO = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL})


def is_permanent(exc: BaseException) -> bool:
    """Errors of a sysfs read that will come back on every read: stop asking."""
    return isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNO


def read_text(path: Path) -> str | None:
    """A small file's text, or None when it cannot be read."""
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _card_number(path: Path) -> int:
    match = _CARD.match(path.name)
    return int(match.group(1)) if match else -1


def find_cards(drm: Path) -> list[Path]:
    """The ``device`` directories of the amdgpu cards under ``drm`` (``/sys/class/drm``), in
    card order. Connectors (``card1-DP-1``) and other drivers' cards (``DRIVER=ast``) are
    skipped; without a ``uevent`` (trimmed trees) an amdgpu-only attribute decides."""
    try:
        entries = [p for p in drm.iterdir() if _CARD.match(p.name)]
    except OSError:
        return []
    cards: list[Path] = []
    for entry in sorted(entries, key=_card_number):
        dev = entry / "device"
        uevent = read_text(dev / "uevent")
        if uevent is not None:
            if "DRIVER=amdgpu" in uevent.split():
                cards.append(dev)
        elif (dev / "gpu_busy_percent").exists() or (dev / "mem_info_vram_total").exists():
            cards.append(dev)
    return cards


def current_clock(text: str) -> float | None:
    """The MHz of the ``*`` line of a ``pp_dpm_*`` table (``"1: 551Mhz *"``)."""
    for line in text.splitlines():
        if line.rstrip().endswith("*"):
            match = _CLOCK.search(line)
            if match:
                return float(match.group(1))
    return None


def _amdgpu_hwmon(dev: Path) -> Path | None:
    try:
        dirs = sorted((dev / "hwmon").glob("hwmon*"))
    except OSError:
        return None
    named = [d for d in dirs if read_text(d / "name") == "amdgpu"]
    return (named or dirs or [None])[0]


class SysfsCard:
    """One amdgpu card read from its sysfs files (see the module docstring)."""

    def __init__(self, device_dir: Path) -> None:
        self.dir = device_dir
        self.hwmon = _amdgpu_hwmon(device_dir)
        self._fds: dict[str, int] = {}
        # (metric suffix, converter) of the files read on every tick; fds by suffix.
        self._fast: list[tuple[str, Callable[[str], float | None]]] = []
        self._mem_total: float | None = None
        self._fan_max: float | None = None

    # -- identity (cheap, no file kept open) -----------------------------------------------
    def identity(self, guard: FieldGuard | None = None) -> dict[str, Any]:
        """Name, UUID, serial and PCI address, as far as the card's files tell."""
        facts: dict[str, Any] = {}
        uevent = read_text(self.dir / "uevent") or ""
        for item in uevent.split():
            key, _, value = item.partition("=")
            if key == "PCI_SLOT_NAME":
                facts["pci_bus_id"] = value
        unique = read_text(self.dir / "unique_id")
        if unique:
            # The ROCm runtime names a GPU "GPU-" + its unique id (rocminfo, HIP_VISIBLE_DEVICES).
            facts["serial"] = unique
            facts["uuid"] = "GPU-" + unique.lower().removeprefix("0x")
        name = read_text(self.dir / "product_name")
        vendor, device = read_text(self.dir / "vendor"), read_text(self.dir / "device")
        if name:
            facts["name"] = name
        elif device:
            facts["name"] = f"AMD GPU ({_hex4(vendor or '0x1002')}:{_hex4(device)})"
        else:
            facts["name"] = "AMD GPU"
        return facts

    # -- opening -----------------------------------------------------------------------------
    def open(self, guard: FieldGuard | None = None) -> dict[str, Any]:
        """Open the files read on every tick; return the static facts (memory size, power
        cap, slowdown temperature)."""
        if not self.dir.exists():
            raise DeviceLost("sysfs", f"{self.dir} is gone")
        facts: dict[str, Any] = {}
        self._add("util_pct", self.dir / "gpu_busy_percent", _number)
        self._add("mem_util_pct", self.dir / "mem_busy_percent", _number)
        self._add("mem_used_bytes", self.dir / "mem_info_vram_used", _number)
        self._add("sm_clock_mhz", self.dir / "pp_dpm_sclk", current_clock)
        self._add("mem_clock_mhz", self.dir / "pp_dpm_mclk", current_clock)
        total = _file_number(self.dir / "mem_info_vram_total")
        if total:
            self._mem_total = total
            facts["mem_total_bytes"] = int(total)
        if self.hwmon is not None:
            facts.update(self._open_hwmon(self.hwmon))
        return facts

    def _open_hwmon(self, hw: Path) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        for n in range(1, 10):
            path = hw / f"temp{n}_input"
            if not path.exists():
                continue
            label = read_text(hw / f"temp{n}_label") or ("edge" if n == 1 else "")
            suffix = _TEMP_LABELS.get(label.lower())
            if suffix is None:
                continue
            self._add(suffix, path, _milli)
            crit = _file_number(hw / f"temp{n}_crit", _milli)
            if suffix == "temp_c" and crit:
                # The edge sensor's critical limit: where the SMU starts throttling hard
                # (amd-smi calls it the slowdown temperature).
                facts["temp_slowdown_c"] = crit
        power = hw / "power1_average"
        self._add("power_w", power if power.exists() else hw / "power1_input", _micro)
        self._add("power_limit_w", hw / "power1_cap", _micro)
        cap = _file_number(hw / "power1_cap", _micro)
        if cap:
            facts["power_limit_w"] = cap
        fan_max = _file_number(hw / "pwm1_max")
        if fan_max:
            self._fan_max = fan_max
            self._add("fan_pct", hw / "pwm1", self._fan_pct)
        return facts

    def _add(self, suffix: str, path: Path, convert: Callable[[str], float | None]) -> None:
        try:
            self._fds[suffix] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # the card has no such file: the metric is absent
        self._fast.append((suffix, convert))

    def _fan_pct(self, text: str) -> float | None:
        value = _number(text)
        if value is None or not self._fan_max:
            return None
        return value / self._fan_max * 100.0

    # -- reading -------------------------------------------------------------------------------
    def fast(self, guard: FieldGuard) -> dict[str, float]:
        """One pread per open file; values by metric suffix. Raises :class:`DeviceLost`."""
        out: dict[str, float] = {}
        for suffix, convert in self._fast:
            text = self._read(guard, suffix)
            if text is None:
                continue
            try:
                value = convert(text)
            except ValueError:
                value = None
            if value is not None:
                out[suffix] = value
        if self._mem_total:
            out["mem_total_bytes"] = self._mem_total
            used = out.get("mem_used_bytes")
            if used is not None:
                out["mem_pct"] = used / self._mem_total * 100.0
        return out

    def slow(self, guard: FieldGuard) -> dict[str, float]:
        """Nothing slow to read here; checks that the card is still there (a file kept open
        on a removed device may go on reading from the stale file)."""
        if not self.dir.exists():
            raise DeviceLost("sysfs", f"{self.dir} is gone")
        return {}

    def _read(self, guard: FieldGuard, key: str) -> str | None:
        fd = self._fds.get(key)
        if fd is None:
            return None
        try:
            data = guard.call(key, os.pread, fd, _READ_SIZE, 0)
        except OSError as exc:
            if exc.errno in _LOST_ERRNO:
                raise DeviceLost(key, exc) from exc
            log.debug("amd sysfs %s: %s: %s (asking again later)", self.dir, key, exc)
            return None
        return None if data is None else data.decode(errors="replace")

    def close(self) -> None:
        """Close every file (idempotent)."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


def _hex4(text: str) -> str:
    return text.lower().removeprefix("0x").zfill(4)


def _file_number(path: Path, convert: Callable[[str], float | None] | None = None
                 ) -> float | None:
    """A number read once from ``path`` (None when absent or not a number)."""
    text = read_text(path)
    if not text:
        return None
    try:
        return (convert or _number)(text)
    except ValueError:
        return None


def _number(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def _milli(text: str) -> float | None:
    value = _number(text)
    return None if value is None else value / 1000.0


def _micro(text: str) -> float | None:
    value = _number(text)
    return None if value is None else value / 1_000_000.0
