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

Then each vendor backend on its own (issue 12), through its fake replaying real recordings
(the fakes' own Python or C cost included, so these are upper bounds of our part): 8 NVIDIA
GPUs (NVML), 8 AMD GPUs through amdsmi and through the amdgpu sysfs files, 8 Ascend chips
through a compiled fake libdcmi.so, and 4 TPU chips whose values come over gRPC from a real
server in this process. Per backend: the CPU time of ``read()`` (the 1 Hz path) per device,
and of ``read_slow()`` (its own thread). Target: <= 0.1 ms per device per sample on the 1 Hz
path; anything slower (a subprocess, a gRPC call) on the slow thread.

    python bench/sampler.py [--samples 300] [--seconds 30] [--only-backends]

``--naive-loop [SECONDS]`` only runs the naive baseline once a second, for SECONDS or until
killed: bench/recorder.py starts it as a process beside the real recorder.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def naive_loop(seconds: float = 0.0) -> None:
    """naive_sample() at 1 Hz for ``seconds`` (0: until killed), as its own process."""
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
    next_tick = time.monotonic()
    while time.monotonic() < deadline:
        naive_sample()
        next_tick += 1.0  # a fixed phase, as a 1 Hz collector keeps it
        time.sleep(max(0.0, next_tick - time.monotonic()))


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


# -- one vendor backend at a time ------------------------------------------------------------

@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def module(name: str, fake: object) -> Iterator[None]:
    old = sys.modules.get(name)
    sys.modules[name] = fake  # type: ignore[assignment]
    try:
        yield
    finally:
        if old is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = old


@contextlib.contextmanager
def nvidia_host(tmp: Path) -> Iterator[str]:
    from fake_nvml import FakeNvml

    with module("pynvml", FakeNvml(gpus=8, mode="trace")):
        yield "nvidia"


@contextlib.contextmanager
def amdsmi_host(tmp: Path) -> Iterator[str]:
    from fake_amdsmi import FakeAmdSmi

    with environment(TRACKLAB_HOST_ROOT=str(ROOT / "tests/fixtures/amdgpu-sysfs")), \
            module("amdsmi", FakeAmdSmi(gpus=8, mode="mi250")):
        yield "amd"


@contextlib.contextmanager
def amd_sysfs_host(tmp: Path) -> Iterator[str]:
    """The recorded RX 7900 XTX card directory eight times (card1 .. card8), no amdsmi."""
    recorded = ROOT / "tests/fixtures/amdgpu-sysfs/sys"
    host = tmp / "amd-sysfs"
    shutil.copytree(recorded / "module", host / "sys" / "module")
    for n in range(1, 9):
        shutil.copytree(recorded / "class/drm/card1", host / f"sys/class/drm/card{n}",
                        symlinks=True)
    with environment(TRACKLAB_HOST_ROOT=str(host)), module("amdsmi", None):
        yield "amd"


@contextlib.contextmanager
def ascend_host(tmp: Path) -> Iterator[str]:
    from conftest_ascend import FAKE_DIR, FakeDcmi, dcmi_data

    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("gcc missing: the fake libdcmi.so cannot be built")
    lib = tmp / "libdcmi.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(lib),
                    str(FAKE_DIR / "fake_dcmi.c")], check=True, capture_output=True)
    data = tmp / "910b3-x8.dcmi"
    data.write_text(dcmi_data(ROOT / "tests/fixtures/ascend/910b3-x8"))
    chips = FakeDcmi(lib).load(data)
    (tmp / "ascend" / "dev").mkdir(parents=True)
    for i in range(chips):
        (tmp / "ascend" / "dev" / f"davinci{i}").touch()
    with environment(TRACKLAB_HOST_ROOT=str(tmp / "ascend"), TRACKLAB_DCMI_LIBRARY=str(lib)):
        yield "ascend"


@contextlib.contextmanager
def tpu_host(tmp: Path) -> Iterator[str]:
    from fake_tpu_runtime import FakeTpuRuntime, write_pci_tree

    root = write_pci_tree(tmp / "tpu", chips=4, generation="v6e")
    runtime = FakeTpuRuntime("v6e-4-static").start()
    try:
        with environment(TRACKLAB_HOST_ROOT=str(root),
                         TRACKLAB_TPU_METRICS_ADDR=runtime.address):
            yield "tpu"
    finally:
        runtime.stop()


BACKEND_HOSTS = (
    ("NVIDIA, 8 GPUs (fake NVML)", nvidia_host),
    ("AMD, 8 GPUs via amdsmi (fake)", amdsmi_host),
    ("AMD, 8 GPUs via sysfs files", amd_sysfs_host),
    ("Ascend, 8 chips via DCMI (fake .so)", ascend_host),
    ("TPU, 4 chips over gRPC (fake runtime)", tpu_host),
)


def bench_backend(label: str, host: Callable[[Path], Any], n: int) -> float | None:
    """CPU time of one ``read()`` per device (median of ``n``); prints the slow path too."""
    from tracklab_jupyter.accelerators.registry import open_backends

    with tempfile.TemporaryDirectory() as tmp:
        try:
            with host(Path(tmp)) as name:
                backends, notes = open_backends(only=[name])
                if not backends:
                    print(f"  {label:<38} not measured: {'; '.join(notes)}")
                    return None
                (backend,) = backends
                try:
                    devices = len(backend.devices())
                    slow = cpu_times_per_call(backend.read_slow, 5) if backend.slow_interval \
                        else [0.0]
                    backend.read()
                    fast = cpu_times_per_call(backend.read, n)
                finally:
                    backend.close()
        except Exception as exc:  # a fake that needs a tool this machine lacks
            print(f"  {label:<38} not measured: {type(exc).__name__}: {exc}")
            return None
    per_device = statistics.median(fast) / devices
    slow_text = (f"slow path {ms(statistics.median(slow))} every {backend.slow_interval:g} s"
                 if backend.slow_interval else "no slow path")
    print(f"  {label:<38} read() {per_device * 1e3:7.4f} ms per device   {slow_text}")
    return per_device


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
    parser.add_argument("--only-backends", action="store_true",
                        help="measure only the vendor backends (issue 12)")
    parser.add_argument("--naive-loop", type=float, nargs="?", const=0.0, metavar="SECONDS",
                        help="only run the naive baseline at 1 Hz, for SECONDS or until "
                             "killed (the baseline process of bench/recorder.py)")
    args = parser.parse_args()
    if args.naive_loop is not None:
        naive_loop(args.naive_loop)
        return
    if args.only_backends:
        backends_table(args.samples)
        return
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
    backends_table(args.samples)


def backends_table(samples: int) -> None:
    print(f"\nEach vendor backend alone (median of {samples} reads; the fakes' cost included):")
    results = [(label, bench_backend(label, host, samples)) for label, host in BACKEND_HOSTS]
    print("\nBackends against the target (read() <= 0.1 ms per device per sample):")
    for label, per_device in results:
        if per_device is not None:
            verdict = "met" if per_device <= 0.1e-3 else "NOT met"
            print(f"  {label:<38} {per_device * 1e3:7.4f} ms   {verdict}")


if __name__ == "__main__":
    main()
