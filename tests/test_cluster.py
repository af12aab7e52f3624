"""Cluster monitoring over a real Dask cluster: a ``distributed.LocalCluster`` whose worker
processes are monitored as separate nodes (test mode), a killed worker going offline, the
Jupyter server configured with ``c.TrackLab.cluster``, and cluster history per node."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time

import jsonschema
import pytest
from conftest import optional_import, wait_for

from tracklab_jupyter.cluster.providers import ClusterUnavailable, open_provider, parse_cluster
from tracklab_jupyter.monitor import Monitor, MonitorConfig
from tracklab_jupyter.sampler.hub import CLUSTER, NODE
from tracklab_jupyter.server.openapi import openapi_dict

distributed = optional_import("distributed")
pytestmark = pytest.mark.usefixtures("distributed_installed")

COMPONENTS = {"components": openapi_dict("")["components"]}
WORKERS = 3


def validate(body: object, schema: str) -> None:
    jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", **COMPONENTS}).validate(body)


@pytest.fixture(scope="module")
def dask_cluster():
    cluster = distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", worker_dashboard_address=None)
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()




def test_cluster_specs_are_parsed_or_refused_clearly():
    assert parse_cluster("local") == ("local", "")
    assert parse_cluster("dask://10.0.0.5:8786") == ("dask", "tcp://10.0.0.5:8786")
    assert parse_cluster("dask:tls://h:8786") == ("dask", "tls://h:8786")
    assert parse_cluster("ray:auto") == ("ray", "auto")
    assert parse_cluster("ray://head:10001") == ("ray", "ray://head:10001")
    for bad in ("dask", "slurm://x", ""):
        with pytest.raises(ValueError, match="cluster must be"):
            parse_cluster(bad)
    with pytest.raises(ValueError, match="'local' takes no address"):
        parse_cluster("local:x")
    with pytest.raises(TypeError, match="connect_cluster takes"):
        open_provider(42)
    from tracklab_jupyter.cluster.dask_provider import DaskProvider

    with pytest.raises(ClusterUnavailable, match="cannot reach the Dask scheduler"):
        DaskProvider("tcp://127.0.0.1:9", connect_timeout=1)  # nothing listens there


def test_a_missing_engine_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ClusterUnavailable, match=r"pip install 'tracklab-jupyter\[ray\]'"):
        open_provider("ray:auto")
    with pytest.raises(ClusterUnavailable, match=r"pip install 'tracklab-jupyter\[dask\]'"):
        open_provider("dask://127.0.0.1:8786")


def test_dask_workers_are_sampled_as_nodes_and_a_killed_one_goes_offline(dask_cluster,
                                                                          tmp_path):
    _cluster, client = dask_cluster
    monitor = Monitor(MonitorConfig.from_settings(data_dir=str(tmp_path / "data"),
                                                  interval=0.5, flush_interval=0.5))
    monitor.start()
    assert monitor.wait_started(20)
    sub = monitor.hub.subscribe([CLUSTER, NODE], depth={CLUSTER: 1})
    try:
        monitor.attach_cluster(client, per_worker=True, node_timeout=2.0)
        names = {f"{monitor.node}-w{i}" for i in range(WORKERS)}

        def all_online():
            latest = monitor.cluster_metrics()["nodes"]
            return names <= set(latest) and all(
                "cpu.util_pct" in latest[n]["metrics"] for n in names)
        wait_for(all_online, 30, "every worker to answer")
        info = monitor.cluster_info()
        validate(info, "ClusterInfo")
        assert info["provider"] == "dask" and info["address"].startswith("tcp://")
        by_name = {n["node"]: n for n in info["nodes"]}
        assert by_name[monitor.node]["role"] == "local"
        for name in names:
            node = by_name[name]
            assert (node["status"], node["role"]) == ("up", "worker")
            assert node["address"].startswith("tcp://127.0.0.1:")
            assert node["resources"]["cores"] == os.cpu_count()  # the node's own facts
            assert node["resources"]["memory_bytes"] > 0
        assert info["totals"]["up"] == WORKERS + 1
        assert info["used"]["memory_bytes"] > 0

        # kill one worker process: it stops answering and goes offline after the timeout
        pids = client.run(os.getpid)
        victim_address = sorted(pids)[0]
        victim = next(n for n in names if by_name[n]["address"] == victim_address)
        sub.drain()
        os.kill(pids[victim_address], signal.SIGKILL)
        killed_at = time.monotonic()

        def offline_status():
            for topic, item in sub.drain():
                if topic == NODE and item["node"] == victim and item["status"] == "down":
                    return item
            return None
        status = wait_for(offline_status, 20, f"{victim} to go offline")
        # after the 2 s timeout, not at once (a lower bound: a busy box cannot break it)
        assert time.monotonic() - killed_at >= 1.0
        validate(status, "NodeStatus")
        assert status["reason"]
        # the others kept answering: each sends newer samples after the victim went down
        at_down = {n: monitor.cluster_metrics()["nodes"][n]["time"] for n in names - {victim}}
        wait_for(lambda: all(monitor.cluster_metrics()["nodes"][n]["time"] > t
                             for n, t in at_down.items()), 30, "the other workers' samples")
        up = {n["node"]: n["status"] for n in monitor.cluster_info()["nodes"]}
        assert all(up[n] == "up" for n in at_down), up
        # the nanny restarts the worker: the node comes back online under the same name
        wait_for(lambda: any(
            t == NODE and i["node"] == victim and i["status"] == "up"
            for t, i in sub.drain()), 40, f"{victim} to come back")
    finally:
        sub.close()
        monitor.stop()

    # stored under each node's name; node events stored too
    import tracklab

    hist = tracklab.history("cpu.util_pct", start="-5min", data_dir=tmp_path / "data")
    assert names <= set(hist.nodes)
    frame = hist.to_pandas()
    assert {(n, "cpu.util_pct") for n in names} <= set(frame.columns)
    one = tracklab.history("mem.used_bytes", start="-5min", node=victim,
                           data_dir=tmp_path / "data")
    assert one.nodes == [victim] and len(one) >= 2  # before the kill and after the restart
    kinds = {(e.node, e.kind) for e in hist.events}
    assert (victim, "node_down") in kinds and (victim, "node_up") in kinds


@pytest.fixture
def jp_server_config(dask_cluster, tmp_path):
    """The server of this module's Jupyter test: configured with the Dask cluster."""
    cluster, _client = dask_cluster
    return {"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
            "TrackLab": {"data_dir": str(tmp_path / "srv"), "interval": 0.5,
                         "cluster": "dask://" + cluster.scheduler_address.split("://")[1],
                         "cluster_per_worker": True, "cluster_node_timeout": 3.0}}


async def test_the_jupyter_server_serves_a_configured_dask_cluster(jp_fetch, jp_ws_fetch,
                                                                   dask_cluster):
    ws = await jp_ws_fetch("tracklab", "ws")
    ws.write_message(json.dumps({"type": "subscribe",
                                 "topics": ["cluster_metrics", "node_status"],
                                 "metrics": ["cpu.*", "mem.*"]}))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    frame = None
    while loop.time() < deadline:
        message = json.loads(await asyncio.wait_for(ws.read_message(), 10))
        if message["type"] == "cluster_metrics" and len(message["data"]["nodes"]) > WORKERS:
            frame = message
            break
    assert frame is not None, "no cluster_metrics frame with every node"
    validate(frame["data"], "ClusterMetrics")
    assert frame["data"]["provider"] == "dask"
    assert all(k.startswith(("cpu.", "mem.")) for n in frame["data"]["nodes"].values()
               for k in n["metrics"])
    info = json.loads((await jp_fetch("tracklab", "api", "cluster", "info")).body)
    validate(info, "ClusterInfo")
    assert info["provider"] == "dask" and info["totals"]["nodes"] == WORKERS + 1
    one = next(n["node"] for n in info["nodes"] if n["role"] == "worker")
    facts = json.loads((await jp_fetch("tracklab", "api", "system", "info",
                                       params={"node": one})).body)
    validate(facts, "SystemInfo")
    assert facts["node"] == one and facts["role"] == "remote"
    assert facts["system"]["cpu_logical_cores"] == os.cpu_count()
    metrics = json.loads((await jp_fetch("tracklab", "api", "cluster", "metrics",
                                         params={"node": one, "metrics": "mem.*"})).body)
    assert list(metrics["nodes"]) == [one]
    assert all(k.startswith("mem.") for k in metrics["nodes"][one]["metrics"])
    # Prometheus: every node's series under its own node label, its raw network counters
    # carried over from the worker
    text = (await jp_fetch("tracklab", "metrics")).body.decode()
    for node in info["nodes"]:
        assert f'tracklab_memory_used_bytes{{node="{node["node"]}"}}' in text
        assert re.search(r'tracklab_network_receive_bytes_total\{interface="lo",node="'
                         + re.escape(node["node"]) + '"', text)

    # a killed worker: node_status offline over the WebSocket, after the 3 s timeout
    _cluster, client = dask_cluster
    pids = client.run(os.getpid)
    address = sorted(pids)[-1]
    victim = next(n["node"] for n in info["nodes"] if n["address"] == address)
    os.kill(pids[address], signal.SIGKILL)
    deadline = loop.time() + 30
    status = None
    while status is None:
        assert loop.time() < deadline, "no node_status offline"
        message = json.loads(await asyncio.wait_for(ws.read_message(), 10))
        if (message["type"] == "node_status" and message["data"]["node"] == victim
                and message["data"]["status"] == "down"):
            status = message["data"]
    validate(status, "NodeStatus")
    info = json.loads((await jp_fetch("tracklab", "api", "cluster", "info")).body)
    gone = next(n for n in info["nodes"] if n["node"] == victim)
    assert gone["status"] == "down" and gone["error"]  # says why, after a reload too
    ws.close()
