"""tracklab: the public API of tracklab-jupyter.

Kept thin and quick to import: everything heavy is imported when first used.
"""

from __future__ import annotations

from typing import Any

from tracklab_jupyter._version import __version__

__all__ = ["__version__", "snapshot"]


def snapshot(window: float = 0.5, *, gpus: str | list[str] | None = None) -> dict[str, Any]:
    """Read this machine once: ``{"time", "node", "metrics": {name: value}, "info": {...}}``.

    Rates (bytes/s) are measured over ``window`` seconds. ``gpus`` restricts NVIDIA GPUs to
    indices or UUIDs (default: all, or ``CUDA_VISIBLE_DEVICES`` when it is set). Metric names
    are listed in docs/METRICS.md.
    """
    from tracklab_jupyter.sampler.factory import SamplerConfig
    from tracklab_jupyter.snapshot import take_snapshot

    return take_snapshot(window, SamplerConfig(gpus=gpus))
