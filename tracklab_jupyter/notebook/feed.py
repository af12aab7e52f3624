"""One feed per kernel: a single flusher thread batches the monitor's live samples and
sends them to every open widget, about five times a second. With no widget open the
thread ends, so a closed widget costs nothing.

The same thread forwards runs' changes and logged metrics (the run watcher's ``RUN`` and
``RUN_METRICS`` hub topics) to the widgets that show a run (``tracklab.widget(run=...)``),
and the cluster's per-interval latest samples and node status changes (``CLUSTER`` and
``NODE``) to the cluster views (``tracklab.widget(cluster=True)``).

Alerts (issue 15) reach the widgets as ``event`` messages of kind ``alert`` and
``alert_resolved`` like every event on the hub. A widget that starts asks the feed for the
alerts active now (:meth:`WidgetFeed.request_alerts`): the feed thread reads them from the
store (never the kernel's main thread: SQLite), folds them by key with the alert events it
has seen on the hub and not yet found stored, and sends one ``alerts`` message.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.notebook.columns import to_columns
from tracklab_jupyter.sampler.hub import CLUSTER, EVENT, NODE, RUN, RUN_METRICS, SAMPLE
from tracklab_jupyter.threads import name_os_thread

if TYPE_CHECKING:
    from tracklab_jupyter.notebook.monitor_widget import MonitorWidget

log = logging.getLogger("tracklab_jupyter.notebook")

FLUSH_PERIOD_S = 0.2
# Samples buffered for the flusher between flushes (at 10 Hz sampling, 25 s of them).
SAMPLE_DEPTH = 256
# Run-metric batches buffered between flushes (the watcher publishes about 4 a second).
RUN_DEPTH = 1024
# Cluster ticks buffered between flushes (one per cluster interval, 0.2 s at the fastest).
CLUSTER_DEPTH = 8
TOPICS = (SAMPLE, EVENT, RUN, RUN_METRICS, CLUSTER, NODE)
ALERT_KINDS = ("alert", "alert_resolved")
# How far back a widget's start looks for alerts that are still active.
ALERTS_LOOKBACK = "-24h"
# Stored alert events read for that (the newest ones).
ALERTS_READ_LIMIT = 2000
# Alert keys whose latest hub event the feed remembers (one alert kind per rule and subject).
RECENT_ALERT_KEYS = 256


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def fold_alerts(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts still active after ``events`` (event dicts of kind ``alert`` and
    ``alert_resolved``, any order, duplicates allowed): per key the newest ``alert`` with no
    later ``alert_resolved``. Instant alerts (a kernel's death) never stay active."""
    active: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda e: float(e.get("time") or 0.0)):
        data = event.get("data") or {}
        key = data.get("key")
        if not isinstance(key, str):
            continue
        if event.get("kind") == "alert_resolved":
            active.pop(key, None)
        elif event.get("kind") == "alert" and not data.get("instant"):
            active[key] = event
    return sorted(active.values(), key=lambda e: float(e.get("time") or 0.0))


class WidgetFeed:
    """Fans one monitor's samples out to widgets, in batches, from one thread."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._widgets: weakref.WeakSet[MonitorWidget] = weakref.WeakSet()
        # Re-entrant: a collected widget's __del__ closes it (ipywidgets), and a garbage
        # collection can run that while this thread is inside add() or remove().
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Widgets waiting for their active alerts (answered by the feed thread).
        self._alert_requests: weakref.WeakSet[MonitorWidget] = weakref.WeakSet()
        # The newest alert event per key seen on the hub (feed thread only): one that the
        # recorder has published but not yet stored still counts.
        self._recent_alerts: dict[str, dict[str, Any]] = {}

    @property
    def running(self) -> bool:
        return self._thread is not None

    def add(self, widget: MonitorWidget) -> None:
        """Starts sending to ``widget``. The hub is subscribed when this returns (a run's
        widget reads its backfill after, so no logged value falls between the two)."""
        thread = None
        with self._lock:
            self._widgets.add(widget)
            if self._thread is None:
                self._stop = threading.Event()
                sub = self.monitor.hub.subscribe(
                    TOPICS, depth={SAMPLE: SAMPLE_DEPTH, RUN: RUN_DEPTH,
                                   RUN_METRICS: RUN_DEPTH, CLUSTER: CLUSTER_DEPTH})
                thread = self._thread = threading.Thread(
                    target=self._run, args=(self._stop, sub), name="tracklab-widget-feed",
                    daemon=True)
        # Started outside the lock: Thread.start waits for the new thread, which may run a
        # garbage collection that closes an old widget, and closing takes this lock.
        if thread is not None:
            thread.start()

    def request_alerts(self, widget: MonitorWidget) -> None:
        """Send ``widget`` the alerts active now (one ``alerts`` message), from the feed
        thread within a flush period. The widget must have been added."""
        with self._lock:
            self._alert_requests.add(widget)

    def remove(self, widget: MonitorWidget) -> None:
        with self._lock:
            self._widgets.discard(widget)
            self._alert_requests.discard(widget)
            if not self._widgets and self._thread is not None:
                self._stop.set()
                self._thread = None

    def close(self) -> None:
        with self._lock:
            self._widgets.clear()
            self._stop.set()
            thread, self._thread = self._thread, None
        # add() starts its thread after leaving the lock: one not started yet sees its stop
        # event set and ends at once, so there is nothing to wait for.
        if (thread is not None and thread.ident is not None
                and thread is not threading.current_thread()):
            thread.join(2)

    def _run(self, stop: threading.Event, sub: Any) -> None:
        name_os_thread()
        dropped = 0
        try:
            while not stop.wait(FLUSH_PERIOD_S):
                items = sub.drain()
                events = [item for topic, item in items if topic == EVENT]
                self._remember_alerts(events)
                # after this drain's events are remembered: a snapshot holds them too
                self._answer_alert_requests()
                if not items:
                    continue
                samples = [item for topic, item in items if topic == SAMPLE]
                runs = [(topic, item) for topic, item in items if topic in (RUN, RUN_METRICS)]
                clusters = [item for topic, item in items if topic == CLUSTER]
                statuses = [item for topic, item in items if topic == NODE]
                # A lost run-metric batch would leave a hole: resend the runs whole.
                lost, dropped = sub.dropped > dropped, sub.dropped
                for widget in list(self._widgets):
                    if hasattr(widget, "feed_cluster"):  # tracklab.widget(cluster=True)
                        self._send_cluster(widget, samples, clusters, statuses)
                        continue
                    self._send(widget, samples, events)
                    if widget.run_id:
                        self._send_run(widget, runs, lost)
        finally:
            sub.close()

    def _send_cluster(self, widget: Any, samples: list[Any], clusters: list[Any],
                      statuses: list[Any]) -> None:
        try:
            widget.feed_cluster(samples, clusters, statuses)
        except Exception:  # a widget whose comm went away: drop it, keep the others
            log.debug("tracklab: dropping a cluster widget that could not be sent to",
                      exc_info=True)
            self.remove(widget)

    def _send_run(self, widget: MonitorWidget, items: list[tuple[str, Any]],
                  lost: bool) -> None:
        try:
            if items:
                widget.run_items(items)
            if lost:
                widget.resend_run()
        except Exception:  # a widget whose comm went away, a run deleted meanwhile
            log.debug("tracklab: dropping a run widget that could not be sent to",
                      exc_info=True)
            self.remove(widget)

    def _send(self, widget: MonitorWidget, samples: list[Any], events: list[Any]) -> None:
        if not widget.ready:
            return
        try:
            fresh = [s for s in samples if widget.last_sent < s.time <= widget.sample_until]
            if fresh:
                header, buffers = to_columns(fresh, widget.metrics)
                widget.send({"type": "data", "backfill": False, **header}, buffers)
                widget.last_sent = fresh[-1].time
            for event in events:
                widget.send({"type": "event", "event": json_safe(event.to_dict())})
        except Exception:  # a widget whose comm went away: drop it, keep the others
            log.debug("tracklab: dropping a widget that could not be sent to", exc_info=True)
            self.remove(widget)


    # -- alerts --------------------------------------------------------------------------
    def _remember_alerts(self, events: list[Any]) -> None:
        for event in events:
            if event.kind in ALERT_KINDS and isinstance(event.data.get("key"), str):
                recent = self._recent_alerts
                recent.pop(event.data["key"], None)  # newest last
                recent[event.data["key"]] = event.to_dict()
                if len(recent) > RECENT_ALERT_KEYS:
                    del recent[next(iter(recent))]

    def _answer_alert_requests(self) -> None:
        with self._lock:
            waiting = [w for w in self._alert_requests if w in self._widgets]
            self._alert_requests.clear()
        if not waiting:
            return
        active = json_safe(self.active_alerts())
        for widget in waiting:
            try:
                widget.send({"type": "alerts", "alerts": active})
            except Exception:  # a widget whose comm went away: drop it, keep the others
                log.debug("tracklab: dropping a widget that could not be sent to",
                          exc_info=True)
                self.remove(widget)

    def active_alerts(self) -> list[dict[str, Any]]:
        """The alerts of this monitor's node active now (blocking: reads the store): the
        stored alert events of the last day and those seen on the hub, folded by key."""
        monitor = self.monitor
        try:
            stored = monitor.events(start=ALERTS_LOOKBACK, kinds=list(ALERT_KINDS),
                                    node=monitor.node, limit=ALERTS_READ_LIMIT)
        except Exception:  # no store yet (a new data dir), or it cannot be read now
            log.debug("tracklab: no stored alerts for the widget", exc_info=True)
            stored = []
        return fold_alerts([*stored, *self._recent_alerts.values()])


_feeds: dict[int, WidgetFeed] = {}
_feeds_lock = threading.Lock()


def feed_for(monitor: Monitor) -> WidgetFeed:
    with _feeds_lock:
        feed = _feeds.get(id(monitor))
        if feed is None or feed.monitor is not monitor:
            feed = _feeds[id(monitor)] = WidgetFeed(monitor)
        return feed


def close_feeds() -> None:
    with _feeds_lock:
        feeds = list(_feeds.values())
        _feeds.clear()
    for feed in feeds:
        feed.close()

