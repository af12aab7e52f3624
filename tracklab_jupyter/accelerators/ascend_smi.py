"""Parsing ``npu-smi info`` (Huawei's Ascend command-line tool): the fallback when the DCMI
library cannot be loaded.

``npu-smi info`` prints one block per chip, two table rows each (trailing columns cut here)::

    | NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usa
    | Chip  Phy-ID              | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)
    | 0     Ascend910           | OK            | 199.1       32                0    / 0
    | 0     0                   | 0000:9D:00.0  | 8           0    / 0          51166/ 65536
    ...

then a process table (``| NPU Chip | Process id | Process name | Process memory(MB) |``).

Layouts seen on real machines (``tests/fixtures/ascend``): Atlas A2 (910B, one chip per NPU,
second column of the chip row empty), Atlas A3 (two chips per NPU, a ``Phy-ID`` column, ``-``
for the power of the second chip), Atlas 300I (310P, a ``Device`` column and no HBM column).
Sizes are MiB (npu-smi's "MB"; the DCMI structures use the same unit). Health is one of
``OK``, ``Warning``, ``Alarm``, ``Critical``: DCMI's 0..3. ``npu-smi info -m`` maps each
(NPU id, chip id) to the chip's logical id (the numbers ``ASCEND_RT_VISIBLE_DEVICES`` takes).

Running the tool costs a subprocess (seconds on a busy 8-NPU host), so the backend runs it
only from its slow path, with a timeout.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

MIB = 1024 * 1024

#: npu-smi's health words, as DCMI's ``dcmi_get_device_health`` numbers them.
HEALTH_CODES = {"ok": 0, "warning": 1, "alarm": 2, "critical": 3}

_VERSION = re.compile(r"Version:\s*(\S+)")
_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?\Z")


class SmiError(RuntimeError):
    """npu-smi could not be run, failed, timed out, or printed something unreadable."""


@dataclass
class SmiChip:
    """One chip's row pair of ``npu-smi info``. Sizes in MiB; None where npu-smi printed
    ``-``/``NA`` or the layout has no such column."""

    npu_id: int
    chip_id: int
    name: str
    health: int | None
    health_word: str
    bus_id: str = ""
    #: The second number of the chip row: ``Phy-ID`` (A3) or ``Device`` (310P: logical id).
    second_id: int | None = None
    second_label: str = ""
    power_w: float | None = None
    temp_c: float | None = None
    aicore_pct: float | None = None
    mem_used_mib: int | None = None
    mem_total_mib: int | None = None
    hbm_used_mib: int | None = None
    hbm_total_mib: int | None = None

    @property
    def used_total_mib(self) -> tuple[int, int] | None:
        """The accelerator memory: HBM where the chip has it, else the device memory
        column (310P's DDR). A 910A shows both; its ``Memory-Usage`` is the control CPU's."""
        if self.hbm_total_mib:
            return self.hbm_used_mib or 0, self.hbm_total_mib
        if self.mem_total_mib:
            return self.mem_used_mib or 0, self.mem_total_mib
        return None


@dataclass
class SmiProcess:
    npu_id: int
    chip_id: int
    pid: int
    name: str
    mem_mib: int


@dataclass
class SmiInfo:
    """Everything one ``npu-smi info`` printed."""

    version: str | None = None
    chips: list[SmiChip] = field(default_factory=list)
    processes: list[SmiProcess] = field(default_factory=list)
    #: Whether a process table was printed (older tools and some products print none:
    #: then the process count is unknown, not zero).
    process_table: bool = False


def health_code(word: str) -> int | None:
    """``OK`` -> 0, ``Warning`` -> 1, ``Alarm`` -> 2, ``Critical`` -> 3; None otherwise."""
    return HEALTH_CODES.get(word.strip().lower())


def chip_name(text: str) -> str:
    """One spelling for a chip's name whatever printed it: ``910B3`` (npu-smi's table),
    ``Ascend 910B3`` (``npu-smi info -m``, DCMI type + name), ``Ascend910`` (A3 table)
    all become ``Ascend 910B3`` / ``Ascend 910``."""
    text = text.strip()
    rest = text[len("Ascend"):].strip() if text.lower().startswith("ascend") else text
    return f"Ascend {rest}" if rest else "Ascend"


def _cells(line: str) -> list[str] | None:
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return None
    return [c.strip() for c in line[1:-1].split("|")]


def _number(token: str) -> float | None:
    return float(token) if _NUMBER.match(token) else None


def _int(token: str) -> int | None:
    return int(token) if token.isdigit() else None


def parse_info(text: str) -> SmiInfo:
    """Parse ``npu-smi info``. Raises :class:`SmiError` when no chip row is found."""
    info = SmiInfo()
    match = _VERSION.search(text)
    if match:
        info.version = match.group(1)
    second_label = ""
    in_procs = False
    pending: list[str] | None = None
    for line in text.splitlines():
        cells = _cells(line)
        if cells is None:
            continue
        joined = " ".join(cells)
        if "Process id" in joined:
            in_procs, pending = True, None
            info.process_table = True
            continue
        if "Bus-Id" in joined:  # the second header row names the chip row's second number
            words = cells[0].split()
            second_label = words[1] if len(words) > 1 else ""
            continue
        if in_procs:
            proc = _process_row(cells)
            if proc is not None:
                info.processes.append(proc)
        elif len(cells) == 3:
            if ":" not in cells[1]:  # a first row: NPU id, name, health (maybe blank)
                pending = cells if _chip_head(cells) else None
            elif pending is not None:  # a second row: chip id, PCI bus id
                chip = _chip(pending, cells, second_label)
                if chip is not None:
                    info.chips.append(chip)
                pending = None
    if not info.chips:
        raise SmiError("npu-smi info printed no chip rows")
    return info


def _chip_head(cells: list[str]) -> bool:
    words = cells[0].split()
    return len(words) >= 2 and words[0].isdigit()


def _chip(head: list[str], row: list[str], second_label: str) -> SmiChip | None:
    """A chip from its two rows; None when the second row is not a chip row."""
    npu_words, ids = head[0].split(), row[0].split()
    if not ids or not ids[0].isdigit():
        return None
    chip = SmiChip(npu_id=int(npu_words[0]), chip_id=int(ids[0]),
                   name=chip_name(" ".join(npu_words[1:])), health=health_code(head[1]),
                   health_word=head[1], bus_id=row[1])
    if len(ids) > 1:
        chip.second_id, chip.second_label = _int(ids[1]), second_label
    top = head[2].split()
    if top:
        chip.power_w = _number(top[0])
    if len(top) > 1:
        chip.temp_c = _number(top[1])
    bottom = row[2]
    first = bottom.split()
    if first:
        chip.aicore_pct = _number(first[0])
    pairs = [(int(a), int(b)) for a, b in _PAIR.findall(bottom)]
    if pairs:
        chip.mem_used_mib, chip.mem_total_mib = pairs[0]
    if len(pairs) > 1:
        chip.hbm_used_mib, chip.hbm_total_mib = pairs[1]
    return chip


def _process_row(cells: list[str]) -> SmiProcess | None:
    # | NPU Chip | Process id | Process name | Process memory(MB) | [Process id in container] |
    if len(cells) < 4:
        return None  # "No running processes found in NPU 2"
    ids = cells[0].split()
    pid, mem = _int(cells[1]), _int(cells[3])
    if len(ids) != 2 or not all(i.isdigit() for i in ids) or pid is None or mem is None:
        return None
    return SmiProcess(int(ids[0]), int(ids[1]), pid, cells[2], mem)


def parse_logic_ids(text: str) -> dict[tuple[int, int], int]:
    """``npu-smi info -m``: (NPU id, chip id) -> the chip's logical id (MCU rows, whose
    logical id is ``-``, are skipped)."""
    out: dict[tuple[int, int], int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and all(p.isdigit() for p in parts[:3]):
            out[(int(parts[0]), int(parts[1]))] = int(parts[2])
    return out


def run(command: str, args: list[str], timeout: float) -> str:
    """Run ``npu-smi`` with ``args``; its standard output, or :class:`SmiError` with one
    line saying why not (missing, failed, timed out: the child is killed)."""
    try:
        done = subprocess.run([command, *args], capture_output=True, text=True,
                              timeout=timeout, check=False, errors="replace")
    except subprocess.TimeoutExpired:
        raise SmiError(f"{command} {' '.join(args)} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise SmiError(f"{command} could not run: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()
        why = tail[-1] if tail else "no output"
        raise SmiError(f"{command} {' '.join(args)} exited with {done.returncode}: {why}")
    return done.stdout
