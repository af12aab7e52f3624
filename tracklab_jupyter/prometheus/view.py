"""What one scrape reads: every node's latest sample (with its raw counters) and facts, the
kernels of this server, and the sampler's own counts. All from memory (except, on a
reader-role server, this host's facts while none are in memory yet: ``Monitor.info`` reads
them from SQLite, on the scrape's thread); nothing is sampled again for a scrape."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracklab_jupyter._version import __version__
from tracklab_jupyter.cluster.status import UP

#: A local sample older than this many intervals (plus 2 s) counts as stale: node_up 0.
STALE_INTERVALS = 3


@dataclass(frozen=True)
class NodeView:
    """One node as a scrape shows it. ``metrics`` is empty for a node that is down."""

    node: str
    up: bool
    time: float | None
    metrics: Mapping[str, float]
    device_counters: Mapping[str, Mapping[str, Sequence[float]]]
    info: Mapping[str, Any]
    #: This host (its kernels and sampler are the server's own).
    local: bool = False


@dataclass(frozen=True)
class ScrapeView:
    """Everything one exposition is made from."""

    nodes: Sequence[NodeView]
    version: str = __version__
    #: ``kernel.{id}.*`` values of this server's kernels (they belong to the local node).
    kernel_series: Mapping[str, float] = field(default_factory=dict)
    #: ``api/kernels`` entries (id, name, notebook) of this server's kernels.
    kernels: Sequence[Mapping[str, Any]] = ()
    #: This process's sampler counts: ``samples`` and ``cpu_s``; None when it does not
    #: sample (it reads another recorder's store).
    sampler: Mapping[str, float] | None = None


def scrape_view(monitor: Any) -> ScrapeView:
    """The view of a :class:`~tracklab_jupyter.monitor.Monitor` now (thread-safe reads)."""
    nodes: list[NodeView] = []
    latest = monitor.latest
    if latest is not None:
        fresh = time.time() - latest.time <= STALE_INTERVALS * monitor.interval + 2.0
        nodes.append(NodeView(latest.node, fresh, latest.time, latest.metrics,
                              latest.device_counters, monitor.info, local=True))
    cluster = monitor.cluster
    if cluster is not None:
        for node in cluster.node_states():
            sample = node.latest
            up = node.status == UP and sample is not None
            nodes.append(NodeView(node.name, up, sample.time if sample else None,
                                  sample.metrics if up and sample else {},
                                  sample.device_counters if up and sample else {},
                                  node.info))
    series: Mapping[str, float] = {}
    kernels: Sequence[Mapping[str, Any]] = ()
    if monitor.kernels is not None:
        series = monitor.kernels.latest_series()
        kernels = monitor.kernels.snapshot().get("kernels", ())
    sampler = monitor.sampler
    counts = None
    if sampler is not None:
        stats = sampler.stats()
        counts = {"samples": float(stats["samples"]), "cpu_s": sampler.cpu_seconds()}
    return ScrapeView(nodes, kernel_series=series, kernels=kernels, sampler=counts)
