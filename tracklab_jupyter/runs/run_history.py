"""A run's history: its logged metrics, its process tree and the host's system metrics over
its lifetime, joined on time.

    >>> df = run.history().to_pandas()
    >>> df[["step", "loss", "gpu.0.util_pct", "tree.rss_bytes"]]
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from tracklab_jupyter.runs.store import RunStore

if TYPE_CHECKING:
    import pandas as pd

    from tracklab_jupyter.system_history import History


def run_span(run: dict[str, Any], now: float | None = None) -> tuple[float, float]:
    """``(start, end)`` of a run; a running one ends now."""
    now = time.time() if now is None else now
    end = run["end"] if run["end"] is not None else max(now, run["heartbeat"])
    return run["start"], max(end, run["start"] + 1e-3)


class RunHistory:
    """What :meth:`Run.history` returns. ``run``: the run's record (docs/RUNS.md ``Run``);
    ``metrics``: its logged metrics as columns; ``process``: its process-tree series;
    ``system``: a :class:`~tracklab_jupyter.system_history.History` of the host over the run."""

    def __init__(self, run: dict[str, Any], metrics: dict[str, Any], process: dict[str, Any],
                 system: History | None) -> None:
        self.run = run
        self.metrics = metrics
        self.process = process
        self.system = system

    def __repr__(self) -> str:
        return (f"<RunHistory {self.run['id']} ({self.run['project']}/{self.run['name']}): "
                f"{len(self.metrics['metrics'])} run metrics × {len(self.metrics['step'])} "
                f"steps, system {self.system!r}>")

    def to_pandas(self, tolerance: float | None = None) -> pd.DataFrame:
        """One row per logged step (or per system sample when nothing was logged), UTC
        ``time`` index, columns ``step``, the run's metrics, then the nearest system sample
        and process-tree reading within ``tolerance`` seconds (default: twice the system
        data's spacing, at least 2 s). A system column named like a run metric is renamed
        ``system:<name>``."""
        import pandas as pd

        def frame(columns: dict[str, Any], times: list[float]) -> pd.DataFrame:
            index = pd.DatetimeIndex(pd.to_datetime(times, unit="s", utc=True),
                                     name="time").as_unit("ns")
            return pd.DataFrame({k: pd.array(v, dtype="Float64").astype("float64")
                                 if k != "step" else v for k, v in columns.items()},
                                index=index)

        user = frame({"step": self.metrics["step"], **self.metrics["metrics"]},
                     self.metrics["time"])
        proc = frame(self.process["metrics"], self.process["time"])
        system = self.system.to_pandas() if self.system is not None else pd.DataFrame()
        if isinstance(system.columns, pd.MultiIndex):
            system.columns = [f"{n}:{m}" for n, m in system.columns]
        system.columns = list(system.columns)
        if isinstance(system.index, pd.DatetimeIndex):
            system.index = system.index.as_unit("ns")  # merge_asof needs one resolution
        if tolerance is None:
            spacing = self.system.step if self.system is not None and self.system.step else 1.0
            tolerance = max(2.0, 2 * spacing)
        base = user if len(user) else system
        out = base.sort_index()
        for other in (system if base is user else None, proc):
            if other is None or not len(other.columns):
                continue
            # A run metric named like a system one (monitor_gpu logs gpu.N.*): the system
            # column becomes "system:<name>".
            other = other.rename(columns={c: f"system:{c}" for c in other.columns
                                          if c in out.columns})
            out = pd.merge_asof(out, other.sort_index(), left_index=True, right_index=True,
                                direction="nearest",
                                tolerance=pd.Timedelta(seconds=tolerance))
        if "step" in out.columns:
            out["step"] = out["step"].astype("Int64")
        return out


def run_history(run_id: str, metrics: Any = None, system: Any = None, step: Any = None,
                agg: str = "mean", data_dir: str | os.PathLike[str] | None = None
                ) -> RunHistory:
    """A run's :class:`RunHistory`. ``metrics``: the run's metrics (names or globs, None
    for all); ``system``: system metrics (None for all, ``[]`` for none); ``step`` and
    ``agg`` as in :func:`tracklab.history` for the system part."""
    from tracklab_jupyter.system_history import history

    with RunStore(data_dir) as store:
        run = store.get_run(run_id)
        names = [metrics] if isinstance(metrics, str) else metrics
        logged = store.metrics(run_id, names)
        process = store.process_metrics(run_id)
    start, end = run_span(run)
    hist = None
    if system is None or system:
        hist = history(system, start=start, end=end, step=step, node=run["node"], agg=agg,
                       data_dir=data_dir)
    return RunHistory(run, logged, process, hist)
