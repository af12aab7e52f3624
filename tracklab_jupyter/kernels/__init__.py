"""Per-kernel resources: which notebook uses what (placeholder, filled in by the kernels
work)."""

from __future__ import annotations

from typing import Any


def check_kernel_interval(value: float, source: str = "kernel_interval") -> float:
    """Raise ValueError naming ``source`` unless 0.5 <= value <= 3600."""
    if not 0.5 <= value <= 3600:
        raise ValueError(f"{source}: must be between 0.5 and 3600 seconds, got {value!r}")
    return value


def attach_kernels(app: Any, monitor: Any, interval: float = 5.0) -> None:
    """Track the Jupyter server ``app``'s kernels on ``monitor`` (``monitor.kernels``)."""
