"""In-process publish/subscribe between the sampler and its live readers.

Each subscriber has a bounded buffer per topic. When a reader falls behind, its oldest
frames are dropped (for samples the buffer holds one: a slow reader is coalesced to the
newest sample), so publishing never blocks the sampler or any other subscriber.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("tracklab_jupyter.hub")

SAMPLE = "sample"
EVENT = "event"
#: A run was created, changed state, was edited or deleted: ``{"reason", "run"}``.
RUN = "run"
#: New values logged by a run, batched: the ``metric_update`` data of docs/RUNS.md.
RUN_METRICS = "run_metrics"
#: Each interval, the latest sample of every cluster node: ``{"provider", "nodes"}``.
CLUSTER = "cluster"
#: A cluster node's status changed (up, down) or it left: its Node dict with a ``reason``.
NODE = "node"
#: Each kernel pass of the server's kernel tracker: ``{"time", "node", "kernels": [...]}``
#: (the body of ``api/kernels``).
KERNELS = "kernels"

# How many items each topic keeps for a reader that has not caught up. Samples coalesce to
# the newest; events and run changes are rare and each one matters, so more are kept.
DEFAULT_DEPTH = {SAMPLE: 1, EVENT: 256, RUN: 256, RUN_METRICS: 256, CLUSTER: 1, NODE: 256,
                 KERNELS: 1}


class Subscription:
    """One reader's view of the hub. Use :meth:`get` from a thread or :meth:`drain` with
    a ``notify`` callback from an event loop (the callback runs on the publisher's thread
    and must only schedule work, e.g. ``loop.call_soon_threadsafe``)."""

    def __init__(self, hub: Hub, topics: Iterable[str], depth: dict[str, int] | None,
                 notify: Callable[[], None] | None) -> None:
        self._hub = hub
        depth = {**DEFAULT_DEPTH, **(depth or {})}
        self._queues: dict[str, deque[Any]] = {t: deque(maxlen=depth.get(t, 1)) for t in topics}
        self._cond = threading.Condition()
        self._notify = notify
        self.dropped = 0
        self.closed = False

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self._queues)

    def _offer(self, topic: str, item: Any) -> None:
        queue = self._queues.get(topic)
        if queue is None:
            return
        with self._cond:
            if len(queue) == queue.maxlen:
                self.dropped += 1
            queue.append(item)
            self._cond.notify()
        if self._notify is not None:
            try:
                self._notify()
            except Exception:  # a broken reader must not stop the sampler
                log.exception("hub subscriber's notify callback failed")

    def drain(self) -> list[tuple[str, Any]]:
        """Everything waiting, oldest first per topic, without blocking."""
        with self._cond:
            out = [(t, item) for t, q in self._queues.items() for item in q]
            for q in self._queues.values():
                q.clear()
        return out

    def get(self, timeout: float | None = None) -> list[tuple[str, Any]]:
        """Wait until something arrives (or ``timeout`` passes, or the subscription closes)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.closed or any(self._queues.values()), timeout=timeout)
        return self.drain()

    def close(self) -> None:
        """Stop receiving; idempotent."""
        self._hub._remove(self)
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    """Fan-out of samples and events to any number of subscribers."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def subscribe(self, topics: Iterable[str] = (SAMPLE, EVENT), *,
                  depth: dict[str, int] | None = None,
                  notify: Callable[[], None] | None = None) -> Subscription:
        sub = Subscription(self, topics, depth, notify)
        with self._lock:
            self._subs = [*self._subs, sub]
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]

    def publish(self, topic: str, item: Any) -> None:
        # Copy-on-write list: publishing takes no lock held by subscribers.
        for sub in self._subs:
            sub._offer(topic, item)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def listened(self, *topics: str) -> bool:
        """Whether any subscriber takes one of ``topics`` (a publisher may then skip work
        nobody would see)."""
        return any(topic in sub.topics for sub in self._subs for topic in topics)
