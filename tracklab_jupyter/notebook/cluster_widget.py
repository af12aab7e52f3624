"""``tracklab.widget(cluster=True)``: the cluster in a notebook output (anywidget).

One row per node (this kernel's host first, then the cluster's nodes): name, role, a
status badge (docs/CLUSTER.md, "Node status") and three sparklines (CPU, memory, mean GPU
utilisation); a header with the provider, address, totals and use
(``Monitor.cluster_info()``); a node selector showing the chosen node's detail. Without an
attached cluster it shows this host alone and says how to attach one
(``tracklab.connect_cluster(client)``); attaching one later shows up in the open widget.

The front end is js/cluster_widget.ts, bundled on its own into static/cluster.js (the host
widget's bundle is near its size budget). Protocol: js/PROTOCOL.md, "Cluster view". Live
data comes through the kernel's one feed thread (feed.py): local samples from the hub's
``SAMPLE`` topic, the other nodes' from ``CLUSTER``, status changes from ``NODE``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from typing import Any

import traitlets

from tracklab_jupyter.metrics.sample import Sample
from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.notebook.feed_widget import FeedWidget, bundle
from tracklab_jupyter.notebook.monitor_widget import DEFAULT_WINDOW_S, json_safe

log = logging.getLogger("tracklab_jupyter.notebook")

#: The three series of every row: CPU and memory use, and the mean of the node's GPUs'
#: ``gpu.N.util_pct`` (NaN for a node without GPUs).
SERIES = ("cpu.util_pct", "mem.util_pct", "gpu.util_pct")
#: The latest values sent per node for the detail view (plus the SERIES themselves and
#: ``gpu.mem_used_bytes`` / ``gpu.mem_total_bytes``: sums over the node's GPUs).
DETAIL = ("mem.used_bytes", "mem.limit_bytes", "swap.used_bytes", "cpu.load1",
          "net.recv_bytes_per_s", "net.sent_bytes_per_s", "disk.read_bytes_per_s",
          "disk.write_bytes_per_s")
#: Backfill rows per node at most (a longer window is thinned).
MAX_POINTS = 600
#: Seconds between two ``info`` messages (header totals, statuses, latest values).
INFO_PERIOD_S = 1.0
HINT = "connect a cluster with tracklab.connect_cluster(client)"
MAX_WINDOW_S = 86400.0


def _gpu_util_names(names: Any) -> list[str]:
    """``gpu.N.util_pct`` names (a whole device: not MIG slices or other sub-metrics)."""
    return [n for n in names
            if n.startswith("gpu.") and n.endswith(".util_pct") and n.count(".") == 2]


def row_values(metrics: dict[str, float]) -> tuple[float, float, float]:
    """CPU %, memory % and mean GPU % of one sample (NaN where absent)."""
    gpus = [metrics[n] for n in _gpu_util_names(metrics) if math.isfinite(metrics[n])]
    return (float(metrics.get("cpu.util_pct", math.nan)),
            float(metrics.get("mem.util_pct", math.nan)),
            sum(gpus) / len(gpus) if gpus else math.nan)


def detail_values(metrics: dict[str, float]) -> dict[str, float]:
    out = {k: metrics[k] for k in DETAIL if k in metrics}
    out.update(zip(SERIES, row_values(metrics), strict=True))
    used = [v for k, v in metrics.items()
            if k.startswith("gpu.") and k.endswith(".mem_used_bytes") and k.count(".") == 2]
    total = [v for k, v in metrics.items()
             if k.startswith("gpu.") and k.endswith(".mem_total_bytes") and k.count(".") == 2]
    if used:
        out["gpu.mem_used_bytes"] = sum(used)
    if total:
        out["gpu.mem_total_bytes"] = sum(total)
    return out


def pack_rows(rows: dict[str, list[tuple[float, tuple[float, float, float]]]]
              ) -> tuple[dict[str, Any], list[bytes]]:
    """``{node: [(time, (cpu, mem, gpu)), ...]}`` as a ``data`` header and its two float64
    buffers: the times of every node one after the other (node order = ``nodes``), then
    the values series-major over those rows."""
    import numpy as np

    nodes = [n for n, r in rows.items() if r]
    counts = [len(rows[n]) for n in nodes]
    flat = [row for n in nodes for row in rows[n]]
    times = np.fromiter((t for t, _ in flat), dtype=np.float64, count=len(flat))
    values = np.array([v for _, v in flat], dtype=np.float64).reshape(len(flat), len(SERIES))
    header = {"names": list(SERIES), "nodes": nodes, "counts": counts, "n": len(flat)}
    return header, [times.tobytes(), np.ascontiguousarray(values.T).tobytes()]


class ClusterWidget(FeedWidget):
    """The cluster's nodes, live. Create with ``tracklab.widget(cluster=True)``."""

    _esm = bundle("cluster.js")
    _css = bundle("cluster.css")

    window_s = traitlets.Float(DEFAULT_WINDOW_S, help="Seconds of data in the sparklines"
                               ).tag(sync=True)
    node = traitlets.Unicode("", help="The node shown in the detail ('': the first)"
                             ).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(self, monitor: Monitor, **kwargs: Any) -> None:
        self._lock = threading.RLock()
        #: Newest sample time sent per node (nothing is sent twice).
        self._last: dict[str, float] = {}
        #: Latest detail values per node (kept for nodes that went down).
        self._latest: dict[str, dict[str, float]] = {}
        self._info_at = 0.0
        super().__init__(monitor, **kwargs)

    def start_view(self) -> None:
        monitor = self._monitor
        monitor.wait_started()
        # Subscribed first; the feed's items wait on the lock until the backfill is sent,
        # then go out newer than it (per node), so nothing falls between the two.
        self._feed.add(self)
        with self._lock:
            self.ready = False
            info = self._info()
            self.send({"type": "init", "local": monitor.node, "interval_s": monitor.interval,
                       "window_s": self.window_s, **info})
            rows = self._backfill([n["node"] for n in info["cluster"]["nodes"]])
            self._last = {n: r[-1][0] for n, r in rows.items() if r}
            header, buffers = pack_rows(rows)
            self.send({"type": "data", "backfill": True, **header}, buffers)
            self._info_at = time.monotonic()
            self.status = self._status(info["cluster"])
            self.ready = True

    def _status(self, cluster: dict[str, Any]) -> str:
        provider = cluster.get("provider", "local")
        return f"live · {provider} · every {self._monitor.interval:g} s"

    def _info(self) -> dict[str, Any]:
        """The ``cluster`` (``cluster_info()`` with each node's ``latest`` values) and the
        ``hint``."""
        monitor = self._monitor
        cluster = monitor.cluster_info()
        for name, entry in monitor.cluster_metrics()["nodes"].items():
            self._latest[name] = detail_values(entry["metrics"])
        for node in cluster["nodes"]:
            node["latest"] = self._latest.get(node["node"], {})
        hint = HINT if monitor.cluster is None else None
        return {"cluster": json_safe(cluster), "hint": hint}

    def _backfill(self, nodes: list[str]) -> dict[str, list[tuple[float, Any]]]:
        """The window's rows of ``nodes``: stored ones (thinned to MAX_POINTS), then newer
        ones still in memory (this host's recent samples, the cluster's latest answers)."""
        from tracklab_jupyter.system_history import UnknownMetricError

        monitor = self._monitor
        now = time.time()
        since = now - self.window_s
        rows: dict[str, list[tuple[float, Any]]] = {n: [] for n in nodes}
        frames: dict[str, Any] = {}
        for metrics in (["cpu.util_pct", "mem.util_pct", "gpu.*.util_pct"],
                        ["cpu.util_pct", "mem.util_pct"], ["cpu.util_pct"]):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a coarser tier's note
                    frames = monitor.history(metrics=metrics, start=since, end=now + 1,
                                             node=nodes).frames
                break
            except UnknownMetricError:  # no GPU anywhere (or nothing stored yet)
                continue
            except Exception:  # no store yet (the first seconds of a new data dir)
                log.debug("tracklab: no stored history for the cluster view", exc_info=True)
                break
        for name, frame in frames.items():
            if name in rows:
                rows[name] = _frame_rows(frame)
        recent: list[Sample] = list(monitor.recent)
        if monitor.node in rows:
            newest = rows[monitor.node][-1][0] if rows[monitor.node] else since
            rows[monitor.node] += [(s.time, row_values(s.metrics)) for s in recent
                                   if s.time > newest and s.node == monitor.node]
        for name, entry in monitor.cluster_metrics()["nodes"].items():
            if name in rows and name != monitor.node and entry["time"] >= since and (
                    not rows[name] or entry["time"] > rows[name][-1][0]):
                rows[name].append((entry["time"], row_values(entry["metrics"])))
        return rows

    def feed_cluster(self, samples: list[Sample], clusters: list[dict[str, Any]],
                     statuses: list[dict[str, Any]]) -> None:
        """Live items from the feed's thread: new rows of every node, status changes, and
        an ``info`` refresh at most once per INFO_PERIOD_S (or at once after a change)."""
        with self._lock:
            if not self.ready:
                return
            local = self._monitor.node
            rows: dict[str, list[tuple[float, Any]]] = {}

            def take(node: str, t: float, metrics: dict[str, float]) -> None:
                if t > self._last.get(node, -math.inf):
                    rows.setdefault(node, []).append((t, row_values(metrics)))
                    self._last[node] = t

            for s in samples:
                if s.node == local:
                    take(local, s.time, s.metrics)
            for item in clusters:  # oldest first
                for name, entry in item.get("nodes", {}).items():
                    if name != local:
                        take(name, entry["time"], entry["metrics"])
            if rows:
                header, buffers = pack_rows(rows)
                self.send({"type": "data", "backfill": False, **header}, buffers)
            for status in statuses:
                self.send({"type": "node", "node": json_safe(status)})
            if statuses or time.monotonic() - self._info_at >= INFO_PERIOD_S:
                self._info_at = time.monotonic()
                info = self._info()
                self.send({"type": "info", **info})
                status = self._status(info["cluster"])
                if status != self.status:
                    self.status = status

    @traitlets.observe("window_s")
    def _on_window(self, change: dict[str, Any]) -> None:
        if self.ready and change["new"] != change["old"]:
            self.restart_view()  # a longer window needs data the front end never got

def _frame_rows(frame: Any) -> list[tuple[float, Any]]:
    """A history Frame's rows as ``(time, (cpu, mem, gpu))``, thinned to MAX_POINTS."""
    import numpy as np

    n = len(frame.times_ms)
    if n == 0:
        return []
    index = {name: i for i, name in enumerate(frame.names)}
    nan = np.full(n, np.nan)
    cpu = frame.values[index["cpu.util_pct"]] if "cpu.util_pct" in index else nan
    mem = frame.values[index["mem.util_pct"]] if "mem.util_pct" in index else nan
    gpu_rows = [frame.values[index[name]] for name in _gpu_util_names(frame.names)]
    if gpu_rows:
        stacked = np.vstack(gpu_rows)
        count = np.count_nonzero(~np.isnan(stacked), axis=0)
        total = np.nansum(stacked, axis=0)
        gpu = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    else:
        gpu = nan
    keep = np.arange(n)
    if n > MAX_POINTS:
        keep = np.unique(np.linspace(0, n - 1, MAX_POINTS).round().astype(int))
    times = (frame.times_ms[keep] / 1000.0).tolist()
    values = np.vstack([cpu, mem, gpu])[:, keep].T.tolist()
    # A row with none of the three (another metric's sample time) is left out.
    return [(t, tuple(v)) for t, v in zip(times, values, strict=True)
            if not all(math.isnan(x) for x in v)]


def make_cluster_widget(monitor: Monitor, window: float | str | None = None
                        ) -> ClusterWidget:
    """Validate the arguments of ``tracklab.widget(cluster=True)`` and build the widget."""
    from tracklab_jupyter.store.timespec import parse_duration

    window_s = parse_duration(DEFAULT_WINDOW_S if window is None else window)
    if not 10 <= window_s <= MAX_WINDOW_S:
        raise ValueError(f"window must be between 10 s and 1 day for the cluster view, "
                         f"got {window!r}")
    return ClusterWidget(monitor, window_s=window_s)
