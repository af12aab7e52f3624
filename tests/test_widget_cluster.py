"""tracklab.widget(cluster=True) in this process (ipywidgets' stand-in comm) over a real Dask
``LocalCluster`` whose two worker processes are monitored as separate nodes: the init, the
backfill from history and the live batches hold every node; a worker killed with SIGKILL
comes as a ``node`` message with state offline (and online again once its nanny restarted
it). Without a cluster: this host alone and a
hint."""

from __future__ import annotations

import math
import os
import signal
import time

import numpy as np
import pytest
from conftest import optional_import, wait_for
from widget_recorder import Recorded, _fresh_kernel_monitor, feed_threads, ready  # noqa: F401 (autouse)

import tracklab
from tracklab_jupyter.notebook.cluster_widget import ClusterWidget
from tracklab_jupyter.process_monitor import process_monitor

distributed = optional_import("distributed")
pytestmark = pytest.mark.usefixtures("distributed_installed")



def decode(content: dict, buffers: list) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{node: (times, values[3, n])} of a cluster ``data`` message."""
    n = content["n"]
    times = np.frombuffer(buffers[0], dtype=np.float64)
    values = np.frombuffer(buffers[1], dtype=np.float64).reshape(len(content["names"]), n)
    assert len(times) == n == sum(content["counts"])
    out, at = {}, 0
    for node, count in zip(content["nodes"], content["counts"], strict=True):
        out[node] = (times[at:at + count], values[:, at:at + count])
        at += count
    return out






@pytest.fixture
def dask_client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", worker_dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_cluster_view_has_every_node_live_and_a_killed_worker_goes_offline(dask_client):
    monitor = process_monitor()
    tracklab.connect_cluster(dask_client, per_worker=True, node_timeout=2)
    workers = {f"{monitor.node}-w{i}" for i in range(2)}
    everyone = workers | {monitor.node}
    wait_for(lambda: workers <= set(monitor.cluster_metrics()["nodes"]), 30, "both workers")
    time.sleep(2.0)  # a few samples of every node reach the store (flushed each second)

    widget = tracklab.widget(cluster=True, window="2m")
    assert isinstance(widget, ClusterWidget) and widget.window_s == 120
    sent = Recorded(widget)
    ready(widget)

    # init: the cluster's info, this host first, no hint
    (init, _), = sent.of("init")
    assert init["local"] == monitor.node and init["hint"] is None
    cluster = init["cluster"]
    assert cluster["provider"] == "dask" and cluster["address"].startswith("tcp://")
    names = [n["node"] for n in cluster["nodes"]]
    assert names[0] == monitor.node and set(names) == everyone
    assert cluster["totals"]["up"] == 3 and cluster["totals"]["cores"] > 0
    by_name = {n["node"]: n for n in cluster["nodes"]}
    assert {by_name[w]["role"] for w in workers} == {"worker"}
    for name in everyone:
        assert by_name[name]["status"] == "up"
        assert by_name[name]["latest"]["mem.used_bytes"] > 0

    # the backfill: stored rows of every node, within the window, ascending
    (backfill, buffers), = sent.of("data")[:1]
    assert backfill["backfill"] is True
    assert backfill["names"] == ["cpu.util_pct", "mem.util_pct", "gpu.util_pct"]
    rows = decode(backfill, buffers)
    assert set(rows) == everyone
    now = time.time()
    for name, (times, values) in rows.items():
        assert len(times) >= 2, name
        assert np.all(np.diff(times) > 0) and times[0] >= now - 125
        assert np.nanmax(values[1]) > 0  # memory in use
        assert np.all((values[0] >= 0) | np.isnan(values[0]))
    assert "live · dask" in widget.status

    # live batches: every node again, each time newer than what was sent before it
    def live_nodes():
        seen = set()
        for content, b in sent.of("data")[1:]:
            seen |= set(decode(content, b))
        return seen >= everyone
    wait_for(live_nodes, 15, "live rows of every node")
    last = {n: t[-1] for n, (t, _) in rows.items()}
    for content, b in sent.of("data")[1:]:
        assert content["backfill"] is False
        for name, (times, _) in decode(content, b).items():
            assert times[0] > last[name], name  # never sent twice
            last[name] = times[-1]
    wait_for(lambda: sent.of("info"), 5, "an info refresh")

    # kill one worker: a node message says it is down, with the reason
    pids = dask_client.run(os.getpid)
    address = sorted(pids)[0]
    victim = next(w for w in workers if by_name[w]["address"] == address)
    os.kill(pids[address], signal.SIGKILL)
    offline = wait_for(lambda: [c["node"] for c, _ in sent.of("node")
                            if c["node"]["node"] == victim
                            and c["node"]["status"] == "down"], 15, "the offline message")
    assert offline[0]["reason"]
    # the nanny starts a new worker process under the same name: online again
    wait_for(lambda: [c for c, _ in sent.of("node")
                  if c["node"]["node"] == victim and c["node"]["status"] == "up"
                  and c["node"]["address"] != address], 20, "the restarted worker")
    widget.close()
    wait_for(lambda: not feed_threads())


def test_without_a_cluster_it_shows_this_host_and_a_hint():
    monitor = process_monitor()
    wait_for(lambda: monitor.latest is not None and "cpu.util_pct" in monitor.latest.metrics)
    widget = tracklab.widget(cluster=True)
    sent = Recorded(widget)
    ready(widget)
    (init, _), = sent.of("init")
    assert "tracklab.connect_cluster(client)" in init["hint"]
    assert [n["node"] for n in init["cluster"]["nodes"]] == [monitor.node]
    assert init["cluster"]["provider"] == "local"
    # the backfill comes from the host's recent samples when nothing is stored yet
    rows = decode(*sent.of("data")[0])
    assert list(rows) in ([monitor.node], [])
    wait_for(lambda: len(sent.of("data")) >= 3, 10, "live rows")
    _times, values = decode(*sent.of("data")[-1])[monitor.node]
    assert not math.isnan(values[0][-1]) and values[1][-1] > 0
    widget.close()


def test_cluster_view_refuses_other_arguments_clearly():
    with pytest.raises(ValueError, match=r"cluster=True.*drop run="):
        tracklab.widget(cluster=True, run="abc")
    with pytest.raises(ValueError, match=r"drop metrics=, height="):
        tracklab.widget(cluster=True, metrics="cpu.*", height=200)
    with pytest.raises(ValueError, match="window must be between"):
        tracklab.widget(cluster=True, window=1)


def test_cluster_widget_is_the_cluster_view_and_takes_only_window():
    """tracklab.cluster_widget(): the cluster view's own entry point (exported), the one
    that widget(cluster=True) delegates to."""
    import inspect

    assert "cluster_widget" in tracklab.__all__
    assert list(inspect.signature(tracklab.cluster_widget).parameters) == ["window"]
    monitor = process_monitor()
    wait_for(lambda: monitor.latest is not None and "cpu.util_pct" in monitor.latest.metrics)
    widget = tracklab.cluster_widget(window="1m")
    assert isinstance(widget, ClusterWidget) and widget.window_s == 60
    sent = Recorded(widget)
    ready(widget)
    (init, _), = sent.of("init")
    assert init["local"] == monitor.node and init["cluster"]["provider"] == "local"
    wait_for(lambda: len(sent.of("data")) >= 2, 10, "live rows")
    widget.close()
    # the default window, and widget(cluster=True) builds the same view
    default = tracklab.cluster_widget()
    assert default.window_s == 300
    default.close()
    delegated = tracklab.widget(cluster=True, window="1m")
    assert isinstance(delegated, ClusterWidget) and delegated.window_s == 60
    delegated.close()
    with pytest.raises(ValueError, match="window must be between"):
        tracklab.cluster_widget(window=1)
    with pytest.raises(TypeError):
        tracklab.cluster_widget(run="abc")  # type: ignore[call-arg]
    wait_for(lambda: not feed_threads())


def test_display_close_cycles_leave_no_threads_or_memory():
    import gc
    import tracemalloc

    monitor = process_monitor()
    wait_for(lambda: monitor.latest is not None)

    def cycle() -> None:
        widget = tracklab.widget(cluster=True, window="30s")
        Recorded(widget)
        ready(widget)
        widget.close()

    for _ in range(20):  # warm caches
        cycle()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    for _ in range(200):
        cycle()
    gc.collect()
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    wait_for(lambda: not feed_threads())
    assert grown < 1024 * 1024, f"{grown} bytes kept after 200 cluster widgets"
