"""One feed per kernel: a single flusher thread batches the monitor's live samples and
sends them to every open widget, about five times a second. With no widget open the
thread ends, so a closed widget costs nothing.

The same thread forwards runs' changes and logged metrics (the run watcher's ``RUN`` and
``RUN_METRICS`` hub topics) to the widgets that show a run (``tracklab.widget(run=...)``),
and the cluster's per-interval latest samples and node status changes (``CLUSTER`` and
``NODE``) to the cluster views (``tracklab.widget(cluster=True)``).
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.notebook.columns import to_columns
from tracklab_jupyter.sampler.hub import CLUSTER, EVENT, NODE, RUN, RUN_METRICS, SAMPLE
from tracklab_jupyter.threads import name_os_thread

if TYPE_CHECKING:
    from tracklab_jupyter.notebook.widget import MonitorWidget

log = logging.getLogger("tracklab_jupyter.notebook")

FLUSH_PERIOD_S = 0.2
# Samples buffered for the flusher between flushes (at 10 Hz sampling, 25 s of them).
SAMPLE_DEPTH = 256
# Run-metric batches buffered between flushes (the watcher publishes about 4 a second).
RUN_DEPTH = 1024
# Cluster ticks buffered between flushes (one per cluster interval, 0.2 s at the fastest).
CLUSTER_DEPTH = 8
TOPICS = (SAMPLE, EVENT, RUN, RUN_METRICS, CLUSTER, NODE)


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

    def remove(self, widget: MonitorWidget) -> None:
        with self._lock:
            self._widgets.discard(widget)
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
                if not items:
                    continue
                samples = [item for topic, item in items if topic == SAMPLE]
                events = [item for topic, item in items if topic == EVENT]
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
                widget.send({"type": "event", "event": event.to_dict()})
        except Exception:  # a widget whose comm went away: drop it, keep the others
            log.debug("tracklab: dropping a widget that could not be sent to", exc_info=True)
            self.remove(widget)


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

