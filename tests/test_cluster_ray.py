"""Cluster monitoring over a real Ray cluster: Ray's own multi-node test cluster
(``ray.cluster_utils.Cluster``: a head and two worker nodes, each its own raylet), nodes
from Ray's state, sampling through a zero-CPU actor pinned to each node, and a removed node
going offline."""

from __future__ import annotations

import time

import pytest
from conftest import unavailable

from tracklab_jupyter.monitor import Monitor, MonitorConfig
from tracklab_jupyter.sampler.hub import NODE


@pytest.fixture(scope="module")
def ray_cluster():
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        unavailable("ray is not installed (pip install -e '.[test]' installs it)")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, include_dashboard=False)
    yield ray, cluster, workers
    ray.shutdown()
    cluster.shutdown()


def test_ray_nodes_are_sampled_by_pinned_actors_and_a_removed_node_goes_offline(
        ray_cluster, tmp_path):
    ray, cluster, workers = ray_cluster
    monitor = Monitor(MonitorConfig.from_settings(data_dir=str(tmp_path / "data"),
                                                  interval=0.5))
    monitor.start()
    assert monitor.wait_started(20)
    sub = monitor.hub.subscribe([NODE])
    try:
        monitor.attach_cluster(ray, per_worker=True, node_timeout=3.0)
        deadline = time.monotonic() + 60
        while len(monitor.cluster_metrics()["nodes"]) < 4:  # the local node + 3 Ray nodes
            assert time.monotonic() < deadline, monitor.cluster_info()
            time.sleep(0.2)
        info = monitor.cluster_info()
        roles = sorted(n["role"] for n in info["nodes"])
        assert roles == ["head", "local", "worker", "worker"]
        assert all(n["status"] == "up" for n in info["nodes"])
        assert info["provider"] == "ray" and info["totals"]["up"] == 4
        latest = monitor.cluster_metrics()["nodes"]
        assert all("mem.used_bytes" in n["metrics"] for n in latest.values())
        # The sampling actors hold no CPU: the cluster still has all of its CPUs free.
        assert ray.available_resources().get("CPU") == 3.0
        names_before = {n["node"] for n in info["nodes"]}
        sub.drain()
        cluster.remove_node(workers[0])
        deadline = time.monotonic() + 30
        gone = None
        while gone is None:
            assert time.monotonic() < deadline, "no node went down"
            for _topic, status in sub.get(0.5):
                if status["status"] == "down":
                    gone = status
        assert gone["node"] in names_before and gone["role"] == "worker"
        up = {n["node"] for n in monitor.cluster_info()["nodes"] if n["status"] == "up"}
        assert gone["node"] not in up and len(up) == 3
    finally:
        sub.close()
        monitor.stop()
