"""A one-shot reading of this machine: metrics over a short window, plus its static facts."""

from __future__ import annotations

import time
from typing import Any

from tracklab_jupyter.sampler.factory import SamplerConfig, build_sampler

DEFAULT_WINDOW_S = 0.5


def take_snapshot(window: float = DEFAULT_WINDOW_S,
                  config: SamplerConfig | None = None) -> dict[str, Any]:
    """Read every collector twice, ``window`` seconds apart, so rates are real.

    Returns ``{"time", "node", "metrics": {name: value}, "info": {...}}``; ``notes`` lists
    sources that were unavailable (no NVIDIA driver, say).
    """
    if not 0 < window <= 60:
        raise ValueError(f"snapshot window must be between 0 and 60 seconds, got {window!r}")
    config = config or SamplerConfig()
    sampler = build_sampler(config)
    try:
        start = time.monotonic()
        sampler.sample_once()  # first reading: primes counters and CPU times
        for collector in sampler.collectors:
            if collector.slow_interval > 0:
                sampler.read_slow(collector)
        time.sleep(max(0.0, window - (time.monotonic() - start)))
        sample = sampler.sample_once()
        metrics = {k: v for k, v in sample.metrics.items() if not k.startswith("tracklab.")}
        return {"time": sample.time, "node": sample.node, "metrics": metrics,
                "info": sampler.info, "notes": list(config.notes)}
    finally:
        sampler.close()
