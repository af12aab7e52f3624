"""The Ray provider: the live nodes of a Ray cluster, each sampled by a zero-CPU actor
pinned to it (``NodeAffinitySchedulingStrategy(soft=False)``), so sampling never takes a
CPU slot from the user's tasks. tracklab-jupyter must be installed on the nodes (or in the
runtime environment)."""

from __future__ import annotations

import contextlib
from typing import Any

from tracklab_jupyter.cluster.providers import ClusterProvider, ClusterUnavailable, NodeTarget
from tracklab_jupyter.cluster.remote import sample_host


class NodeSampler:
    """The actor's class (wrapped with ``ray.remote`` when the provider starts)."""

    def sample(self, suffix: str, with_info: bool) -> dict[str, Any]:
        return sample_host(suffix, with_info)


class RayProvider(ClusterProvider):
    """A Ray cluster: ``address`` is ``"auto"`` (the local cluster), ``"ray://host:10001"``
    (Ray Client) or empty when this process is already connected."""

    name = "ray"

    def __init__(self, address: str = "auto", per_worker: bool = False) -> None:
        try:
            import ray
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        except ImportError:
            raise ClusterUnavailable(
                "the ray provider needs ray, which is not installed: "
                "pip install 'tracklab-jupyter[ray]'") from None
        self._ray = ray
        self._affinity = NodeAffinitySchedulingStrategy
        self.per_worker = per_worker
        self._own = not ray.is_initialized()
        if self._own:
            try:
                ray.init(address=address or "auto", log_to_driver=False,
                         include_dashboard=False, configure_logging=False)
            except (ConnectionError, RuntimeError) as exc:
                raise ClusterUnavailable(f"cannot connect to Ray at {address!r}: {exc}") from None
        self.address = address or "auto"
        self._actor_cls = ray.remote(num_cpus=0, max_concurrency=2)(NodeSampler)
        self._actors: dict[str, Any] = {}

    def discover(self) -> list[NodeTarget]:
        targets = []
        for node in self._ray.nodes():
            if not node.get("Alive"):
                continue
            node_id = str(node["NodeID"])
            resources = node.get("Resources", {})
            role = "head" if any(k.startswith("node:__internal_head__") for k in resources) \
                else "worker"
            targets.append(NodeTarget(
                key=node_id, address=str(node.get("NodeManagerAddress", "")), role=role,
                resources={"cores": float(resources.get("CPU", 0)),
                           "memory_bytes": float(resources.get("memory", 0)),
                           "gpus": float(resources.get("GPU", 0))},
                suffix=f"-{node_id[:6]}" if self.per_worker else ""))
        live = {t.key for t in targets}
        for gone in set(self._actors) - live:
            self._drop(gone)
        return targets

    def _actor(self, node_id: str) -> Any:
        actor = self._actors.get(node_id)
        if actor is None:
            actor = self._actors[node_id] = self._actor_cls.options(
                scheduling_strategy=self._affinity(node_id=node_id, soft=False)).remote()
        return actor

    def _drop(self, node_id: str) -> None:
        actor = self._actors.pop(node_id, None)
        if actor is not None:
            with contextlib.suppress(Exception):  # the node (and its actor) may be gone
                self._ray.kill(actor)

    def sample(self, target: NodeTarget, with_info: bool, timeout: float) -> dict[str, Any]:
        ray = self._ray
        try:
            return ray.get(self._actor(target.key).sample.remote(target.suffix, with_info),
                           timeout=timeout)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            self._drop(target.key)  # a new actor next time, if the node comes back
            raise ClusterUnavailable(f"node {target.key[:12]} did not answer: "
                                     f"{type(exc).__name__}") from None

    def close(self) -> None:
        for node_id in list(self._actors):
            self._drop(node_id)
        if self._own:
            self._ray.shutdown()
