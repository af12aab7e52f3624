"""Disk space per real mounted filesystem and block-device throughput.

Fast path (every tick): the counters of every whole block device, as
``disk_io_counters(perdisk=True)`` gives them. Their sums of cumulative bytes and operations
the sampler turns into ``disk.read_bytes_per_s``, ``disk.write_bytes_per_s`` and
``disk.iops``; the per-device rows are kept as they are in ``Reading.device_counters["disk"]``
for the Prometheus counters. On Linux they come from /proc/diskstats kept open
(:mod:`~tracklab_jupyter.collectors.procfs`: at 1 Hz opening the file cost more than reading
it), for the whole devices listed in /sys/block as psutil does; elsewhere from psutil.

Slow path (every :attr:`DiskCollector.slow_interval` s): re-read the mount table
(``disk_partitions``) and /sys/block, and take the space (``disk_usage``) of every mount.
Space is not read per tick: it changes slowly, and with the caches cold at 1 Hz one statvfs
cost ~0.13 ms per mount, more than all the I/O counters. The sampler merges the slow values
into every sample, so the ``disk.{mount}.*`` gauges are still in each one. Off the tick is
also where statvfs must be for network and FUSE filesystems: on a hung NFS server or FUSE
daemon it blocks until it answers, which must never stall the 1 Hz tick.

Which mounts count: real storage the user can fill. Pseudo filesystems (proc, sysfs, tmpfs,
cgroup, ...) and read-only images (squashfs, iso9660, erofs, snap loop mounts) are left out;
``overlay`` is kept only at ``/`` (the root of a container); bind mounts of a device already
listed are dropped in favour of the shortest mount point; mount points that are files
(Docker's /etc/hosts) are dropped; at most :data:`MAX_MOUNTS` are kept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import psutil

from tracklab_jupyter.collectors import procfs
from tracklab_jupyter.collectors.base import Collector, FieldGuard, Reading, host_permanent

log = logging.getLogger("tracklab_jupyter.collectors.disk")


MAX_MOUNTS = 32

PSEUDO_FS = frozenset({
    "proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "ramfs", "cgroup", "cgroup2", "cpuset",
    "securityfs", "debugfs", "tracefs", "pstore", "bpf", "mqueue", "hugetlbfs", "configfs",
    "fusectl", "autofs", "binfmt_misc", "rpc_pipefs", "nsfs", "efivarfs", "selinuxfs",
    "sockfs", "pipefs", "nfsd", "sunrpc", "devfs", "none", "shm", "overlay", "aufs",
    "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "fuse.snapfuse", "fuse.xdg-document-portal",
})
READ_ONLY_IMAGES = frozenset({"squashfs", "iso9660", "erofs", "udf", "cramfs", "romfs"})
#: Filesystems whose statvfs may wait on a server or a user-space daemon.
REMOTE_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "virtiofs", "ceph", "glusterfs", "lustre",
    "gpfs", "beegfs", "afs", "sshfs", "davfs", "fakeowner", "grpcfuse", "vboxsf", "prl_fs",
})
#: Mount points under these hold kernel interfaces or snap images, never user data. (/run is
#: not here: removable media is mounted under /run/media on some distributions.)
SYSTEM_PREFIXES = ("/proc", "/sys", "/dev", "/snap", "/var/lib/snapd")


@dataclass(frozen=True)
class Mount:
    """One filesystem to report: where, what, and whether it is a network or FUSE one."""

    mountpoint: str
    device: str
    fstype: str
    remote: bool


def is_remote(fstype: str) -> bool:
    """Network or FUSE filesystem (statvfs may block on a server or daemon)."""
    return fstype in REMOTE_FS or fstype.startswith(("fuse", "nfs"))


def keep_mount(device: str, mountpoint: str, fstype: str, opts: str,
               nodev_types: frozenset[str] = frozenset()) -> bool:
    """True when a mount-table entry is real storage worth a ``disk.{mount}.*`` series.

    ``nodev_types`` are the "nodev" filesystems of /proc/filesystems (Linux): one that is not
    block-backed and not a known network filesystem is a kernel interface we have not listed.
    """
    fstype = fstype.lower()
    if fstype == "overlay":
        return mountpoint == "/"  # the root of a container; other overlays are image layers
    if fstype in PSEUDO_FS or fstype in READ_ONLY_IMAGES or not fstype:
        return False  # no fstype: an empty CD drive on Windows
    if device.startswith("/dev/loop") and "ro" in opts.split(","):
        return False  # snap packages and other read-only images mounted from a file
    if any(mountpoint == p or mountpoint.startswith(p + "/") for p in SYSTEM_PREFIXES):
        return False
    # An unlisted kernel interface; ZFS datasets are "nodev" too but hold real data.
    return not (fstype in nodev_types and not is_remote(fstype) and fstype != "zfs")


def select_mounts(partitions: Iterable[Any], nodev_types: Iterable[str] = (),
                  limit: int = MAX_MOUNTS) -> list[Mount]:
    """Filter and de-duplicate ``psutil.disk_partitions(all=True)`` entries (pure).

    A device mounted in several places (bind mounts, btrfs subvolumes of one filesystem) is
    reported once, at its shortest mount point, since every copy shows the same space.
    """
    nodev = frozenset(nodev_types)
    candidates = [
        p for p in partitions
        if keep_mount(p.device, p.mountpoint, p.fstype, p.opts, nodev)
    ]
    candidates.sort(key=lambda p: (len(p.mountpoint), p.mountpoint))
    seen: set[str] = set()
    out: list[Mount] = []
    for p in candidates:
        key = p.device if p.device not in ("", "none") else p.mountpoint
        if key in seen:
            continue
        seen.add(key)
        out.append(Mount(p.mountpoint, p.device, p.fstype.lower(), is_remote(p.fstype.lower())))
        if len(out) >= limit:
            break
    return out


def metric_mount(mountpoint: str) -> str:
    """The ``{mount}`` part of a metric name: POSIX paths as they are, ``C:\\`` as ``/C:``."""
    if mountpoint.startswith("/"):
        return mountpoint
    return "/" + mountpoint.replace("\\", "/").strip("/")


def nodev_filesystems(path: str = "/proc/filesystems") -> frozenset[str]:
    """Filesystem types the kernel marks "nodev" (not backed by a block device)."""
    try:
        with open(path) as f:
            return frozenset(line.split()[1] for line in f if line.startswith("nodev"))
    except OSError:
        return frozenset()


def _list_mounts() -> list[Mount]:
    # all=True: the default filter drops every nodev filesystem, and with it overlay (the
    # root of a container) and NFS homes.
    mounts = select_mounts(psutil.disk_partitions(all=True), nodev_filesystems())
    return [m for m in mounts if os.path.isdir(m.mountpoint)]


def _psutil_io() -> dict[str, Any]:
    # perdisk=True costs what perdisk=False does (psutil sums the same per-disk table).
    return psutil.disk_io_counters(perdisk=True) or {}


def _counter_values(io: Any) -> dict[str, float]:
    """The ``disk.*`` counters from psutil's sdiskio or :class:`procfs.DiskIO`."""
    return {
        "disk.read_bytes_per_s": float(io.read_bytes),
        "disk.write_bytes_per_s": float(io.write_bytes),
        "disk.iops": float(io.read_count + io.write_count),
    }


class DiskCollector(Collector):
    """``disk.{mount}.*`` space gauges and ``disk.*`` throughput counters."""

    name = "disk"
    slow_interval = 10.0

    def __init__(self, max_mounts: int = MAX_MOUNTS) -> None:
        self._guard = FieldGuard(self.name, host_permanent)
        self._max_mounts = max_mounts
        self._procfs = procfs.DiskStatsReader.open()
        self._io_each: Callable[[], dict[str, Any]] = (
            self._procfs.read_each if self._procfs is not None else _psutil_io)
        self._denied: set[str] = set()
        # Swapped as a whole by read_slow; info() on another thread sees one list or the other.
        self._mounts: tuple[Mount, ...] = ()
        self._mounts = self._refresh()

    @property
    def mounts(self) -> tuple[Mount, ...]:
        """The filesystems currently reported."""
        return self._mounts

    def info(self) -> dict[str, Any]:
        """The reported mounts (mount point, device, type)."""
        return {"mounts": [{"mountpoint": m.mountpoint, "device": m.device, "fstype": m.fstype,
                            "remote": m.remote} for m in self._mounts]}

    def read(self) -> Reading:
        """Cumulative I/O counters."""
        out = Reading()
        out.add_device_counters("disk", self._guard.get("io", self._io_each),
                                partial(procfs.sum_counters, cls=procfs.DiskIO), _counter_values)
        return out

    def read_slow(self) -> Reading:
        """Refresh the mount list and the whole devices; space of every mount."""
        self._mounts = self._refresh()
        if self._procfs is not None:
            self._procfs.refresh_devices()
        out = Reading()
        self._usage(self._mounts, out.gauges)
        return out

    def close(self) -> None:
        """Close /proc/diskstats where it is kept open."""
        if self._procfs is not None:
            self._procfs.close()

    def _refresh(self) -> tuple[Mount, ...]:
        mounts = self._guard.get("partitions", _list_mounts)
        if mounts is None:
            return self._mounts  # keep the last good list
        return tuple(mounts[: self._max_mounts])

    def _usage(self, mounts: Iterable[Mount], gauges: dict[str, float]) -> None:
        for m in mounts:
            if m.mountpoint in self._denied:
                continue
            try:
                du = psutil.disk_usage(m.mountpoint)
            except PermissionError:
                self._denied.add(m.mountpoint)  # will not change: stop asking
                continue
            except OSError:
                continue  # unmounted since the last refresh; the next refresh drops it
            name = metric_mount(m.mountpoint)
            gauges[f"disk.{name}.used_bytes"] = float(du.used)
            gauges[f"disk.{name}.total_bytes"] = float(du.total)
            # psutil's percent is used / (used + free for unprivileged users), as df shows:
            # root's reserved blocks are not space a notebook can fill.
            gauges[f"disk.{name}.util_pct"] = float(du.percent)
