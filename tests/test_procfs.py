"""The /proc readers behind the host collectors' fast paths.

Parsers are checked on literal file text (fields, devices counted, psutil's rules); readers
against psutil on this machine, read back to back: a counter psutil read between two of our
reads must lie between them.
"""

from __future__ import annotations

import os
import random
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import IN_CI

from tracklab_jupyter.collectors import procfs
from tracklab_jupyter.collectors.cpu import CpuCollector, CpuUtil, _pct, cpu_util, process_counts
from tracklab_jupyter.collectors.disk import DiskCollector
from tracklab_jupyter.collectors.memory import MemoryCollector
from tracklab_jupyter.collectors.network import NetworkCollector
from tracklab_jupyter.collectors.procfs import (
    DiskIO,
    MemInfo,
    NetIO,
    ProcFile,
    Unwrap,
    parse_diskstats,
    parse_meminfo,
    parse_net_dev,
    parse_per_cpu_times,
    storage_devices,
)

# Every CI machine is Linux: there, a missing /proc is a failure, not a skip.
linux_only = pytest.mark.skipif(not psutil.LINUX and not IN_CI,
                                reason="not Linux: /proc is Linux only")

Times10 = namedtuple("Times10", "user nice system idle iowait irq softirq steal guest guest_nice")
Times8 = namedtuple("Times8", "user nice system idle iowait irq softirq steal")

PROC_STAT = b"""\
cpu  3000 10 700 50000 120 0 30 5 0 0
cpu0 1000 10 300 25000 100 0 20 3 0 0
cpu1 2000 0 400 25000 20 0 10 2 0 0
intr 1234567 0 9 0 0 0 0 0 0 0 0 0 0 0 0
ctxt 987654
btime 1700000000
processes 4242
procs_running 2
procs_blocked 0
softirq 55555 0 1 2 3 4 5 6 7 8 9
"""

MEMINFO = b"""\
MemTotal:       16000000 kB
MemFree:         2000000 kB
MemAvailable:   12000000 kB
Buffers:          100000 kB
Cached:          8000000 kB
SwapCached:            0 kB
SwapTotal:       4000000 kB
SwapFree:        3000000 kB
Shmem:             50000 kB
SReclaimable:     300000 kB
"""

NET_DEV = (
    b"Inter-|   Receive                                                |  Transmit\n"
    b" face |bytes    packets errs drop fifo frame compressed multicast"
    b"|bytes    packets errs drop fifo colls carrier compressed\n"
    b"    lo:   1000     10 0 0 0 0 0 0    1000     10 0 0 0 0 0 0\n"
    b"  eth0: 500000   4000 2 3 0 0 0 7  200000   1500 1 4 0 0 0 0\n"
)

# Kernel 5.5+ lines have 20 fields, 4.18+ 18, older 2.6+ 14 for disks and 7 for partitions.
DISKSTATS = b"""\
   7       0 loop0 50 0 400 10 0 0 0 0 0 20 10 0 0 0 0 0 0
   7       1 loop1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   8       0 sda 1000 100 80000 500 2000 300 160000 900 0 1200 1400 0 0 0 0 10 5
   8       1 sda1 900 90 70000 450 1900 290 150000 850 0 1100 1300 0 0 0 0
   8       2 sda2 100 10 10000 50 100 10 10000 50 0 100 100 0 0 0 0
 259       0 nvme0n1 3000 0 600000 1000 4000 0 800000 2000 0 3000 3000
 259       1 nvme0n1p1 2900 580000 3900 790000
 253       0 dm-0 95 0 9000 40 98 0 9800 45 0 90 85 0 0 0 0 0 0 0 0
  11       0 sr0 5 0 40 1 0 0 0 0 0 1 1 0 0 0 0 0 0
 104       0 cciss/c0d0 7 0 56 1 3 0 24 1 0 2 2 0 0 0 0 0 0
 104       1 cciss/c0d0p1 7 0 56 1 3 0 24 1 0 2 2 0 0 0 0 0 0
   9       0 md0 1 2 3
"""
# What /sys/block lists: whole devices, loop and dm devices; '/' in a name is written '!'.
SYS_BLOCK = ["loop0", "loop1", "sda", "nvme0n1", "dm-0", "sr0", "cciss!c0d0"]


# --- parsers ------------------------------------------------------------------------------------


def test_per_cpu_times_skip_the_total_and_use_clock_ticks() -> None:
    cpus = parse_per_cpu_times(PROC_STAT, Times10, 100)
    assert cpus == [
        Times10(10.0, 0.1, 3.0, 250.0, 1.0, 0.0, 0.2, 0.03, 0.0, 0.0),
        Times10(20.0, 0.0, 4.0, 250.0, 0.2, 0.0, 0.1, 0.02, 0.0, 0.0),
    ]
    # psutil sizes its tuple to the kernel's fields: extra columns are ignored.
    assert parse_per_cpu_times(PROC_STAT, Times8, 100)[1] == Times8(
        20.0, 0.0, 4.0, 250.0, 0.2, 0.0, 0.1, 0.02)


def test_meminfo_follows_psutil_rules() -> None:
    assert parse_meminfo(MEMINFO) == MemInfo(
        total=16_000_000 * 1024, available=12_000_000 * 1024,
        swap_total=4_000_000 * 1024, swap_used=1_000_000 * 1024)
    # An LXC container showing the host's MemAvailable: free memory instead, as psutil.
    lxc = MEMINFO.replace(b"MemAvailable:   12000000", b"MemAvailable:   99000000")
    assert parse_meminfo(lxc).available == 2_000_000 * 1024
    # The kernel bug psutil estimates around is passed on as 0 for the reader to handle.
    assert parse_meminfo(MEMINFO.replace(b"12000000", b"0")).available == 0
    # Kernels before 3.14 have no MemAvailable: not ours to estimate.
    with pytest.raises(KeyError):
        parse_meminfo(MEMINFO.replace(b"MemAvailable", b"MemOther"))


def test_net_dev_counts_every_interface_with_loopback() -> None:
    rows = parse_net_dev(NET_DEV)
    assert set(rows) == {b"lo", b"eth0"}
    assert NetIO(*rows[b"eth0"]) == NetIO(bytes_sent=200000, bytes_recv=500000,
                                          packets_sent=1500, packets_recv=4000,
                                          errin=2, errout=1, dropin=3, dropout=4)
    total = NetIO(*(sum(col) for col in zip(*Unwrap()(rows).values(), strict=True)))
    assert total.bytes_recv == 501000 and total.packets_sent == 1510


def test_diskstats_sum_only_whole_devices() -> None:
    devices = frozenset(os.fsencode(n.replace("!", "/")) for n in SYS_BLOCK)
    rows = parse_diskstats(DISKSTATS, devices)
    # Partitions (sda1, nvme0n1p1, cciss/c0d0p1) would count their I/O twice; md0's line is
    # in no known layout and is skipped.
    assert set(rows) == {b"loop0", b"loop1", b"sda", b"nvme0n1", b"dm-0", b"sr0",
                         b"cciss/c0d0"}
    assert DiskIO(*rows[b"sda"]) == DiskIO(read_count=1000, write_count=2000,
                                           read_bytes=80000 * 512, write_bytes=160000 * 512)
    assert DiskIO(*rows[b"nvme0n1"]) == DiskIO(3000, 4000, 600000 * 512, 800000 * 512)
    total = DiskIO(*(sum(col) for col in zip(*rows.values(), strict=True)))
    assert total.read_count == 50 + 1000 + 3000 + 95 + 5 + 7
    assert total.write_bytes == (160000 + 800000 + 9800 + 24) * 512


def test_diskstats_old_partition_lines_are_read() -> None:
    # On 2.6 kernels a partition line has 7 fields: reads, sectors read, writes, written.
    rows = parse_diskstats(DISKSTATS, frozenset({b"nvme0n1p1"}))
    assert rows == {b"nvme0n1p1": (2900, 3900, 580000 * 512, 790000 * 512)}


def test_storage_devices_lists_sys_block(tmp_path: Path) -> None:
    for name in SYS_BLOCK:
        (tmp_path / name).mkdir()
    assert storage_devices(str(tmp_path)) == {
        b"loop0", b"loop1", b"sda", b"nvme0n1", b"dm-0", b"sr0", b"cciss/c0d0"}
    assert storage_devices(str(tmp_path / "missing")) == frozenset()


def test_unwrap_keeps_sums_from_dropping() -> None:
    unwrap = Unwrap()

    def total(rows: dict[bytes, tuple[int, ...]]) -> list[int]:
        return [sum(col) for col in zip(*unwrap(rows).values(), strict=True)]

    assert total({b"a": (100, 5), b"b": (10, 1)}) == [110, 6]
    # a's first field wrapped (or a was re-created): 100 is carried from now on.
    assert total({b"a": (20, 6), b"b": (11, 1)}) == [131, 7]
    assert total({b"a": (30, 7), b"b": (12, 1)}) == [142, 8]
    # a disappears: what it carried goes with it, as in psutil.
    assert total({b"b": (13, 1)}) == [13, 1]
    assert total({b"a": (1, 1), b"b": (14, 1)}) == [15, 2]


def _reference_cpu_util(prev: list[Any], cur: list[Any]) -> CpuUtil | None:
    """cpu_util as it was written before it took fields by position (through _asdict)."""

    def busy_total(times: Any) -> tuple[float, float]:
        f = times._asdict()
        total = sum(f.values()) - f.get("guest", 0.0) - f.get("guest_nice", 0.0)
        return total - f.get("idle", 0.0) - f.get("iowait", 0.0), total

    cores: list[float | None] = []
    sums: dict[str, float] = {}
    for a, b in zip(prev, cur, strict=True):
        busy1, total1 = busy_total(a)
        busy2, total2 = busy_total(b)
        d_total = total2 - total1
        cores.append(_pct(busy2 - busy1, d_total) if d_total > 0 else None)
        for key, value in b._asdict().items():
            sums[key] = sums.get(key, 0.0) + max(0.0, value - getattr(a, key))
    ticked = [c for c in cores if c is not None]
    total = sum(sums.values()) - sums.get("guest", 0.0) - sums.get("guest_nice", 0.0)
    if not ticked or total <= 0:
        return None
    return CpuUtil(
        overall=sum(ticked) / len(ticked), cores=cores,
        user=_pct(sums.get("user", 0.0) + sums.get("nice", 0.0), total),
        system=_pct(sums.get("system", 0.0) + sums.get("irq", 0.0) + sums.get("softirq", 0.0),
                    total),
        iowait=_pct(sums["iowait"], total) if "iowait" in sums else None)


@pytest.mark.parametrize("cls", [Times10, Times8, namedtuple("Mac", "user nice system idle")])
def test_cpu_util_is_bit_identical_to_the_dict_version(cls: Any) -> None:
    rng = random.Random(7)

    def snapshot(base: list[Any] | None) -> list[Any]:
        out = []
        for i in range(48):
            old = base[i] if base else cls(*[0.0] * len(cls._fields))
            # Whole clock ticks as psutil reports them; some fields idle, iowait may go back.
            out.append(cls(*[max(0.0, v + rng.choice([0, 0, 1, 7, 250, -3]) / 100)
                             for v in old]))
        return out

    prev = snapshot(None)
    for _ in range(20):
        cur = snapshot(prev)
        assert cpu_util(prev, cur) == _reference_cpu_util(prev, cur)
        prev = cur


# --- ProcFile -----------------------------------------------------------------------------------


def test_proc_file_rereads_grows_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"first\n")
    f = ProcFile(path, size=4)
    assert f.read() == b"first\n"  # longer than the buffer: read in pieces
    path.write_bytes(b"second, longer than the first\n")  # same inode, new content
    assert f.read() == b"second, longer than the first\n"
    f.close()
    f.close()
    assert f.read() == b"second, longer than the first\n"  # opened again on demand
    os.close(f._fd)  # a descriptor that stopped working
    assert f.read() == b"second, longer than the first\n"
    f.close()


@linux_only
def test_proc_file_reads_seq_files_past_their_first_page() -> None:
    # seq_files built record by record hand out about a page per read: a single pread of a
    # large buffer would stop there.
    with open("/proc/self/maps", "rb") as plain:
        expected = plain.read().splitlines()
    size = sum(map(len, expected))
    if size <= 8192:
        # A pytest process maps far more (25 kB for a bare python3 on the CI machine).
        message = f"/proc/self/maps is {size} bytes here, too small to need several reads"
        if IN_CI:
            pytest.fail(message + " (CI=true: on a CI machine it is larger)")
        pytest.skip(message)
    f = ProcFile("/proc/self/maps")
    lines = f.read().splitlines()
    f.close()
    assert lines[0] == expected[0] and lines[-1] == expected[-1]
    assert abs(len(lines) - len(expected)) < 10  # the process may map a little in between


# --- readers against psutil -------------------------------------------------------------------


def _between(before: Any, theirs: Any, after: Any) -> None:
    for field in before._fields:
        b, t, a = getattr(before, field), getattr(theirs, field), getattr(after, field)
        assert b <= t <= a, f"{field}: psutil {t} not within ours {b}..{a}"


@linux_only
def test_cpu_times_match_psutil() -> None:
    reader = procfs.CpuTimesReader.open()
    assert reader is not None
    before, theirs, after = reader(), psutil.cpu_times(percpu=True), reader()
    assert len(before) == len(theirs) == len(after)
    for b, t, a in zip(before, theirs, after, strict=True):
        assert type(b) is type(t)  # the same scputimes: cpu_util sees the same fields
        _between(b, t, a)
    reader.close()


@linux_only
def test_meminfo_matches_psutil() -> None:
    reader = procfs.MemInfoReader.open()
    assert reader is not None
    ours, vm, swap = reader(), psutil.virtual_memory(), psutil.swap_memory()
    reader.close()
    assert ours.total == vm.total
    assert ours.swap_total == swap.total
    slack = max(64 * 1024 * 1024, vm.total // 50)  # other processes allocate meanwhile
    assert ours.available == pytest.approx(vm.available, abs=slack)
    assert ours.swap_used == pytest.approx(swap.used, abs=slack)


@linux_only
def test_net_counters_match_psutil() -> None:
    reader = procfs.NetDevReader.open()
    assert reader is not None
    before, theirs, after = reader(), psutil.net_io_counters(pernic=False), reader()
    reader.close()
    _between(before, theirs, after)


@linux_only
def test_disk_counters_match_psutil() -> None:
    reader = procfs.DiskStatsReader.open()
    assert reader is not None
    before, theirs, after = reader(), psutil.disk_io_counters(perdisk=False), reader()
    reader.close()
    if theirs is None:
        assert before is None and after is None
        return
    assert before is not None and after is not None
    _between(before, DiskIO(*(getattr(theirs, f) for f in DiskIO._fields)), after)


@linux_only
def test_process_counts_match_psutil() -> None:
    ours = procfs.process_counts(procfs.procfs_path())
    theirs = process_counts()
    # Processes start and exit around the test (pytest plugins, the kernel's workers).
    assert ours[0] == pytest.approx(theirs[0], abs=3)
    assert ours[1] == pytest.approx(theirs[1], abs=10)
    assert ours[1] >= ours[0] >= 1


# --- choosing the path ------------------------------------------------------------------------


def _fake_proc(root: Path, meminfo: bytes = MEMINFO) -> Path:
    (root / "net").mkdir(parents=True)
    (root / "stat").write_bytes(PROC_STAT)
    (root / "meminfo").write_bytes(meminfo)
    (root / "net" / "dev").write_bytes(NET_DEV)
    (root / "diskstats").write_bytes(DISKSTATS)
    return root


@linux_only
def test_readers_follow_psutil_procfs_path(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    proc = _fake_proc(tmp_path / "proc")
    sys_block = tmp_path / "block"
    sys_block.mkdir()
    (sys_block / "sda").mkdir()
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(proc))
    readers = [procfs.CpuTimesReader.open(), procfs.MemInfoReader.open(),
               procfs.NetDevReader.open(), procfs.DiskStatsReader.open(str(sys_block))]
    cpu, mem, net, disk = readers
    assert cpu is not None and len(cpu()) == 2
    assert mem is not None and mem().total == 16_000_000 * 1024
    assert net is not None and net().bytes_recv == 501000
    assert disk is not None and disk() == DiskIO(1000, 2000, 80000 * 512, 160000 * 512)
    (sys_block / "nvme0n1").mkdir()  # a disk attached: counted from the next refresh
    disk.refresh_devices()
    assert disk() == DiskIO(4000, 6000, 680000 * 512, 960000 * 512)
    for reader in readers:
        assert reader is not None
        reader.close()


@linux_only
def test_missing_or_unknown_files_leave_psutil_in_charge(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path / "empty"))
    assert procfs.MemInfoReader.open() is None
    assert procfs.NetDevReader.open() is None
    assert procfs.DiskStatsReader.open() is None
    proc = _fake_proc(tmp_path / "proc", meminfo=b"MemTotal: 1 kB\n")  # no MemAvailable
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(proc))
    assert procfs.MemInfoReader.open() is None


def test_collectors_emit_the_same_metrics_on_either_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def build() -> list[Any]:
        return [CpuCollector(), MemoryCollector(), DiskCollector(), NetworkCollector()]

    def names(collectors: list[Any]) -> set[str]:
        out: set[str] = set()
        for c in collectors:
            reading = c.read()
            out |= {*reading.gauges, *reading.counters}
            c.close()
        return out

    on_proc = build()
    assert all(c._procfs is not None for c in on_proc) == psutil.LINUX
    with monkeypatch.context() as m:
        m.setattr(psutil, "LINUX", False)  # as on macOS or Windows: psutil throughout
        on_psutil = build()
    assert all(c._procfs is None for c in on_psutil)
    time.sleep(0.2)  # CPU utilisation needs clock ticks since the baseline, on both
    assert names(on_proc) == names(on_psutil)
