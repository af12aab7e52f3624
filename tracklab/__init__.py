"""tracklab: the public API of tracklab-jupyter.

Kept thin and quick to import: everything heavy is imported when first used.
"""

from __future__ import annotations

from typing import Any

from tracklab_jupyter._version import __version__

__all__ = ["__version__", "history", "load_ipython_extension", "snapshot",
           "unload_ipython_extension", "widget"]


def snapshot(window: float = 0.5, *, gpus: str | list[str] | None = None) -> dict[str, Any]:
    """Read this machine once: ``{"time", "node", "metrics": {name: value}, "info": {...}}``.

    Rates (bytes/s) are measured over ``window`` seconds. ``gpus`` restricts NVIDIA GPUs to
    indices or UUIDs (default: all, or ``CUDA_VISIBLE_DEVICES`` when it is set). Metric names
    are listed in docs/METRICS.md.
    """
    from tracklab_jupyter.sampler.factory import SamplerConfig
    from tracklab_jupyter.snapshot import take_snapshot

    return take_snapshot(window, SamplerConfig(gpus=gpus))


def history(metrics: Any = None, start: Any = "-1h", end: Any = None, step: Any = None,
            node: Any = None, agg: str = "mean", data_dir: Any = None) -> Any:
    """Recorded metrics as a :class:`~tracklab_jupyter.history.History`; call
    ``.to_pandas()`` on it for a DataFrame. See :func:`tracklab_jupyter.history.history`.

    ``metrics``: a name, a glob (``"gpu.*.util_pct"``) or a list; ``start``/``end``: a
    datetime, epoch seconds, ISO text or ``"-15min"``; ``step``: None or ``"10s"``,
    ``"1min"``...; ``agg``: ``mean``, ``min``, ``max`` or ``last``.
    """
    from tracklab_jupyter.history import history as _history

    return _history(metrics=metrics, start=start, end=end, step=step, node=node, agg=agg,
                    data_dir=data_dir)


def widget(metrics: str | list[str] | None = None, window: float | str = "5m",
           node: str | None = None, height: int | None = None) -> Any:
    """Live charts of this machine: CPU, memory, disk, network and one card per GPU.

    ``metrics``: globs to show (default all); ``window``: seconds or ``"5m"``, ``"1h"``
    of data shown (backfilled from history, then live); ``height``: chart height in px.
    Works with or without the Jupyter server extension: the kernel reads the recorder's
    store, or records itself when nothing else does.
    """
    from tracklab_jupyter.notebook.kernel_monitor import kernel_monitor
    from tracklab_jupyter.notebook.widget import make_widget

    return make_widget(kernel_monitor(), metrics=metrics, window=window, node=node,
                       height=height)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext tracklab``: registers the ``%tracklab`` magic (imports nothing heavy)."""
    from tracklab_jupyter.notebook.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext tracklab``: stops tracklab's threads in this kernel, removes the magic."""
    from tracklab_jupyter.notebook.magics import unload

    unload(ipython)
