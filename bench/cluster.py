"""Cluster fan-out benchmark: what one sampling round costs with 2, 4 and 8 nodes.

A real ``distributed.LocalCluster`` per size, its worker processes monitored as separate
nodes (the test mode), through the real :class:`ClusterMonitor` and Dask provider. For
each size it prints, over ``--rounds`` rounds:

* round latency (p50, p99): from the start of a tick until the last node's answer;
* the monitor's CPU per round in this process (fan-out, answers, samples to the store);
* the CPU one sample costs on a node (measured inside the worker with its thread clock);
* the baseline measured in the same run: the same calls made one node after another (a
  plain loop), and its round latency;
* with one straggler (a node that takes 500 ms to answer: overloaded, or far away): how
  long the healthy nodes' samples take to arrive, parallel against one by one, with the
  straggler first in the loop. This is what the parallel fan-out is for.

This machine has 2 cores, so 8 worker processes share them with the scheduler; the
latencies are an upper bound for nodes that are really separate machines.
Run: ``python bench/cluster.py [--sizes 2 4 8] [--rounds 30]`` (needs ``[dask]``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster

from tracklab_jupyter.cluster.dask_provider import DaskProvider
from tracklab_jupyter.cluster.monitor import ClusterMonitor
from tracklab_jupyter.sampler.hub import Hub
from tracklab_jupyter.store.writer import StoreWriter


def _timed_sample(suffix: str) -> float:
    import time as _time

    from tracklab_jupyter.cluster.remote import sample_host

    t0 = _time.thread_time()
    sample_host(suffix)
    return _time.thread_time() - t0


def _slow_sample(suffix: str, with_info: bool) -> dict:
    import time as _time

    from tracklab_jupyter.cluster.remote import sample_host

    _time.sleep(0.5)
    return sample_host(suffix, with_info)


class StragglerProvider(DaskProvider):
    """The first node answers 500 ms late; records when each answer arrives."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arrived: dict[str, float] = {}
        self.slow_key = ""

    def sample(self, target, with_info, timeout):  # type: ignore[no-untyped-def]
        if target.key == self.slow_key:
            answer = self.client.run(_slow_sample, target.suffix, with_info,
                                     workers=[target.key])[target.key]
        else:
            answer = super().sample(target, with_info, timeout)
        self.arrived[target.key] = time.perf_counter()
        return answer


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def run_size(n: int, rounds: int, data_dir: Path) -> dict[str, float]:
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address=":0", worker_dashboard_address=None) as cluster, \
            Client(cluster) as client:
        provider = StragglerProvider(client, per_worker=True)
        writer = StoreWriter(data_dir, side=True)
        monitor = ClusterMonitor(provider, Hub(), interval=1.0, node_timeout=30.0,
                                 local_node="bench-local", local_state=lambda: (None, {}),
                                 write=writer.write, write_info=writer.write_info,
                                 write_event=writer.write_event)
        monitor.answer_timeout = 30.0  # measure the whole round, however long it takes
        for _ in range(3):  # warm up: collectors built and primed on every worker
            monitor.tick()
        assert len(monitor.node_states()) == n, monitor.node_states()
        latencies, cpu = [], []
        for _ in range(rounds):
            c0, t0 = time.process_time(), time.perf_counter()
            monitor.tick()
            latencies.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            time.sleep(0.2)
        targets = provider.discover()
        sequential = []
        for _ in range(max(5, rounds // 3)):
            t0 = time.perf_counter()
            for target in targets:
                provider.sample(target, False, 30.0)
            sequential.append(time.perf_counter() - t0)
        # one straggler: when do the healthy nodes' samples arrive?
        provider.slow_key = targets[0].key
        healthy = [t.key for t in targets[1:]]
        par_healthy, seq_healthy = [], []
        for _ in range(5):
            provider.arrived.clear()
            t0 = time.perf_counter()
            monitor.tick()
            par_healthy.append(max(provider.arrived[k] for k in healthy) - t0)
            time.sleep(0.6)  # let the straggler's call end before the next round
            provider.arrived.clear()
            t0 = time.perf_counter()
            for target in targets:
                provider.sample(target, False, 30.0)
            seq_healthy.append(max(provider.arrived[k] for k in healthy) - t0)
        provider.slow_key = ""
        remote = [v for _ in range(5) for v in client.run(_timed_sample, "-bench").values()]
        writer.close()
        provider.close()
        return {"p50": statistics.median(latencies), "p99": pct(latencies, 0.99),
                "cpu": statistics.median(cpu), "remote_cpu": statistics.median(remote),
                "seq_p50": statistics.median(sequential),
                "straggler_par": statistics.median(par_healthy),
                "straggler_seq": statistics.median(seq_healthy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(f"{'nodes':>5} | {'round p50':>9} | {'round p99':>9} | {'monitor CPU':>11} | "
          f"{'CPU per node':>12} | {'node sample CPU':>15} | {'one by one p50':>14} | "
          f"{'straggler: healthy in, parallel':>31} | {'one by one':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            r = run_size(n, args.rounds, Path(tmp) / f"n{n}")
            print(f"{n:>5} | {r['p50'] * 1e3:7.1f}ms | {r['p99'] * 1e3:7.1f}ms | "
                  f"{r['cpu'] * 1e3:9.2f}ms | {r['cpu'] / n * 1e3:10.2f}ms | "
                  f"{r['remote_cpu'] * 1e3:13.2f}ms | {r['seq_p50'] * 1e3:12.1f}ms | "
                  f"{r['straggler_par'] * 1e3:29.1f}ms | {r['straggler_seq'] * 1e3:8.1f}ms")


if __name__ == "__main__":
    main()
