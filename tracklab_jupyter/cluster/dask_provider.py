"""The Dask provider: the workers of a ``distributed`` scheduler, one per host.

Nodes come from ``Client.scheduler_info``; each host is sampled by running
:func:`~tracklab_jupyter.cluster.remote.sample_host` on one of its workers with
``Client.run`` (a direct call to that worker, not a task: it never queues behind the
user's work). tracklab-jupyter must be installed where the workers run.
"""

from __future__ import annotations

from typing import Any

from tracklab_jupyter.cluster.providers import ClusterProvider, ClusterUnavailable, NodeTarget
from tracklab_jupyter.cluster.remote import sample_host

CONNECT_TIMEOUT_S = 10


class DaskProvider(ClusterProvider):
    """A Dask cluster, from a scheduler address or an existing ``distributed.Client``."""

    name = "dask"

    def __init__(self, target: Any, per_worker: bool = False,
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        try:
            import distributed
        except ImportError:
            raise ClusterUnavailable(
                "the dask provider needs dask.distributed, which is not installed: "
                "pip install 'tracklab-jupyter[dask]'") from None
        self.per_worker = per_worker
        self._own = isinstance(target, str)
        if self._own:
            try:
                self.client = distributed.Client(target, timeout=connect_timeout,
                                                 set_as_default=False)
            except OSError as exc:
                raise ClusterUnavailable(f"cannot reach the Dask scheduler at {target}: "
                                         f"{exc}") from None
        else:
            self.client = target
        self.address = str(self.client.scheduler.address)

    def discover(self) -> list[NodeTarget]:
        if self.client.status in ("closing", "closed"):
            raise ClusterUnavailable("the Dask client was closed; connect the cluster again "
                                     "(tracklab.connect_cluster)")
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # distributed before 2025.4 has no n_workers (and no limit)
            info = self.client.scheduler_info()
        if "workers" not in info:
            raise ClusterUnavailable(f"the Dask scheduler at {self.address} did not say "
                                     "which workers it has (is it still running?)")
        workers = info["workers"]
        chosen: dict[str, NodeTarget] = {}
        for address in sorted(workers):
            worker = workers[address]
            host = str(worker.get("host", address))
            suffix = f"-w{worker.get('name', address)}" if self.per_worker else ""
            group = host + suffix
            resources = {"cores": float(worker.get("nthreads", 0) or 0),
                         "memory_bytes": float(worker.get("memory_limit", 0) or 0),
                         "gpus": float((worker.get("resources") or {}).get("GPU", 0))}
            if group in chosen:  # another worker of a host already chosen: add its share
                for name in ("cores", "memory_bytes"):
                    chosen[group].resources[name] += resources[name]
                continue
            chosen[group] = NodeTarget(key=address, address=address, role="worker",
                                       resources=resources, suffix=suffix)
        return list(chosen.values())

    def sample(self, target: NodeTarget, with_info: bool, timeout: float) -> dict[str, Any]:
        answers = self.client.run(sample_host, target.suffix, with_info,
                                  workers=[target.key])
        if target.key not in answers:
            raise ClusterUnavailable(f"worker {target.key} did not answer")
        return answers[target.key]

    def close(self) -> None:
        if self._own:
            self.client.close()
