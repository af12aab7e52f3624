"""The process trees of many kernels, read cheaply from /proc.

A kernel's tree is its process and every descendant (DataLoader workers, subprocesses). The
issue's budget is 0.05 % of one core per 10 kernels, so nothing here walks every process of
the machine on a regular read (psutil's ``process_iter`` took 12 ms for 178 processes on the
H200 host, ENGINEERING_NOTES):

- One ``/proc/PID/stat`` per member and read gives name, parent, CPU ticks, threads, start
  time and RSS (its ``rss`` field is the same sum of file, anon and shmem pages as
  ``statm``'s resident, so ``statm`` and ``comm`` need no read of their own). The file is
  kept open and re-read with ``os.pread`` (3 µs against 7 µs for open+read+close here); a
  descriptor stays bound to its process, so after the process ends it answers ESRCH instead
  of describing a new process that reused the pid.
- Members are re-listed through ``/proc/PID/task/TID/children`` (a few µs per thread of a
  member), at most every ``relist_interval`` and only when the last pid the kernel handed
  out (``/proc/loadavg``) moved since the tree was last listed: no fork anywhere, no new
  member. Where the kernel has no children files (``CONFIG_PROC_CHILDREN`` off) one scan of
  every ``/proc/*/stat`` builds a parent map shared by all trees, at most every
  :data:`FALLBACK_RELIST_S`.
- PSS and USS come from ``/proc/PID/smaps_rollup``, which walks every mapping of the process
  (ms on a large one), so only every ``detail_interval`` per tree.

Accelerator memory per process comes from a system sample's ``gpu.N.proc.PID.mem_used_bytes``
(and ``npu.``/``tpu.``) values, utilisation per process from its ``gpu.N.proc.PID.util_pct``
(NVIDIA, slow cadence), whose pids are the driver's: host pids. Those match ours
unless this server runs in a pid namespace of its own (a container without ``--pid=host``),
where the host pids are not visible at all; see :attr:`ProcessTrees.pid_namespace_note`.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The processes listed per tree, largest RSS first.
MAX_PROCESSES = 32
#: Seconds between two smaps_rollup reads (PSS, USS) of one tree. A real ipykernel has ~400
#: mappings: 1.5 ms per read (20 kernels: 29 ms), which at 30 s alone cost 0.05 % of a core.
#: PSS and USS move slowly; RSS (read every pass) shows the fast changes.
DETAIL_INTERVAL_S = 300.0
#: Seconds between two listings of a tree's members through the children files (only when a
#: pid was handed out since). A listing reads one children file per thread: ~90 µs for a
#: real 12-thread ipykernel against ~12 µs to read its known members, so with the tracker's
#: 5 s interval a tree is listed on one read in three; a new DataLoader worker shows within
#: 15 s.
RELIST_INTERVAL_S = 15.0
#: Seconds between two scans of every /proc/*/stat where children files are missing.
FALLBACK_RELIST_S = 10.0
#: /proc/PID/stat descriptors kept open at most (beyond that a read opens and closes).
MAX_OPEN_FILES = 256
#: Inode of the initial pid namespace (PROC_PID_INIT_INO in include/linux/proc_ns.h).
PROC_PID_INIT_INO = 0xEFFFFFFC

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_STAT_SIZE = 1024  # a stat line is about 300 bytes; comm is at most 15 + 2 of them
_DEVICE_PROC = re.compile(r"((?:gpu|npu|tpu)\.\d+)\.proc\.(\d+)\.mem_used_bytes")
_DEVICE_PROC_UTIL = re.compile(r"((?:gpu|npu|tpu)\.\d+)\.proc\.(\d+)\.util_pct")

NOTE_NOT_MAPPED = ("inside a container with its own pid namespace: the driver's host pids "
                   "cannot be matched to kernels, so per-kernel accelerator memory is not "
                   "shown")


@dataclass
class TreeReading:
    """One kernel's process tree at one read."""

    root: int  # the kernel's pid
    pids: list[int] = field(default_factory=list)  # root and descendants found
    procs: int = 0
    threads: int = 0
    cpu_pct: float | None = None  # percent of ONE core, whole tree, since the previous read
    rss_bytes: float = 0.0
    pss_bytes: float | None = None  # smaps_rollup, every detail_interval (last known between)
    uss_bytes: float | None = None  # Private_Clean + Private_Dirty + Private_Hugetlb, same
    gpus: dict[str, float] = field(default_factory=dict)  # {"gpu.0": bytes} of the tree
    gpu_mem_bytes: float | None = None  # sum of gpus; None when no device reports the tree
    #: {"gpu.0": percent}: the summed utilisation of the tree's processes that the sample
    #: has a per-process figure for on that device (NVIDIA: 0 for one that ran nothing).
    #: A device is absent where none has one: unsupported, or not read yet (slow cadence).
    gpu_util: dict[str, float] = field(default_factory=dict)
    processes: list[dict[str, Any]] = field(default_factory=list)  # largest RSS first
    ended: bool = False  # the root process is gone


class _Stat:
    """The fields of one ``/proc/PID/stat`` line that a tree needs."""

    __slots__ = ("child_ticks", "name", "ppid", "rss_pages", "start", "state", "threads",
                 "ticks")

    def __init__(self, line: bytes) -> None:
        # comm sits in parentheses and may hold spaces or ")": split after the last ")".
        close = line.rindex(b")")
        self.name = line[line.index(b"(") + 1:close].decode("utf-8", "replace")
        f = line[close + 2:].split(None, 22)  # up to rss; the other ~30 fields unused
        self.state = f[0]
        self.ppid = int(f[1])
        self.ticks = int(f[11]) + int(f[12])  # utime + stime
        self.child_ticks = int(f[13]) + int(f[14])  # cutime + cstime: reaped children
        self.threads = int(f[17])
        self.start = int(f[19])  # clock ticks after boot: tells a reused pid apart
        self.rss_pages = int(f[21])


def parse_stat(line: bytes) -> _Stat:
    """Parse one ``/proc/PID/stat`` line (ValueError/IndexError when malformed)."""
    return _Stat(line)


def parse_nspid(status_text: str) -> list[int]:
    """The pids of the ``NSpid:`` line of a ``/proc/PID/status`` text, outermost first
    (the namespace of the procfs that was read), or [] when there is no such line."""
    for line in status_text.splitlines():
        if line.startswith("NSpid:"):
            return [int(part) for part in line[6:].split()]
    return []


def parse_smaps_rollup(text: str) -> tuple[float, float]:
    """``(pss_bytes, uss_bytes)`` of a ``/proc/PID/smaps_rollup`` text."""
    kb: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("Pss", "Private_Clean", "Private_Dirty", "Private_Hugetlb"):
            kb[name] = int(rest.split()[0])
    if "Pss" not in kb:
        raise ValueError("no Pss line in smaps_rollup")
    uss = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0) + kb.get("Private_Hugetlb", 0)
    return kb["Pss"] * 1024.0, uss * 1024.0


def device_memory_by_pid(metrics: Mapping[str, float]) -> dict[int, dict[str, float]]:
    """``{pid: {"gpu.0": bytes, ...}}`` from a system sample's per-process device values."""
    out: dict[int, dict[str, float]] = {}
    for name, value in metrics.items():
        if ".proc." in name:
            match = _DEVICE_PROC.fullmatch(name)
            if match:
                out.setdefault(int(match.group(2)), {})[match.group(1)] = float(value)
    return out


def device_util_by_pid(metrics: Mapping[str, float]) -> dict[int, dict[str, float]]:
    """``{pid: {"gpu.0": percent}}`` from a system sample's per-process utilisation values
    (``gpu.N.proc.PID.util_pct``)."""
    out: dict[int, dict[str, float]] = {}
    for name, value in metrics.items():
        if ".proc." in name:
            match = _DEVICE_PROC_UTIL.fullmatch(name)
            if match:
                out.setdefault(int(match.group(2)), {})[match.group(1)] = float(value)
    return out


def pid_namespace_nested(proc_root: str = "/proc") -> bool | None:
    """True when this process runs in a pid namespace below the initial one (a container
    without ``--pid=host``), False in the initial one, None when that cannot be read."""
    try:
        link = os.readlink(f"{proc_root}/self/ns/pid")  # "pid:[4026531836]"
        return int(link[link.index("[") + 1:-1]) != PROC_PID_INIT_INO
    except (OSError, ValueError):
        return None


def _boot_seconds() -> float:
    """Now on the clock /proc's ``starttime`` counts from (boot, suspend included)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class _Member:
    """One process of a tree, with its stat descriptor and last CPU ticks."""

    __slots__ = ("fd", "pid", "start", "ticks", "total")

    def __init__(self, pid: int, start: int, fd: int | None) -> None:
        self.pid = pid
        self.start = start
        self.fd = fd
        self.ticks = -1  # own utime+stime at the previous read; -1: not read yet
        self.total = -1  # ticks + reaped children's ticks at the previous read


class _Tree:
    """What one root's tree keeps between reads."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.root_start: int | None = None
        self.members: dict[int, _Member] = {}
        self.read_at: float | None = None  # monotonic time of the previous read
        self.read_boot = 0.0  # the same on the boot clock
        self.listed_at = float("-inf")
        self.listed_last_pid: int | None = None
        self.detail_at = float("-inf")
        self.pss: float | None = None
        self.uss: float | None = None
        self.ended = False


class ProcessTrees:
    """Reads the process trees of many roots (kernels) cheaply from /proc.

    Thread-safe; meant to be read from one tracker thread every few seconds. ``children_files``
    None detects whether ``/proc/PID/task/TID/children`` exists; False forces the scan of every
    ``/proc/*/stat`` (the fallback), True insists on the children files.
    """

    def __init__(self, proc_root: str = "/proc", detail_interval: float = DETAIL_INTERVAL_S,
                 relist_interval: float = RELIST_INTERVAL_S,
                 children_files: bool | None = None) -> None:
        self.proc_root = proc_root.rstrip("/") or "/"
        #: False where there is no such /proc (not Linux): every root would read as ended.
        self.available = os.path.isdir(self.proc_root)
        self.detail_interval = detail_interval
        self.relist_interval = relist_interval
        self._children_files = children_files
        self._trees: dict[str, _Tree] = {}
        self._lock = threading.Lock()
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self._max_fds = MAX_OPEN_FILES if soft == resource.RLIM_INFINITY else min(
            MAX_OPEN_FILES, soft // 8)
        self._open_fds = 0
        self._scan: dict[int, list[int]] | None = None  # fallback: {ppid: [pid, ...]}
        self._scan_at = float("-inf")
        self._nested = pid_namespace_nested(self.proc_root)
        self._driver_pids: frozenset[int] = frozenset()
        self._mappable = True
        self._note: str | None = None

    # -- public ----------------------------------------------------------------------------

    @property
    def pid_namespace_note(self) -> str | None:
        """None when our pids are the driver's; otherwise a sentence saying that the
        driver's pids could not be matched to ours (a pid namespace of our own)."""
        return self._note

    def read(self, roots: Mapping[str, int], metrics: Mapping[str, float] | None = None
             ) -> dict[str, TreeReading]:
        """One reading per key of ``roots`` ({kernel id: root pid}). ``metrics``: the latest
        system sample's metrics; its ``gpu.N.proc.PID.mem_used_bytes`` /
        ``npu.N.proc.PID.mem_used_bytes`` entries give accelerator memory by (driver/host)
        pid. Trees of keys no longer in ``roots`` are forgotten."""
        with self._lock:
            now = time.monotonic()
            boot = _boot_seconds()
            devices = device_memory_by_pid(metrics or {})
            utils = device_util_by_pid(metrics or {})
            self._check_namespace(devices)
            if not self._mappable:
                devices, utils = {}, {}
            last_pid = self._last_pid()
            out: dict[str, TreeReading] = {}
            for key, root in roots.items():
                tree = self._trees.get(key)
                if tree is None or tree.root != root:
                    if tree is not None:
                        self._close_tree(tree)
                    tree = self._trees[key] = _Tree(root)
                out[key] = self._read_tree(tree, now, boot, last_pid, devices, utils)
            for key in [k for k in self._trees if k not in roots]:
                self._close_tree(self._trees.pop(key))
            return out

    def close(self) -> None:
        """Close every descriptor kept open and forget all trees."""
        with self._lock:
            for tree in self._trees.values():
                self._close_tree(tree)
            self._trees.clear()

    # -- one tree --------------------------------------------------------------------------

    def _read_tree(self, tree: _Tree, now: float, boot: float, last_pid: int | None,
                   devices: Mapping[int, Mapping[str, float]],
                   utils: Mapping[int, Mapping[str, float]]) -> TreeReading:
        if tree.ended:
            return TreeReading(root=tree.root, ended=True)
        # 10 % slack: a tracker reading every relist_interval seconds, a little early now
        # and then, must not list only every other read.
        due = now - tree.listed_at >= 0.9 * self.relist_interval and (
            last_pid is None or last_pid != tree.listed_last_pid or not tree.members)
        if due:
            pids = self._descendants(tree.root)
            tree.listed_at, tree.listed_last_pid = now, last_pid
        else:
            pids = list(tree.members)
        old = tree.members
        stats: dict[int, _Stat] = {}
        members: dict[int, _Member] = {}
        for pid in pids:
            member, stat = self._member_stat(old.get(pid), pid)
            if member is not None and stat is not None:
                members[pid], stats[pid] = member, stat
        root_stat = stats.get(tree.root)
        if (root_stat is None or root_stat.state == b"Z"
                or (tree.root_start is not None and root_stat.start != tree.root_start)):
            # The root ended (a zombie the server has not reaped yet counts as ended), or
            # its pid now names another process.
            for member in [*old.values(), *members.values()]:
                self._close_member(member)
            tree.members, tree.ended = {}, True
            return TreeReading(root=tree.root, ended=True)
        tree.root_start = root_stat.start
        _prune_orphans(tree.root, stats)  # a member whose parent left the tree left it too
        tree.members = {pid: members[pid] for pid in stats}
        kept = {id(member) for member in tree.members.values()}
        for member in [*old.values(), *members.values()]:
            if id(member) not in kept:
                self._close_member(member)

        first = tree.read_at is None
        dt = 0.0 if first else now - tree.read_at
        fresh_after = tree.read_boot * CLK_TCK  # ticks after boot of the previous read
        # Tree CPU = change of the sum over members of their own and their reaped children's
        # ticks (cutime), so a short subprocess that ran and was reaped between two reads
        # (`!pip install`) counts too. A member gone since the previous read had its ticks
        # counted already; the parent that reaped it just gained its whole lifetime in
        # cutime, so its last known total comes off (one reaped outside the tree lowers the
        # figure: clamped at 0).
        delta_ticks = -sum(member.total for member in old.values()
                           if id(member) not in kept and member.total >= 0)
        rows: list[dict[str, Any]] = []
        gpus: dict[str, float] = {}
        gpu_util: dict[str, float] = {}
        seen_gpu = False
        threads = 0
        rss = 0.0
        for pid, stat in stats.items():
            member = tree.members[pid]
            total = stat.ticks + stat.child_ticks
            if member.ticks >= 0:  # known: what it used since the previous read
                own = stat.ticks - member.ticks
                delta_ticks += total - member.total
            elif not first and stat.start >= fresh_after:
                own = stat.ticks  # born since the previous read: all of its time is new
                delta_ticks += total
            else:
                own = 0  # found late (or the first read): its past is not this interval's
            member.ticks, member.total = stat.ticks, total
            if stat.state == b"Z":
                continue  # kept for the CPU sums until reaped; holds no memory or threads
            rss_bytes = float(stat.rss_pages * PAGE_SIZE)
            per_device = devices.get(pid)
            gpu_bytes = None
            if per_device:
                seen_gpu = True
                gpu_bytes = float(sum(per_device.values()))
                for device, value in per_device.items():
                    gpus[device] = gpus.get(device, 0.0) + value
            # Only pids the sample has a figure for: the memory list is read every second,
            # utilisation every few (a new process has none yet: unknown, not idle).
            for device, value in utils.get(pid, {}).items():
                gpu_util[device] = gpu_util.get(device, 0.0) + value
            rows.append({"pid": pid, "name": stat.name,
                         "cpu_pct": max(0.0, own / CLK_TCK / dt * 100.0) if dt > 0 else 0.0,
                         "rss_bytes": rss_bytes, "threads": stat.threads,
                         "gpu_mem_bytes": gpu_bytes})
            threads += stat.threads
            rss += rss_bytes
        cpu_pct = None if first or dt <= 0 else max(0.0, delta_ticks / CLK_TCK / dt * 100.0)
        tree.read_at, tree.read_boot = now, boot

        if now >= tree.detail_at:
            tree.pss, tree.uss = self._details(tree.root, stats)
            tree.detail_at = now + 0.9 * self.detail_interval  # slack as for listings
        rows.sort(key=lambda row: row["rss_bytes"], reverse=True)
        return TreeReading(
            root=tree.root, pids=sorted(row["pid"] for row in rows), procs=len(rows),
            threads=threads, cpu_pct=cpu_pct, rss_bytes=rss, pss_bytes=tree.pss,
            uss_bytes=tree.uss, gpus=gpus,
            gpu_mem_bytes=float(sum(gpus.values())) if seen_gpu else None, gpu_util=gpu_util,
            processes=rows[:MAX_PROCESSES])

    def _member_stat(self, member: _Member | None, pid: int
                     ) -> tuple[_Member | None, _Stat | None]:
        """The member for ``pid`` (the known one while it is the same process) and its stat;
        (None, None) when it ended, cannot be read, or its pid was reused."""
        if member is not None:
            stat = self._read_stat(member)
            if stat is not None and stat.start == member.start:
                return member, stat
            self._close_member(member)
        path = f"{self.proc_root}/{pid}/stat"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # ended since it was listed, or not ours to read
            return None, None
        try:
            stat = _Stat(os.pread(fd, _STAT_SIZE, 0))
        except (OSError, ValueError, IndexError):
            os.close(fd)
            return None, None
        if self._open_fds < self._max_fds:
            self._open_fds += 1
            return _Member(pid, stat.start, fd), stat
        os.close(fd)
        return _Member(pid, stat.start, None), stat

    def _read_stat(self, member: _Member) -> _Stat | None:
        try:
            if member.fd is not None:
                return _Stat(os.pread(member.fd, _STAT_SIZE, 0))
            with open(f"{self.proc_root}/{member.pid}/stat", "rb") as f:
                return _Stat(f.read(_STAT_SIZE))
        except (OSError, ValueError, IndexError):  # ESRCH once it ended
            return None

    def _details(self, root: int, stats: Mapping[int, _Stat]
                 ) -> tuple[float | None, float | None]:
        """Summed PSS and USS of the members, or Nones when one cannot be read (a partial
        sum would look like a real figure)."""
        pss = uss = 0.0
        for pid, stat in stats.items():
            if stat.state == b"Z":
                continue
            try:
                with open(f"{self.proc_root}/{pid}/smaps_rollup") as f:
                    p, u = parse_smaps_rollup(f.read())
            except (ProcessLookupError, FileNotFoundError):
                # Ended since its stat was read: nothing left to count. (A kernel without
                # smaps_rollup, < 4.14, fails on the root too, and reports None below.)
                if pid == root:
                    return None, None
                continue
            except (OSError, ValueError, IndexError):  # not ours to read (ptrace access)
                return None, None
            pss += p
            uss += u
        return pss, uss

    # -- listing ---------------------------------------------------------------------------

    def _descendants(self, root: int) -> list[int]:
        """``root`` and its descendants at this moment."""
        if self._children_files is not False:
            found = self._walk_children(root)
            if found is not None:
                self._children_files = True
                return found
            self._children_files = False
        children = self._scan_ppids()
        out, todo, seen = [root], [root], {root}
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    out.append(child)
                    todo.append(child)
        return out

    def _walk_children(self, root: int) -> list[int] | None:
        """Descendants through the children files; None where the kernel has none."""
        out, todo, seen = [root], [root], {root}
        while todo:
            pid = todo.pop()
            task = f"{self.proc_root}/{pid}/task"
            try:
                tids = os.listdir(task)
            except OSError:  # ended, or not ours to list
                continue
            for tid in tids:
                try:
                    fd = os.open(f"{task}/{tid}/children", os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    if self._children_files is None and os.path.exists(f"{task}/{tid}/stat"):
                        return None  # the thread is there, its children file is not
                    continue
                except OSError:
                    continue
                try:
                    data = _read_all(fd)
                except OSError:
                    continue
                finally:
                    os.close(fd)
                for child in map(int, data.split()):
                    if child not in seen:  # a pid reused mid-walk must not loop
                        seen.add(child)
                        out.append(child)
                        todo.append(child)
        return out

    def _scan_ppids(self) -> dict[int, list[int]]:
        """``{ppid: [pid, ...]}`` of every process, rebuilt at most every
        :data:`FALLBACK_RELIST_S` seconds and shared by all trees."""
        now = time.monotonic()
        if self._scan is not None and now - self._scan_at < max(
                self.relist_interval, FALLBACK_RELIST_S):
            return self._scan
        children: dict[int, list[int]] = {}
        with contextlib.suppress(OSError):
            for name in os.listdir(self.proc_root):
                if not name.isdigit():
                    continue
                try:
                    fd = os.open(f"{self.proc_root}/{name}/stat", os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    ppid = _Stat(os.read(fd, _STAT_SIZE)).ppid
                except (OSError, ValueError, IndexError):
                    continue
                finally:
                    os.close(fd)
                children.setdefault(ppid, []).append(int(name))
        self._scan, self._scan_at = children, now
        return children

    def _last_pid(self) -> int | None:
        """The last pid handed out in our namespace (5th field of /proc/loadavg), or None."""
        try:
            with open(f"{self.proc_root}/loadavg", "rb") as f:
                return int(f.read().split()[4])
        except (OSError, ValueError, IndexError):
            return None

    # -- pid namespaces --------------------------------------------------------------------

    def _check_namespace(self, devices: Mapping[int, Any]) -> None:
        """Decide whether the driver's pids are ours, when the set of them changes.

        In the initial pid namespace they are. In a namespace of our own (a container) the
        driver's host pids are not in our /proc, so none can be matched, unless every one is
        (a driver or fake inside our namespace). Unknown namespace: only the evidence of pids
        that are not there at all."""
        pids = frozenset(devices)
        if not pids or pids == self._driver_pids:
            return
        self._driver_pids = pids
        if self._nested is False:
            self._mappable, self._note = True, None
            return
        visible = sum(os.path.exists(f"{self.proc_root}/{pid}") for pid in pids)
        mappable = visible == len(pids) if self._nested else visible > 0
        self._mappable = mappable
        self._note = None if mappable else NOTE_NOT_MAPPED

    # -- descriptors -----------------------------------------------------------------------

    def _close_member(self, member: _Member) -> None:
        if member.fd is not None:
            with contextlib.suppress(OSError):
                os.close(member.fd)
            member.fd = None
            self._open_fds -= 1

    def _close_tree(self, tree: _Tree) -> None:
        for member in tree.members.values():
            self._close_member(member)
        tree.members = {}


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _prune_orphans(root: int, stats: dict[int, _Stat]) -> None:
    """Drop members whose parent is no longer in the tree (reparented to init or a
    subreaper when their parent ended), and so on down."""
    while True:
        gone = [pid for pid, stat in stats.items() if pid != root and stat.ppid not in stats]
        if not gone:
            return
        for pid in gone:
            del stats[pid]

