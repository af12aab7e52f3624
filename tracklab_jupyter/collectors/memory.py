"""Memory and swap, read against the container's cgroup limit when there is one.

Fast path (every tick): host memory and swap; inside a limited container also
``memory.current`` + ``memory.stat`` of the cgroup (two small files). On Linux one read of
/proc/meminfo, kept open, gives memory and swap together
(:mod:`~tracklab_jupyter.collectors.procfs`: at 1 Hz opening the file cost more than reading
it). Elsewhere ``psutil.virtual_memory`` (~60 µs), and ``swap_memory`` only on machines that
have swap: it costs ~125 µs because it also parses /proc/vmstat.

Slow path (every :attr:`MemoryCollector.slow_interval` s): re-detect the cgroup and its limit
(``docker update --memory`` changes it live) and whether swap exists.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import psutil

from tracklab_jupyter.collectors import cgroup, procfs
from tracklab_jupyter.collectors.base import Collector, FieldGuard, Reading, host_permanent

log = logging.getLogger("tracklab_jupyter.collectors.memory")


@dataclass(frozen=True)
class _Scope:
    """What read() measures against, replaced as a whole by read_slow (thread-safe swap)."""

    cgroup: cgroup.Cgroup | None
    limit: int | None  # the cgroup limit when it is below host total, else None
    swap: bool  # swap total > 0 at the last check


def memory_gauges(total: int, available: int, cg_limit: int | None,
                  cg_used: int | None) -> dict[str, float]:
    """The ``mem.*`` gauges from host figures and, when limited, the cgroup's.

    Host: used = total - available (what ``free`` and psutil's percent imply; ``used`` from
    psutil leaves out reclaimable slab and so disagrees with its own percent). Container:
    used is the cgroup's usage less inactive file cache, limit its memory limit, and available
    is what is left under the limit, but never more than the host has free.
    """
    if cg_limit is not None and cg_used is not None:
        limit, used = cg_limit, cg_used
        avail = min(max(0, limit - used), available)
    else:
        limit, used, avail = total, max(0, total - available), available
    return {
        "mem.used_bytes": float(used),
        "mem.available_bytes": float(avail),
        "mem.limit_bytes": float(limit),
        "mem.util_pct": 100.0 * used / limit if limit > 0 else 0.0,
    }


class MemoryCollector(Collector):
    """``mem.*`` and ``swap.*`` gauges."""

    name = "memory"
    # The slow read only re-detects the cgroup limit and swap (no gauges of its own): a
    # `docker update --memory` shows within a minute, and the thread wakes once a minute
    # (at 10 s it cost the recorder about 0.01 % of a core, on the 2-core machine).
    slow_interval = 60.0

    def __init__(
        self,
        cgroup_root: str | os.PathLike[str] | None = None,
        proc_cgroup: str | os.PathLike[str] = cgroup.PROC_SELF_CGROUP,
    ) -> None:
        self._guard = FieldGuard(self.name, host_permanent)
        self._cgroup_root = cgroup_root
        self._proc_cgroup = proc_cgroup
        self._procfs = procfs.MemInfoReader.open()
        self._scope = self._detect()

    def info(self) -> dict[str, Any]:
        """Host total, swap total, cgroup version and limits."""
        vm, swap = self._host(swap=True)
        cg = self._scope.cgroup
        return {
            "total_bytes": vm[0] if vm else None,
            "swap_total_bytes": swap[0] if swap else None,
            "cgroup_version": cg.version if cg else None,
            "cgroup_memory_limit_bytes": cgroup.memory_limit_bytes(cg),
            "cgroup_cpu_quota_cores": cgroup.cpu_quota_cores(cg),
            # The limit mem.* is read against; None: the host's total.
            "effective_limit_bytes": self._scope.limit,
        }

    def read(self) -> Reading:
        """Memory gauges every tick; swap gauges where swap exists."""
        out = Reading()
        scope = self._scope
        vm, swap = self._host(scope.swap)
        if vm is not None:
            used = cgroup.memory_usage_bytes(scope.cgroup) if scope.limit else None
            out.gauges.update(memory_gauges(*vm, scope.limit, used))
        if scope.swap and swap is not None and swap[0] > 0:
            out.gauges.update({"swap.used_bytes": float(swap[1]),
                               "swap.util_pct": 100.0 * swap[1] / swap[0]})
        return out

    def read_slow(self) -> Reading:
        """Re-detect the cgroup limit and swap; no gauges of its own."""
        self._scope = self._detect()
        return Reading()

    def close(self) -> None:
        """Close /proc/meminfo where it is kept open."""
        if self._procfs is not None:
            self._procfs.close()

    def _host(self, swap: bool) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """((total, available), (swap total, swap used)) of the host; None where unknown.

        psutil's swap figures are only asked for with ``swap``; /proc/meminfo has them anyway.
        """
        if self._procfs is not None:
            info = self._guard.get("meminfo", self._procfs)
            if info is None:
                return None, None
            return (info.total, info.available), (info.swap_total, info.swap_used)
        vm = self._guard.get("virtual", psutil.virtual_memory)
        sw = self._guard.get("swap", psutil.swap_memory) if swap else None
        return ((vm.total, vm.available) if vm else None,
                (sw.total, sw.used) if sw else None)

    def _detect(self) -> _Scope:
        cg = cgroup.detect(self._cgroup_root, self._proc_cgroup)
        limit = cgroup.memory_limit_bytes(cg)
        vm, swap = self._host(swap=True)
        # A limit at or above the host's RAM changes nothing: report the host.
        if limit is not None and vm is not None and limit >= vm[0]:
            limit = None
        # Only use the limit when the usage it is compared to can be read too.
        if limit is not None and cgroup.memory_usage_bytes(cg) is None:
            limit = None
        return _Scope(cg, limit, bool(swap and swap[0] > 0))
