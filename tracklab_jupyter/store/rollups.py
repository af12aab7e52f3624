"""Maintaining the 1-min and 1-h rollup tiers as raw blocks are written.

Normal path: when a minute closes, its block's min/max/sum/count/last become the minute's
row and are folded into the hour's row (an additive upsert). While the minute is open its
row is rewritten on each flush, so readers of the 1-min tier are never more than a flush
behind. When a minute's samples are spread over several stored blocks (late samples, a
restart within the minute) the minute is recomputed from raw and its hour from the minutes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

import numpy as np

from tracklab_jupyter.store.query import load_raw, load_rollup

MINUTE = 60
HOUR = 3600

RollupRow = tuple[int, int, float, float, float, int, float]  # sid, t, min, max, sum, count, last

_REPLACE = ("INSERT OR REPLACE INTO rollup (tier, series_id, t, min, max, sum, count, last) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_ADD = ("INSERT INTO rollup (tier, series_id, t, min, max, sum, count, last) "
        "VALUES (3600, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tier, series_id, t) DO UPDATE SET "
        "min = min(min, excluded.min), max = max(max, excluded.max), "
        "sum = sum + excluded.sum, count = count + excluded.count, last = excluded.last")


def replace_rows(conn: sqlite3.Connection, tier: int, rows: Iterable[RollupRow]) -> None:
    conn.executemany(_REPLACE, ((tier, *row) for row in rows))


def add_to_hours(conn: sqlite3.Connection, minute_rows: Iterable[RollupRow]) -> None:
    """Fold closed minutes into their hours' rows."""
    conn.executemany(_ADD, ((sid, t // HOUR * HOUR, *rest) for sid, t, *rest in minute_rows))


def rebuild_minute(conn: sqlite3.Connection, node_id: int, series_ids: Sequence[int],
                   minute: int) -> None:
    """Recompute one minute's rows of a node from every raw block stored for it."""
    _, values = load_raw(conn, node_id, series_ids, minute * 1000, (minute + MINUTE) * 1000)
    rows = []
    for sid, row in zip(series_ids, values, strict=True):
        present = row[~np.isnan(row)]
        if present.size:
            rows.append((sid, minute, float(present.min()), float(present.max()),
                         float(present.sum()), int(present.size), float(present[-1])))
    replace_rows(conn, MINUTE, rows)


def rebuild_hour(conn: sqlite3.Connection, series_ids: Sequence[int], hour: int) -> None:
    """Recompute one hour's rows from its minutes."""
    minutes = load_rollup(conn, MINUTE, series_ids, hour, hour + HOUR)
    rows = []
    for sid, arr in minutes.items():
        if arr.t.size:
            rows.append((sid, hour, float(arr.min.min()), float(arr.max.max()),
                         float(arr.sum.sum()), int(arr.count.sum()), float(arr.last[-1])))
    replace_rows(conn, HOUR, rows)
