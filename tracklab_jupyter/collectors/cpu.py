"""CPU utilisation, load, frequency, temperature and process counts.

Fast path (every tick, ~0.1 ms): one read of the per-core times in /proc/stat gives per-core
utilisation, the overall figure and the user/system/iowait split; ``os.getloadavg``; the
container's CPU use against its quota (one cgroup file). On Linux /proc/stat is kept open
(:mod:`~tracklab_jupyter.collectors.procfs`: at 1 Hz opening it cost more than reading it);
elsewhere ``psutil.cpu_times(percpu=True)`` gives the same values.

Slow path (every :attr:`CpuCollector.slow_interval` s): process and thread counts (on Linux
one ``stat`` per process, :func:`procfs.process_counts`, ~0.3 ms for 70 processes; elsewhere
``process_iter``, ~2-12 ms), frequency (``cpu_freq``, ~0.5 ms: it reads one sysfs file per
core), the hottest CPU temperature sensor, and a fresh look at the cgroup quota.

Why not ``psutil.cpu_percent(interval=None)``: psutil keeps the previous reading per *thread*
in module globals, so priming it in ``__init__`` (the constructing thread) does nothing for
``read`` on the sampler thread, and any other caller in that thread moves the baseline. The
collector keeps its own previous ``cpu_times``, which is also one /proc/stat read instead of
two (``cpu_percent`` + ``cpu_times_percent``).
"""

from __future__ import annotations

import functools
import logging
import operator
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import psutil

from tracklab_jupyter.collectors import cgroup, procfs
from tracklab_jupyter.collectors.base import Collector, FieldGuard, Reading, host_permanent

log = logging.getLogger("tracklab_jupyter.collectors.cpu")


#: hwmon / thermal-zone names that measure the CPU package or cores (Intel, AMD, ARM SoCs).
#: Others (nvme, amdgpu, acpitz, iwlwifi) measure something else and are left out.
CPU_SENSOR_NAMES = frozenset({
    "coretemp", "k10temp", "zenpower", "x86_pkg_temp", "cpu_thermal", "cpu-thermal",
    "soc_thermal", "cpu",
})


class NotAvailable(Exception):
    """A field this machine cannot report (no sensors, no frequency): asked once, then left."""


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, NotAvailable) or host_permanent(exc)


class CpuUtil(NamedTuple):
    """Utilisation between two ``cpu_times(percpu=True)`` readings, in percent."""

    overall: float
    cores: list[float | None]
    user: float
    system: float
    iowait: float | None


def _busy_total(times: Sequence[float], guest: Sequence[int],
                idle: Sequence[int]) -> tuple[float, float]:
    """(busy, total) seconds of one ``scputimes``, counted the way psutil does.

    On Linux guest time is already inside user/nice, so it is not added twice (``guest``:
    positions of guest and guest_nice); idle and iowait (``idle``) are the only non-busy
    states.
    """
    total = sum(times)
    for i in guest:
        total -= times[i]
    busy = total
    for i in idle:
        busy -= times[i]
    return busy, total


def cpu_util(prev: Sequence[Any], cur: Sequence[Any]) -> CpuUtil | None:
    """Utilisation from two per-core ``cpu_times`` lists; None when no time has passed.

    ``overall`` is the mean over cores that ticked. ``user`` counts nice time too (both are
    user space) and ``system`` counts irq and softirq (both are kernel time).

    Fields are taken by position rather than through ``_asdict``: with 192 cores a dict per
    core per tick cost 1.4 ms, more than the rest of a sample. The sums run in the same
    order, so the results are the same to the last bit.
    """
    if len(prev) != len(cur) or not cur:
        return None  # a core came or went: start over
    at = {name: i for i, name in enumerate(cur[0]._fields)}
    guest = [at[k] for k in ("guest", "guest_nice") if k in at]
    idle = [at[k] for k in ("idle", "iowait") if k in at]
    cores: list[float | None] = []
    sums = [0.0] * len(at)
    for a, b in zip(prev, cur, strict=True):
        busy1, total1 = _busy_total(a, guest, idle)
        busy2, total2 = _busy_total(b, guest, idle)
        d_total = total2 - total1
        cores.append(_pct(busy2 - busy1, d_total) if d_total > 0 else None)
        # iowait can go backwards (a known kernel quirk): a step back adds nothing.
        sums = [s + (d if d > 0.0 else 0.0)
                for s, d in zip(sums, map(operator.sub, b, a), strict=True)]
    ticked = [c for c in cores if c is not None]
    total = _busy_total(sums, guest, ())[1]
    if not ticked or total <= 0:
        return None

    def part(*names: str) -> float:
        return sum((sums[at[n]] for n in names if n in at), 0.0)

    return CpuUtil(
        overall=sum(ticked) / len(ticked),
        cores=cores,
        user=_pct(part("user", "nice"), total),
        system=_pct(part("system", "irq", "softirq"), total),
        iowait=_pct(sums[at["iowait"]], total) if "iowait" in at else None,
    )


def _pct(part: float, whole: float) -> float:
    return min(100.0, max(0.0, 100.0 * part / whole))


def cpu_temperature(sensors: Mapping[str, Sequence[Any]]) -> float | None:
    """The hottest reading among CPU sensors in ``psutil.sensors_temperatures()`` output."""
    values = [
        entry.current
        for name, entries in sensors.items() if name.lower() in CPU_SENSOR_NAMES
        for entry in entries if entry.current and entry.current > 0
    ]
    return max(values) if values else None


def process_counts() -> tuple[int, int]:
    """(processes, threads) visible to this process (its pid namespace in a container)."""
    procs = threads = 0
    # With attrs, process_iter skips processes that exit mid-scan (NoSuchProcess) and
    # stores None for AccessDenied and ZombieProcess instead of raising.
    for proc in psutil.process_iter(["num_threads"]):
        procs += 1
        threads += proc.info.get("num_threads") or 0
    return procs, threads


def _read_freq() -> float:
    freq = psutil.cpu_freq()
    if freq is None or not freq.current or freq.current <= 0:
        raise NotAvailable("no CPU frequency")
    return float(freq.current)


def _read_temp() -> float:
    # Absent in most VMs and containers ({}); checked once, then never again.
    temp = cpu_temperature(psutil.sensors_temperatures())
    if temp is None:
        raise NotAvailable("no CPU temperature sensor")
    return temp


class CpuCollector(Collector):
    """Host CPU metrics, plus this container's CPU against its cgroup quota."""

    name = "cpu"
    # Off Linux process_iter costs ~2 ms on a quiet host (12 ms with 178 processes on the
    # H200 box): every 15 s keeps the sampler under 0.1 % of a core.
    slow_interval = 15.0

    def __init__(
        self,
        cgroup_root: str | os.PathLike[str] | None = None,
        proc_cgroup: str | os.PathLike[str] = cgroup.PROC_SELF_CGROUP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._guard = FieldGuard(self.name, _permanent)
        self._cgroup_root = cgroup_root
        self._proc_cgroup = proc_cgroup
        self._clock = clock
        self._procfs = procfs.CpuTimesReader.open()
        self._cpu_times: Callable[[], list[Any]] = (
            self._procfs or functools.partial(psutil.cpu_times, percpu=True))
        self._process_counts: Callable[[], tuple[int, int]] = (
            functools.partial(procfs.process_counts, procfs.procfs_path())
            if self._procfs is not None else process_counts)
        # Prime the baseline so the first read() already covers a real interval.
        self._prev_times: list[Any] = self._guard.get("times", self._cpu_times) or []
        # (cgroup, quota in cores): swapped as one tuple by read_slow, read by read().
        self._quota: tuple[cgroup.Cgroup | None, float | None] = self._detect_quota()
        self._prev_usage: tuple[cgroup.Cgroup, float, float] | None = None

    def info(self) -> dict[str, Any]:
        """Core counts and the cgroup CPU quota."""
        return {
            "logical_cores": psutil.cpu_count(logical=True),
            "physical_cores": psutil.cpu_count(logical=False),
            "cgroup_cpu_quota_cores": self._quota[1],
        }

    def read(self) -> Reading:
        """Utilisation (overall, per core, user/system/iowait), load, cgroup use."""
        out = Reading()
        self._read_util(out.gauges)
        load = self._guard.get("loadavg", os.getloadavg)
        if load is not None:
            out.gauges.update({"cpu.load1": load[0], "cpu.load5": load[1],
                               "cpu.load15": load[2]})
        pct = self._cgroup_util()
        if pct is not None:
            out.gauges["cpu.cgroup.util_pct"] = pct
        return out

    def read_slow(self) -> Reading:
        """Process/thread counts, frequency, temperature; re-reads the cgroup quota."""
        out = Reading()
        counts = self._guard.get("proc", self._process_counts)
        if counts is not None:
            out.gauges["proc.count"], out.gauges["proc.threads"] = map(float, counts)
        freq = self._guard.get("freq", _read_freq)
        if freq is not None:
            out.gauges["cpu.freq_mhz"] = freq
        temp = self._guard.get("temp", _read_temp)
        if temp is not None:
            out.gauges["cpu.temp_c"] = temp
        self._quota = self._detect_quota()  # `docker update --cpus` changes it live
        return out

    def close(self) -> None:
        """Close /proc/stat where it is kept open."""
        if self._procfs is not None:
            self._procfs.close()

    def _read_util(self, gauges: dict[str, float]) -> None:
        cur = self._guard.get("times", self._cpu_times)
        if not cur:
            return
        util = cpu_util(self._prev_times, cur)
        if util is None:
            # Too soon (no clock tick on any core) keeps the old baseline; a core-count
            # change starts a new one.
            if len(cur) != len(self._prev_times):
                self._prev_times = cur
            return
        self._prev_times = cur
        gauges["cpu.util_pct"] = util.overall
        for i, pct in enumerate(util.cores):
            if pct is not None:
                gauges[f"cpu.core.{i}.util_pct"] = pct
        gauges["cpu.user_pct"] = util.user
        gauges["cpu.system_pct"] = util.system
        if util.iowait is not None:
            gauges["cpu.iowait_pct"] = util.iowait

    def _detect_quota(self) -> tuple[cgroup.Cgroup | None, float | None]:
        cg = cgroup.detect(self._cgroup_root, self._proc_cgroup)
        return cg, cgroup.cpu_quota_cores(cg)

    def _cgroup_util(self) -> float | None:
        """CPU seconds used per wall second against the quota, from two readings.

        Computed here rather than as a sampler counter: a percentage of the quota needs the
        quota, which only this collector knows.
        """
        cg, quota = self._quota
        if cg is None or not quota:
            self._prev_usage = None
            return None
        usage = cgroup.cpu_usage_seconds(cg)
        now = self._clock()
        if usage is None:
            return None
        prev, self._prev_usage = self._prev_usage, (cg, usage, now)
        if prev is None or prev[0] != cg:
            return None  # first reading, or the group holding the quota changed
        used, elapsed = usage - prev[1], now - prev[2]
        if used < 0 or elapsed <= 0:
            return None  # counter reset (group re-created)
        return 100.0 * used / elapsed / quota
