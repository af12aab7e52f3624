"""Per-cell cost: after each cell, one line with wall time, CPU, peak RAM and accelerator use
(GPUs of any vendor, NPUs, TPUs),
computed from the monitor's samples during the cell, and the cell's span stored as an
event so history can be cut by cell."""

from __future__ import annotations

import os
import re
import time
from typing import Any

from tracklab_jupyter.metrics.units import format_bytes
from tracklab_jupyter.sampler.sample import Event, Sample

_DEVICE_UTIL = re.compile(r"((?:gpu|npu|tpu)\.\d+)\.util_pct\Z")


def _process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def summarize(samples: list[Sample], wall_s: float, cpu_s: float) -> dict[str, Any]:
    """The cell's cost from the samples taken while it ran."""
    summary: dict[str, Any] = {"wall_s": wall_s, "cpu_s": cpu_s, "samples": len(samples)}
    mem = [s.metrics["mem.used_bytes"] for s in samples if "mem.used_bytes" in s.metrics]
    if mem:
        summary["mem_peak_bytes"] = max(mem)
    devices: dict[str, dict[str, float]] = {}
    for sample in samples:
        for name, value in sample.metrics.items():
            match = _DEVICE_UTIL.match(name)
            if match:
                dev = devices.setdefault(match.group(1), {"util": 0.0, "n": 0, "mem": 0.0})
                dev["util"] += value
                dev["n"] += 1
                used = sample.metrics.get(f"{match.group(1)}.mem_used_bytes", 0.0)
                dev["mem"] = max(dev["mem"], used)
    order = {"gpu": 0, "npu": 1, "tpu": 2}

    def by_kind_and_index(key: str) -> tuple[int, int]:
        kind, index = key.split(".")
        return order[kind], int(index)

    summary["accelerators"] = {
        key: {"util_mean_pct": d["util"] / d["n"], "mem_peak_bytes": d["mem"]}
        for key, d in sorted(devices.items(), key=lambda kv: by_kind_and_index(kv[0]))}
    return summary


def format_line(summary: dict[str, Any]) -> str:
    wall, cpu = summary["wall_s"], summary["cpu_s"]
    parts = [f"{wall:.2f} s wall", f"CPU {cpu:.2f} s ({cpu / wall * 100 if wall else 0:.0f} %)"]
    if "mem_peak_bytes" in summary:
        parts.append(f"RAM peak {format_bytes(summary['mem_peak_bytes'])}")
    for key, dev in summary["accelerators"].items():
        kind, index = key.split(".")
        parts.append(f"{kind.upper()}{index} {dev['util_mean_pct']:.0f} % · "
                     f"{format_bytes(dev['mem_peak_bytes'])} peak")
    return "⏱ tracklab: " + " · ".join(parts)


class CellTimer:
    """IPython pre/post_run_cell hooks that print and store each cell's cost."""

    def __init__(self, shell: Any, monitor: Any) -> None:
        self.shell = shell
        self.monitor = monitor
        self._start: tuple[float, float] | None = None
        self.last: dict[str, Any] | None = None

    def register(self) -> None:
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)

    def unregister(self) -> None:
        for name, hook in (("pre_run_cell", self.pre_run_cell),
                           ("post_run_cell", self.post_run_cell)):
            if hook in self.shell.events.callbacks[name]:
                self.shell.events.unregister(name, hook)

    def pre_run_cell(self, _info: Any = None) -> None:
        self._start = (time.time(), _process_cpu_s())

    def post_run_cell(self, result: Any = None) -> None:
        if self._start is None:
            return
        (t0, cpu0), self._start = self._start, None
        t1 = time.time()
        recent = list(self.monitor.recent)
        during = [s for s in recent if t0 <= s.time <= t1]
        if not during and recent:  # shorter than one interval: the nearest sample
            during = [min(recent, key=lambda s: abs(s.time - (t0 + t1) / 2))]
        summary = summarize(during, t1 - t0, _process_cpu_s() - cpu0)
        count = getattr(getattr(result, "info", None), "cell_id", None)
        execution = getattr(result, "execution_count", None)
        summary.update({"start": t0, "end": t1, "execution_count": execution,
                        "cell_id": count})
        self.last = summary
        print(format_line(summary))
        label = f"cell [{execution}]" if execution is not None else "cell"
        self.monitor.record_event(Event(t0, self.monitor.node, "cell",
                                        f"{label}: {t1 - t0:.2f} s", summary))
