"""The monitor: what a server (Jupyter or standalone) or a kernel holds to serve live data.

It owns a :class:`~tracklab_jupyter.recorder.Recorder`. When this process records, samples
come straight from the sampler through the hub. When another process records (a second
Jupyter server on the same data dir, a ``record`` command), this one reads: a tail thread
polls the store for new samples and events and republishes them on the same hub, so every
surface behaves the same in either role. Latest-sample reads never touch SQLite.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracklab_jupyter._version import __version__
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.sampler.factory import SamplerConfig
from tracklab_jupyter.sampler.hub import EVENT, SAMPLE, Hub
from tracklab_jupyter.settings import DEFAULTS, check_all
from tracklab_jupyter.store.config import DAY, StoreConfig
from tracklab_jupyter.store.paths import resolve_data_dir
from tracklab_jupyter.threads import name_os_thread

if TYPE_CHECKING:
    from tracklab_jupyter.cluster.monitor import ClusterMonitor

log = logging.getLogger("tracklab_jupyter.monitor")

STARTING = "starting"
# A node whose newest sample is older than this many intervals is "stale".
STALE_INTERVALS = 5


@dataclass
class MonitorConfig:
    """Everything a monitor needs: where the data lives, what to sample, how to store."""

    data_dir: Path
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    cache_size: int = 1000

    @classmethod
    def from_settings(cls, *, source: str = "settings", **values: Any) -> MonitorConfig:
        """Build and validate from settings (``tracklab_jupyter.settings``; the ones not
        given, or None, take their defaults); a ValueError names the setting as
        ``source.name`` (``c.TrackLab.interval: ...``)."""
        unknown = set(values) - set(MONITOR_SETTINGS)
        if unknown:
            raise TypeError(f"not monitor settings: {', '.join(sorted(unknown))}")
        given = {k: v for k, v in values.items() if v is not None}
        v = check_all({**{n: DEFAULTS[n] for n in MONITOR_SETTINGS}, **given}, source)
        sampler = SamplerConfig(interval=v["interval"], enable_cpu=v["enable_cpu"],
                                enable_memory=v["enable_memory"], enable_disk=v["enable_disk"],
                                enable_network=v["enable_network"], enable_gpu=v["enable_gpu"],
                                gpus=list(v["gpus"]) or None)
        days = v["retention_days"]
        store = StoreConfig(minute_retention=days * DAY,
                            hour_retention=max(365 * DAY, days * DAY),
                            batch_size=v["batch_size"], flush_interval=v["flush_interval"])
        try:
            resolved = resolve_data_dir(v["data_dir"] or None)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{source}.data_dir: {exc}") from None
        return cls(data_dir=resolved, sampler=sampler, store=store, cache_size=v["cache_size"])


#: The settings a :class:`MonitorConfig` is made of (the rest belong to its callers).
MONITOR_SETTINGS = ("interval", "data_dir", "retention_days", "enable_cpu", "enable_memory",
                    "enable_disk", "enable_network", "enable_gpu", "gpus", "batch_size",
                    "flush_interval", "cache_size")


class Monitor:
    """Live access to this host's samples, whichever process records them."""

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.hub = Hub()
        self.node = config.sampler.node or socket.gethostname()
        self.interval = config.sampler.interval
        self.data_dir = config.data_dir
        self.recent: deque[Sample] = deque(maxlen=config.cache_size)
        self._recorder: Any = None
        self._cpu_details: Any = None
        self._reader_latest: Sample | None = None
        self._reader_info: dict[str, Any] = {}
        self._stop = threading.Event()
        self._tail_thread: threading.Thread | None = None
        self._recent_sub: Any = None
        self._started_at = time.time()
        self._start_error: str | None = None
        self._run_watcher: Any = None
        self._watch_lock = threading.Lock()
        #: The :class:`~tracklab_jupyter.cluster.monitor.ClusterMonitor`, once attached.
        self.cluster: Any = None
        self._side_writer: Any = None
        #: The server's :class:`~tracklab_jupyter.kernels.tracker.KernelTracker`, when this
        #: monitor serves a Jupyter server with kernels.
        self.kernels: Any = None
        #: The :class:`~tracklab_jupyter.alerts.engine.AlertEngine`, once started.
        self.alerts: Any = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Take the recorder role or become a reader. Blocking (opens NVML, SQLite): call it
        from a thread, never from the event loop. Idempotent."""
        if self._recorder is not None or self._stop.is_set():
            return  # started, or stopped before it started
        from tracklab_jupyter.collectors.system_info import CpuDetails
        from tracklab_jupyter.recorder import Recorder, RecorderConfig

        self._recent_sub = self.hub.subscribe([SAMPLE], depth={SAMPLE: 64},
                                              notify=self._keep_recent)
        try:
            self._recorder = Recorder(
                RecorderConfig(data_dir=self.data_dir, sampler=self.config.sampler,
                               store=self.config.store),
                hub=self.hub, on_role_change=self._on_role_change)
        except Exception as exc:
            self._start_error = f"{type(exc).__name__}: {exc}"
            raise
        if self._stop.is_set():  # stop() came while the recorder was being set up
            self._recorder.stop()
            return
        self._cpu_details = CpuDetails(self.data_dir / "cache")
        self._tail_thread = threading.Thread(target=self._tail, name="tracklab-tail",
                                             daemon=True)
        self._tail_thread.start()

    def watch_runs(self) -> None:
        """Publish runs and run metrics written by any process on the hub (topics ``RUN``
        and ``RUN_METRICS``), and mark crashed runs of this host. Idempotent; cheap to
        call from the event loop (the work happens in the watcher's thread)."""
        from tracklab_jupyter.runs.watcher import RunWatcher

        with self._watch_lock:
            if self._run_watcher is None and not self._stop.is_set():
                self._run_watcher = RunWatcher(self.data_dir, self.hub, self.node)
                self._run_watcher.start()

    def attach_cluster(self, target: Any, *, per_worker: bool = False,
                       node_timeout: float = 10.0) -> ClusterMonitor:
        """Sample a cluster's nodes too (blocking: connects to the engine): ``target`` is a
        spec (``"dask://host:8786"``, ``"ray:auto"``, ``"local"``), a
        ``distributed.Client`` or the ``ray`` module. Replaces a cluster attached before.
        Node samples go to this data dir's store (beside the recorder when this process
        only reads) under each node's name."""
        from tracklab_jupyter.cluster.monitor import ClusterMonitor
        from tracklab_jupyter.cluster.providers import open_provider

        provider = open_provider(target, per_worker=per_worker)
        try:
            cluster = ClusterMonitor(
                provider, self.hub, interval=max(self.interval, 0.2),
                node_timeout=node_timeout, local_node=self.node,
                local_state=lambda: (self.latest, self.info),
                write=lambda s: self._node_writer().write(s),
                write_info=lambda n, i: self._node_writer().write_info(n, i),
                write_event=lambda e: self._node_writer().write_event(e))
        except BaseException:
            provider.close()
            raise
        previous, self.cluster = self.cluster, cluster
        if previous is not None:
            previous.stop()
        cluster.start()
        return cluster

    def _node_writer(self) -> Any:
        """The recorder's writer, or (in a reader) a side writer for cluster nodes."""
        recorder = self._recorder
        if recorder is not None and recorder.writer is not None:
            return recorder.writer
        if self._side_writer is None:
            from tracklab_jupyter.store.writer import StoreWriter

            self._side_writer = StoreWriter(self.data_dir, self.config.store, side=True)
        return self._side_writer

    def cluster_metrics(self) -> dict[str, Any]:
        """The latest sample of every node (this one alone without a cluster)."""
        if self.cluster is not None:
            return self.cluster.metrics()
        sample = self.latest
        nodes = {} if sample is None else {
            sample.node: {"time": sample.time, "metrics": sample.metrics}}
        return {"provider": "local", "nodes": nodes}

    def cluster_info(self) -> dict[str, Any]:
        """Nodes with state and resources, and the cluster's totals and use."""
        from tracklab_jupyter.cluster.summary import cluster_info, local_node

        local = local_node(self.node, self.node_status(), self.info)
        return cluster_info(local, self.cluster_metrics()["nodes"], self.cluster, self.interval)

    def stop(self) -> None:
        """Stop sampling (flushing the store) or reading. Idempotent."""
        self._stop.set()
        for part in (self.alerts, self.kernels):
            if part is not None:
                part.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self._side_writer is not None:
            self._side_writer.close()
        with self._watch_lock:
            if self._run_watcher is not None:
                self._run_watcher.stop()
        if self._tail_thread is not None:
            self._tail_thread.join(5)
        if self._recorder is not None:
            self._recorder.stop()
        if self._recent_sub is not None:
            self._recent_sub.close()

    def _on_role_change(self, role: str) -> None:
        log.info("tracklab: this process is now the %s for %s", role, self.data_dir)

    def _keep_recent(self) -> None:
        # Runs on the publishing thread: cheap appends only.
        for _topic, sample in self._recent_sub.drain():
            self.recent.append(sample)

    # -- reader role: poll the store ----------------------------------------------------
    def _tail(self) -> None:
        name_os_thread()
        since = time.time() - 10 * self.interval
        events_since = time.time()
        period = max(0.2, min(self.interval, 1.0))
        while not self._stop.wait(period):
            recorder = self._recorder
            if recorder is None:
                continue
            if recorder.role != "reader":
                # This process records: its samples reach the hub first-hand, and a
                # recorder never goes back to reading, so this thread has nothing to do.
                return
            try:
                samples = recorder.reader.tail(since, node=self.node)
                for sample in samples:
                    since = sample.time
                    if _kernel_values_only(sample):
                        # Stored by a server that reads while another process records:
                        # not a sample of the machine.
                        continue
                    self._reader_latest = sample
                    self.hub.publish(SAMPLE, sample)
                for event in recorder.reader.events(events_since, node=self.node):
                    self.hub.publish(EVENT, event)
                    events_since = event.time + 1e-3
                if samples or not self._reader_info:
                    self._reader_info = recorder.reader.info(self.node).get(self.node, {})
            except Exception:
                log.exception("tracklab: reading the store's tail failed; retrying")

    def wait_started(self, timeout: float = 5.0) -> bool:
        """Wait until the recorder or reader role is taken (start() runs in a thread)."""
        deadline = time.monotonic() + timeout
        while self.role == STARTING and self._start_error is None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return self._start_error is None

    # -- live state ----------------------------------------------------------------------
    @property
    def role(self) -> str:
        return self._recorder.role if self._recorder is not None else STARTING

    @property
    def sampler(self) -> Any:
        return self._recorder.sampler if self._recorder is not None else None

    @property
    def latest(self) -> Sample | None:
        sampler = self.sampler
        if sampler is not None:
            return sampler.latest
        return self._reader_latest

    @property
    def info(self) -> dict[str, Any]:
        sampler = self.sampler
        if sampler is not None:
            return sampler.info
        recorder = self._recorder
        if not self._reader_info and recorder is not None:
            # A reader asked before its tail thread's first pass: read the recorder's facts.
            with contextlib.suppress(Exception):
                self._reader_info = recorder.reader.info(self.node).get(self.node, {})
        return self._reader_info

    @property
    def notes(self) -> list[str]:
        return list(self.config.sampler.notes)

    def cpu_details(self) -> dict[str, Any] | None:
        """py-cpuinfo's answer once its background read is done (cached per boot)."""
        return self._cpu_details.result() if self._cpu_details is not None else None

    def hardware_state(self) -> dict[str, Any]:
        """Every accelerator of every vendor, the vendors' driver facts, and why a backend
        found nothing (``notes``)."""
        from tracklab_jupyter.accelerators.registry import devices_in, drivers_in

        info = self.info
        return {"accelerators": devices_in(info), "drivers": drivers_in(info),
                "notes": self.notes}

    def node_status(self) -> dict[str, Any]:
        sample = self.latest
        if self._recorder is None:
            status = "starting"
        elif sample is None:
            status = "starting" if time.time() - self._started_at < 30 else "down"
        elif time.time() - sample.time > STALE_INTERVALS * max(self.interval, 1.0):
            status = "stale"
        else:
            status = "up"
        return {"node": self.node, "status": status, "role": self.role,
                "last_seen": sample.time if sample else None}

    def health(self) -> dict[str, Any]:
        sample = self.latest
        age = time.time() - sample.time if sample else None
        sampler = self.sampler
        alive = bool(sampler.running) if sampler is not None else (
            age is not None and age < STALE_INTERVALS * max(self.interval, 1.0))
        if self._start_error:
            status = "degraded"
        elif self._recorder is None or sample is None:
            status = "starting"
        else:
            status = "ok" if alive else "degraded"
        recorder = self._recorder
        store: dict[str, Any] = {"path": str(self.data_dir / "metrics.db")}
        with contextlib.suppress(OSError):  # a file can vanish between glob and stat
            store["size_bytes"] = sum(p.stat().st_size for p in self.data_dir.glob("metrics.db*"))
        if recorder is not None:
            store["recorder"] = recorder.holder()
            if recorder.writer is not None:
                store.update(recorder.writer.stats())
        return {"status": status, "role": self.role, "node": self.node,
                "sampler_alive": alive, "last_sample_age_s": age, "interval_s": self.interval,
                "error": self._start_error, "store": store,
                "sampler": sampler.stats() if sampler is not None else None,
                "versions": _versions()}

    def record_event(self, event: Event) -> None:
        """Store an event (a cell's span, a run marker) and tell live readers. Works in
        either role: the recorder queues it, a reader adds it to the store itself."""
        recorder = self._recorder
        writer = recorder.writer if recorder is not None else None
        if writer is not None:
            writer.write_event(event)
            self.hub.publish(EVENT, event)
            return
        from tracklab_jupyter.store.side_events import append_events

        try:  # the tail thread republishes it from the store within a second
            append_events(self.data_dir, [event])
        except (OSError, sqlite3.Error) as exc:
            log.warning("tracklab: could not store %s event: %s", event.kind, exc)

    # -- stored data ---------------------------------------------------------------------
    def history(self, **query: Any) -> Any:
        """:func:`tracklab_jupyter.system_history.history` on this monitor's data dir (blocking).
        Raises StoreNotFoundError before anything is recorded, StoreUnavailableError when
        the store cannot be used."""
        from tracklab_jupyter.store.db import unavailable_as_error
        from tracklab_jupyter.system_history import history

        with unavailable_as_error(self.data_dir):
            return history(data_dir=self.data_dir, **query)

    def events(self, *, start: Any = "-24h", end: Any = None, kinds: list[str] | None = None,
               node: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Stored events, newest ``limit`` of them, oldest first (blocking). Raises like
        :meth:`history`."""
        from tracklab_jupyter.store.db import unavailable_as_error
        from tracklab_jupyter.store.reader import StoreReader
        from tracklab_jupyter.store.timespec import parse_time

        now = time.time()
        t_start = parse_time(start, now)
        t_end = now + 1 if end is None else parse_time(end, now)
        reader = StoreReader(self.data_dir)
        try:
            with unavailable_as_error(self.data_dir):
                found: list[Event] = reader.events(t_start, t_end, node=node, kinds=kinds,
                                                   limit=limit)
        finally:
            reader.close()
        return [e.to_dict() for e in found]


def _kernel_values_only(sample: Sample) -> bool:
    """A stored row that holds per-kernel values alone (``kernel.*``)."""
    return all(name.startswith("kernel.") for name in sample.metrics)


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"tracklab-jupyter": __version__}
    for name in ("jupyter_server", "tornado", "psutil", "nvidia-ml-py"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
