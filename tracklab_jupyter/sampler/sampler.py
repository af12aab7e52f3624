"""The sampler: one background thread, one clock, every collector.

Each tick it reads every collector's cheap values, turns counters into rates over the real
elapsed time, merges the latest values of the slow reads (done by a second thread so a 20 ms
NVML call never delays a tick), stamps the sample and hands it to the hub and the sinks.
Nothing here runs on the tornado event loop.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from math import isfinite
from typing import Any

from tracklab_jupyter.collectors.base import Collector, Reading
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.sampler.hardware_events import HardwareWatcher
from tracklab_jupyter.sampler.hub import EVENT, SAMPLE, Hub
from tracklab_jupyter.sampler.rates import RateTracker
from tracklab_jupyter.settings import BY_NAME, DEFAULT_INTERVAL
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.sampler")

MIN_INTERVAL: float = BY_NAME["interval"].low  # type: ignore[assignment]
MAX_INTERVAL: float = BY_NAME["interval"].high  # type: ignore[assignment]

# Events after which a collector's static facts are read again.
_INFO_CHANGING_EVENTS = {"gpu_lost", "gpu_appeared", "mig_mode_changed", "mig_devices_changed",
                         "device_state_changed"}


def validate_interval(interval: float) -> float:
    """Return ``interval`` as float, or raise ValueError saying what is accepted."""
    try:
        value = float(interval)
    except (TypeError, ValueError):
        raise ValueError(
            f"sampling interval must be a number of seconds, got {interval!r}") from None
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise ValueError(
            f"sampling interval must be between {MIN_INTERVAL} and {MAX_INTERVAL:g} seconds, "
            f"got {interval!r}")
    return value


class Sampler:
    """Samples ``collectors`` every ``interval`` seconds on a background thread.

    Samples go to ``hub`` (topic ``sample``) and to every sink added with :meth:`add_sink`
    (sinks run on the sampler thread and must only enqueue). Hardware changes go to the hub
    (topic ``event``) and to event sinks. :meth:`start` and :meth:`stop` are idempotent;
    :meth:`stop` returns within one interval.
    """

    def __init__(self, collectors: Sequence[Collector], *, interval: float = DEFAULT_INTERVAL,
                 node: str | None = None, hub: Hub | None = None,
                 system_info: Callable[[], dict[str, Any]] | None = None) -> None:
        self.interval = validate_interval(interval)
        self.collectors = list(collectors)
        self.node = node or socket.gethostname()
        self.hub = hub if hub is not None else Hub()
        self._system_info = system_info
        self._sinks: list[Callable[[Sample], None]] = []
        self._event_sinks: list[Callable[[Event], None]] = []
        self._rates = RateTracker()
        # One tracker per collector: a tracker forgets the counters a call does not name.
        self._slow_rates = {c.name: RateTracker() for c in self.collectors}
        self._slow_values: dict[str, dict[str, float]] = {}
        # Values handed in by other threads (the kernel tracker), for the next sample only.
        self._next_values: dict[str, float] = {}
        self._slow_lock = threading.Lock()
        self._watcher = HardwareWatcher()
        self._failed: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lifecycle = threading.Lock()
        self._info: dict[str, Any] = {}
        self._info_lock = threading.Lock()
        self.latest: Sample | None = None
        # Own cost, for stats() and the tracklab.* metrics.
        self._count = 0
        self._cpu_total = 0.0
        self._slow_cpu_total = 0.0
        self._last_ms = 0.0
        self._last_cpu_ms = 0.0
        self._started_at: float | None = None
        self.refresh_info()

    # -- configuration -------------------------------------------------------------------
    def add_sink(self, sink: Callable[[Sample], None]) -> None:
        self._sinks.append(sink)

    def add_event_sink(self, sink: Callable[[Event], None]) -> None:
        self._event_sinks.append(sink)

    def merge_into_next(self, metrics: dict[str, float]) -> None:
        """Add ``metrics`` to the next sample only (values read at a slower cadence by
        another thread). They share that sample's time and row, so stored history gets no
        rows holding only them, and readers of the live sample see them as they come."""
        with self._slow_lock:
            self._next_values.update(metrics)

    # -- facts ---------------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        """Static facts: ``system`` plus one entry per collector."""
        return self._info

    def refresh_info(self, only: str | None = None) -> None:
        # Events from several slow threads may refresh at once: one at a time.
        with self._info_lock:
            self._refresh_info(only)

    def _refresh_info(self, only: str | None) -> None:
        info = dict(self._info)
        if self._system_info is not None and only is None:
            info["system"] = self._guarded("system", "info", self._system_info) or {}
        for collector in self.collectors:
            if only is None or collector.name == only:
                info[collector.name] = self._guarded(collector.name, "info", collector.info) or {}
        self._info = info
        self._watcher.set_info(info)

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        with self._lifecycle:
            if self.running:
                return
            self._stop.clear()
            self._started_at = time.monotonic()
            self._threads = [
                threading.Thread(target=self._run, name="tracklab-sampler", daemon=True)]
            # One slow thread per collector that has slow reads: a vendor tool that hangs
            # (npu-smi until its timeout) never delays another collector's slow values.
            self._threads += [
                threading.Thread(target=self._run_slow, args=(c,),
                                 name=f"tracklab-sampler-slow-{c.name}", daemon=True)
                for c in self.collectors if c.slow_interval > 0]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float | None = None) -> None:
        with self._lifecycle:
            self._stop.set()
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join(timeout if timeout is not None else self.interval + 1.0)
            self._threads = []

    def close(self) -> None:
        """Stop and release every collector's handles."""
        self.stop()
        for collector in self.collectors:
            self._guarded(collector.name, "close", collector.close)

    # -- the ticks -----------------------------------------------------------------------
    def _run(self) -> None:
        name_os_thread()
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_tick += self.interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind (a suspended VM): skip missed ticks, keep the phase
                next_tick += -delay // self.interval * self.interval + self.interval
                delay = next_tick - time.monotonic()
            self._stop.wait(delay)

    def sample_once(self) -> Sample:
        """Take one sample now, publish it and return it (also usable without start())."""
        cpu0 = time.thread_time()
        wall0 = time.perf_counter()
        stamp = time.time()
        reading = Reading()
        for collector in self.collectors:
            part = self._guarded(collector.name, "read", collector.read)
            if part is not None:
                reading.merge(part)
        now = time.monotonic()
        metrics = reading.gauges
        metrics.update(self._rates.update(reading.counters, now))
        with self._slow_lock:
            for values in self._slow_values.values():
                metrics.update(values)
            if self._next_values:
                metrics.update(self._next_values)
                self._next_values = {}
        # A value a source could not really read (NaN, inf) is absent, like any other.
        metrics = {k: float(v) for k, v in metrics.items() if isfinite(v)}
        if self._count:
            metrics["tracklab.sample_ms"] = self._last_ms
            metrics["tracklab.sample_cpu_ms"] = self._last_cpu_ms
        sample = Sample(stamp, self.node, metrics, reading.device_counters)
        events = reading.events + self._watcher.check(metrics)
        self.latest = sample
        self._emit_events(events, stamp)
        self.hub.publish(SAMPLE, sample)
        for sink in self._sinks:
            self._guarded("sink", getattr(sink, "__name__", "sink"), sink, sample)
        cpu = time.thread_time() - cpu0
        self._last_ms = (time.perf_counter() - wall0) * 1e3
        self._last_cpu_ms = cpu * 1e3
        self._cpu_total += cpu
        self._count += 1
        return sample

    def _run_slow(self, collector: Collector) -> None:
        name_os_thread()
        while not self._stop.is_set():
            due = time.monotonic() + collector.slow_interval
            self.read_slow(collector)
            self._stop.wait(max(0.05, due - time.monotonic()))

    def read_slow(self, collector: Collector) -> None:
        """Run one collector's slow read and keep its values for the following samples."""
        cpu0 = time.thread_time()
        reading = self._guarded(collector.name, "read_slow", collector.read_slow)
        if reading is not None:
            values = dict(reading.gauges)
            rates = self._slow_rates.setdefault(collector.name, RateTracker())
            values.update(rates.update(reading.counters, time.monotonic()))
            with self._slow_lock:
                self._slow_values[collector.name] = values
            self._emit_events(reading.events, time.time())
        with self._slow_lock:
            self._slow_cpu_total += time.thread_time() - cpu0

    def _emit_events(self, events: list[dict[str, Any]], stamp: float) -> None:
        for raw in events:
            event = Event(stamp, self.node, raw["kind"], raw.get("message", raw["kind"]),
                          raw.get("data", {}))
            if event.kind in _INFO_CHANGING_EVENTS:
                self.refresh_info()
            self.hub.publish(EVENT, event)
            for sink in self._event_sinks:
                self._guarded("event-sink", "event", sink, event)

    def _guarded(self, owner: str, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn``; a failure is logged once per (owner, error type) and yields None.

        One broken collector must never stop the others or the sampler.
        """
        try:
            return fn(*args)
        except Exception as exc:
            key = (owner, f"{what}:{type(exc).__name__}")
            if key not in self._failed:
                self._failed.add(key)
                log.warning("%s.%s failed: %s: %s (logged once)", owner, what,
                            type(exc).__name__, exc)
            return None

    # -- own cost ------------------------------------------------------------------------
    def cpu_seconds(self) -> float:
        """CPU time spent on ticks and slow reads since this sampler was made."""
        with self._slow_lock:
            return self._cpu_total + self._slow_cpu_total

    def stats(self) -> dict[str, Any]:
        """What the sampler costs: per-sample wall and CPU time, and its CPU share."""
        elapsed = time.monotonic() - self._started_at if self._started_at else 0.0
        cpu = self._cpu_total + self._slow_cpu_total
        return {
            "running": self.running,
            "interval_s": self.interval,
            "samples": self._count,
            "last_sample_ms": self._last_ms,
            "last_sample_cpu_ms": self._last_cpu_ms,
            "mean_sample_cpu_ms": self._cpu_total / self._count * 1e3 if self._count else 0.0,
            "slow_cpu_s": self._slow_cpu_total,
            "cpu_share_pct": cpu / elapsed * 100 if elapsed > 0 else 0.0,
            "last_sample_age_s": time.time() - self.latest.time if self.latest else None,
            "subscribers": self.hub.subscriber_count,
        }
