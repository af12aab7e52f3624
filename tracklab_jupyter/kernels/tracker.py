"""The kernel tracker: each kernel's process tree, its limits, its history, its death.

The server glue (:mod:`~tracklab_jupyter.kernels.server_glue`) lists the kernels on the
event loop and hands the list over with :meth:`KernelTracker.update_listing`; that wakes
this tracker's thread, which reads the process trees (:class:`ProcessTrees`, /proc only),
builds the ``api/kernels`` body (kept for :meth:`KernelTracker.snapshot` and published on the
hub topic ``KERNELS``), stores ``kernel.{id}.*`` samples and records the kernel events
(``kernel_started``, ``kernel_stopped``, ``kernel_died``). The thread sleeps between
listings: it wakes once per kernel interval, or at once for a death.

Memory limits: the cgroup of each kernel process is found at a slow cadence
(:data:`LIMIT_INTERVAL_S`) and its limit applies when it is below the host's memory; its
``memory.events`` ``oom_kill`` count (one small file per cgroup) is read every pass, so a
death can be told apart from an out-of-memory kill.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import psutil

from tracklab_jupyter.collectors import cgroup
from tracklab_jupyter.kernels import KERNEL_DIED, KERNEL_STARTED, KERNEL_STOPPED
from tracklab_jupyter.kernels.deaths import Death, explain, kernel_label
from tracklab_jupyter.kernels.procs import ProcessTrees, TreeReading
from tracklab_jupyter.kernels.server_glue import REMOTE, KernelListing
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.sampler.hub import KERNELS
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.kernels")

#: Seconds between two look-ups of a kernel's cgroup and memory limit (and the host's).
LIMIT_INTERVAL_S = 60.0
#: Events kept while the monitor has not taken its role yet (then they are stored).
MAX_PENDING_EVENTS = 1000
#: Deaths waiting for the tracker's thread.
MAX_PENDING_DEATHS = 256
#: Kernel ids whose figures are stored: the catalogue's ``{kernel}`` placeholder.
KERNEL_ID_RE = re.compile(r"[0-9a-f][0-9a-f-]{0,63}")

FIRST_READ_NOTE = "first read in progress"
REMOTE_NOTE = "remote kernels (a gateway, another provisioner) are listed, not sampled"



@dataclass
class _Limit:
    """The memory limit that applies to one kernel process."""

    pid: int
    cgroup: cgroup.Cgroup | None
    bytes: float | None
    source: str | None
    at: float  # monotonic time of the look-up


@dataclass
class _Kernel:
    """What the tracker remembers of one kernel between passes."""

    id: str
    name: str
    notebook: str | None
    first_seen: float
    passes: int = 0
    announced: bool = False
    limit: _Limit | None = None
    #: ``oom_kill`` of its cgroup at the last pass that saw the process alive.
    oom_baseline: int | None = None
    rss_bytes: float | None = None
    #: A death the server did not restart it from: its vanishing is no shutdown.
    dead: bool = False


def empty_body(node: str, interval: float | None, note: str) -> dict[str, Any]:
    """An ``api/kernels`` body without kernels, saying why."""
    return {"time": None, "node": node, "interval_s": interval, "mem_limit_bytes": None,
            "mem_limit_source": None, "notes": [note], "kernels": []}


def _sort_key(entry: dict[str, Any]) -> tuple[bool, float]:
    rss = entry["rss_bytes"]
    return (rss is None, -(rss or 0.0))


class KernelTracker:
    """Per-kernel resources of one Jupyter server (``monitor.kernels``)."""

    def __init__(self, monitor: Any, interval: float, *, trees: ProcessTrees | None = None,
                 limit_interval: float = LIMIT_INTERVAL_S) -> None:
        self.monitor = monitor
        self.interval = float(interval)
        self.limit_interval = limit_interval
        self._trees = trees or ProcessTrees()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._listing: list[KernelListing] | None = None
        self._deaths: deque[Death] = deque(maxlen=MAX_PENDING_DEATHS)
        self._body = empty_body(monitor.node, self.interval, FIRST_READ_NOTE)
        self._series: dict[str, float] = {}
        self._kernels: dict[str, _Kernel] = {}
        self._pending: deque[Event] = deque(maxlen=MAX_PENDING_EVENTS)
        self._host: tuple[float, float | None, str | None, float] | None = None
        self._glue: Any = None
        self._failed: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="tracklab-kernels",
                                        daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, glue: Any = None) -> None:
        """Start the thread; ``glue`` (stopped with the tracker) feeds it listings."""
        self._glue = glue
        self._thread.start()

    def stop(self) -> None:
        """Stop the glue's listing and this thread (joined); idempotent, any thread."""
        if self._glue is not None:
            self._glue.stop()
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        self._trees.close()

    # -- fed by the glue (event loop: only store and wake) ---------------------------------
    def update_listing(self, kernels: list[KernelListing], at: float) -> None:
        """The server's kernels now; the thread reads their trees."""
        with self._lock:
            self._listing = list(kernels)
        self._wake.set()

    def report_death(self, death: Death) -> None:
        """A kernel process ended; the thread explains and records it."""
        with self._lock:
            self._deaths.append(death)
        self._wake.set()

    # -- read by anyone --------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The latest ``api/kernels`` body, from memory. Shared: do not modify it."""
        with self._lock:
            return self._body

    def latest_series(self) -> dict[str, float]:
        """The ``kernel.{id}.*`` values of the latest pass (every tracked kernel at once,
        where samples hold them only on the pass's tick). Shared: do not modify it."""
        with self._lock:
            return self._series

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        name_os_thread()
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                listing, self._listing = self._listing, None
                deaths = list(self._deaths)
                self._deaths.clear()
            try:
                for death in deaths:
                    self._record_death(death)
                if listing is not None:
                    self._pass(listing, time.time())
                self._flush_events()
            except Exception as exc:  # one bad pass must not end the tracking
                key = type(exc).__name__
                if key not in self._failed:
                    self._failed.add(key)
                    log.exception("tracklab: a kernel pass failed (logged once per kind)")

    def _pass(self, listing: list[KernelListing], now: float) -> None:
        host_total, limit, source = self._host_limits()
        local = {k.id: k.pid for k in listing if k.not_sampled is None and k.pid is not None}
        for entry in listing:
            self._remember(entry, now)
        limits = {kid: self._limit_of(self._kernels[kid], pid, host_total)
                  for kid, pid in local.items()}
        # The OOM counts first, the trees after: a count read here predates what the trees
        # show alive, so it can serve as the baseline of a later death.
        by_folder: dict[Any, int | None] = {}  # kernels mostly share one cgroup
        counts: dict[str, int | None] = {}
        for kid, lim in limits.items():
            folder = lim.cgroup.memory if lim.cgroup is not None else None
            if folder not in by_folder:
                by_folder[folder] = _oom_kills(lim.cgroup)
            counts[kid] = by_folder[folder]
        sample = self.monitor.latest
        metrics = sample.metrics if sample is not None else {}
        readings = self._trees.read(local, metrics)
        entries = []
        stored: dict[str, float] = {}
        note = self._trees.pid_namespace_note
        for item in listing:
            kernel = self._kernels[item.id]
            reading = readings.get(item.id)
            lim = limits.get(item.id)
            if reading is not None and not reading.ended:
                kernel.oom_baseline = counts.get(item.id)
                kernel.rss_bytes = reading.rss_bytes
                if KERNEL_ID_RE.fullmatch(item.id):
                    stored.update(_series(item.id, reading))
            entries.append(_entry(item, reading, lim, metrics, note))
        entries.sort(key=_sort_key)
        self._announce_and_retire(listing, now)
        notes = [note] if note else []
        if any(k.not_sampled == REMOTE for k in listing):
            notes.append(REMOTE_NOTE)
        body = {"time": now, "node": self.monitor.node, "interval_s": self.interval,
                "mem_limit_bytes": limit, "mem_limit_source": source, "notes": notes,
                "kernels": entries}
        with self._lock:
            self._body = body
            self._series = stored
        self.monitor.hub.publish(KERNELS, body)
        if stored and self._started():
            sampler = self.monitor.sampler
            if self.monitor.role == "recorder" and sampler is not None:
                # Into the recorder's next sample: one row per time in the store, so
                # history of system metrics gets no rows holding only kernel values.
                sampler.merge_into_next(stored)
            else:
                self.monitor._node_writer().write(Sample(now, self.monitor.node, stored))

    def _remember(self, item: KernelListing, now: float) -> None:
        kernel = self._kernels.get(item.id)
        if kernel is None:
            kernel = self._kernels[item.id] = _Kernel(item.id, item.name, item.notebook, now)
        kernel.passes += 1
        kernel.name = item.name or kernel.name
        kernel.notebook = item.notebook or kernel.notebook

    def _announce_and_retire(self, listing: list[KernelListing], now: float) -> None:
        """``kernel_started`` once the notebook is known (or after a second pass without
        one), ``kernel_stopped`` for kernels the server shut down."""
        listed = {k.id: k for k in listing}
        for kernel in self._kernels.values():
            if kernel.id in listed and not kernel.announced and (
                    kernel.notebook or kernel.passes >= 2):
                self._announce(kernel, listed[kernel.id].pid)
        for kernel_id in [k for k in self._kernels if k not in listed]:
            kernel = self._kernels.pop(kernel_id)
            if kernel.dead:
                continue  # the server gave up on it: its kernel_died event said so
            if not kernel.announced:
                self._announce(kernel, None)
            label = kernel_label(kernel.id, kernel.name, kernel.notebook)
            self._event(now, KERNEL_STOPPED, f"{label} was shut down",
                        {"kernel_id": kernel.id, "kernel_name": kernel.name,
                         "notebook": kernel.notebook})

    def _announce(self, kernel: _Kernel, pid: int | None) -> None:
        kernel.announced = True
        where = f" for `{kernel.notebook}`" if kernel.notebook else ""
        label = f"{kernel.name} kernel {kernel.id[:8]}" if kernel.name else (
            f"kernel {kernel.id[:8]}")
        self._event(kernel.first_seen, KERNEL_STARTED,
                    f"{label} started{where}" + (f" (pid {pid})" if pid else ""),
                    {"kernel_id": kernel.id, "kernel_name": kernel.name,
                     "notebook": kernel.notebook, "pid": pid})

    def _record_death(self, death: Death) -> None:
        kernel = self._kernels.get(death.kernel_id)
        lim = kernel.limit if kernel is not None else None
        now_count = _oom_kills(lim.cgroup) if lim is not None else None
        message, data = explain(
            death, kernel_name=kernel.name if kernel else None,
            notebook=kernel.notebook if kernel else None,
            rss_bytes=kernel.rss_bytes if kernel else None,
            mem_limit_bytes=lim.bytes if lim is not None else None,
            oom_kills_before=kernel.oom_baseline if kernel else None,
            oom_kills_now=now_count)
        if kernel is not None:
            # One OOM kill explains one death; the restarted kernel starts afresh.
            kernel.oom_baseline = now_count
            kernel.rss_bytes = None
            kernel.dead = not death.restarted
        self._event(death.time, KERNEL_DIED, message, data)

    # -- limits ----------------------------------------------------------------------------
    def _host_limits(self) -> tuple[float, float | None, str | None]:
        """Host memory, and the limit of this server's own cgroup (slow cadence)."""
        mono = time.monotonic()
        if self._host is None or mono - self._host[3] >= self.limit_interval:
            total = float(psutil.virtual_memory().total)
            own = cgroup.memory_limit_bytes(cgroup.detect())
            limit, source = ((float(own), "cgroup") if own is not None and own < total
                             else (total, "host"))
            self._host = (total, limit, source, mono)
        return self._host[0], self._host[1], self._host[2]

    def _limit_of(self, kernel: _Kernel, pid: int, host_total: float) -> _Limit:
        """The kernel's cgroup and memory limit, looked up again for a new process or after
        :attr:`limit_interval`."""
        mono = time.monotonic()
        lim = kernel.limit
        if lim is None or lim.pid != pid or mono - lim.at >= self.limit_interval:
            group = cgroup.detect(proc_cgroup=f"/proc/{pid}/cgroup")
            value = cgroup.memory_limit_bytes(group)
            if value is not None and value < host_total:
                lim = _Limit(pid, group, float(value), "cgroup", mono)
            else:
                lim = _Limit(pid, group, host_total, "host", mono)
            kernel.limit = lim
        return lim

    # -- storing ---------------------------------------------------------------------------
    def _started(self) -> bool:
        """The monitor took its role: the store can be written (before, an event would
        open it from this thread and a sample would make a side writer)."""
        return getattr(self.monitor, "role", "starting") != "starting"

    def _event(self, at: float, kind: str, message: str, data: dict[str, Any]) -> None:
        self._pending.append(Event(at, self.monitor.node, kind, message, data))
        self._flush_events()

    def _flush_events(self) -> None:
        while self._pending and self._started():
            self.monitor.record_event(self._pending.popleft())


def _oom_kills(group: cgroup.Cgroup | None) -> int | None:
    if group is None:
        return None
    return cgroup.memory_events(group).get("oom_kill")


def _series(kernel_id: str, reading: TreeReading) -> dict[str, float]:
    """The stored ``kernel.{id}.*`` values of one reading (absent ones left out)."""
    prefix = f"kernel.{kernel_id}."
    out = {prefix + "rss_bytes": reading.rss_bytes, prefix + "threads": float(reading.threads),
           prefix + "procs": float(reading.procs)}
    for name, value in (("cpu_pct", reading.cpu_pct), ("uss_bytes", reading.uss_bytes),
                        ("gpu_mem_bytes", reading.gpu_mem_bytes)):
        if value is not None:
            out[prefix + name] = float(value)
    for device, value in reading.gpus.items():
        out[f"{prefix}{device}.mem_used_bytes"] = float(value)
    return out


def _entry(item: KernelListing, reading: TreeReading | None, lim: _Limit | None,
           metrics: dict[str, float], pid_note: str | None) -> dict[str, Any]:
    """One kernel of the ``api/kernels`` body (docs/KERNELS.md)."""
    live = reading if reading is not None and not reading.ended else None
    gpus: dict[str, dict[str, float | None]] = {}
    for device, used in sorted(live.gpus.items() if live else ()):
        # util_pct: the device's, whoever keeps it busy; proc_util_pct: the tree's own, where
        # the driver reports utilisation per process (NVIDIA outside MIG), else null.
        gpus[device] = {"mem_used_bytes": used, "util_pct": metrics.get(f"{device}.util_pct"),
                        "proc_util_pct": live.gpu_util.get(device)}
    return {
        "id": item.id, "name": item.name, "notebook": item.notebook,
        "execution_state": item.execution_state, "last_activity": item.last_activity,
        "connections": item.connections, "sampled": item.not_sampled is None,
        "not_sampled": item.not_sampled, "pid": item.pid,
        "procs": live.procs if live else 0,
        "threads": live.threads if live else 0,
        "cpu_pct": live.cpu_pct if live else None,
        "rss_bytes": live.rss_bytes if live else None,
        "pss_bytes": live.pss_bytes if live else None,
        "uss_bytes": live.uss_bytes if live else None,
        "mem_limit_bytes": lim.bytes if lim is not None else None,
        "mem_limit_source": lim.source if lim is not None else None,
        "gpu_mem_bytes": live.gpu_mem_bytes if live else None,
        "gpus": gpus,
        "pid_namespace": pid_note if item.not_sampled is None else None,
        "processes": list(live.processes) if live else [],
    }
