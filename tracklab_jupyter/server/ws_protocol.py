"""The WebSocket protocol, independent of which server carries it.

Every message is an envelope ``{"type", "data", "time", "node"}``. After connecting the
client gets ``hello``, then the current hardware state, then ``system_metrics`` frames.
Client messages: ``subscribe`` (topics, optional metric globs, optional slower interval,
optional run ids for ``metric_update``), ``unsubscribe`` and ``ping``. Anything malformed or
unknown gets an ``error`` message and the connection stays up. A subscription holds at most
``Limits.max_patterns`` globs of at most ``Limits.max_pattern_chars`` characters each; its
globs are compiled once, at subscribe time, into one matcher. A large set (up to 51,200
characters: a regex compile of a few hundred ms) is compiled off the event loop; the
client's next messages wait for it, in order.

Backpressure: nothing ever waits on a client, and what waits for one is bounded. One frame
is written at a time; while it is in flight, later frames wait in a per-session table with
one entry per key, and a newer frame for a key replaces (or merges into) the waiting one:

- ``system_metrics``, ``cluster_metrics``, ``hardware_update``: one entry each, newest wins.
- ``node_status``: one per node, newest wins. ``run_update``: one per run, newest wins (a
  waiting ``created`` stays ``created`` unless the run was deleted, so counts stay right).
- ``metric_update``: items are increments (the values logged since the last one), so one
  entry per run holds the increments merged, in order (columns concatenated, ``None``
  where a metric was missing). All waiting increments together hold at most
  :data:`MAX_PENDING_VALUES` values; past that the oldest rows of the run are left out and
  its next frame says ``"dropped": N`` (rows left out): a client that needs every value
  reloads ``api/runs/{id}/metrics`` (the labextension keeps the newest values as they come).
- ``kernels``: one entry, newest wins (each pass lists every kernel).
- ``alert``: one entry per alert key, newest wins: a waiting ``alert`` replaced by its
  ``alert_resolved`` leaves the client the alert's final state (counted in
  ``frames_coalesced``; ``api/alerts`` has every event). Alert events are rare and never
  dropped otherwise: past the limit below the client is closed, as for every frame.
- ``hello``, ``subscribed``, ``pong``, ``error``: one entry each, newest wins.

At most :data:`MAX_PENDING_FRAMES` entries wait (more than one hub drain can bring for a
client that keeps up). A client that falls further behind is closed with code 1013 (try
again later): it reconnects and reloads by REST, as after any reconnect.
``frames_coalesced`` and ``frames_dropped`` count what a slow client did not get.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tracklab_jupyter._version import __version__
from tracklab_jupyter.alerts.book import KINDS as ALERT_KINDS
from tracklab_jupyter.alerts.store_view import with_kernels
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.sampler.hub import CLUSTER, EVENT, KERNELS, NODE, RUN, RUN_METRICS, SAMPLE
from tracklab_jupyter.server.limits import Limits, clip
from tracklab_jupyter.server.metric_filter import INLINE_PATTERN_CHARS, MetricFilter

# Server message types (hello, subscribed, pong and error are always sent).
TOPICS = ("system_metrics", "hardware_update", "node_status", "cluster_metrics",
          "run_update", "metric_update", "kernels", "alerts")
DEFAULT_TOPICS = ("system_metrics", "hardware_update", "alerts")
#: The hub topics a session takes (what a bridge subscribes to).
HUB_TOPICS = (SAMPLE, EVENT, RUN, RUN_METRICS, CLUSTER, NODE, KERNELS)
#: The topic of each frame type whose name differs from its topic's.
_TOPIC_OF = {"alert": "alerts"}
CLIENT_TYPES = ("subscribe", "unsubscribe", "ping")
MAX_MESSAGE_BYTES = 64 * 1024
MAX_INTERVAL_S = 3600.0

#: Frames waiting for one client. A hub drain brings at most 256 node, run and metric items
#: each (hub.DEFAULT_DEPTH), so a client that keeps up never comes near this.
MAX_PENDING_FRAMES = 1024
#: Values (all columns) in the ``metric_update`` increments waiting for one client.
MAX_PENDING_VALUES = 100_000
#: WebSocket close code for a client that fell too far behind (RFC 6455 "Try Again Later").
CLOSE_TOO_SLOW = 1013
#: Encoded system_metrics frames kept per sample (one per distinct metric filter).
MAX_CACHED_FILTERS = 32
#: Compiled filters kept for reuse (a dashboard's viewers subscribe alike).
MAX_SHARED_FILTERS = 64
#: Client messages held while a subscription compiles; more get an error.
MAX_BACKLOG = 16

Key = tuple[str, ...]


def envelope(kind: str, data: Any, node: str, stamp: float | None = None) -> dict[str, Any]:
    return {"type": kind, "data": data, "time": time.time() if stamp is None else stamp,
            "node": node}


# Only touched on the event loop thread, like _FRAMES.
_FILTERS: dict[tuple[str, ...], MetricFilter] = {}


def shared_filter(globs: tuple[str, ...], built: MetricFilter | None = None) -> MetricFilter:
    """The filter for ``globs`` shared by every session (built here unless ``built``)."""
    found = _FILTERS.pop(globs, None) or built or MetricFilter(globs)
    if len(_FILTERS) >= MAX_SHARED_FILTERS:
        del _FILTERS[next(iter(_FILTERS))]
    _FILTERS[globs] = found  # most recently used last
    return found


#: ``offload(work, done)``: run ``work()`` off the event loop, then ``done(result or
#: exception)`` back on it.
Offload = Callable[[Callable[[], Any], Callable[[Any], None]], None]


class WsSession:
    """One connected client. ``send`` writes a text frame and returns something with
    ``done()``/``add_done_callback`` while that write is in flight (a tornado Future), or
    None when done at once. ``on_too_slow(reason)`` is called once if the client falls too
    far behind; the session is closed then. Without ``offload`` every filter is compiled
    inline."""

    def __init__(self, monitor: Monitor, send: Callable[[str], Any],
                 limits: Limits | None = None,
                 on_too_slow: Callable[[str], None] | None = None,
                 offload: Offload | None = None) -> None:
        self.monitor = monitor
        self.limits = limits or Limits()
        self._send = send
        self._on_too_slow = on_too_slow
        self._offload = offload
        self._compiling = False
        self._backlog: deque[str | bytes] = deque()
        self.topics: set[str] = set(DEFAULT_TOPICS)
        self.globs: tuple[str, ...] = ()
        self.filter = shared_filter(())
        self.runs: set[str] = set()  # metric_update only for these runs (empty: all)
        self.interval = monitor.interval
        self._last_frame = 0.0
        self._last_cluster_frame = 0.0
        self._inflight: Any = None
        # key -> (type, data, time, values held): insertion order is sending order
        self._pending: dict[Key, tuple[str, Any, float, int]] = {}
        self._pending_values = 0
        self.closed = False
        self.frames_sent = 0
        self.frames_coalesced = 0
        self.frames_dropped = 0

    # -- outgoing ------------------------------------------------------------------------
    def open(self) -> None:
        self._emit("hello", {
            "version": __version__,
            "node": self.monitor.node,
            "interval_s": self.monitor.interval,
            "role": self.monitor.role,
            "topics": list(TOPICS),
            "default_topics": list(DEFAULT_TOPICS),
            "client_types": list(CLIENT_TYPES),
        })
        self._send_hardware_state("connect")
        if self.monitor.latest is not None:
            self._offer_sample(self.monitor.latest)

    def close(self) -> None:
        """The connection is gone: forget what waits; idempotent."""
        self.closed = True
        self._pending.clear()
        self._pending_values = 0
        self._backlog.clear()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def pending_values(self) -> int:
        return self._pending_values

    def _emit(self, kind: str, data: Any, stamp: float | None = None) -> None:
        self._queue((kind,), kind, data, stamp)

    def _send_hardware_state(self, reason: str) -> None:
        if "hardware_update" in self.topics:
            state = self.monitor.hardware_state()
            self._emit("hardware_update", {"reason": reason, "state": state})

    def deliver(self, items: list[tuple[str, Any]]) -> None:
        """Items drained from this client's hub subscription."""
        for topic, item in items:
            if self.closed:
                return
            if topic == SAMPLE:
                self._offer_sample(item)
            elif topic == EVENT:
                self._on_event(item)
            elif topic == RUN and "run_update" in self.topics:
                self._queue(("run_update", item["run"]["id"]), "run_update", item)
            elif (topic == RUN_METRICS and "metric_update" in self.topics
                  and (not self.runs or item["run"] in self.runs)):
                self._queue(("metric_update", item["run"]), "metric_update", item)
            elif topic == CLUSTER and "cluster_metrics" in self.topics:
                self._offer_cluster(item)
            elif topic == NODE and "node_status" in self.topics:
                self._queue(("node_status", item["node"]), "node_status", item)
            elif topic == KERNELS and "kernels" in self.topics:
                self._queue(("kernels",), "kernels", item, item.get("time"))

    def _offer_cluster(self, state: dict[str, Any]) -> None:
        now = time.time()
        if now - self._last_cluster_frame < self.interval - 0.5 * self.monitor.interval:
            return
        self._last_cluster_frame = now
        nodes = {name: {"time": n["time"], "metrics": self.filter.select(n["metrics"])}
                 for name, n in state["nodes"].items()} if self.globs else state["nodes"]
        self._emit("cluster_metrics", {"provider": state["provider"], "nodes": nodes})

    def _on_event(self, event: Event) -> None:
        if event.kind in ALERT_KINDS:
            # Alerts go out as their own frames, never as a hardware change.
            if "alerts" in self.topics and isinstance(event.data.get("key"), str):
                self._queue(("alert", event.data["key"]), "alert",
                            alert_frame(event, self.monitor), event.time)
            return
        if "hardware_update" in self.topics:
            data = {"reason": "event", "event": event.to_dict(),
                    "state": self.monitor.hardware_state()}
            self._emit("hardware_update", data, event.time)

    def _offer_sample(self, sample: Sample) -> None:
        if "system_metrics" not in self.topics:
            return
        # A slower client interval: skip samples until that much time has passed.
        if sample.time - self._last_frame < self.interval - 0.5 * self.monitor.interval:
            return
        # Encoded when written (through the shared cache), so a replaced one costs nothing.
        self._emit("system_metrics", sample, sample.time)

    def _queue(self, key: Key, kind: str, data: Any, stamp: float | None = None) -> None:
        if self.closed:
            return
        old = self._pending.get(key)
        if old is not None:
            # Replaced in place: the entry keeps its turn.
            self.frames_coalesced += 1
            self._pending_values -= old[3]
            data = _coalesce(kind, old[1], data)
        elif len(self._pending) >= MAX_PENDING_FRAMES:
            self._too_slow(f"more than {MAX_PENDING_FRAMES} frames waiting for this client; "
                           "reconnect and reload")
            return
        values = 0
        if kind == "metric_update" and (self._busy() or self._pending):
            data = _keep_newest(data, MAX_PENDING_VALUES - self._pending_values)
            values = _values(data)
        self._pending[key] = (kind, data, time.time() if stamp is None else stamp, values)
        self._pending_values += values
        self._pump()

    def _too_slow(self, reason: str) -> None:
        self.frames_dropped += len(self._pending) + 1
        self.close()
        if self._on_too_slow is not None:
            self._on_too_slow(reason)

    def _busy(self) -> bool:
        future = self._inflight
        return (future is not None and hasattr(future, "add_done_callback")
                and not future.done())

    def _pump(self, _written: Any = None) -> None:
        """Write waiting frames, one at a time: the next goes when the last is written."""
        while self._pending and not self.closed and not self._busy():
            key = next(iter(self._pending))
            kind, data, stamp, values = self._pending.pop(key)
            self._pending_values -= values
            self._inflight = self._write(kind, data, stamp)
            if self._busy():
                self._inflight.add_done_callback(self._pump)

    def _write(self, kind: str, data: Any, stamp: float) -> Any:
        self.frames_sent += 1
        if kind == "system_metrics":
            self._last_frame = data.time
            return self._send(_FRAMES.text(data, self.filter))
        return self._send(json.dumps(envelope(kind, data, self.monitor.node, stamp)))

    def error(self, error: str, detail: str = "") -> None:
        self._emit("error", {"error": error, "detail": detail})

    # -- incoming ------------------------------------------------------------------------
    def on_message(self, raw: str | bytes) -> None:
        if len(raw) > MAX_MESSAGE_BYTES:
            self.error("message too large", f"client messages are at most {MAX_MESSAGE_BYTES} "
                                            "bytes")
        elif self._compiling:
            # After the subscription being compiled, in order; a flood is refused.
            if len(self._backlog) >= MAX_BACKLOG:
                self.error("too many messages", f"at most {MAX_BACKLOG} messages wait while "
                           "a subscription is compiled; this one was ignored")
            else:
                self._backlog.append(raw)
        else:
            self._handle(raw)

    def _handle(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self.error("malformed message", f"expected a JSON object: {exc}")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self.error("malformed message",
                       'expected a JSON object with a "type" field, e.g. {"type": "ping"}')
            return
        kind = message["type"]
        if kind == "ping":
            self._emit("pong", {"echo": message.get("data")})
        elif kind == "subscribe":
            self._subscribe(message)
        elif kind == "unsubscribe":
            topics = self._topics(message, default=list(self.topics))
            if topics is not None:
                self.topics -= set(topics)
                # Frames of a dropped topic that still wait are not wanted any more.
                for key in [k for k, e in self._pending.items()
                            if _TOPIC_OF.get(e[0], e[0]) in topics]:
                    self._pending_values -= self._pending.pop(key)[3]
                self._emit("subscribed", self._state())
        else:
            self.error(f"unknown message type {kind!r}",
                       f"client message types: {', '.join(CLIENT_TYPES)}")

    def _topics(self, message: dict[str, Any], default: list[str]) -> list[str] | None:
        topics = message.get("topics", default)
        if isinstance(topics, str):
            topics = [topics]
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            self.error("bad topics", "topics must be a list of strings")
            return None
        unknown = [t for t in topics if t not in TOPICS]
        if unknown:
            self.error(f"unknown topic {clip(unknown[0])!r}", f"topics: {', '.join(TOPICS)}")
            return None
        return topics

    def _globs(self, message: dict[str, Any]) -> tuple[str, ...] | None:
        globs = message.get("metrics", self.globs)
        if isinstance(globs, str):
            globs = [globs]
        if not isinstance(globs, list | tuple) or not all(isinstance(g, str) for g in globs):
            self.error("bad metrics", 'metrics must be a list of names or globs, e.g. ["gpu.*"]')
            return None
        most, chars = self.limits.max_patterns, self.limits.max_pattern_chars
        if len(globs) > most:
            self.error("too many metric patterns",
                       f"at most {most} metric patterns per subscription (max_patterns), "
                       f"got {len(globs)}")
            return None
        long = next((g for g in globs if len(g) > chars), None)
        if long is not None:
            self.error("metric pattern too long",
                       f"a metric pattern has at most {chars} characters "
                       f"(max_pattern_chars): {clip(long)}")
            return None
        return tuple(globs)

    def _subscribe(self, message: dict[str, Any]) -> None:
        topics = self._topics(message, default=list(DEFAULT_TOPICS))
        if topics is None:
            return
        globs = self._globs(message)
        if globs is None:
            return
        interval = message.get("interval", self.interval)
        if (isinstance(interval, bool) or not isinstance(interval, int | float)
                or not self.monitor.interval <= interval <= MAX_INTERVAL_S):
            self.error("bad interval",
                       f"interval must be a number of seconds from the sampling interval "
                       f"({self.monitor.interval:g}) to {MAX_INTERVAL_S:g}")
            return
        runs = message.get("runs", sorted(self.runs))
        if isinstance(runs, str):
            runs = [runs]
        if not isinstance(runs, list) or not all(isinstance(r, str) for r in runs):
            self.error("bad runs", 'runs must be a list of run ids, e.g. ["k3x9q2ab"]')
            return
        if len(runs) > self.limits.max_patterns:
            self.error("too many runs", f"at most {self.limits.max_patterns} runs per "
                                        "subscription (max_patterns)")
            return
        change = (topics, globs, set(runs), float(interval))
        if (globs in _FILTERS or self._offload is None
                or sum(map(len, globs)) <= INLINE_PATTERN_CHARS):
            self._apply(*change, shared_filter(globs))
            return
        # Compiled once, here, but off the event loop: up to a few hundred ms of regex work.
        self._compiling = True
        self._offload(lambda: MetricFilter(globs), lambda built: self._compiled(change, built))

    def _compiled(self, change: tuple[Any, ...], built: Any) -> None:
        self._compiling = False
        if self.closed:
            return
        if isinstance(built, MetricFilter):
            self._apply(*change, shared_filter(change[1], built))
        else:
            self.error("bad metrics", f"the metric patterns do not compile: {built}")
        while self._backlog and not self._compiling and not self.closed:
            self._handle(self._backlog.popleft())

    def _apply(self, topics: list[str], globs: tuple[str, ...], runs: set[str],
               interval: float, matcher: MetricFilter) -> None:
        new = set(topics) - self.topics
        self.topics |= set(topics)
        self.globs, self.filter = globs, matcher
        self.runs = runs
        self.interval = interval
        self._emit("subscribed", self._state())
        if "hardware_update" in new or "hardware_update" in topics:
            self._send_hardware_state("subscribe")

    def _state(self) -> dict[str, Any]:
        return {"topics": sorted(self.topics), "metrics": list(self.globs),
                "interval_s": self.interval, "runs": sorted(self.runs)}


def alert_frame(event: Event, monitor: Any) -> dict[str, Any]:
    """An ``alert`` frame's data: the event's data with its kind, time and message (a
    memory alert naming this server's kernels when the recorder could not)."""
    data = with_kernels({**event.data, "message": event.message}, monitor)
    return {"kind": event.kind, "time": event.time, **data}


# -- coalescing ----------------------------------------------------------------------------
def _coalesce(kind: str, old: Any, new: Any) -> Any:
    """What one waiting frame becomes when a newer one with its key arrives."""
    if kind == "metric_update":
        return _merge_increments(old, new)
    if kind == "run_update" and old["reason"] == "created" and new["reason"] != "deleted":
        return {**new, "reason": "created"}  # the client has not heard of the run yet
    return new


def _concat(old: dict[str, Any], new: dict[str, Any], axes: tuple[str, ...]) -> dict[str, Any]:
    """Two column sets one after the other; a metric missing from one side is None there.
    New lists throughout: hub items are shared by every client."""
    n_old, n_new = len(old[axes[0]]), len(new[axes[0]])
    names = dict.fromkeys([*old["metrics"], *new["metrics"]])
    out: dict[str, Any] = {axis: [*old[axis], *new[axis]] for axis in axes}
    out["metrics"] = {name: [*old["metrics"].get(name, [None] * n_old),
                             *new["metrics"].get(name, [None] * n_new)] for name in names}
    return out


def _merge_increments(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = {**new, **_concat(old, new, ("step", "time"))}
    if "process" in old or "process" in new:
        empty = {"time": [], "metrics": {}}
        merged["process"] = _concat(old.get("process", empty), new.get("process", empty),
                                    ("time",))
    if old.get("dropped") or new.get("dropped"):
        merged["dropped"] = old.get("dropped", 0) + new.get("dropped", 0)
    return merged


def _columns_values(cols: dict[str, Any], axes: tuple[str, ...]) -> int:
    return len(cols[axes[0]]) * (len(axes) + len(cols["metrics"]))


def _values(update: dict[str, Any]) -> int:
    """Values held by a metric_update (rows times columns, both parts)."""
    process = update.get("process")
    return (_columns_values(update, ("step", "time"))
            + (_columns_values(process, ("time",)) if process else 0))


def _tail(cols: dict[str, Any], axes: tuple[str, ...], rows: int) -> dict[str, Any]:
    start = len(cols[axes[0]]) - rows
    return {**{axis: cols[axis][start:] for axis in axes},
            "metrics": {name: values[start:] for name, values in cols["metrics"].items()}}


def _keep_newest(update: dict[str, Any], budget: int) -> dict[str, Any]:
    """``update`` within ``budget`` values: the same share of each part's newest rows is
    kept and the rows left out are added to ``dropped``."""
    size = _values(update)
    if size <= budget:
        return update
    share = max(budget, 0) / size
    out = dict(update)
    dropped = 0
    for part, axes in ((None, ("step", "time")), ("process", ("time",))):
        cols = update if part is None else update.get(part)
        if not cols:
            continue
        rows = len(cols[axes[0]])
        keep = int(rows * share)
        dropped += rows - keep
        kept = _tail(cols, axes, keep)
        if part is None:
            out.update(kept)
        else:
            out[part] = kept
    out["dropped"] = update.get("dropped", 0) + dropped
    return out


class _FrameCache:
    """Each sample is encoded once per metric filter, however many clients get it: with
    100 clients this is one json.dumps per tick instead of 100 on the event loop. At most
    :data:`MAX_CACHED_FILTERS` filters per sample are kept (the oldest go first)."""

    def __init__(self) -> None:
        self._sample: Sample | None = None
        self._texts: dict[tuple[str, ...], str] = {}

    def text(self, sample: Sample, metrics: MetricFilter) -> str:
        if sample is not self._sample:
            self._sample, self._texts = sample, {}
        text = self._texts.get(metrics.globs)
        if text is None:
            if metrics.globs:
                selected = metrics.select(sample.metrics)
            else:
                # Per-kernel series ride in every kernel pass's sample; they have their own
                # topic (``kernels``), so a client gets them here only by naming them.
                selected = {k: v for k, v in sample.metrics.items()
                            if not k.startswith("kernel.")}
            text = json.dumps(envelope("system_metrics", {"metrics": selected},
                                       sample.node, sample.time))
            if len(self._texts) >= MAX_CACHED_FILTERS:
                del self._texts[next(iter(self._texts))]
            self._texts[metrics.globs] = text
        return text


# Only touched on the event loop thread (sessions are driven from there).
_FRAMES = _FrameCache()
