"""Run-tracking benchmark: what ``run.log`` costs a training loop, how soon a server sees
the values, and what watching for runs costs an idle server.

Prints, against baselines measured in the same run:

* ``run.log`` per call (two metrics), against a naive logger that inserts and commits each
  call to the same kind of SQLite store (WAL, synchronous=NORMAL);
* the delay from ``run.log`` in a child process to the value's arrival on the hub of a
  watching monitor in this process (p50, p99), i.e. what a WebSocket client waits before
  the server sends it;
* the CPU an idle watcher uses (its data_version check four times a second) as a share of
  one core, measured with the thread's own CPU clock.

Run: ``python bench/runs.py [--calls 200000]``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import tracklab
from tracklab_jupyter.monitor import Monitor, MonitorConfig
from tracklab_jupyter.sampler.hub import RUN_METRICS


def bench_log(data_dir: Path, calls: int) -> float:
    run = tracklab.init(project="bench", system_monitor=False, data_dir=data_dir)
    t0 = time.perf_counter()
    for i in range(calls):
        run.log({"loss": 1.0 / (i + 1), "acc": i / calls})
    elapsed = time.perf_counter() - t0
    run.finish()  # waits for the writer
    return elapsed / calls


def bench_naive(path: Path, calls: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE m (run TEXT, step INTEGER, time REAL, name TEXT, value REAL)")
    t0 = time.perf_counter()
    for i in range(calls):
        now = time.time()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO m VALUES (?, ?, ?, ?, ?)",
                         [("r", i, now, "loss", 1.0 / (i + 1)), ("r", i, now, "acc", i)])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed / calls


CHILD = """
    import sys, time, tracklab
    run = tracklab.init(project="latency", system_monitor=False)
    for step in range(int(sys.argv[1])):
        run.log({"sent": time.time()})
        time.sleep(0.02)
"""


def bench_latency(data_dir: Path, steps: int) -> list[float]:
    data_dir.mkdir(parents=True, exist_ok=True)
    monitor = Monitor(MonitorConfig.from_settings(data_dir=str(data_dir), interval=1.0))
    monitor.watch_runs()
    delays: list[float] = []
    sub = monitor.hub.subscribe([RUN_METRICS], depth={RUN_METRICS: 10_000})
    script = data_dir / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    child = subprocess.Popen([sys.executable, str(script), str(steps)],
                             env={**os.environ, "TRACKLAB_DATA_DIR": str(data_dir)})
    while child.poll() is None or len(delays) < steps:
        for _topic, update in sub.get(0.5):
            arrived = time.time()
            delays += [arrived - sent for sent in update["metrics"].get("sent", [])
                       if sent is not None]
        if child.poll() is not None and not sub.get(1.0):
            break
    monitor.stop()
    return delays


def bench_idle_watcher(data_dir: Path, seconds: float) -> float:
    monitor = Monitor(MonitorConfig.from_settings(data_dir=str(data_dir), interval=1.0))
    monitor.watch_runs()
    watcher = monitor._run_watcher
    ident = watcher._thread.ident
    time.sleep(0.5)
    clock = time.pthread_getcpuclockid(ident)
    cpu0, t0 = time.clock_gettime(clock), time.monotonic()
    time.sleep(seconds)
    share = (time.clock_gettime(clock) - cpu0) / (time.monotonic() - t0)
    monitor.stop()
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--naive-calls", type=int, default=5_000)
    parser.add_argument("--latency-steps", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        per_call = bench_log(root / "log", args.calls)
        naive = bench_naive(root / "naive.db", args.naive_calls)
        print(f"run.log, 2 metrics:  {per_call * 1e6:8.2f} µs per call "
              f"({1 / per_call:,.0f} calls/s)")
        print(f"naive insert+commit: {naive * 1e6:8.2f} µs per call "
              f"({1 / naive:,.0f} calls/s)  -> run.log is {naive / per_call:.0f}x cheaper")
        delays = sorted(bench_latency(root / "latency", args.latency_steps))
        p50 = statistics.median(delays)
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        print(f"log -> watcher hub:  p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms over "
              f"{len(delays)} values (target: within 1 s)")
        share = bench_idle_watcher(root / "latency", args.idle_seconds)
        print(f"idle watcher CPU:    {share * 100:.3f} % of one core "
              f"(data_version 4x a second, over {args.idle_seconds:g} s)")


if __name__ == "__main__":
    main()
