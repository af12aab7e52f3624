"""Per-cell cost of the kernel itself: ``%tracklab cells on`` prints one line after each cell
and stores the cell's figures as a ``cell`` event (see docs/CELLS.md).

The kernel's RSS comes from :class:`~tracklab_jupyter.notebook.cell_probe.CellProbe`, which
reads the kernel's process tree every few milliseconds while the cell runs. Accelerator
memory of the kernel's processes and device utilisation come from the host sampler's
samples taken during the cell (``gpu.N.proc.PID.mem_used_bytes`` matched against the tree's
pids, ``gpu.N.util_pct``), folded on the probe thread as they arrive, so a cell of any length
is covered. The machine's figures are only a secondary note on the line.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.metrics.units import format_bytes
from tracklab_jupyter.monitor import STARTING
from tracklab_jupyter.notebook.cell_probe import DEFAULT_PERIOD_S, CellProbe, ProbeResult
from tracklab_jupyter.sampler.hub import SAMPLE

SOURCE_CHARS = 80  # the cell's first line kept in the event
SAMPLE_DEPTH = 256  # host samples queued between two folds (one fold about every second)
PENDING_EVENTS = 64  # cell events held while the monitor is still starting (no store yet)
_DEVICE_METRIC = re.compile(r"((gpu|npu|tpu)\.(\d+))\.(?:util_pct|proc\.(\d+)\.mem_used_bytes)\Z")
_KIND_ORDER = {"gpu": 0, "npu": 1, "tpu": 2}
_CONNECTION_FILE = re.compile(r"kernel-(.+)\.json\Z")
# The inode of the initial pid namespace (PROC_PID_INIT_INO): a kernel in another one (a
# container) has pids that differ from the host pids accelerator drivers report.
_INIT_PID_NS = 0xEFFFFFFC


def kernel_id() -> str | None:
    """The Jupyter kernel id of this process (from its connection file
    ``kernel-<id>.json``), None outside a kernel."""
    try:
        from ipykernel import get_connection_file

        name = os.path.basename(get_connection_file())
    except Exception:  # not in an ipykernel, or an app without a connection file
        return None
    match = _CONNECTION_FILE.match(name)
    return match.group(1) if match else None


def first_line(source: str | None, limit: int = SOURCE_CHARS) -> str | None:
    """The first non-blank line of a cell, at most ``limit`` characters."""
    for line in (source or "").splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[:limit - 1] + "…"
    return None


def other_pid_namespace() -> bool | None:
    """Whether this process lives in a pid namespace other than the host's (None: unknown)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino != _INIT_PID_NS
    except OSError:
        return None


@dataclass
class _Device:
    util_sum: float = 0.0
    util_n: int = 0
    mem_peak: float = 0.0
    procs_seen: bool = False  # the backend reported processes on it during the cell


@dataclass
class DeviceTally:
    """Accelerator and host figures folded from the host's samples taken during a cell."""

    node: str
    samples: int = 0
    host_mem_peak: float | None = None
    devices: dict[str, _Device] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, samples: Iterable[Sample], pids: frozenset[int] | set[int],
            start: float | None = None, end: float | None = None) -> None:
        """Fold samples of this node taken within ``[start, end]`` (bounds optional)."""
        for sample in samples:
            if sample.node != self.node or (start is not None and sample.time < start) or (
                    end is not None and sample.time > end):
                continue
            ours: dict[str, float] = {}
            with self._lock:
                self.samples += 1
                used = sample.metrics.get("mem.used_bytes")
                if used is not None:
                    self.host_mem_peak = max(self.host_mem_peak or 0.0, used)
                for name, value in sample.metrics.items():
                    if not name.startswith(("gpu.", "npu.", "tpu.")):
                        continue
                    match = _DEVICE_METRIC.match(name)
                    if match is None:
                        continue
                    key, pid = match.group(1), match.group(4)
                    device = self.devices.setdefault(key, _Device())
                    if pid is None:
                        device.util_sum += value
                        device.util_n += 1
                        continue
                    device.procs_seen = True
                    if int(pid) in pids:
                        ours[key] = ours.get(key, 0.0) + value
                for key, mem in ours.items():
                    self.devices[key].mem_peak = max(self.devices[key].mem_peak, mem)

    def figures(self) -> dict[str, dict[str, float | None]]:
        """``{"gpu.0": {"mem_peak_bytes", "util_mean_pct"}}``, GPUs then NPUs then TPUs."""
        def order(key: str) -> tuple[int, int]:
            kind, index = key.split(".")
            return _KIND_ORDER[kind], int(index)

        with self._lock:
            return {key: {"mem_peak_bytes": d.mem_peak,
                          "util_mean_pct": d.util_sum / d.util_n if d.util_n else None}
                    for key, d in sorted(self.devices.items(), key=lambda kv: order(kv[0]))}

    def unmatched(self) -> bool:
        """Processes were reported on the devices but none of them is the kernel's."""
        with self._lock:
            return any(d.procs_seen for d in self.devices.values()) and not any(
                d.mem_peak for d in self.devices.values())


def summarize(probe: ProbeResult, tally: DeviceTally, wall_s: float) -> dict[str, Any]:
    """The cell's figures (the stored event's data, less the cell's identity)."""
    gpus = tally.figures()
    note = None
    if tally.unmatched() and other_pid_namespace():
        note = "container pid namespace"
    return {
        "wall_s": wall_s, "cpu_s": probe.cpu_s,
        "rss_start_bytes": probe.rss_start_bytes, "rss_end_bytes": probe.rss_end_bytes,
        "rss_peak_bytes": probe.rss_peak_bytes,
        "rss_change_bytes": probe.rss_end_bytes - probe.rss_start_bytes,
        "procs": probe.procs, "probe_reads": probe.reads,
        "gpus": gpus, "gpus_unmatched": note,
        "host_mem_peak_bytes": tally.host_mem_peak, "samples": tally.samples,
    }


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _signed_bytes(value: float) -> str:
    return ("+" if value > 0 else "-" if value < 0 else "±") + format_bytes(abs(value))


def _device_label(key: str) -> str:
    kind, index = key.split(".")
    return f"{kind.upper()}{index}"


def format_line(summary: dict[str, Any]) -> str:
    """One line for a human: the kernel's own figures first, the machine's as a note.

    ``⏱ tracklab: 2.31 s wall · CPU 1.95 s (84 %) · RAM 1.9 GiB peak (+412 MiB) ·
    GPU0 12.3 GiB peak, util 97 % · host: RAM 23.1 GiB peak, GPU1 util 95 %``
    """
    wall, cpu = summary["wall_s"], summary["cpu_s"]
    share = f" ({cpu / wall * 100:.0f} %)" if wall >= 0.05 else ""  # noise below
    parts = [f"{_duration(wall)} wall", f"CPU {_duration(cpu)}{share}"]
    if summary.get("rss_peak_bytes") is not None:
        parts.append(f"RAM {format_bytes(summary['rss_peak_bytes'])} peak "
                     f"({_signed_bytes(summary['rss_change_bytes'])})")
    host: list[str] = []
    if summary.get("host_mem_peak_bytes") is not None:
        host.append(f"RAM {format_bytes(summary['host_mem_peak_bytes'])} peak")
    for key, device in (summary.get("gpus") or {}).items():
        util = device.get("util_mean_pct")
        if device.get("mem_peak_bytes"):
            text = f"{_device_label(key)} {format_bytes(device['mem_peak_bytes'])} peak"
            parts.append(text + (f", util {util:.0f} %" if util is not None else ""))
        elif util is not None and util >= 1:  # busy, but not with this kernel's work
            host.append(f"{_device_label(key)} util {util:.0f} %")
    if summary.get("gpus_unmatched"):
        parts.append(f"GPU memory not attributable ({summary['gpus_unmatched']})")
    if host:
        parts.append("host: " + ", ".join(host))
    return "⏱ tracklab: " + " · ".join(parts)


@dataclass
class _Cell:
    start: float
    info: Any
    tally: DeviceTally
    subscription: Any
    end: float | None = None


class CellTimer:
    """IPython pre/post_run_cell hooks that print and store each cell's cost."""

    def __init__(self, shell: Any, monitor: Any, period: float = DEFAULT_PERIOD_S) -> None:
        self.shell = shell
        self.monitor = monitor
        self.probe = CellProbe(period=period, on_tick=self._fold)
        self.kernel_id = kernel_id()
        self.notebook = os.environ.get("JPY_SESSION_NAME") or None
        self.last: dict[str, Any] | None = None
        self._cell: _Cell | None = None
        self._depth = 0  # cells run from inside a cell (run_cell) count in the outer one
        self._pending: deque[Event] = deque(maxlen=PENDING_EVENTS)
        self._lock = threading.Lock()

    def register(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)

    def unregister(self) -> None:
        """Remove the hooks and end the probe thread."""
        for name, hook in (("pre_run_cell", self.pre_run_cell),
                           ("post_run_cell", self.post_run_cell)):
            if hook in self.shell.events.callbacks[name]:
                self.shell.events.unregister(name, hook)
        self.probe.stop()
        with self._lock:
            cell, self._cell = self._cell, None
        if cell is not None:
            cell.subscription.close()
        self._flush()

    def set_period(self, period: float) -> None:
        """The probe's period from the next cell on."""
        from tracklab_jupyter.notebook.cell_probe import check_period

        self.probe.period = check_period(period)

    def pre_run_cell(self, info: Any = None) -> None:
        self._depth += 1
        if self._depth > 1:
            return
        subscription = self.monitor.hub.subscribe([SAMPLE], depth={SAMPLE: SAMPLE_DEPTH})
        with self._lock:
            self._cell = _Cell(time.time(), info, DeviceTally(self.monitor.node), subscription)
        self.probe.begin()

    def _fold(self) -> None:
        """Fold the host samples that arrived (probe thread, about once a second; and once
        more when the cell ends)."""
        with self._lock:
            cell = self._cell
            end = None if cell is None else cell.end
        if cell is not None:
            samples = [item for _topic, item in cell.subscription.drain()]
            cell.tally.add(samples, self.probe.pids(), start=cell.start, end=end)

    def post_run_cell(self, result: Any = None) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth:
            return
        t1 = time.time()
        with self._lock:
            cell = self._cell
            if cell is None:
                return
            cell.end = t1
        probe = self.probe.end()
        self._fold()
        with self._lock:
            self._cell = None
        cell.subscription.close()
        t0 = cell.start
        if not cell.tally.samples:  # shorter than one interval: the nearest recent sample
            self._nearest(cell.tally, probe.pids, t0, t1)
        summary = summarize(probe, cell.tally, t1 - t0)
        execution = getattr(result, "execution_count", None)
        info = cell.info if cell.info is not None else getattr(result, "info", None)
        summary.update({
            "start": t0, "end": t1, "execution_count": execution,
            "cell_id": getattr(info, "cell_id", None),
            "source": first_line(getattr(info, "raw_cell", None)),
            "success": getattr(result, "success", None),
            "kernel_id": self.kernel_id, "notebook": self.notebook, "pid": self.probe.pid,
            "probe_period_s": self.probe.period})
        self.last = summary
        print(format_line(summary))
        label = f"cell [{execution}]" if execution is not None else "cell"
        self._record(Event(t0, self.monitor.node, "cell", f"{label}: {t1 - t0:.2f} s", summary))

    def _record(self, event: Event) -> None:
        # Right after `%tracklab cells on` the monitor may still be opening its store (in
        # its own thread): hold the first cells' events until it can take them.
        self._pending.append(event)
        self._flush()

    def _flush(self) -> None:
        if self.monitor.role == STARTING:
            return
        while self._pending:
            self.monitor.record_event(self._pending.popleft())

    def _nearest(self, tally: DeviceTally, pids: frozenset[int], t0: float, t1: float) -> None:
        mid = (t0 + t1) / 2
        recent = [s for s in list(self.monitor.recent) if s.node == self.monitor.node]
        if not recent:
            return
        nearest = min(recent, key=lambda s: abs(s.time - mid))
        # A reader sees the recorder's samples a second or two late; older is another cell.
        if abs(nearest.time - mid) <= (t1 - t0) / 2 + 3 * self.monitor.interval:
            tally.add([nearest], pids)
