"""What runs on a cluster node: one sample of its host, with the same collectors as here.

The engine (Dask's ``Client.run``, a Ray actor) calls :func:`sample_host` in a process on
the node once per interval. The collectors are built on the first call and kept in this
process, so rates (disk, network) and CPU use are measured between consecutive calls, and
slow reads (PCIe, energy, process counts) run only when due. Nothing is left running
between calls: no thread, no timer.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from tracklab_jupyter.sampler.factory import SamplerConfig, build_sampler
from tracklab_jupyter.sampler.sampler import Sampler

_lock = threading.Lock()
_samplers: dict[str, Sampler] = {}
_slow_due: dict[tuple[str, str], float] = {}


def node_name(suffix: str = "") -> str:
    """This host's node name: its host name, plus ``suffix`` when several engine
    processes of one host are monitored as separate nodes (the test mode)."""
    return socket.gethostname() + suffix


def sample_host(suffix: str = "", with_info: bool = False) -> dict[str, Any]:
    """``{"time", "node", "metrics", "events", "counters"[, "info"]}`` for this host.

    ``with_info`` adds the static facts (cores, memory, GPUs), which the caller asks for
    when it first sees the node and now and then after.
    """
    node = node_name(suffix)
    with _lock:  # an engine may call from several threads; one reading at a time
        sampler = _samplers.get(node)
        fresh = sampler is None
        if sampler is None:
            sampler = _samplers[node] = build_sampler(SamplerConfig(node=node))
            events: list[Any] = []
            sampler.add_event_sink(events.append)
            sampler._remote_events = events  # type: ignore[attr-defined]
        now = time.monotonic()
        for collector in sampler.collectors:
            if collector.slow_interval > 0 and _slow_due.get((node, collector.name), 0) <= now:
                _slow_due[(node, collector.name)] = now + collector.slow_interval
                sampler.read_slow(collector)
        if fresh:  # CPU use and rates need a previous reading
            sampler.sample_once()
            time.sleep(0.1)
        sample = sampler.sample_once()
        pending = sampler._remote_events  # type: ignore[attr-defined]
        events_out = [e.to_dict() for e in pending]
        pending.clear()
        out: dict[str, Any] = {"time": sample.time, "node": node,
                               "metrics": {k: v for k, v in sample.metrics.items()
                                           if not k.startswith("tracklab.")},
                               "events": events_out,
                               # Raw disk and network counters per device, for Prometheus.
                               "counters": {group: {dev: list(row) for dev, row in rows.items()}
                                            for group, rows in sample.device_counters.items()}}
        if with_info or fresh:
            out["info"] = sampler.info
        return out


def close_all() -> None:
    """Release every collector (NVML handles) of this process."""
    with _lock:
        for sampler in _samplers.values():
            sampler.close()
        _samplers.clear()
        _slow_due.clear()
