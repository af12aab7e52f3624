"""Pytest fixtures for the Ascend backend (imported by ``tests/conftest.py``).

- ``dcmi_libraries`` (session): ``tests/fake_dcmi/fake_dcmi.c`` compiled with gcc into a
  temporary ``libdcmi.so``, plus an "old driver" variant without
  ``dcmi_get_device_resource_info`` and ``dcmi_get_device_pcie_info_v2``.
  No gcc: skipped (a failure under ``CI=true``).
- ``fake_dcmi_factory(recording, old_driver=False)``: that library loaded with the
  values of ``tests/fixtures/ascend/<recording>`` (converted here by :func:`dcmi_data`, a
  parser of its own, so the backend's npu-smi parser is not what the fake is built from),
  named by ``TRACKLAB_DCMI_LIBRARY``, with ``/dev/davinci*`` under a temporary
  ``TRACKLAB_HOST_ROOT``. Returns a :class:`FakeDcmi` (the library's test hooks).
- ``fake_npu_smi_factory(recording)``: ``tests/fake_dcmi/npu-smi`` first on ``PATH``,
  replaying the recording; DCMI made unloadable so the backend falls back to it. Returns a
  :class:`FakeNpuSmi` (call log, failure modes).
Both remove ``ASCEND_RT_VISIBLE_DEVICES`` so the host's setting cannot change what tests see.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["dcmi_libraries", "fake_dcmi_factory", "fake_npu_smi_factory"]

TESTS = Path(__file__).resolve().parent
FAKE_DIR = TESTS / "fake_dcmi"
ASCEND_FIXTURES = TESTS / "fixtures" / "ascend"
MIB = 1024 * 1024
NOT_SUPPORT = -8255
_HEALTH = {"OK": 0, "Warning": 1, "Alarm": 2, "Critical": 3}


# -- the recording, as DCMI would answer it ------------------------------------------------------
def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip()[1:-1].split("|")]


def _table_chips(table: str) -> tuple[list[dict[str, str]], dict[tuple[str, str], list]]:
    """Chip rows (merged pairs) and processes per (npu, chip) of an ``npu-smi info``."""
    chips: list[dict[str, str]] = []
    procs: dict[tuple[str, str], list[tuple[int, int]]] = {}
    head: list[str] | None = None
    in_procs = False
    for line in table.splitlines():
        if not line.startswith("| "):
            continue
        if "Process id" in line:
            in_procs = True
            continue
        cells = _cells(line)
        if in_procs:
            if len(cells) >= 4 and cells[1].isdigit():
                npu, chip = cells[0].split()
                procs.setdefault((npu, chip), []).append((int(cells[1]), int(cells[3]) * MIB))
            continue
        if len(cells) != 3 or not cells[0][:1].isdigit():
            continue
        if ":" not in cells[1]:
            head = cells
            continue
        assert head is not None
        power, temp = head[2].split()[:2]
        hbm = re.findall(r"(\d+)\s*/\s*(\d+)", cells[2])[-1]
        chips.append({"npu": head[0].split()[0], "name": head[0].split()[1],
                      "health": head[1], "power": power, "temp": temp,
                      "chip": cells[0].split()[0], "bus": cells[1],
                      "aicore": cells[2].split()[0], "hbm_used": hbm[0], "hbm_total": hbm[1]})
    return chips, procs


def _colon_fields(path: Path) -> dict[str, str]:
    """``Key : value`` lines of an ``npu-smi info -t ...`` recording ({} if not recorded)."""
    if not path.is_file():
        return {}
    pairs = (line.split(":", 1) for line in path.read_text().splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def dcmi_data(recording: Path) -> str:
    """The fake library's key=value file for a recording directory: every value is one the
    recording printed; what it did not print is left out (the fake then answers "not
    supported"). Logical ids from ``npu-smi info -m`` where recorded, else table order."""
    table = (recording / "npu-smi-info.txt").read_text()
    version = re.search(r"Version:\s*(\S+)", table)
    chips, procs = _table_chips(table)
    logic: dict[tuple[str, str], str] = {}
    m_file = recording / "npu-smi-info-m.txt"
    if m_file.is_file():
        for line in m_file.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                logic[(parts[0], parts[1])] = parts[2]
    lines = [f"driver_version={version.group(1)}"] if version else []
    for position, c in enumerate(chips):
        key = (c["npu"], c["chip"])
        name = c["name"][len("Ascend"):] if c["name"].startswith("Ascend") else c["name"]
        fields = [f"card={c['npu']}", f"dev={c['chip']}",
                  f"logic={logic.get(key, position)}", "type=Ascend", f"name={name}",
                  f"bus={c['bus']}", f"health={_HEALTH[c['health']]}", f"temp={c['temp']}",
                  f"aicore={c['aicore']}", f"hbm_used_mb={c['hbm_used']}",
                  f"hbm_total_mb={c['hbm_total']}"]
        if c["power"] != "-":
            fields.append(f"power_dw={round(float(c['power']) * 10)}")
        usages = _colon_fields(recording / f"npu-smi-info-t-usages-i-{c['npu']}.txt")
        if usages.get("Chip ID") == c["chip"]:
            fields += [f"aicpu={usages['Aicpu Usage Rate(%)']}",
                       f"hbm_bw={usages['HBM Bandwidth Usage Rate(%)']}"]
        board = _colon_fields(recording / f"npu-smi-info-t-board-i-{c['npu']}.txt")
        if board.get("Serial Number"):
            fields.append(f"serial={board['Serial Number']}")
        fields.append("procs=1")  # a process table was printed (maybe empty)
        fields += [f"proc={pid}:{used}" for pid, used in procs.get(key, [])]
        lines.append("chip " + " ".join(fields))
    return "\n".join(lines) + "\n"


# -- the fake library ---------------------------------------------------------------------------
class FakeDcmi:
    """The test hooks of one compiled fake ``libdcmi.so`` (see ``fake_dcmi.c``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lib = ctypes.CDLL(str(path))
        for name, args in {
            "fake_dcmi_load": [ctypes.c_char_p],
            "fake_dcmi_set_error": [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int],
            "fake_dcmi_set_delay": [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int],
            "fake_dcmi_set_init_error": [ctypes.c_int],
            "fake_dcmi_lose": [ctypes.c_int, ctypes.c_int],
            "fake_dcmi_set_value": [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                    ctypes.c_longlong],
            "fake_dcmi_count": [ctypes.c_char_p, ctypes.c_int, ctypes.c_int],
            "fake_dcmi_reset_counts": [],
        }.items():
            getattr(self._lib, name).argtypes = args
        self._lib.fake_dcmi_count.restype = ctypes.c_long

    def load(self, data_file: Path) -> int:
        """Load a key=value file (resets errors, delays and counters); chips loaded."""
        return int(self._lib.fake_dcmi_load(str(data_file).encode()))

    def set_error(self, fn: str, card: int = -1, dev: int = -1, code: int = NOT_SUPPORT) -> None:
        """``fn`` returns ``code`` for that chip (-1: any); code 0 removes the error."""
        self._lib.fake_dcmi_set_error(fn.encode(), card, dev, code)

    def set_delay(self, fn: str, usec: int, card: int = -1, dev: int = -1) -> None:
        """``fn`` sleeps ``usec`` µs before answering for that chip (-1: any)."""
        self._lib.fake_dcmi_set_delay(fn.encode(), card, dev, usec)

    def set_init_error(self, code: int) -> None:
        self._lib.fake_dcmi_set_init_error(code)

    def lose(self, card: int, dev: int) -> None:
        """Every call on the chip returns DCMI_ERR_CODE_DEVICE_NOT_EXIST (-8008)."""
        self._lib.fake_dcmi_lose(card, dev)

    def set_value(self, card: int, dev: int, key: str, value: int) -> None:
        assert self._lib.fake_dcmi_set_value(card, dev, key.encode(), value) == 0, key

    def count(self, fn: str | None = None, card: int = -1, dev: int = -1) -> int:
        return int(self._lib.fake_dcmi_count(fn.encode() if fn else None, card, dev))

    def reset_counts(self) -> None:
        self._lib.fake_dcmi_reset_counts()


@dataclass(frozen=True)
class DcmiLibraries:
    full: Path
    old_driver: Path


@pytest.fixture(scope="session")
def dcmi_libraries(tmp_path_factory: pytest.TempPathFactory) -> DcmiLibraries:
    """The fake library compiled twice: complete, and as an older driver's."""
    from conftest import unavailable  # late: conftest imports this module

    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        unavailable("gcc missing: the fake libdcmi.so cannot be built")
    out = tmp_path_factory.mktemp("fake_dcmi")
    libs = DcmiLibraries(out / "full" / "libdcmi.so", out / "lean" / "libdcmi.so")
    for path, flags in ((libs.full, []), (libs.old_driver, ["-DFAKE_DCMI_OLD_DRIVER"])):
        path.parent.mkdir()
        subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-Wall", *flags, "-o",
                        str(path), str(FAKE_DIR / "fake_dcmi.c")], check=True,
                       capture_output=True, timeout=120)
    return libs


def make_host(root: Path, chips: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host root whose /dev has ``davinci0`` .. and ``davinci_manager`` (files suffice)."""
    dev = root / "dev"
    dev.mkdir(parents=True, exist_ok=True)
    for name in [f"davinci{i}" for i in range(chips)] + ["davinci_manager"]:
        (dev / name).touch()
    monkeypatch.setenv("TRACKLAB_HOST_ROOT", str(root))
    return root


@pytest.fixture
def fake_dcmi_factory(dcmi_libraries: DcmiLibraries, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeDcmi]:
    """A function that loads a recording into the fake library and points the backend at it."""
    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES", raising=False)

    def make(recording: str = "910b3-x8", old_driver: bool = False) -> FakeDcmi:
        path = dcmi_libraries.old_driver if old_driver else dcmi_libraries.full
        fake = FakeDcmi(path)
        data = tmp_path / f"{recording}.dcmi"
        data.write_text(dcmi_data(ASCEND_FIXTURES / recording))
        chips = fake.load(data)
        assert chips > 0
        monkeypatch.setenv("TRACKLAB_DCMI_LIBRARY", str(path))
        make_host(tmp_path / "host", chips, monkeypatch)
        return fake

    return make


@dataclass
class FakeNpuSmi:
    """``tests/fake_dcmi/npu-smi`` as the backend sees it: set ``mode``/``drop``, read ``calls``."""

    log: Path
    monkeypatch: pytest.MonkeyPatch

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def mode(self, mode: str) -> None:
        """``ok``, ``fail`` (exit 1), ``hang`` (sleeps) or ``garbage`` (no table)."""
        self.monkeypatch.setenv("TRACKLAB_FAKE_NPU_SMI_MODE", mode)

    def drop(self, npu: int | None) -> None:
        """Leave NPU ``npu`` out of ``npu-smi info`` (None: show every NPU again)."""
        if npu is None:
            self.monkeypatch.delenv("TRACKLAB_FAKE_NPU_SMI_DROP", raising=False)
        else:
            self.monkeypatch.setenv("TRACKLAB_FAKE_NPU_SMI_DROP", str(npu))


@pytest.fixture
def fake_npu_smi_factory(tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeNpuSmi]:
    """A function that puts the fake ``npu-smi`` (replaying a recording) first on PATH and
    makes DCMI unloadable, so the backend uses npu-smi."""
    monkeypatch.delenv("ASCEND_RT_VISIBLE_DEVICES", raising=False)

    def make(recording: str = "910b3-x8") -> FakeNpuSmi:
        log = tmp_path / "npu-smi.calls"
        monkeypatch.setenv("PATH", f"{FAKE_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv("TRACKLAB_FAKE_NPU_SMI_DIR", str(ASCEND_FIXTURES / recording))
        monkeypatch.setenv("TRACKLAB_FAKE_NPU_SMI_LOG", str(log))
        monkeypatch.setenv("TRACKLAB_FAKE_NPU_SMI_MODE", "ok")
        monkeypatch.delenv("TRACKLAB_FAKE_NPU_SMI_DROP", raising=False)
        monkeypatch.setenv("TRACKLAB_DCMI_LIBRARY", str(tmp_path / "no-libdcmi.so"))
        table = (ASCEND_FIXTURES / recording / "npu-smi-info.txt").read_text()
        make_host(tmp_path / "host", len(_table_chips(table)[0]), monkeypatch)
        return FakeNpuSmi(log, monkeypatch)

    return make
