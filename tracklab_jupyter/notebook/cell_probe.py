"""The kernel's own process tree, read fast while a cell runs.

The host sampler reads the machine once a second; a cell that allocates 400 MB for a
quarter of a second would slip between two samples, and "used memory" of the machine is
not what the cell cost anyway. :class:`CellProbe` reads the RSS of the kernel and its
descendants (DataLoader workers, subprocesses) every :data:`DEFAULT_PERIOD_S` while a cell
runs: one ``/proc/PID/statm`` read per process. The tree is listed at the start and end of
the cell and re-listed every :data:`RELIST_S` from ``/proc/PID/task/*/children``, never by
walking every process of the machine. Between cells the probe thread blocks on a
condition without a timeout, so an idle kernel pays no wake-ups.

Readings are also taken synchronously when the cell starts and ends, so a cell shorter than
one period still has figures and its peak is at least max(start, end). The kernel's own
``VmHWM`` (the kernel's high-water mark of its RSS, read, never reset) adds the exact peak
of the kernel process whenever the cell raised it, even where the probe thread could not
run because C code held the GIL.

RSS of a tree is the sum over its processes, so pages shared between a parent and forked
workers count once per process (as ``top`` and ``ps`` would show them).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tracklab_jupyter.threads import name_os_thread

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

DEFAULT_PERIOD_S = 0.02
MIN_PERIOD_S = 0.005  # below this the probe would cost the cell noticeable CPU
MAX_PERIOD_S = 1.0  # above this it is no faster than the host sampler
RELIST_S = 1.0  # listing children reads one file per thread of every member
MAX_PROCS = 256  # processes read per tick; a larger tree is cut (those found first stay)
MAX_SEEN_PIDS = 4096  # pids remembered per cell for matching accelerator memory

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def check_period(period: float) -> float:
    """``period`` in seconds if it is within the named limits, else ValueError."""
    if isinstance(period, bool) or not isinstance(period, int | float) or not (
            MIN_PERIOD_S <= period <= MAX_PERIOD_S):
        raise ValueError(f"the cell probe period must be {MIN_PERIOD_S * 1000:g} ms to "
                         f"{MAX_PERIOD_S:g} s; got {period!r}")
    return float(period)


class TreeReader:
    """RSS, CPU time and children of processes: ``/proc`` on Linux, psutil elsewhere."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.linux = os.path.exists(f"{proc}/self/statm")
        # Kernels built without CONFIG_PROC_CHILDREN lack the children file.
        self.children_files = self.linux and os.path.exists(
            f"{proc}/self/task/{os.getpid()}/children")

    def _read(self, path: str) -> str | None:
        try:
            with open(path, "rb") as fh:
                return fh.read().decode("ascii", "replace")
        except OSError:  # the process ended, or is not ours to read
            return None

    def rss_bytes(self, pid: int) -> int | None:
        if not self.linux:
            return self._psutil(pid, lambda p: p.memory_info().rss)
        text = self._read(f"{self.proc}/{pid}/statm")
        if not text:
            return None
        fields = text.split()
        return int(fields[1]) * _PAGE if len(fields) > 1 else None

    def cpu_s(self, pid: int) -> float | None:
        """CPU seconds of ``pid`` and of its children it has waited for."""
        if pid == os.getpid() and resource is None:
            t = os.times()
            return t.user + t.system + t.children_user + t.children_system
        if pid == os.getpid():  # microseconds instead of clock ticks
            me, reaped = (resource.getrusage(w)
                          for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
            return me.ru_utime + me.ru_stime + reaped.ru_utime + reaped.ru_stime
        if not self.linux:
            return self._psutil(pid, lambda p: sum(p.cpu_times()[:4]))
        text = self._read(f"{self.proc}/{pid}/stat")
        if not text:
            return None
        # comm (field 2) may hold spaces and parentheses: count fields after the last ")".
        fields = text[text.rfind(")") + 2:].split()
        try:
            return sum(int(f) for f in fields[11:15]) / _TICK  # utime stime cutime cstime
        except (ValueError, IndexError):
            return None

    def hwm_bytes(self, pid: int) -> int | None:
        """The process's RSS high-water mark (``VmHWM``), None where there is none."""
        if not self.linux:
            return None
        text = self._read(f"{self.proc}/{pid}/status")
        for line in (text or "").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return None

    def tree(self, root: int) -> list[int]:
        """``root`` and its descendants, at most :data:`MAX_PROCS` (root first)."""
        if not self.children_files:
            return self._psutil_tree(root)
        members, queue = [root], [root]
        while queue and len(members) < MAX_PROCS:
            pid = queue.pop()
            try:
                tasks = os.listdir(f"{self.proc}/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                for child in (self._read(f"{self.proc}/{pid}/task/{tid}/children") or "").split():
                    if len(members) < MAX_PROCS:
                        members.append(int(child))
                        queue.append(int(child))
        return members

    def _psutil_tree(self, root: int) -> list[int]:
        import psutil

        try:
            children = psutil.Process(root).children(recursive=True)
        except psutil.Error:
            return [root]
        return [root, *(c.pid for c in children)][:MAX_PROCS]

    def _psutil(self, pid: int, read: Callable[..., float]) -> float | None:
        import psutil

        try:
            return read(psutil.Process(pid))
        except psutil.Error:
            return None

    def total_rss(self, pids: Iterable[int]) -> int:
        return sum(rss for pid in pids if (rss := self.rss_bytes(pid)) is not None)


@dataclass(frozen=True)
class ProbeResult:
    """What the probe saw between :meth:`CellProbe.begin` and :meth:`CellProbe.end`."""

    rss_start_bytes: float
    rss_end_bytes: float
    rss_peak_bytes: float
    cpu_s: float
    #: every pid that was part of the tree during the cell (for accelerator memory)
    pids: frozenset[int]
    #: the most processes the tree had at once
    procs: int
    #: RSS readings taken, the synchronous start and end ones included
    reads: int


class CellProbe:
    """Samples the RSS of ``pid``'s process tree while a cell runs (see module doc).

    ``begin()`` at pre_run_cell, ``end()`` at post_run_cell; one reusable daemon thread,
    started on the first ``begin()``; ``stop()`` ends it. ``on_tick`` is called on the
    probe thread about every ``relist_s`` while a cell runs (the cell timer folds the
    host's samples there, off the sampler's path).
    """

    def __init__(self, pid: int | None = None, period: float = DEFAULT_PERIOD_S, *,
                 relist_s: float = RELIST_S, on_tick: Callable[[], None] | None = None,
                 reader: TreeReader | None = None) -> None:
        self.pid = pid or os.getpid()
        self.period = check_period(period)
        self.relist_s = relist_s
        self.on_tick = on_tick
        self.reader = reader or TreeReader()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._active = False
        self._closed = False
        self._gen = 0  # one per cell: a reading of an earlier cell never counts
        self._members: list[int] = [self.pid]
        self._seen: set[int] = set()
        self._procs = 0
        self._peak = 0
        self._reads = 0
        self._relist_at = 0.0
        self._start: tuple[int, dict[int, float], int | None] = (0, {}, None)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    @property
    def active(self) -> bool:
        return self._active

    def pids(self) -> frozenset[int]:
        """Every pid of the tree seen so far in the current (or last) cell."""
        with self._cond:
            return frozenset(self._seen)

    def _cpu(self, members: list[int]) -> dict[int, float]:
        return {pid: cpu for pid in members if (cpu := self.reader.cpu_s(pid)) is not None}

    def _remember(self, members: list[int]) -> None:
        """Call with the lock held."""
        self._members = members
        self._procs = max(self._procs, len(members))
        if len(self._seen) < MAX_SEEN_PIDS:
            self._seen.update(members[:MAX_SEEN_PIDS - len(self._seen)])

    def begin(self) -> None:
        """A cell starts: read the tree now and sample it until :meth:`end`."""
        members = self.reader.tree(self.pid)
        rss = self.reader.total_rss(members)
        cpu = self._cpu(members)
        hwm = self.reader.hwm_bytes(self.pid)
        with self._cond:
            if self._closed:
                raise RuntimeError("the cell probe was stopped")
            self._gen += 1
            self._seen = set()
            self._procs = 0
            self._remember(members)
            self._peak, self._reads = rss, 1
            self._start = (rss, cpu, hwm)
            self._relist_at = time.monotonic() + self.relist_s
            self._active = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tracklab-cell-probe",
                                                daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def end(self) -> ProbeResult:
        """The cell ended: stop sampling, read the tree once more, return the figures."""
        with self._cond:
            self._active = False
            self._cond.notify_all()
        members = self.reader.tree(self.pid)
        rss = self.reader.total_rss(members)
        cpu_end = self._cpu(members)
        hwm = self.reader.hwm_bytes(self.pid)
        with self._cond:
            self._remember(members)
            rss_start, cpu_start, hwm_start = self._start
            peak = max(self._peak, rss, rss_start)
            reads = self._reads + 1
            seen = frozenset(self._seen)
            procs = self._procs
        if hwm is not None and hwm_start is not None and hwm > hwm_start:
            # The kernel process itself went higher during this cell than ever before:
            # the tree's peak was at least that (exact even when the probe was starved).
            peak = max(peak, hwm)
        return ProbeResult(rss_start_bytes=float(rss_start), rss_end_bytes=float(rss),
                           rss_peak_bytes=float(peak), cpu_s=_cpu_delta(cpu_start, cpu_end),
                           pids=seen, procs=procs, reads=reads)

    def stop(self) -> None:
        """End the thread (joins it); the probe cannot be used again."""
        with self._cond:
            self._closed = True
            self._active = False
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # -- the probe thread ----------------------------------------------------------------
    def _run(self) -> None:
        name_os_thread()
        tick_at = 0.0
        while True:
            with self._cond:
                # No timeout: between cells this thread does not wake at all.
                self._cond.wait_for(lambda: self._active or self._closed)
                if self._closed:
                    return
                gen, members = self._gen, self._members
            while True:
                now = time.monotonic()
                if now >= self._relist_at:
                    members = self.reader.tree(self.pid)
                total = self.reader.total_rss(members)
                with self._cond:
                    if gen != self._gen or not self._active:
                        break
                    if now >= self._relist_at:
                        self._remember(members)
                        self._relist_at = now + self.relist_s
                    self._peak = max(self._peak, total)
                    self._reads += 1
                if self.on_tick is not None and now >= tick_at:
                    tick_at = now + self.relist_s
                    try:
                        self.on_tick()
                    except Exception:  # the line must not lose its RSS over a bad sample
                        import logging

                        logging.getLogger(__name__).exception("tracklab: cell tick failed")
                with self._cond:
                    if self._cond.wait_for(
                            lambda g=gen: g != self._gen or not self._active or self._closed,
                            timeout=self.period):
                        break


def _cpu_delta(start: dict[int, float], end: dict[int, float]) -> float:
    """CPU seconds the tree used between two readings.

    Each member's figure includes the children it has waited for, so a worker that ended
    during the cell shows up in its parent's figure (whole: hence its own start figure is
    taken off); a process that started during the cell counts from zero.
    """
    used = sum(cpu - start.get(pid, 0.0) for pid, cpu in end.items())
    used -= sum(cpu for pid, cpu in start.items() if pid not in end)
    return max(0.0, used)
