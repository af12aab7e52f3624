"""Linux /proc readers for the 1 Hz path: the files psutil reads, kept open between ticks.

At 1 Hz the caches are cold on every tick, and opening a /proc file then costs more than
reading it: on a small VM ``open()`` + ``read()`` of /proc/stat took 0.36 ms where
``os.pread`` on a descriptor kept open took 0.06 ms (/proc/meminfo 0.20 vs 0.06,
/proc/diskstats 0.19 vs 0.06, /proc/net/dev 0.24 vs 0.06). psutil opens the file on every
call, so the host collectors read these four files through :class:`ProcFile` instead.

Each parser returns exactly what the collector took from psutil before (same fields, same
arithmetic, same choice of devices), so the metrics do not change. Each reader's
:meth:`~_Reader.open` returns None off Linux, where the file is missing, or where its first
read is not understood; the collector then keeps calling psutil. One code path is chosen at
construction and kept.

Files live under ``psutil.PROCFS_PATH`` (``/proc`` unless changed, e.g. to a host's /proc
mounted into a container), read when a reader is opened.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Self

import psutil

log = logging.getLogger("tracklab_jupyter.collectors.procfs")

#: Where psutil looks for whole storage devices (it does not apply PROCFS_PATH here either).
SYS_BLOCK = "/sys/block"
#: /proc/diskstats counts sectors of 512 bytes whatever the device's real sector size.
SECTOR_SIZE = 512

#: Exceptions that mean "this file is not in the format we parse": the reader is not used.
_PARSE_ERRORS = (OSError, ValueError, LookupError, TypeError)


def procfs_path() -> str:
    """psutil's /proc mount point (``psutil.PROCFS_PATH``), ``/proc`` by default."""
    return str(getattr(psutil, "PROCFS_PATH", "/proc"))


class ProcFile:
    """One /proc file held open and re-read from offset 0 with ``os.pread``.

    A seq_file regenerates its content on a read at offset 0, so re-reading the same
    descriptor gives fresh values without the cost of ``open()``. A read may stop short of
    the end (files built record by record, such as /proc/diskstats, hand out about a page per
    call), so it continues until a read returns nothing. The buffer grows to the largest
    content seen, so a file read whole in one call stays one call. Thread-safe: the slow
    thread may read the same file as the tick.
    """

    _fd: int | None = None

    def __init__(self, path: str | os.PathLike[str], size: int = 8192) -> None:
        self.path = os.fspath(path)
        self._size = size
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self) -> bytes:
        """The file's current content; reopens once if the descriptor stopped working."""
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                return self._read(self._fd)
            except OSError:
                # A stale descriptor (procfs remounted, a file closed under us): one fresh
                # open; if that fails too the error reaches the caller.
                fd, self._fd = self._fd, None
                with contextlib.suppress(OSError):
                    os.close(fd)
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                return self._read(self._fd)

    def _read(self, fd: int) -> bytes:
        data = os.pread(fd, self._size, 0)
        more = os.pread(fd, self._size, len(data)) if data else b""
        if not more:
            return data
        chunks = [data, more]
        offset = len(data) + len(more)
        while more := os.pread(fd, self._size, offset):
            chunks.append(more)
            offset += len(more)
        if offset > self._size:
            self._size = 1 << offset.bit_length()  # next time in one call where possible
        return b"".join(chunks)

    def close(self) -> None:
        """Close the descriptor. Idempotent; a later :meth:`read` opens it again."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        # Collectors built and dropped without close() (tests, one-off snapshots) must not
        # leak descriptors.
        self._close()


# --- pure parsers ------------------------------------------------------------------------------


def parse_per_cpu_times(data: bytes, cls: Any, clock_ticks: int) -> list[Any]:
    """Per-CPU times from /proc/stat, as ``psutil.cpu_times(percpu=True)`` builds them.

    ``cls`` is psutil's ``scputimes`` (its fields depend on the kernel: user, nice, system,
    idle, iowait, irq, softirq[, steal[, guest[, guest_nice]]]); values are clock ticks
    divided by ``clock_ticks``. The first line (all CPUs) is skipped; offline CPUs have no
    line, so they are left out as psutil leaves them out.
    """
    nfields = len(cls._fields)
    out = []
    for line in data.split(b"\n")[1:]:
        if line.startswith(b"cpu"):
            values = line.split()
            out.append(cls(*[float(x) / clock_ticks for x in values[1:nfields + 1]]))
    return out


class MemInfo(NamedTuple):
    """Host memory and swap in bytes, as psutil's ``virtual_memory``/``swap_memory`` see it."""

    total: int
    available: int
    swap_total: int
    swap_used: int


_MEMINFO_RE = re.compile(rb"^(MemTotal|MemFree|MemAvailable|SwapTotal|SwapFree):\s+(\d+)", re.M)


def parse_meminfo(data: bytes) -> MemInfo:
    """Memory and swap from /proc/meminfo (values in kB), with psutil's rules.

    available is MemAvailable, or MemFree where MemAvailable exceeds the total (an LXC
    container showing the host's figures; psutil and procps do the same); 0 stays 0 (see
    :class:`MemInfoReader`). Raises KeyError where a field is missing: kernels before 3.14
    have no MemAvailable, and psutil's estimate from /proc/zoneinfo is left to psutil.
    """
    kib = {key: int(value) for key, value in _MEMINFO_RE.findall(data)}
    total = kib[b"MemTotal"] * 1024
    available = kib[b"MemAvailable"] * 1024
    if available > total:
        available = kib[b"MemFree"] * 1024
    swap_total = kib[b"SwapTotal"] * 1024
    return MemInfo(total, available, swap_total, swap_total - kib[b"SwapFree"] * 1024)


class NetIO(NamedTuple):
    """Network counters of one interface or summed over interfaces; field names and order
    of psutil's snetio."""

    bytes_sent: int
    bytes_recv: int
    packets_sent: int
    packets_recv: int
    errin: int
    errout: int
    dropin: int
    dropout: int


def parse_net_dev(data: bytes) -> dict[bytes, tuple[int, ...]]:
    """Per-interface counters from /proc/net/dev, in :class:`NetIO` order.

    Every interface counts, loopback included, as in ``psutil.net_io_counters``.
    """
    rows: dict[bytes, tuple[int, ...]] = {}
    for line in data.split(b"\n")[2:]:  # two header lines
        colon = line.rfind(b":")  # an interface name may itself contain ':'
        if colon <= 0:
            continue  # the trailing empty line
        f = line[colon + 1:].split()
        # receive: bytes packets errs drop fifo frame compressed multicast; then transmit:
        # bytes packets errs drop fifo colls carrier compressed
        rows[line[:colon].strip()] = (int(f[8]), int(f[0]), int(f[9]), int(f[1]),
                                      int(f[2]), int(f[10]), int(f[3]), int(f[11]))
    return rows


class DiskIO(NamedTuple):
    """Block-device counters of one device or summed over whole devices; names and order
    of the first fields of psutil's sdiskio."""

    read_count: int
    write_count: int
    read_bytes: int
    write_bytes: int


#: Field names of the per-device counters a sample keeps (``Sample.device_counters``),
#: by group: what the Prometheus exposition reads its disk and network counters from.
DEVICE_COUNTER_FIELDS: dict[str, tuple[str, ...]] = {"net": NetIO._fields,
                                                     "disk": DiskIO._fields}


def parse_diskstats(data: bytes, devices: frozenset[bytes]) -> dict[bytes, tuple[int, ...]]:
    """Per-device counters from /proc/diskstats for the names in ``devices``, as
    :class:`DiskIO` tuples (bytes, not sectors).

    ``devices`` are the whole storage devices (:func:`storage_devices`); psutil's totals
    skip partitions, which would count every I/O twice. Lines have 14 fields (kernels
    2.6-4.17), 18 (4.18+) or 20 (5.5+); 7 is a partition on old 2.6 kernels. Python 3.11
    does not run on the 2.4 kernels that wrote 15. A line of another length is skipped
    (psutil rejects the whole file: one odd line should not hide every other device).
    """
    rows: dict[bytes, tuple[int, ...]] = {}
    for line in data.split(b"\n"):
        f = line.split()
        n = len(f)
        if n < 7 or f[2] not in devices:
            continue
        if n == 14 or n >= 18:  # reads merged sectors ms writes merged sectors ...
            reads, rsect, writes, wsect = f[3], f[5], f[7], f[9]
        elif n == 7:  # reads sectors writes sectors
            reads, rsect, writes, wsect = f[3], f[4], f[5], f[6]
        else:
            continue
        rows[f[2]] = (int(reads), int(writes), int(rsect) * SECTOR_SIZE,
                      int(wsect) * SECTOR_SIZE)
    return rows


def storage_devices(sys_block: str = SYS_BLOCK) -> frozenset[bytes]:
    """Names /proc/diskstats uses for whole storage devices: the entries of /sys/block.

    psutil counts a diskstats name when ``/sys/block/<name>`` exists (with '/' written
    '!', as in ``cciss!c0d0``): disks, but also loop, zram, md and dm devices; never
    partitions. Listing the directory once gives the same set as that per-name test.
    Empty where /sys/block cannot be read, and then, as with psutil, nothing is counted.
    """
    try:
        names = os.listdir(sys_block)
    except OSError:
        return frozenset()
    return frozenset(os.fsencode(name.replace("!", "/")) for name in names)


def process_counts(proc: str) -> tuple[int, int]:
    """(processes, threads) under ``proc``: what ``process_iter`` + ``num_threads`` count.

    The kernel gives a pid's ``task/`` directory 2 + its thread count as link count, so one
    ``stat`` per process replaces psutil's open + read + parse of ``/proc/<pid>/status``
    (0.3 ms instead of 2-3 ms for 70 processes). A process that exits mid-scan is skipped,
    as ``process_iter`` skips it.
    """
    procs = threads = 0
    for entry in os.scandir(proc):
        if entry.name.isdigit():
            try:
                threads += os.stat(os.path.join(entry.path, "task")).st_nlink - 2
            except OSError:
                continue
            procs += 1
    return procs, threads


class Unwrap:
    """psutil's ``nowrap`` for counters kept per key (interfaces, disks).

    A per-key value that goes down wrapped or was reset (a NIC re-created): from then on its
    last value is added back, so the key's counters, and their sum, never drop. A key
    that disappears forgets what was added, as in psutil.
    """

    def __init__(self) -> None:
        self._last: Mapping[bytes, tuple[int, ...]] = {}
        self._offsets: dict[bytes, tuple[int, ...]] = {}

    def __call__(self, rows: Mapping[bytes, tuple[int, ...]]
                 ) -> Mapping[bytes, tuple[int, ...]]:
        """The rows with earlier wraps added back."""
        last, offsets = self._last, self._offsets
        for key, row in rows.items():
            prev = last.get(key)
            if prev is not None and not all(map(operator.ge, row, prev)):
                base = offsets.get(key, (0,) * len(row))
                offsets[key] = tuple(b + p if r < p else b
                                     for b, r, p in zip(base, row, prev, strict=True))
        if offsets:
            for key in offsets.keys() - rows.keys():
                del offsets[key]
        self._last = rows
        if not offsets:
            return rows
        return {key: tuple(map(operator.add, row, offsets[key])) if key in offsets else row
                for key, row in rows.items()}


def sum_counters(each: Mapping[str, Sequence[int]], cls: Any) -> Any:
    """Per-device counters (a psutil namedtuple or ours per name) summed field by field into
    ``cls`` (:class:`NetIO`, :class:`DiskIO`: psutil's first fields, in its order); None
    when there is no device, as psutil answers then."""
    if not each:
        return None
    width = len(cls._fields)
    return cls(*[sum(column) for column in zip(*(row[:width] for row in each.values()),
                                               strict=True)])


# --- readers -----------------------------------------------------------------------------------


class _Reader:
    """One /proc file and its parser. Subclasses define ``__call__``."""

    def __init__(self, name: str) -> None:
        self._file = ProcFile(os.path.join(procfs_path(), name))

    @classmethod
    def open(cls, *args: Any) -> Self | None:
        """The reader, or None where psutil must be used (not Linux, file missing or in a
        format the parser does not know)."""
        if not psutil.LINUX:
            return None
        reader = None
        try:
            reader = cls(*args)
            reader()  # the first read proves the format
        except _PARSE_ERRORS as exc:
            log.debug("%s: not using /proc directly (%s: %s)", cls.__name__,
                      type(exc).__name__, exc)
            if reader is not None:
                reader.close()
            return None
        return reader

    def __call__(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Close the file. Idempotent."""
        self._file.close()


class CpuTimesReader(_Reader):
    """``psutil.cpu_times(percpu=True)`` from /proc/stat."""

    def __init__(self) -> None:
        super().__init__("stat")
        # psutil sized scputimes to this kernel's /proc/stat at import; reuse its class so
        # cpu_util sees the same fields.
        self._cls = type(psutil.cpu_times())
        self._ticks = os.sysconf("SC_CLK_TCK")

    def __call__(self) -> list[Any]:
        """One scputimes per online CPU."""
        times = parse_per_cpu_times(self._file.read(), self._cls, self._ticks)
        if not times:
            raise ValueError("no per-CPU lines in /proc/stat")
        return times


class MemInfoReader(_Reader):
    """``virtual_memory`` total/available and ``swap_memory`` total/used from /proc/meminfo.

    One read gives swap too: psutil's ``swap_memory`` also parses /proc/vmstat for swap-in
    and swap-out, which no metric uses.
    """

    def __init__(self) -> None:
        super().__init__("meminfo")

    def __call__(self) -> MemInfo:
        """Memory and swap now."""
        info = parse_meminfo(self._file.read())
        if info.available == 0:
            # A kernel bug (psutil #1915) that psutil works around by estimating from
            # /proc/zoneinfo as `free` does; rare enough to borrow its estimate.
            info = info._replace(available=psutil.virtual_memory().available)
        return info


class NetDevReader(_Reader):
    """``psutil.net_io_counters(pernic=True)`` (nowrap on) from /proc/net/dev."""

    def __init__(self) -> None:
        super().__init__("net/dev")
        self._unwrap = Unwrap()

    def read_each(self) -> dict[str, NetIO]:
        """Counters of every interface of this network namespace, by name."""
        rows = self._unwrap(parse_net_dev(self._file.read()))
        return {os.fsdecode(name): NetIO(*row) for name, row in rows.items()}

    def __call__(self) -> NetIO | None:
        """Counters summed over every interface; None when there is none (as psutil)."""
        return sum_counters(self.read_each(), NetIO)


class DiskStatsReader(_Reader):
    """``psutil.disk_io_counters(perdisk=True)`` (nowrap on) from /proc/diskstats.

    The set of whole devices is read once here and again by :meth:`refresh_devices` (the
    disk collector's slow path), where psutil tests /sys/block for every line on every call.
    """

    def __init__(self, sys_block: str = SYS_BLOCK) -> None:
        super().__init__("diskstats")
        self._sys_block = sys_block
        self._unwrap = Unwrap()
        self.devices = storage_devices(sys_block)

    def refresh_devices(self) -> None:
        """Re-list /sys/block (a disk attached, a loop device set up)."""
        self.devices = storage_devices(self._sys_block)

    def read_each(self) -> dict[str, DiskIO]:
        """Counters of every whole device, by the name /proc/diskstats gives it."""
        rows = self._unwrap(parse_diskstats(self._file.read(), self.devices))
        return {os.fsdecode(name): DiskIO(*row) for name, row in rows.items()}

    def __call__(self) -> DiskIO | None:
        """Counters summed over whole devices; None when there are none (as psutil)."""
        return sum_counters(self.read_each(), DiskIO)
