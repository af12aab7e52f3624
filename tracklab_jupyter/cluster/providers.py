"""Cluster providers: how to find a cluster's nodes and sample one of them.

A provider knows one engine. :meth:`ClusterProvider.discover` lists the nodes to sample
(one target per host: the engine's workers are grouped by host, so a host with eight
workers is sampled once); :meth:`ClusterProvider.sample` runs
:func:`~tracklab_jupyter.cluster.remote.sample_host` there and returns its answer. The
cluster monitor calls ``sample`` for every node in parallel, each with its own timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = ("local", "dask", "ray")


class ClusterUnavailable(RuntimeError):
    """The engine is not installed, or the cluster cannot be reached; says what to do."""


@dataclass
class NodeTarget:
    """One node to sample: ``key`` is the engine's handle for it (a Dask worker address, a
    Ray node id), ``suffix`` is added to the host name in the test mode."""

    key: str
    address: str
    role: str
    resources: dict[str, float] = field(default_factory=dict)
    suffix: str = ""


class ClusterProvider:
    """The interface; see the module docstring."""

    name = "local"
    address = ""

    def discover(self) -> list[NodeTarget]:
        return []

    def sample(self, target: NodeTarget, with_info: bool, timeout: float) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the engine connection if this provider opened it."""


class LocalProvider(ClusterProvider):
    """This host alone (the default): the cluster monitor adds the local node itself."""


_SPEC = re.compile(r"(?P<kind>local|dask|ray)(?::(?P<rest>.*))?")


def parse_cluster(spec: str) -> tuple[str, str]:
    """``"local"``, ``"dask://host:8786"`` (or ``dask:tcp://...``), ``"ray:auto"``,
    ``"ray://host:10001"`` -> ``(kind, address)``; ValueError names the forms."""
    match = _SPEC.fullmatch(spec.strip())
    if not match or (match["kind"] != "local" and not match["rest"]):
        raise ValueError(f"cluster must be 'local', 'dask://HOST:PORT', 'ray:auto' or "
                         f"'ray://HOST:PORT'; got {spec!r}")
    kind, rest = match["kind"], match["rest"] or ""
    if kind == "dask":
        address = rest[2:] if rest.startswith("//") else rest
        if "://" not in address:
            address = "tcp://" + address
        return kind, address
    if kind == "ray":
        return kind, ("ray:" + rest) if rest.startswith("//") else rest
    if rest:
        raise ValueError(f"'local' takes no address; got {spec!r}")
    return kind, ""


def open_provider(target: Any, per_worker: bool = False) -> ClusterProvider:
    """A provider for a spec string (see :func:`parse_cluster`), a ``distributed.Client``
    or the ``ray`` module / a connected Ray runtime. ``per_worker`` treats each Dask worker
    or Ray node as its own node even when several share a host (for tests and demos)."""
    if isinstance(target, ClusterProvider):
        return target
    if isinstance(target, str):
        kind, address = parse_cluster(target)
        if kind == "local":
            return LocalProvider()
        if kind == "dask":
            from tracklab_jupyter.cluster.dask_provider import DaskProvider

            return DaskProvider(address, per_worker=per_worker)
        from tracklab_jupyter.cluster.ray_provider import RayProvider

        return RayProvider(address, per_worker=per_worker)
    module = type(target).__module__.split(".")[0]
    if module == "distributed":
        from tracklab_jupyter.cluster.dask_provider import DaskProvider

        return DaskProvider(target, per_worker=per_worker)
    if module == "ray" or getattr(target, "__name__", "") == "ray":
        from tracklab_jupyter.cluster.ray_provider import RayProvider

        return RayProvider("auto", per_worker=per_worker)
    raise TypeError(f"connect_cluster takes a dask distributed.Client, the ray module, or an "
                    f"address such as 'dask://127.0.0.1:8786' or 'ray:auto'; got {target!r}")
