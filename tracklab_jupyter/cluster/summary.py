"""``cluster/info``: every node with its status and resources, the totals, and what is used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracklab_jupyter.accelerators.registry import devices_in
from tracklab_jupyter.cluster.status import counted

if TYPE_CHECKING:
    from tracklab_jupyter.cluster.monitor import ClusterMonitor


def local_node(node: str, status: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """This host as a ``cluster/info`` node: its name, ``node_status()`` and facts."""
    system = info.get("system", {})
    memory = info.get("memory", {})
    return {"node": node, "address": "", "role": "local",
            "status": status["status"], "last_seen": status["last_seen"],
            "resources": {"cores": system.get("cpu_logical_cores"),
                          "memory_bytes": (memory.get("effective_limit_bytes")
                                           or system.get("memory_total_bytes")),
                          "gpus": sum(d["kind"] == "gpu" for d in devices_in(info))},
            "error": None}


def _use(metrics: dict[str, float], cores: float | None) -> dict[str, float]:
    used = {"memory_bytes": metrics.get("mem.used_bytes", 0.0)}
    if cores and "cpu.util_pct" in metrics:
        used["cpu_cores"] = metrics["cpu.util_pct"] / 100 * cores
    gpu_util = [v for k, v in metrics.items()
                if k.startswith("gpu.") and k.endswith(".util_pct") and k.count(".") == 2]
    used["gpu_util_sum"] = sum(gpu_util)
    used["gpu_memory_bytes"] = sum(v for k, v in metrics.items()
                                   if k.startswith("gpu.") and k.endswith(".mem_used_bytes")
                                   and k.count(".") == 2)
    return used


def cluster_info(local: dict[str, Any], latest: dict[str, Any],
                 cluster: ClusterMonitor | None, interval: float) -> dict[str, Any]:
    """The ``cluster/info`` body: this host (:func:`local_node`), the cluster's nodes, and
    the totals and use of the nodes that count, from each one's ``latest`` sample."""
    nodes = [local]
    if cluster is not None:
        nodes += [n.to_dict() for n in cluster.node_states()]
    totals = {"nodes": len(nodes), "up": 0, "cores": 0.0, "memory_bytes": 0.0, "gpus": 0}
    used = {"cpu_cores": 0.0, "memory_bytes": 0.0, "gpu_memory_bytes": 0.0}
    gpu_util_sum = 0.0
    for node in nodes:
        if not counted(node["status"]):
            continue
        res = node["resources"]
        totals["up"] += 1
        totals["cores"] += res.get("cores") or 0
        totals["memory_bytes"] += res.get("memory_bytes") or 0
        totals["gpus"] += int(res.get("gpus") or 0)
        sample = latest.get(node["node"])
        if sample is not None:
            use = _use(sample["metrics"], res.get("cores"))
            used["cpu_cores"] += use.get("cpu_cores", 0.0)
            used["memory_bytes"] += use["memory_bytes"]
            used["gpu_memory_bytes"] += use["gpu_memory_bytes"]
            gpu_util_sum += use["gpu_util_sum"]
    used["gpu_util_pct"] = gpu_util_sum / totals["gpus"] if totals["gpus"] else None
    return {"provider": cluster.provider.name if cluster is not None else "local",
            "address": cluster.provider.address if cluster is not None else "",
            "interval_s": interval,
            "node_timeout_s": cluster.node_timeout if cluster is not None else None,
            "nodes": nodes, "totals": totals, "used": used}
