"""The run's own process tree: the script and its children (DataLoader workers, ...).

Sampled on the run writer's thread, never on the recorder's 1 Hz path. Listing children
walks every process of the machine (psutil reads each ``/proc/PID/stat``), so the tree is
re-listed every :data:`RELIST_S` seconds and only the known members are read each tick.
Accelerator memory per process is matched by pid against the ``gpu.N.proc.PID.mem_used_bytes``
(and ``npu.N.proc...``) values that the recorder's backends already read (NVML, AMD SMI,
Ascend DCMI); inside a container with its own pid namespace the driver's host pids do not
match ours, so that value is absent there.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

import psutil

RELIST_S = 2.0
_DEVICE_PROC = re.compile(r"(?:gpu|npu|tpu)\.\d+\.proc\.(\d+)\.mem_used_bytes")


def gpu_memory_by_pid(metrics: Mapping[str, float]) -> dict[int, float]:
    """``{pid: bytes}`` summed over every accelerator, from a system sample's metrics."""
    out: dict[int, float] = {}
    for name, value in metrics.items():
        if ".proc." in name:
            match = _DEVICE_PROC.fullmatch(name)
            if match:
                pid = int(match.group(1))
                out[pid] = out.get(pid, 0.0) + value
    return out


class ProcessTree:
    """Reads CPU, RSS, threads and GPU memory of ``pid`` and its descendants."""

    def __init__(self, pid: int | None = None) -> None:
        self.root = psutil.Process(pid or os.getpid())
        self._members: dict[int, psutil.Process] = {self.root.pid: self.root}
        self._relist_at = 0.0
        self.root.cpu_percent(None)  # the first call only starts the measurement

    def _relist(self) -> None:
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            children = []
        members = {self.root.pid: self.root}
        for child in children:
            known = self._members.get(child.pid)
            if known is not None and known.is_running():
                members[child.pid] = known  # keeps its cpu_percent baseline
            else:
                try:
                    child.cpu_percent(None)
                except psutil.Error:
                    continue
                members[child.pid] = child
        self._members = members

    def sample(self, gpu_memory: Mapping[int, float] | None = None
               ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """``(totals, processes)``: ``tree.*`` totals of the tree and one dict per
        process. CPU is percent of one core since the previous call."""
        now = time.monotonic()
        if now >= self._relist_at:
            self._relist()
            self._relist_at = now + RELIST_S
        gpu_memory = gpu_memory or {}
        processes: list[dict[str, Any]] = []
        gone = []
        for pid, proc in self._members.items():
            try:
                with proc.oneshot():
                    row: dict[str, Any] = {
                        "pid": pid, "name": proc.name(), "cpu_pct": proc.cpu_percent(None),
                        "rss_bytes": float(proc.memory_info().rss),
                        "threads": proc.num_threads()}
            except psutil.Error:  # it ended between listing and reading
                gone.append(pid)
                continue
            if pid in gpu_memory:
                row["gpu_mem_bytes"] = gpu_memory[pid]
            processes.append(row)
        for pid in gone:
            if pid != self.root.pid:
                self._members.pop(pid, None)
        totals = {"tree.procs": float(len(processes)),
                  "tree.cpu_pct": sum(p["cpu_pct"] for p in processes),
                  "tree.rss_bytes": sum(p["rss_bytes"] for p in processes),
                  "tree.threads": float(sum(p["threads"] for p in processes))}
        with_gpu = [p["gpu_mem_bytes"] for p in processes if "gpu_mem_bytes" in p]
        if with_gpu:
            totals["tree.gpu_mem_bytes"] = sum(with_gpu)
        return totals, processes
