"""The sampler checks: what one sample costs on this machine, per collector, and which
reads run on the slow thread (every few seconds, off the 1 Hz path).

From the command line the collectors are opened fresh and timed; inside a running server
the sampler's own figures are used instead (a second reader would disturb the CPU
collector's deltas and compete for the vendor libraries' locks).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from tracklab_jupyter.collectors.base import Collector
from tracklab_jupyter.doctor.report import Finding, ok, skipped, warning

SECTION = "sampler"
#: A sample costing more than this (wall) takes over 2 % of a core at 1 Hz.
SLOW_SAMPLE_MS = 20.0
#: Fast reads timed per collector, after one warm-up read.
_READS = 5
_FIX_SLOW = ("raise the interval (TRACKLAB_INTERVAL, c.TrackLab.interval) or turn the "
             "costly collector off (c.TrackLab.enable_<name>, serve --no-enable-<name>)")


def sampler_checks(gpus: Sequence[str] | None = None, interval: float = 1.0) -> list[Finding]:
    """Open the collectors the monitor would, time their reads, close them."""
    from tracklab_jupyter.sampler.factory import SamplerConfig, build_collectors

    collectors = build_collectors(SamplerConfig(gpus=list(gpus) if gpus else None))
    try:
        return time_collectors(collectors, interval)
    finally:
        for collector in collectors:
            collector.close()


def time_collectors(collectors: Sequence[Collector], interval: float) -> list[Finding]:
    fast: dict[str, tuple[float, float]] = {}
    for collector in collectors:
        collector.read()  # the first read primes deltas and caches
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        for _ in range(_READS):
            collector.read()
        fast[collector.name] = ((time.perf_counter() - wall0) / _READS * 1e3,
                                (time.thread_time() - cpu0) / _READS * 1e3)
    wall = sum(w for w, _c in fast.values())
    cpu = sum(c for _w, c in fast.values())
    parts = ", ".join(f"{name} {w:.2f}" for name, (w, _c) in fast.items())
    out = [_cost(wall, cpu, interval, f" ({parts} ms)")]
    for collector in collectors:
        if collector.slow_interval > 0:
            out.append(_slow(collector))
    return out


def _cost(wall_ms: float, cpu_ms: float, interval: float, parts: str = "") -> Finding:
    share = cpu_ms / 1e3 / interval * 100
    found = (f"one sample: {wall_ms:.2f} ms wall, {cpu_ms:.2f} ms CPU{parts}; "
             f"{share:.3f} % of a core at one sample per {interval:g} s")
    if wall_ms > SLOW_SAMPLE_MS:
        return warning(SECTION, "cost", found, _FIX_SLOW, wall_ms=wall_ms, cpu_ms=cpu_ms)
    return ok(SECTION, "cost", found, wall_ms=round(wall_ms, 3), cpu_ms=round(cpu_ms, 3))


def _slow(collector: Collector) -> Finding:
    wall0 = time.perf_counter()
    reading = collector.read_slow()
    took = (time.perf_counter() - wall0) * 1e3
    names = sorted({_field(n) for n in (*reading.gauges, *reading.counters)})
    moved = moved_fields(collector)
    what = (f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''} read" if names
            else "a slow read, with nothing to give on this machine,")
    found = (f"{collector.name}: {what} every {collector.slow_interval:g} s on its own "
             f"thread ({took:.1f} ms)")
    if moved:
        found += f"; moved there after repeated slow calls: {', '.join(moved)}"
    return ok(SECTION, "slow thread", found, read_ms=round(took, 3), moved=moved)


def moved_fields(collector: Collector) -> list[str]:
    """Fields a backend demoted to its slow path at run time (Ascend's slow DCMI calls)."""
    try:
        info: dict[str, Any] = collector.info()
    except Exception:
        return []
    return [str(f) for f in info.get("slow_fields", [])]


def _field(metric: str) -> str:
    """``gpu.3.energy_j`` -> ``energy_j``; ``disk./data.used_bytes`` -> ``disk.used_bytes``."""
    parts = re.sub(r"^(gpu|npu|tpu)\.\d+\.", "", metric).split(".")
    return f"{parts[0]}.{parts[-1]}" if len(parts) > 2 else ".".join(parts)


def running_sampler_checks(stats: dict[str, Any] | None,
                           collectors: Sequence[Collector] = ()) -> list[Finding]:
    """The same verdicts from a running sampler's :meth:`~Sampler.stats`."""
    if stats is None:
        return [skipped(SECTION, "cost", "this server reads what another process records; "
                        "that process's sampler is checked by its own doctor")]
    if not stats.get("samples"):
        return [warning(SECTION, "cost", "the sampler has not taken a sample yet",
                        "wait a few seconds; if it stays so, look at the server's log")]
    out = [_cost(float(stats.get("last_sample_ms") or 0.0),
                 float(stats.get("mean_sample_cpu_ms") or 0.0),
                 float(stats.get("interval_s") or 1.0),
                 f" (mean over {stats['samples']} samples)")]
    for collector in collectors:
        if collector.slow_interval > 0:
            moved = moved_fields(collector)
            out.append(ok(SECTION, "slow thread", f"{collector.name}: slow reads every "
                          f"{collector.slow_interval:g} s on their own thread"
                          + (f"; moved there: {', '.join(moved)}" if moved else ""),
                          moved=moved))
    return out
