"""The 1-min and 1-h rollup tiers: computing buckets from samples, and merging sources.

Rollup rows are written once per finished hour, by the maintenance thread, in the same
transaction that merges the hour's minute rows into raw blocks (see ``maintenance``). For
the newest data, still in sealed minutes and the tail, readers compute the buckets here on
the fly and add them to the stored ones: every sample is counted in exactly one of the two.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from tracklab_jupyter.store.query import RollupArrays, load_recent

MINUTE = 60
HOUR = 3600

RollupRow = tuple[int, int, float, float, float, int, float]  # sid, t, min, max, sum, count, last

_REPLACE = ("INSERT OR REPLACE INTO rollup (tier, series_id, t, min, max, sum, count, last) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")

_EMPTY = RollupArrays(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64),
                      np.empty(0), np.empty(0), np.empty(0), np.empty(0))


def bucket(times_ms: np.ndarray, row: np.ndarray, tier: int) -> RollupArrays:
    """The ``tier``-second buckets of one series: ``times_ms`` ascending, ``row`` its values
    with NaN where absent."""
    present = ~np.isnan(row)
    values = row[present]
    if not values.size:
        return _EMPTY
    k = times_ms[present] // (tier * 1000)
    starts = np.flatnonzero(np.diff(k, prepend=k[0] - 1))
    ends = np.append(starts[1:], k.size)
    return RollupArrays(k[starts] * tier, (ends - starts).astype(np.int64),
                        np.minimum.reduceat(values, starts),
                        np.maximum.reduceat(values, starts),
                        np.add.reduceat(values, starts), values[ends - 1])


def rows_of(tier: int, series_ids: Sequence[int], times_ms: np.ndarray,
            values: np.ndarray) -> list[RollupRow]:
    """Rollup rows of ``tier`` for samples (times ascending, one row of values per series)."""
    rows: list[RollupRow] = []
    for sid, row in zip(series_ids, values, strict=True):
        arr = bucket(times_ms, row, tier)
        rows.extend(zip([sid] * arr.t.size, arr.t.tolist(), arr.min.tolist(),
                        arr.max.tolist(), arr.sum.tolist(), arr.count.tolist(),
                        arr.last.tolist(), strict=True))
    return rows


def replace_rows(conn: sqlite3.Connection, tier: int, rows: Sequence[RollupRow]) -> None:
    conn.executemany(_REPLACE, ((tier, *row) for row in rows))


def recent_rollups(conn: sqlite3.Connection, node_id: int, series_ids: Sequence[int],
                   tier: int, start_s: float, end_s: float) -> dict[int, RollupArrays]:
    """Buckets of ``tier`` starting in ``[start_s, end_s)`` computed from the sealed minutes
    and the live tail, whose samples no stored rollup counts yet."""
    lo = int(start_s // tier * tier)
    hi = int(end_s)
    stop = -(-hi // tier) * tier  # whole buckets: a bucket starting before end_s counts whole
    times, values = load_recent(conn, node_id, series_ids, lo * 1000, stop * 1000)
    if times.size > 1 and np.any(times[1:] < times[:-1]):
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[:, order]
    inside = (times >= lo * 1000) & (times < stop * 1000)
    if not inside.all():
        times, values = times[inside], values[:, inside]
    out: dict[int, RollupArrays] = {}
    for sid, row in zip(series_ids, values, strict=True):
        arr = bucket(times, row, tier)
        keep = arr.t < hi
        out[sid] = arr if keep.all() else RollupArrays(*(field[keep] for field in arr))
    return out


def concat(stored: RollupArrays, recent: RollupArrays) -> RollupArrays:
    """Stored buckets followed by recent ones, sorted by time; a bucket in both appears
    twice, which the binning combines (and the recent one's ``last`` wins)."""
    if not recent.t.size:
        return stored
    if not stored.t.size:
        return recent
    fields = [np.concatenate([a, b]) for a, b in zip(stored, recent, strict=True)]
    order = np.argsort(fields[0], kind="stable")
    return RollupArrays(*(f[order] for f in fields))
