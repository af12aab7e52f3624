"""tracklab: the public API of tracklab-jupyter.

Kept thin and quick to import: everything heavy is imported when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tracklab_jupyter._version import __version__

if TYPE_CHECKING:  # only for the annotations: importing tracklab stays light
    import pandas as pd

    from tracklab_jupyter.cluster.monitor import ClusterMonitor
    from tracklab_jupyter.notebook.cluster_widget import ClusterWidget
    from tracklab_jupyter.notebook.monitor_widget import MonitorWidget
    from tracklab_jupyter.runs.gpu import GpuLogger
    from tracklab_jupyter.runs.run import Run
    from tracklab_jupyter.system_history import History

__all__ = ["__version__", "cells", "cluster_widget", "connect_cluster", "finish", "history",
           "init", "load_ipython_extension", "log",
           "monitor_gpu", "runs", "snapshot", "unload_ipython_extension", "widget"]


def snapshot(window: float = 0.5, *, gpus: str | list[str] | None = None) -> dict[str, Any]:
    """Read this machine once: ``{"time", "node", "metrics": {name: value}, "info": {...}}``.

    Rates (bytes/s) are measured over ``window`` seconds. ``gpus`` restricts NVIDIA GPUs to
    indices or UUIDs (default: all, or ``CUDA_VISIBLE_DEVICES`` when it is set). Metric names
    are listed in docs/METRICS.md.
    """
    from tracklab_jupyter.sampler.factory import SamplerConfig
    from tracklab_jupyter.snapshot import take_snapshot

    return take_snapshot(window, SamplerConfig(gpus=gpus))


def history(metrics: Any = None, start: Any = None, end: Any = None, step: Any = None,
            node: Any = None, agg: str = "mean", data_dir: Any = None,
            run: Any = None) -> History:
    """Recorded metrics as a :class:`~tracklab_jupyter.system_history.History`; call
    ``.to_pandas()`` on it for a DataFrame. See :func:`tracklab_jupyter.system_history.history`.

    ``metrics``: a name, a glob (``"gpu.*.util_pct"``) or a list; ``start``/``end``: a
    datetime, epoch seconds, ISO text or ``"-15min"`` (default: the last hour);
    ``step``: None or ``"10s"``, ``"1min"``...; ``agg``: ``mean``, ``min``, ``max`` or
    ``last``. ``run``: a run (or its id): the range and node become the run's lifetime and
    host (``start``/``end`` may narrow it).
    """
    from tracklab_jupyter.system_history import history as _history

    if run is not None:
        from tracklab_jupyter.runs.run_history import run_span
        from tracklab_jupyter.runs.store import RunStore
        from tracklab_jupyter.store.timespec import parse_time

        with RunStore(data_dir) as store:
            record = store.get_run(getattr(run, "id", run))
        run_start, run_end = run_span(record)
        start = run_start if start is None else max(parse_time(start), run_start)
        end = run_end if end is None else min(parse_time(end), run_end)
        node = record["node"] if node is None else node
    return _history(metrics=metrics, start="-1h" if start is None else start, end=end,
                    step=step, node=node, agg=agg, data_dir=data_dir)


def cells(start: Any = "-24h", end: Any = None, kernel: str | None = None,
          data_dir: Any = None, limit: int = 1000) -> pd.DataFrame:
    """Cells run with ``%tracklab cells on`` and their costs, as a pandas DataFrame.

    One row per cell, sorted by start: ``start``, ``end`` (UTC), ``execution_count``,
    ``source`` (the cell's first line), ``notebook``, ``kernel_id``, ``wall_s``, ``cpu_s``
    (the kernel's process tree), ``rss_start_bytes``, ``rss_end_bytes``,
    ``rss_peak_bytes``, ``rss_change_bytes`` (the tree's RSS), ``host_mem_peak_bytes``, and
    per accelerator ``gpu.N.mem_peak_bytes`` (the tree's memory on it) and
    ``gpu.N.util_mean_pct``. ``start``/``end`` as for :func:`history`; ``kernel``: None
    (all), ``"this"`` (this kernel) or a kernel id; ``limit``: the newest 1-100000 cells.
    See docs/CELLS.md.
    """
    from tracklab_jupyter.notebook.cells_table import cells_frame

    return cells_frame(start=start, end=end, kernel=kernel, data_dir=data_dir, limit=limit)


def init(project: str | None = None, name: str | None = None, config: Any = None,
         tags: list[str] | None = None, system_monitor: bool = True, notes: str | None = None,
         data_dir: Any = None) -> Run:
    """Start a run and return it (:class:`~tracklab_jupyter.runs.run.Run`).

    ``project``: 1-128 letters, digits, ``.``, ``_``, ``-`` (default ``$TRACKLAB_PROJECT``
    or ``"default"``); ``name``: default ``run-N``; ``config``: a dict (or argparse
    Namespace or dataclass) of settings; ``tags``: strings; ``system_monitor``: make sure
    this host is sampled and record this process tree's CPU, memory, threads and GPU
    memory. Works in notebooks and plain scripts; use ``run.log({...})`` and
    ``run.finish()`` or a ``with`` block. See docs/RUNS.md.
    """
    from tracklab_jupyter.runs.run import init as _init

    return _init(project=project, name=name, config=config, tags=tags,
                 system_monitor=system_monitor, notes=notes, data_dir=data_dir)


def log(metrics: Any, step: int | None = None) -> None:
    """``run.log`` on the run :func:`init` started last in this process."""
    from tracklab_jupyter.runs.run import current_run

    run = current_run()
    if run is None:
        raise RuntimeError("no run in progress: call tracklab.init(project=...) first")
    run.log(metrics, step=step)


def finish() -> None:
    """Finish the run :func:`init` started last in this process (if any)."""
    from tracklab_jupyter.runs.run import current_run

    run = current_run()
    if run is not None:
        run.finish()


def monitor_gpu(run_id: Any) -> GpuLogger:
    """A logger that puts this host's accelerator readings into a run, when asked.

    ``tracklab.monitor_gpu(run.id).log_gpu_metrics()`` logs, once, the current value of
    every accelerator metric of this host's latest sample (``gpu.N.*``, and ``npu.N.*`` /
    ``tpu.N.*`` on such hosts; per-process values left out) as one more step of the run, and
    returns them. It starts nothing in the background: call ``log_gpu_metrics()`` again for
    each reading you want in the run (the host's samples are recorded continuously anyway;
    see ``tracklab.history(..., run=run)``). ``run_id``: a run or its id. The name is the
    original feature list's. See docs/RUNS.md.
    """
    from tracklab_jupyter.runs.gpu import GpuLogger

    return GpuLogger(getattr(run_id, "id", run_id))


def runs(project: str | None = None, state: str | None = None, limit: int = 1000,
         data_dir: Any = None) -> pd.DataFrame:
    """The runs in the store, newest first, as a pandas DataFrame indexed by run id."""
    from tracklab_jupyter.runs.listing import runs_frame

    return runs_frame(project=project, state=state, limit=limit, data_dir=data_dir)


def widget(metrics: str | list[str] | None = None, window: float | str | None = None,
           node: str | None = None, height: int | None = None, run: Any = None,
           cluster: bool = False) -> MonitorWidget | ClusterWidget:
    """Live charts of this machine: CPU, memory, disk, network and one card per GPU.

    ``metrics``: globs to show (default all); ``window``: seconds or ``"5m"``, ``"1h"``
    of data shown (default 5 minutes; backfilled from history, then live); ``height``:
    chart height in px. ``run``: a run (or its id) to follow instead: its logged metrics
    by step, its process tree, and the host over the run's lifetime.
    ``cluster=True``: the same as :func:`cluster_widget` (``window`` only).
    Works with or without the Jupyter server extension: the kernel reads the recorder's
    store, or records itself when nothing else does.
    """
    from tracklab_jupyter.process_monitor import process_monitor

    if cluster:
        given = [name for name, value in (("run", run), ("metrics", metrics), ("node", node),
                                          ("height", height)) if value is not None]
        if given:
            raise ValueError(
                f"tracklab.widget(cluster=True) shows every node and takes only window=; "
                f"drop {', '.join(f'{n}=' for n in given)} (for one run use "
                "tracklab.widget(run=...), for this host tracklab.widget(); the cluster "
                "view is also tracklab.cluster_widget(window=...))")
        return cluster_widget(window=window)
    from tracklab_jupyter.notebook.monitor_widget import make_widget

    return make_widget(process_monitor(), metrics=metrics, window=window, node=node,
                       height=height, run=run)


def cluster_widget(window: float | str | None = None) -> ClusterWidget:
    """Live view of the cluster: one row per node (this host first, then the nodes of the
    cluster attached with :func:`connect_cluster`) with its state and CPU, memory and GPU
    sparklines over ``window``, the cluster's totals and use, and a selected node's details.

    ``window``: seconds or ``"5m"``, ``"1h"`` of data shown, 10 s to 1 day (default 5
    minutes; backfilled from history, then live). Without an attached cluster it shows this
    host alone and how to attach one. See docs/CLUSTER.md.
    """
    from tracklab_jupyter.notebook.cluster_widget import make_cluster_widget
    from tracklab_jupyter.process_monitor import process_monitor

    return make_cluster_widget(process_monitor(), window=window)


def connect_cluster(cluster: Any, *, per_worker: bool = False,
                    node_timeout: float = 10.0) -> ClusterMonitor:
    """Monitor a cluster's nodes from this kernel: ``cluster`` is a
    ``distributed.Client``, the ``ray`` module (connected), or an address such as
    ``"dask://127.0.0.1:8786"``, ``"ray:auto"``. Each host is sampled once per interval
    with the same collectors as this one and stored under its name; see
    :func:`cluster_widget`, ``history(node=...)`` and docs/CLUSTER.md.
    ``per_worker``: each Dask worker or Ray node is its own node even on one host.
    Returns the cluster monitor now sampling (attaching another cluster replaces it)."""
    from tracklab_jupyter.process_monitor import process_monitor

    monitor = process_monitor()
    monitor.wait_started(15.0)
    return monitor.attach_cluster(cluster, per_worker=per_worker, node_timeout=node_timeout)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext tracklab``: registers the ``%tracklab`` magic (imports nothing heavy)."""
    from tracklab_jupyter.notebook.magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext tracklab``: stops tracklab's threads in this kernel, removes the magic."""
    from tracklab_jupyter.notebook.magics import unload

    unload(ipython)
