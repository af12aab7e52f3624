"""The WebSocket protocol, independent of which server carries it.

Every message is an envelope ``{"type", "data", "time", "node"}``. After connecting the
client gets ``hello``, then the current hardware state, then ``system_metrics`` frames.
Client messages: ``subscribe`` (topics, optional metric globs, optional slower interval,
optional run ids for ``metric_update``), ``unsubscribe`` and ``ping``. Anything malformed or
unknown gets an ``error`` message and the connection stays up.

Backpressure: while a frame is still being written to a slow client, newer samples replace
the waiting one (coalesced to the newest); nothing ever waits on a client.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable
from typing import Any

from tracklab_jupyter._version import __version__
from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.sampler.hub import CLUSTER, EVENT, NODE, RUN, RUN_METRICS, SAMPLE
from tracklab_jupyter.sampler.sample import Event, Sample

# Server message types (hello, subscribed, pong and error are always sent).
TOPICS = ("system_metrics", "hardware_update", "node_status", "cluster_metrics",
          "run_update", "metric_update")
DEFAULT_TOPICS = ("system_metrics", "hardware_update")
CLIENT_TYPES = ("subscribe", "unsubscribe", "ping")
MAX_MESSAGE_BYTES = 64 * 1024
MAX_INTERVAL_S = 3600.0


def envelope(kind: str, data: Any, node: str, stamp: float | None = None) -> dict[str, Any]:
    return {"type": kind, "data": data, "time": time.time() if stamp is None else stamp,
            "node": node}


class WsSession:
    """One connected client. ``send`` writes a text frame and returns something truthy
    while that write is still in flight (a tornado Future), or None when done at once."""

    def __init__(self, monitor: Monitor, send: Callable[[str], Any]) -> None:
        self.monitor = monitor
        self._send = send
        self.topics: set[str] = set(DEFAULT_TOPICS)
        self.globs: list[str] = []
        self.runs: set[str] = set()  # metric_update only for these runs (empty: all)
        self.interval = monitor.interval
        self._last_frame = 0.0
        self._last_cluster_frame = 0.0
        self._inflight: Any = None
        self._waiting: Sample | None = None
        self.frames_sent = 0
        self.frames_coalesced = 0

    # -- outgoing ------------------------------------------------------------------------
    def _emit(self, kind: str, data: Any, stamp: float | None = None) -> Any:
        return self._send(json.dumps(envelope(kind, data, self.monitor.node, stamp)))

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

    def _send_hardware_state(self, reason: str) -> None:
        if "hardware_update" in self.topics:
            state = self.monitor.hardware_state()
            self._emit("hardware_update", {"reason": reason, "state": state})

    def deliver(self, items: list[tuple[str, Any]]) -> None:
        """Items drained from this client's hub subscription."""
        for topic, item in items:
            if topic == SAMPLE:
                self._offer_sample(item)
            elif topic == EVENT:
                self._on_event(item)
            elif topic == RUN and "run_update" in self.topics:
                self._emit("run_update", item)
            elif (topic == RUN_METRICS and "metric_update" in self.topics
                  and (not self.runs or item["run"] in self.runs)):
                self._emit("metric_update", item)
            elif topic == CLUSTER and "cluster_metrics" in self.topics:
                self._offer_cluster(item)
            elif topic == NODE and "node_status" in self.topics:
                self._emit("node_status", item)

    def _offer_cluster(self, state: dict[str, Any]) -> None:
        now = time.time()
        if now - self._last_cluster_frame < self.interval - 0.5 * self.monitor.interval:
            return
        self._last_cluster_frame = now
        nodes = state["nodes"]
        if self.globs:
            nodes = {name: {"time": n["time"], "metrics": {
                k: v for k, v in n["metrics"].items()
                if any(fnmatch.fnmatchcase(k, g) for g in self.globs)}}
                for name, n in nodes.items()}
        self._emit("cluster_metrics", {"provider": state["provider"], "nodes": nodes})

    def _on_event(self, event: Event) -> None:
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
        if self._inflight is not None and not _done(self._inflight):
            if self._waiting is not None:
                self.frames_coalesced += 1
            self._waiting = sample
            return
        self._write_sample(sample)

    def _write_sample(self, sample: Sample) -> None:
        self._last_frame = sample.time
        self._waiting = None
        self.frames_sent += 1
        self._inflight = self._send(_FRAMES.text(sample, tuple(self.globs)))
        if self._inflight is not None and hasattr(self._inflight, "add_done_callback"):
            self._inflight.add_done_callback(lambda _f: self._flush_waiting())

    def _flush_waiting(self) -> None:
        if self._waiting is not None:
            self._write_sample(self._waiting)

    def error(self, error: str, detail: str = "") -> None:
        self._emit("error", {"error": error, "detail": detail})

    # -- incoming ------------------------------------------------------------------------
    def on_message(self, raw: str | bytes) -> None:
        if len(raw) > MAX_MESSAGE_BYTES:
            self.error("message too large", f"client messages are at most {MAX_MESSAGE_BYTES} "
                                            "bytes")
            return
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
            self.error(f"unknown topic {unknown[0]!r}", f"topics: {', '.join(TOPICS)}")
            return None
        return topics

    def _subscribe(self, message: dict[str, Any]) -> None:
        topics = self._topics(message, default=list(DEFAULT_TOPICS))
        if topics is None:
            return
        globs = message.get("metrics", self.globs)
        if isinstance(globs, str):
            globs = [globs]
        if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
            self.error("bad metrics", 'metrics must be a list of names or globs, e.g. ["gpu.*"]')
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
        new = set(topics) - self.topics
        self.topics |= set(topics)
        self.globs = list(globs)
        self.runs = set(runs)
        self.interval = float(interval)
        self._emit("subscribed", self._state())
        if "hardware_update" in new or "hardware_update" in topics:
            self._send_hardware_state("subscribe")

    def _state(self) -> dict[str, Any]:
        return {"topics": sorted(self.topics), "metrics": self.globs, "interval_s": self.interval,
                "runs": sorted(self.runs)}


class _FrameCache:
    """Each sample is encoded once per metric filter, however many clients get it: with
    100 clients this is one json.dumps per tick instead of 100 on the event loop."""

    def __init__(self) -> None:
        self._sample: Sample | None = None
        self._texts: dict[tuple[str, ...], str] = {}

    def text(self, sample: Sample, globs: tuple[str, ...]) -> str:
        if sample is not self._sample:
            self._sample, self._texts = sample, {}
        text = self._texts.get(globs)
        if text is None:
            metrics = sample.metrics
            if globs:
                metrics = {k: v for k, v in metrics.items()
                           if any(fnmatch.fnmatchcase(k, g) for g in globs)}
            text = json.dumps(envelope("system_metrics", {"metrics": metrics}, sample.node,
                                       sample.time))
            self._texts[globs] = text
        return text


# Only touched on the event loop thread (sessions are driven from there).
_FRAMES = _FrameCache()


def _done(future: Any) -> bool:
    done = getattr(future, "done", None)
    return bool(done()) if callable(done) else True
