"""Samples as columnar float64 buffers, the widget's wire format (js/PROTOCOL.md)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tracklab_jupyter.metrics.sample import Sample


def select(names: Iterable[str], globs: Sequence[str]) -> list[str]:
    """Names matching any glob (all names when there are no globs), sorted."""
    if not globs:
        return sorted(names)
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs))


#: Per-kernel series (``kernel.<id>.*``) ride in the host's samples once per kernel pass;
#: the host panels do not draw them, so they are sent only when a glob names them.
KERNEL_PREFIX = "kernel."


def to_columns(samples: Sequence[Sample], globs: Sequence[str]) -> tuple[dict[str, Any],
                                                                         list[bytes]]:
    """``({"names", "n"}, [times, values])``: times as float64 epoch seconds, values
    series-major float64 with NaN where a metric was absent. Without globs, ``kernel.*``
    series are left out, and so are samples holding nothing else (rows a server that only
    reads the store wrote for its kernels)."""
    names = select({k for s in samples for k in s.metrics}, globs)
    if not globs:
        names = [n for n in names if not n.startswith(KERNEL_PREFIX)]
        samples = [s for s in samples
                   if any(not k.startswith(KERNEL_PREFIX) for k in s.metrics)]
    n = len(samples)
    times = np.fromiter((s.time for s in samples), dtype=np.float64, count=n)
    values = np.full((len(names), n), np.nan)
    index = {name: i for i, name in enumerate(names)}
    for j, sample in enumerate(samples):
        for name, value in sample.metrics.items():
            i = index.get(name)
            if i is not None:
                values[i, j] = value
    return {"names": names, "n": n}, [times.tobytes(), values.tobytes()]


def table_columns(x: Sequence[float], metrics: dict[str, Sequence[float | None]],
                  globs: Sequence[str], max_rows: int | None = None
                  ) -> tuple[dict[str, Any], list[bytes]]:
    """A run's columnar table (``{"time" or "step": [...], "metrics": {name: [...]}}`` of
    docs/RUNS.md) in the same wire format: ``x`` then the selected columns, None as NaN.
    With ``max_rows``, a longer table is thinned to that many evenly spaced rows."""
    names = select(metrics, globs)
    xs = np.asarray(x, dtype=np.float64)
    values = (np.array([metrics[n] for n in names], dtype=np.float64) if names
              else np.empty((0, len(xs))))
    if max_rows is not None and len(xs) > max_rows:
        keep = np.unique(np.linspace(0, len(xs) - 1, max_rows).round().astype(np.int64))
        xs, values = xs[keep], values[:, keep]
    buffers = [xs.tobytes(), np.ascontiguousarray(values).tobytes()]
    return {"names": names, "n": len(xs)}, buffers


class StepColumns:
    """A run's logged metrics for one front end, as ``data`` messages with x = step.

    The front end appends rows with a step above its last one. More values logged at its
    last step (``log(..., step=n)`` twice) come again as that whole row, merged with what
    was sent before, with ``"from": n`` so the front end drops its row ``n`` first. Values
    logged at older steps are left for the next backfill (a new view, a new window)."""

    def __init__(self, globs: Sequence[str]) -> None:
        self.globs = list(globs)
        self.last_step: int | None = None
        self.last_row: dict[str, float] = {}

    def backfill(self, table: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
        """The whole table (``RunMetrics``), replacing what the front end holds."""
        self.last_step, self.last_row = None, {}
        out = self.update(table)
        if out is None:  # nothing logged yet: still an (empty) backfill
            return {"names": [], "n": 0}, [b"", b""]
        return out

    def update(self, table: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]] | None:
        """A ``metric_update`` batch, or None when nothing in it is for the front end."""
        names = select(table.get("metrics", {}), self.globs)
        steps = np.asarray(table.get("step", []), dtype=np.float64)
        if not names or not len(steps):
            return None
        columns = {n: np.array(table["metrics"][n], dtype=np.float64) for n in names}
        header: dict[str, Any] = {}
        if self.last_step is not None:
            keep = steps >= self.last_step
            if not keep.any():
                return None
            if not keep.all():
                steps = steps[keep]
                columns = {n: c[keep] for n, c in columns.items()}
            if steps[0] == self.last_step:
                for name, value in self.last_row.items():
                    column = columns.get(name)
                    if column is None:
                        column = columns[name] = np.full(len(steps), np.nan)
                    if np.isnan(column[0]):
                        column[0] = value
                header["from"] = self.last_step
        names = sorted(columns)
        values = np.array([columns[n] for n in names])
        self.last_step = int(steps[-1])
        self.last_row = {n: float(v) for n, v in zip(names, values[:, -1], strict=True)
                         if not np.isnan(v)}
        return ({"names": names, "n": len(steps), **header},
                [steps.tobytes(), values.tobytes()])
