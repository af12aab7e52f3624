"""Benchmark: what one sample and the 1 Hz sampler cost, against a naive collector.

Prints, for this machine:
  - CPU time of one full host sample (median of N), and with a fake 8-GPU NVML replaying
    the recorded H200 (the fake's own Python cost is included, so this is an upper bound
    of our overhead on top of NVML's ~17-61 µs per GPU measured on the real card);
  - the sampler's CPU share of one core at 1 Hz over a window (both its threads);
  - the same for a naive baseline written here in the style of the original feature list:
    psutil.cpu_percent(interval=0.1), process_iter over every process and net_connections
    on every tick; and the ratios.

Targets (issue 2): host sample <= 0.5 ms CPU; with 8 fake GPUs <= 1 ms; sampler <= 0.1 % of
one core at 1 Hz.

    python bench/sampler.py [--samples 300] [--seconds 30]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tracklab_jupyter.sampler.factory import SamplerConfig, build_sampler  # noqa: E402


def naive_sample() -> dict[str, float]:
    """One tick as the original feature list's backend did it."""
    out: dict[str, float] = {"cpu.util_pct": psutil.cpu_percent(interval=0.1)}
    for i, pct in enumerate(psutil.cpu_percent(percpu=True)):
        out[f"cpu.core.{i}.util_pct"] = pct
    vm = psutil.virtual_memory()
    out["mem.used_bytes"] = vm.used
    out["mem.util_pct"] = vm.percent
    for part in psutil.disk_partitions():
        with contextlib.suppress(OSError):
            out[f"disk.{part.mountpoint}.util_pct"] = psutil.disk_usage(part.mountpoint).percent
    io = psutil.disk_io_counters()
    if io:
        out["disk.read_bytes"] = io.read_bytes
    net = psutil.net_io_counters()
    out["net.recv_bytes"] = net.bytes_recv
    out["proc.count"] = sum(1 for _ in psutil.process_iter(["cpu_percent", "memory_info"]))
    with contextlib.suppress(psutil.AccessDenied):
        out["net.connections"] = len(psutil.net_connections())
    return out


def cpu_times_per_call(fn, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.thread_time()
        fn()
        samples.append(time.thread_time() - t0)
    return samples


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f} ms"


def bench_sample(label: str, gpus: int, n: int, real: bool = False) -> float:
    if gpus and not real:
        from fake_nvml import FakeNvml

        sys.modules["pynvml"] = FakeNvml(gpus=gpus, mode="trace")
    sampler = build_sampler(SamplerConfig(enable_gpu=bool(gpus) or real))
    try:
        for collector in sampler.collectors:  # slow values in place, as in steady state
            if collector.slow_interval:
                sampler.read_slow(collector)
        sampler.sample_once()
        times = cpu_times_per_call(sampler.sample_once, n)
    finally:
        sampler.close()
        if not real:
            sys.modules.pop("pynvml", None)
    med = statistics.median(times)
    print(f"  {label:<38} median {ms(med)}   p90 {ms(statistics.quantiles(times, n=10)[-1])}"
          f"   ({len(sampler.latest.metrics)} metrics)")
    return med


def sampler_share(seconds: float) -> float:
    sampler = build_sampler(SamplerConfig(interval=1.0, enable_gpu=False))
    sampler.start()
    time.sleep(seconds)
    stats = sampler.stats()
    sampler.close()
    return stats["cpu_share_pct"]


def naive_share(seconds: float) -> float:
    used = [0.0]
    stop = threading.Event()

    def loop() -> None:
        t0 = time.thread_time()
        while not stop.is_set():
            start = time.monotonic()
            naive_sample()
            stop.wait(max(0.0, 1.0 - (time.monotonic() - start)))
        used[0] = time.thread_time() - t0

    thread = threading.Thread(target=loop)
    t_start = time.monotonic()
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join()
    return used[0] / (time.monotonic() - t_start) * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--real-gpus", action="store_true",
                        help="also time a sample with this machine's real NVIDIA GPUs")
    args = parser.parse_args()
    print(f"host: {psutil.cpu_count()} logical CPUs, {len(psutil.pids())} processes, "
          f"Python {sys.version.split()[0]}, psutil {psutil.__version__}")
    print(f"\nCPU time of one sample (median of {args.samples}):")
    host = bench_sample("tracklab, host only", 0, args.samples)
    gpu8 = bench_sample("tracklab, host + 8 fake H200s", 8, args.samples)
    if args.real_gpus:
        bench_sample("tracklab, host + this machine's GPUs", 0, args.samples, real=True)
    naive_n = max(20, args.samples // 10)
    naive = statistics.median(cpu_times_per_call(naive_sample, naive_n))
    print(f"  {'naive baseline (median of ' + str(naive_n) + ')':<38} median {ms(naive)}")

    print(f"\nCPU share of one core at 1 Hz over {args.seconds:g} s:")
    ours = sampler_share(args.seconds)
    theirs = naive_share(args.seconds)
    print(f"  tracklab sampler (both threads)        {ours:8.4f} %")
    print(f"  naive baseline                         {theirs:8.4f} %")

    print("\nResults against targets:")
    rows = [
        ("host sample CPU", f"{host * 1e3:.3f} ms", "<= 0.5 ms", host <= 0.5e-3),
        ("host + 8 GPUs sample CPU", f"{gpu8 * 1e3:.3f} ms", "<= 1 ms", gpu8 <= 1e-3),
        ("sampler share at 1 Hz", f"{ours:.4f} %", "<= 0.1 %", ours <= 0.1),
    ]
    for name, value, target, ok in rows:
        print(f"  {name:<28} {value:>12}   target {target:<10} {'met' if ok else 'NOT met'}")
    print(f"  naive / tracklab per sample: {naive / host:6.1f}x   "
          f"per-second share: {theirs / ours if ours else float('inf'):6.1f}x")


if __name__ == "__main__":
    main()
