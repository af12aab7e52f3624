"""The alert engine: one thread that feeds the hub's samples, events, cluster node changes
and kernel passes to the rules.

Which rules run where:

- Host rules (memory, disk, thermal, ecc, device_lost, node_offline, recorder_stale) only
  while this process is the recorder of its data dir, so exactly one process stores them.
  A server that reads the store gets the recorder's alert events through its tail thread,
  which republishes stored events on its hub.
- Kernel rules (idle_gpu, kernel_death) in the server that owns the kernels
  (``monitor.kernels``), whatever its role.

Alerts are stored as events through ``monitor.record_event``, which also tells live
readers (in a recorder it publishes the event; in a reader the tail brings it back from the
store, once). At start, and when this process becomes the recorder, the engine takes over
the alerts of its scope an earlier process left active, so one whose condition went away
meanwhile is resolved.

Cost: the thread sleeps on the subscription and wakes once per sample (a few dict lookups
per rule), once per kernel pass, per event, and every :data:`TIMER_S` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from tracklab_jupyter.alerts.book import KINDS, Alert, AlertBook
from tracklab_jupyter.alerts.rules import RULE_CLASSES, Context, RecorderStaleRule, Rule
from tracklab_jupyter.alerts.settings import (
    HOST_RULES,
    KERNEL_RULES,
    AlertSettings,
    parse_alert_settings,
)
from tracklab_jupyter.alerts.store_view import fold_active, stored_alert_events
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.sampler.hub import EVENT, KERNELS, NODE, SAMPLE
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.alerts")

#: Seconds between timer checks (the stale recorder, cluster nodes left down).
TIMER_S = 5.0
#: Kernel ids remembered as this server's (for kernel events coming back from the store).
MAX_KNOWN_KERNELS = 4096


class AlertEngine:
    """Evaluates the enabled rules of ``settings`` over ``monitor``'s hub. ``start()`` runs
    it on its own thread; :meth:`handle` and :meth:`tick` are the same work, callable
    directly (tests feed it that way)."""

    def __init__(self, monitor: Any, settings: AlertSettings | None = None) -> None:
        self.monitor = monitor
        self.settings = parse_alert_settings(settings)
        self.book = AlertBook(monitor.node, self._emit)
        self.ctx = Context(self.book, monitor)
        self.rules: dict[str, Rule] = {
            name: cls(self.settings[name], self.ctx)
            for name, cls in RULE_CLASSES.items() if self.settings.enabled(name)}
        self._host = [r for n, r in self.rules.items() if n in HOST_RULES]
        self._kernel = [r for n, r in self.rules.items() if n in KERNEL_RULES]
        self._by_event: dict[str, list[Rule]] = {}
        for rule in self.rules.values():
            for kind in rule.events:
                self._by_event.setdefault(kind, []).append(rule)
        self._host_loaded = False
        self._kernels_loaded = False
        self._reconcile: list[Rule] = []
        stale = self.rules.get("recorder_stale")
        self.timer_s = (min(TIMER_S, stale.limit() / 2)
                        if isinstance(stale, RecorderStaleRule) else TIMER_S)
        self._next_timer = time.time() + self.timer_s
        self._stop = threading.Event()
        self._sub: Any = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe and start the thread; idempotent."""
        if self._thread is not None or not self.rules:
            return
        self._sub = self.monitor.hub.subscribe((SAMPLE, EVENT, NODE, KERNELS),
                                               depth={SAMPLE: 1})
        self._thread = threading.Thread(target=self._run, name="tracklab-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and unsubscribe; idempotent."""
        self._stop.set()
        if self._sub is not None:
            self._sub.close()  # wakes the thread
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self) -> None:
        name_os_thread()
        self._take_over()
        while not self._stop.is_set():
            items = self._sub.get(timeout=max(0.05, self._next_timer - time.time()))
            try:
                self._take_over()
                for topic, item in items:
                    self.handle(topic, item)
                now = time.time()
                if now >= self._next_timer:
                    self._next_timer = now + self.timer_s
                    self.tick(now)
            except Exception:  # a bad item must not end alerting
                log.exception("tracklab: an alert rule failed; going on")

    # -- the work --------------------------------------------------------------------------
    @property
    def host_scope(self) -> bool:
        """Whether host rules run here now: only in the recorder of the data dir."""
        return getattr(self.monitor, "role", None) == "recorder"

    @property
    def kernel_scope(self) -> bool:
        return getattr(self.monitor, "kernels", None) is not None

    def handle(self, topic: str, item: Any) -> None:
        """One hub item."""
        if topic == SAMPLE:
            self._on_sample(item)
        elif topic == EVENT:
            self._on_event(item)
        elif topic == KERNELS:
            self.ctx.kernels = item
            known = self.ctx.known_kernels
            known.update(k["id"] for k in item.get("kernels") or () if isinstance(k.get("id"), str))
            if len(known) > MAX_KNOWN_KERNELS:
                known.clear()  # ids of long-gone kernels; the current ones come back next pass
            for rule in self._kernel:
                rule.on_kernels(item)
        elif topic == NODE and self.host_scope:
            for rule in self._host:
                rule.on_node(item)

    def _on_sample(self, sample: Sample) -> None:
        if self._reconcile:
            pending, self._reconcile = self._reconcile, []
            for rule in pending:
                rule.reconcile(sample)
        if self.host_scope:
            for rule in self._host:
                rule.on_sample(sample)
        for rule in self._kernel:
            rule.on_sample(sample)

    def _on_event(self, event: Event) -> None:
        if event.kind in KINDS:
            return  # ours, or another process's coming back through the store
        host = self.host_scope
        for rule in self._by_event.get(event.kind, ()):
            if host or rule.name in KERNEL_RULES:
                rule.on_event(event)

    def tick(self, now: float) -> None:
        """The slow checks (stale recorder, cluster nodes left down earlier)."""
        if self.host_scope:
            for rule in self._host:
                rule.on_timer(now)

    # -- taking over alerts left active ----------------------------------------------------
    def _take_over(self) -> None:
        """Load the stored alerts of each scope once it applies here (blocking: reads
        SQLite on this thread, at start or when this process becomes the recorder)."""
        host = self.host_scope and not self._host_loaded
        kernel = self.kernel_scope and not self._kernels_loaded
        if not (host or kernel):
            return
        self._host_loaded |= host
        self._kernels_loaded |= kernel
        try:
            active = fold_active(stored_alert_events(self.monitor))
        except Exception as exc:  # no store yet, or it cannot be read: start afresh
            log.debug("tracklab: no stored alerts to take over: %s", exc)
            return
        scope = (HOST_RULES if host else ()) + (KERNEL_RULES if kernel else ())
        self.load([a for a in active.values() if a.rule in scope])

    def load(self, alerts: list[Alert]) -> None:
        """Take over ``alerts`` (still active in the store) as active here."""
        added = self.book.load(a for a in alerts if a.rule in self.rules)
        for name, rule in self.rules.items():
            mine = [a for a in added if a.rule == name]
            if mine:
                rule.loaded(mine)
                self._reconcile.append(rule)
        if added:
            log.info("tracklab: took over %d active alert(s): %s", len(added),
                     ", ".join(a.key for a in added))

    def _emit(self, event: Event) -> None:
        log.info("tracklab alert: %s", event.message)
        self.monitor.record_event(event)
