"""The cluster monitor: once per interval, every node sampled in parallel.

One thread ticks at the sampling interval. Each tick it hands one call per node to a
thread pool and waits at most ``answer_timeout`` (less than an interval) for the answers:
a node that is slow or gone never holds up the others, and a node whose previous call is
still running is skipped rather than stacked up. A node that has not answered for
``node_timeout`` seconds is ``down``; it is ``up`` again with its next answer. Nodes are
re-listed from the engine every few seconds, so joins and leaves are seen too; a node
that left stays listed as ``down`` for ten minutes. The status words are the ones of
:mod:`tracklab_jupyter.cluster.status` (docs/CLUSTER.md, "Node status").

Answers become :class:`~tracklab_jupyter.metrics.sample.Sample` objects under the node's
name, go to the store's writer, and each tick one ``CLUSTER`` item (the latest sample of
every node) is published on the hub; status changes go out as ``NODE`` items and are
stored as events (``node_up``, ``node_down``, ``node_left``).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracklab_jupyter.accelerators.registry import BACKEND_NAMES, devices_in
from tracklab_jupyter.cluster.providers import ClusterProvider, NodeTarget
from tracklab_jupyter.cluster.status import DOWN, UP
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.sampler.hub import CLUSTER, NODE, Hub
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.cluster")

DISCOVER_S = 5.0
INFO_EVERY = 60  # ticks between static-facts refreshes of a node
LEFT_KEEP_S = 600.0  # a node that left the cluster stays listed (down) this long


@dataclass
class NodeState:
    """What the monitor knows of one node."""

    name: str
    address: str
    role: str
    resources: dict[str, float] = field(default_factory=dict)
    # A remote node is up or down only: it is listed once it has answered (no "starting"),
    # and one that stops answering is down (no "stale").
    status: str = DOWN
    last_seen: float | None = None
    latest: Sample | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    ticks: int = 0
    left_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The node as ``cluster/info`` and ``node_status`` give it (docs/CLUSTER.md)."""
        return {"node": self.name, "address": self.address, "role": self.role,
                "status": self.status,
                "last_seen": self.last_seen, "resources": _resources(self), "error": self.error}


def _resources(node: NodeState) -> dict[str, float | None]:
    """Cores, memory and GPUs: the node's own facts when known, else the engine's."""
    system = node.info.get("system", {})
    memory = node.info.get("memory", {})
    gpus = ([d for d in devices_in(node.info) if d["kind"] == "gpu"]
            if any(name in node.info for name in (*BACKEND_NAMES, "gpu")) else None)
    return {"cores": system.get("cpu_logical_cores") or node.resources.get("cores"),
            "memory_bytes": (memory.get("effective_limit_bytes")
                             or system.get("memory_total_bytes")
                             or node.resources.get("memory_bytes")),
            "gpus": len(gpus) if gpus is not None else int(node.resources.get("gpus") or 0)}


class ClusterMonitor:
    """Samples a provider's nodes; see the module docstring.

    ``local``: the local node's name and a function returning its latest sample and facts
    (the local recorder already samples this host, so it is never sampled twice).
    ``write`` / ``write_info`` / ``write_event``: where samples, facts and events go (the
    store's writer), or None for live-only.
    """

    def __init__(self, provider: ClusterProvider, hub: Hub, *, interval: float,
                 node_timeout: float, local_node: str,
                 local_state: Callable[[], tuple[Sample | None, dict[str, Any]]],
                 write: Callable[[Sample], Any] | None = None,
                 write_info: Callable[[str, dict[str, Any]], Any] | None = None,
                 write_event: Callable[[Event], Any] | None = None,
                 max_parallel: int = 64) -> None:
        if not node_timeout > 0:
            raise ValueError(f"node_timeout must be a positive number of seconds, got "
                             f"{node_timeout!r}")
        self.provider = provider
        self.hub = hub
        self.interval = interval
        self.node_timeout = node_timeout
        self.answer_timeout = max(0.2, min(interval * 0.8, node_timeout))
        self.local_node = local_node
        self._local_state = local_state
        self._write = write
        self._write_info = write_info
        self._write_event = write_event
        # Workers would otherwise inherit their creator's OS name ("tl-cluster").
        self._pool = cf.ThreadPoolExecutor(max_parallel, thread_name_prefix="tracklab-node",
                                           initializer=name_os_thread)
        self._targets: dict[str, NodeTarget] = {}
        self._names: dict[str, str] = {}  # target key -> node name (known after an answer)
        self._nodes: dict[str, NodeState] = {}
        self._pending: dict[str, cf.Future[Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._next_discover = 0.0
        self.ticks = 0
        self.last_tick_s = 0.0
        self._thread = threading.Thread(target=self._run, name="tracklab-cluster",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.interval + self.answer_timeout + 2)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.provider.close()

    # -- the tick ------------------------------------------------------------------------
    def _run(self) -> None:
        name_os_thread()
        next_tick = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:
                log.exception("tracklab: cluster tick failed")
            self.last_tick_s = time.monotonic() - started
            next_tick += self.interval
            if next_tick < time.monotonic():
                next_tick = time.monotonic() + self.interval
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def tick(self) -> None:
        """Discover when due, fan out, collect, update states, publish (the thread's work;
        callable directly in tests)."""
        now = time.monotonic()
        if now >= self._next_discover:
            self._next_discover = now + DISCOVER_S
            self._discover()
        futures: dict[cf.Future[Any], str] = {}
        for key, target in list(self._targets.items()):
            if key in self._pending:  # still busy with an earlier call: skip this round
                continue
            name = self._names.get(key)
            node = self._nodes.get(name) if name else None
            with_info = node is None or not node.info or node.ticks % INFO_EVERY == 0
            future = self._pool.submit(self.provider.sample, target, with_info,
                                       self.node_timeout)
            with self._lock:
                self._pending[key] = future
            futures[future] = key
        cf.wait(futures, timeout=self.answer_timeout)
        for future, key in futures.items():
            # Answered in time: taken now. Late: taken when it comes (on the pool's thread),
            # so a node slower than one interval still counts, and is not asked again
            # before it answers.
            future.add_done_callback(lambda f, k=key: self._collect(k, f))
        self._check_down()
        self.ticks += 1
        self.hub.publish(CLUSTER, self.metrics())

    def _collect(self, key: str, future: cf.Future[Any]) -> None:
        with self._lock:
            if self._pending.get(key) is not future:
                return  # collected already
            del self._pending[key]
            self._answered(key, future)

    def _discover(self) -> None:
        try:
            targets = self.provider.discover()
        except Exception as exc:
            log.warning("tracklab: listing the %s cluster's nodes failed: %s",
                        self.provider.name, exc)
            return
        fresh = {t.key: t for t in targets}
        with self._lock:
            for key in set(self._targets) - set(fresh):
                name = self._names.pop(key, None)
                node = self._nodes.get(name) if name else None
                if node is not None and name not in self._names.values():
                    # Listed as down for a while (a restarted worker comes back under
                    # the same name with a new address).
                    node.left_at = time.time()
                    self._set_status(node, DOWN, "left the cluster", kind="node_left")
            self._targets = fresh

    def _answered(self, key: str, future: cf.Future[Any]) -> None:
        """Take one answer (called with the lock held)."""
        target = self._targets.get(key)
        if target is None:
            return
        try:
            answer = future.result()
        except Exception as exc:
            name = self._names.get(key)
            if name in self._nodes:
                self._nodes[name].error = f"{type(exc).__name__}: {exc}"[:500]
            else:
                log.debug("tracklab: node %s failed before its first answer: %s", key, exc)
            return
        name = str(answer["node"])
        if name == self.local_node:
            # This host, reached through the engine: the local recorder samples it already.
            self._targets.pop(key, None)
            return
        self._names[key] = name
        node = self._nodes.get(name)
        if node is None:
            node = self._nodes[name] = NodeState(name, target.address, target.role,
                                                 dict(target.resources))
        node.resources = dict(target.resources)
        node.address = target.address
        node.left_at = None
        node.ticks += 1
        node.error = None
        if "info" in answer:
            node.info = answer["info"]
            if self._write_info is not None:
                self._write_info(name, node.info)
        sample = Sample(float(answer["time"]), name, dict(answer["metrics"]),
                        answer.get("counters") or {})
        node.latest = sample
        node.last_seen = time.time()
        if self._write is not None:
            self._write(sample)
        for raw in answer.get("events", []):
            self._event(Event(raw["time"], name, raw["kind"], raw["message"], raw["data"]))
        if node.status != UP:
            self._set_status(node, UP, "answering")

    def _check_down(self) -> None:
        now = time.time()
        with self._lock:
            for node in list(self._nodes.values()):
                if node.left_at is not None and now - node.left_at > LEFT_KEEP_S:
                    del self._nodes[node.name]
            nodes = list(self._nodes.values())
        for node in nodes:
            if (node.status == UP and node.last_seen is not None
                    and now - node.last_seen > self.node_timeout):
                self._set_status(node, DOWN,
                                node.error or f"no answer for {now - node.last_seen:.0f} s")

    def _set_status(self, node: NodeState, status: str, reason: str,
                    kind: str | None = None) -> None:
        node.status = status
        if status == DOWN and not node.error:
            node.error = reason  # so cluster/info says why, not only node_status
        self.hub.publish(NODE, {**node.to_dict(), "reason": reason})
        self._event(Event(time.time(), node.name, kind or f"node_{status}",
                          f"{node.name} is {status}: {reason}", {"reason": reason}))
        log.info("tracklab: cluster node %s is %s (%s)", node.name, status, reason)

    def _event(self, event: Event) -> None:
        if self._write_event is not None:
            self._write_event(event)

    # -- what readers ask ----------------------------------------------------------------
    def node_info(self, name: str) -> dict[str, Any] | None:
        """A node's static facts (as ``system/info`` has them for this host), or None."""
        with self._lock:
            node = self._nodes.get(name)
            return dict(node.info) if node is not None else None

    def node_states(self) -> list[NodeState]:
        with self._lock:
            return sorted(self._nodes.values(), key=lambda n: n.name)

    def metrics(self) -> dict[str, Any]:
        """``{"provider", "nodes": {name: {"time", "metrics"}}}``: the local node's latest
        sample and the latest answer of every node that is up."""
        nodes: dict[str, Any] = {}
        local, _info = self._local_state()
        if local is not None:
            nodes[local.node] = {"time": local.time, "metrics": local.metrics}
        for node in self.node_states():
            if node.latest is not None and node.status == UP:
                nodes[node.name] = {"time": node.latest.time, "metrics": node.latest.metrics}
        return {"provider": self.provider.name, "nodes": nodes}
