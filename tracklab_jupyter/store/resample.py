"""Putting samples and rollup buckets into time bins of a chosen step."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tracklab_jupyter.store.query import RollupArrays


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) index of each run of equal, sorted keys."""
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], keys.size]
    return starts, ends


def bin_raw(times_ms: np.ndarray, values: np.ndarray, step_ms: int,
            agg: str) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate samples (times sorted) into bins of ``step_ms`` aligned to the epoch.

    Returns the bins' start times (ms) and an array ``(series, bins)``; NaN where a series
    has no sample in a bin.
    """
    if times_ms.size == 0:  # a range with no sample: no bins
        return times_ms.copy(), np.empty((values.shape[0], 0))
    keys = times_ms // step_ms
    grid = keys[_runs(keys)[0]]  # keys are sorted: their distinct values without a sort
    out = np.full((values.shape[0], grid.size), np.nan)
    for i, row in enumerate(values):
        present = ~np.isnan(row)
        if not present.any():
            continue
        k, v = keys[present], row[present]
        starts, ends = _runs(k)
        cols = np.searchsorted(grid, k[starts])
        if agg == "mean":
            out[i, cols] = np.add.reduceat(v, starts) / (ends - starts)
        elif agg == "min":
            out[i, cols] = np.minimum.reduceat(v, starts)
        elif agg == "max":
            out[i, cols] = np.maximum.reduceat(v, starts)
        else:
            out[i, cols] = v[ends - 1]
    return grid * step_ms, out


def bin_rollups(series: Sequence[RollupArrays], step_s: int,
                agg: str) -> tuple[np.ndarray, np.ndarray]:
    """Combine rollup buckets into bins of ``step_s`` (a multiple of the tier's resolution:
    min of mins, max of maxes, sum of sums over sum of counts, last of lasts).

    Returns the bins' start times (ms) and an array ``(series, bins)``.
    """
    nonempty = [arr.t for arr in series if arr.t.size]
    if not nonempty:
        return np.empty(0, dtype=np.int64), np.full((len(series), 0), np.nan)
    # A dense grid from the first to the last bin, trimmed to the bins holding data at the
    # end: linear, where a union of every series' bins (np.unique) would sort them all.
    first = min(int(t[0]) for t in nonempty) // step_s
    last = max(int(t[-1]) for t in nonempty) // step_s
    out = np.full((len(series), last - first + 1), np.nan)
    for i, arr in enumerate(series):
        if not arr.t.size:
            continue
        k = arr.t // step_s
        starts, ends = _runs(k)
        cols = k[starts] - first
        if agg == "mean":
            counts = np.add.reduceat(arr.count, starts)
            out[i, cols] = np.add.reduceat(arr.sum, starts) / np.maximum(counts, 1)
        elif agg == "min":
            out[i, cols] = np.minimum.reduceat(arr.min, starts)
        elif agg == "max":
            out[i, cols] = np.maximum.reduceat(arr.max, starts)
        else:
            out[i, cols] = arr.last[ends - 1]
    used = ~np.isnan(out).all(axis=0)
    grid = np.arange(first, last + 1, dtype=np.int64)
    if not used.all():
        grid, out = grid[used], out[:, used]
    return grid * step_s * 1000, out
