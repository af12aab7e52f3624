"""A bench-only Jupyter server extension: a 16-node cluster made from this host's answer.

Loaded beside tracklab_jupyter (``jpserver_extensions``; ``PYTHONPATH=bench``), it waits until
tracklab's monitor has attached its own cluster (the local one), then replaces it through
:meth:`~tracklab_jupyter.monitor.Monitor.attach_cluster` with a real
:class:`~tracklab_jupyter.cluster.monitor.ClusterMonitor` over :class:`BenchProvider`. That
provider lists ``FAKECLUSTER_NODES`` nodes (env, default 16) named ``node-01``, ``node-02``,
... and answers each with one real :func:`~tracklab_jupyter.cluster.remote.sample_host`
answer of this host, recorded once (with the fake NVML's GPUs when ``PYTHONPATH`` starts
with ``tests/shim``) and renamed per node, stamped with the time of each call.

Every node so has this host's full set of series (CPU, memory, disks, network, GPUs, raw
counters and facts), which is what a scrape of a real cluster of such hosts renders; the
server process does no sampling for them, as with a real engine, where nodes sample
themselves. Loaded by bench/server.py (its scrape phase).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from typing import Any

from tracklab_jupyter.cluster.providers import ClusterProvider, NodeTarget
from tracklab_jupyter.cluster.remote import sample_host
from tracklab_jupyter.server.serving import MONITOR_KEY
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.bench")
ATTACH_TIMEOUT_S = 60.0


class BenchProvider(ClusterProvider):
    """``nodes`` nodes answering with one recorded answer of this host each."""

    name = "bench"

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self._lock = threading.Lock()
        self._answers: dict[str, dict[str, Any]] = {}

    def discover(self) -> list[NodeTarget]:
        return [NodeTarget(key=f"bench-{i:02d}", address=f"10.0.0.{i}:8786", role="worker",
                           suffix=f"-{i:02d}") for i in range(1, self.nodes + 1)]

    def _recorded(self, target: NodeTarget) -> dict[str, Any]:
        """This node's answer: this host's, taken once, under the node's name."""
        with self._lock:  # the monitor asks for every node at once; record one answer
            if not self._answers:
                base = sample_host("-bench", with_info=True)
                for t in self.discover():
                    name = "node" + t.suffix
                    info = copy.deepcopy(base["info"])
                    info.get("system", {})["hostname"] = name
                    self._answers[t.key] = {**base, "node": name, "events": [], "info": info}
            return self._answers[target.key]

    def sample(self, target: NodeTarget, with_info: bool, timeout: float) -> dict[str, Any]:
        recorded = self._recorded(target)
        answer = {key: value for key, value in recorded.items()
                  if key != "info" or with_info}  # facts only when asked, as sample_host
        answer["time"] = time.time()
        return answer


def _attach(serverapp: Any, nodes: int) -> None:
    """Wait for tracklab's monitor and its first cluster, then replace that cluster."""
    name_os_thread()
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while time.monotonic() < deadline:
        monitor = serverapp.web_app.settings.get(MONITOR_KEY)
        # tracklab attaches its configured cluster on its start thread; attaching before
        # that would be undone by it.
        if monitor is not None and monitor.cluster is not None:
            monitor.attach_cluster(BenchProvider(nodes))
            log.info("fakecluster: %d bench nodes attached", nodes)
            return
        time.sleep(0.1)
    log.error("fakecluster: no tracklab monitor with a cluster after %.0f s; is "
              "tracklab_jupyter enabled?", ATTACH_TIMEOUT_S)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "fakecluster_ext"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    nodes = int(os.environ.get("FAKECLUSTER_NODES", "16"))
    # Extensions load in name order, so tracklab's monitor may not exist yet: wait for it
    # on a thread rather than on the event loop.
    threading.Thread(target=_attach, args=(serverapp, nodes), name="fakecluster-attach",
                     daemon=True).start()
