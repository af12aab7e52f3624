"""Reading blocks back into arrays (used by readers and by compaction).

Everything here takes an open connection and plain ids; name lookup is the caller's job.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tracklab_jupyter.store.codec import (
    ROLLUP_FIELDS,
    decode_ints,
    decode_mask,
    decode_rollup,
    decode_sealed,
    decode_tail,
    decode_values,
)

#: The longest span of one raw block (compaction merges at most an hour), in ms.
MAX_RAW_SPAN_MS = 3_600_000
#: Buckets per packed rollup block, by tier: a day of minutes, a week of hours.
PACK_SPAN_S = {60: 86_400, 3600: 7 * 86_400}
_CHUNK = 500  # series ids per query, well under SQLite's variable limit


class RawBlock(NamedTuple):
    """One node's sample times in one block, decoded."""

    t0: int
    t1: int
    times: np.ndarray  # int64 epoch ms


class RollupArrays(NamedTuple):
    """One series' rollup buckets, sorted by time."""

    t: np.ndarray  # int64 bucket start, epoch seconds
    count: np.ndarray
    min: np.ndarray
    max: np.ndarray
    sum: np.ndarray
    last: np.ndarray


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i:i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def load_ticks(conn: sqlite3.Connection, node_id: int, start_ms: int,
               end_ms: int) -> list[RawBlock]:
    """The raw blocks of a node overlapping ``[start_ms, end_ms)``, by start time."""
    rows = conn.execute(
        "SELECT t0, t1, data FROM raw_ticks WHERE node_id = ? AND t0 >= ? AND t0 < ? "
        "AND t1 >= ? ORDER BY t0",
        (node_id, start_ms - MAX_RAW_SPAN_MS, end_ms, start_ms)).fetchall()
    return [RawBlock(t0, t1, decode_ints(data)) for t0, t1, data in rows]


def _load_blocks(conn: sqlite3.Connection, node_id: int, series_ids: Sequence[int],
                 start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples of the raw blocks overlapping the range, in block order (not clipped)."""
    blocks = load_ticks(conn, node_id, start_ms, end_ms)
    offsets: dict[int, tuple[int, int]] = {}
    total = 0
    for block in blocks:
        offsets[block.t0] = (total, block.times.size)
        total += block.times.size
    times = (np.concatenate([b.times for b in blocks]) if blocks
             else np.empty(0, dtype=np.int64))
    values = np.full((len(series_ids), total), np.nan)
    if blocks and series_ids:
        row_of = {sid: i for i, sid in enumerate(series_ids)}
        lo, hi = blocks[0].t0, max(b.t0 for b in blocks)
        for chunk in _chunks(list(series_ids)):
            marks = ",".join("?" * len(chunk))
            cursor = conn.execute(
                f"SELECT series_id, t0, mask, data FROM raw WHERE series_id IN ({marks}) "
                "AND t0 >= ? AND t0 <= ?", (*chunk, lo, hi))
            for sid, t0, mask, data in cursor:
                place = offsets.get(t0)
                if place is None:
                    continue
                offset, length = place
                _put(values[row_of[sid]], offset, length, mask, data)
    return times, values


def _put(row: np.ndarray, offset: int, length: int, mask: bytes | None,
         data: bytes | memoryview) -> None:
    """Decode one series' stored values into ``row[offset:offset + length]``; a block that
    does not match its times is skipped, never a crash."""
    if mask is None:
        with contextlib.suppress(ValueError):
            decode_values(data, out=row[offset:offset + length])
        return
    decoded = decode_values(data)
    where = np.flatnonzero(decode_mask(mask, length))
    if where.size == decoded.size:
        row[offset + where] = decoded


def live_tail(conn: sqlite3.Connection, node_id: int, start_ms: int,
              end_ms: int) -> list[tuple[int, int, bytes]]:
    """The node's tail rows overlapping the range that no minute row has sealed yet, as
    ``(writer, minute, data)`` in time order."""
    rows = conn.execute("SELECT writer, minute, data FROM tail WHERE node_id = ? AND t1 >= ? "
                        "AND t0 < ? ORDER BY t0", (node_id, start_ms, end_ms)).fetchall()
    if not rows:
        return rows
    sealed = set(conn.execute("SELECT writer, minute FROM minutes WHERE node_id = ? AND "
                              "writer IS NOT NULL", (node_id,)).fetchall())
    return [row for row in rows if (row[0], row[1]) not in sealed]


def load_recent(conn: sqlite3.Connection, node_id: int, series_ids: Sequence[int],
                start_ms: int, end_ms: int, *,
                tails: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Samples of the sealed minutes, and of the live tail unless ``tails`` is False,
    overlapping the range (not sorted, not clipped)."""
    row_of = {sid: i for i, sid in enumerate(series_ids)}
    times_parts: list[np.ndarray] = []
    value_parts: list[np.ndarray] = []
    for (data,) in conn.execute("SELECT data FROM minutes WHERE node_id = ? AND t1 >= ? "
                                "AND t0 < ? ORDER BY t0", (node_id, start_ms, end_ms)):
        times, stored = decode_sealed(data)
        values = np.full((len(series_ids), times.size), np.nan)
        for sid in stored.keys() & row_of.keys():
            mask, blob = stored[sid]
            _put(values[row_of[sid]], 0, times.size, mask, blob)
        times_parts.append(times)
        value_parts.append(values)
    for _, _, data in live_tail(conn, node_id, start_ms, end_ms) if tails else ():
        times, sids, plain = decode_tail(data)
        values = np.full((len(series_ids), times.size), np.nan)
        for j, sid in enumerate(sids.tolist()):
            i = row_of.get(sid)
            if i is not None:
                values[i] = plain[j]
        times_parts.append(times)
        value_parts.append(values)
    if not times_parts:
        return np.empty(0, dtype=np.int64), np.full((len(series_ids), 0), np.nan)
    return np.concatenate(times_parts), np.concatenate(value_parts, axis=1)


def load_raw(conn: sqlite3.Connection, node_id: int, series_ids: Sequence[int],
             start_ms: int, end_ms: int, *, tails: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Samples of one node in ``[start_ms, end_ms)``: raw blocks merged with the sealed
    minutes and the live tail (unless ``tails`` is False). Every sample is stored in exactly
    one of them, so the merge is a concatenation.

    Returns ``(times, values)``: int64 epoch ms sorted ascending, and a float64 array of shape
    ``(len(series_ids), len(times))`` with NaN where a series has no value.
    """
    times, values = _load_blocks(conn, node_id, series_ids, start_ms, end_ms)
    more_times, more_values = load_recent(conn, node_id, series_ids, start_ms, end_ms,
                                          tails=tails)
    if more_times.size:
        times = np.concatenate([times, more_times])
        values = np.concatenate([values, more_values], axis=1)
    if times.size > 1 and np.any(times[1:] < times[:-1]):
        # Blocks overlap (late samples): order by time, keeping write order among equals.
        order = np.argsort(times, kind="stable")
        times = times[order]
        values = values[:, order]
    first, stop = np.searchsorted(times, [start_ms, end_ms])
    if first or stop < times.size:
        times = times[first:stop]
        values = values[:, first:stop]
    return times, values


def _empty_rollup() -> RollupArrays:
    empty_i = np.empty(0, dtype=np.int64)
    empty_f = np.empty(0, dtype=np.float64)
    return RollupArrays(empty_i, empty_i, empty_f, empty_f, empty_f, empty_f)


#: The rollup fields each aggregate needs (the others are not decoded: zeros instead).
FIELDS_FOR = {
    "mean": ("offsets", "count", "sum"),
    "min": ("offsets", "count", "min"),
    "max": ("offsets", "count", "max"),
    "last": ("offsets", "count", "last"),
    None: ROLLUP_FIELDS,
}


def load_rollup(conn: sqlite3.Connection, tier: int, series_ids: Sequence[int],
                start_s: float, end_s: float, agg: str | None = None) -> dict[int, RollupArrays]:
    """Rollup buckets of ``tier`` (60 or 3600) overlapping ``[start_s, end_s)``.

    Packed blocks and rows are merged; a row wins over a packed entry for the same bucket.
    With ``agg``, only the fields that aggregate needs are decoded from packed blocks.
    """
    fields = FIELDS_FOR[agg]
    wanted = [i for i, name in enumerate(ROLLUP_FIELDS) if i < 2 or name in fields]
    lo = int(start_s // tier * tier)
    hi = int(end_s)
    parts: dict[int, list[tuple[np.ndarray | None, ...]]] = {sid: [] for sid in series_ids}
    span = PACK_SPAN_S[tier]
    for chunk in _chunks(list(series_ids)):
        marks = ",".join("?" * len(chunk))
        cursor = conn.execute(
            f"SELECT series_id, t0, data FROM rollup_block WHERE tier = ? "
            f"AND series_id IN ({marks}) AND t0 > ? AND t0 < ? ORDER BY series_id, t0",
            (tier, *chunk, lo - span, hi))
        for sid, t0, data in cursor:
            offsets, *rest = decode_rollup(data, fields)
            assert offsets is not None
            parts[sid].append((t0 + offsets * tier, *rest))
        rows = conn.execute(
            f"SELECT series_id, t, count, min, max, sum, last FROM rollup WHERE tier = ? "
            f"AND series_id IN ({marks}) AND t >= ? AND t < ? ORDER BY series_id, t",
            (tier, *chunk, lo, hi)).fetchall()
        if rows:
            table = np.array(rows, dtype=np.float64)
            sids = table[:, 0].astype(np.int64)
            cuts = np.flatnonzero(np.diff(sids)) + 1
            for piece in np.split(table, cuts):
                parts[int(piece[0, 0])].append((
                    piece[:, 1].astype(np.int64), piece[:, 2].astype(np.int64),
                    piece[:, 3], piece[:, 4], piece[:, 5], piece[:, 6]))
    out: dict[int, RollupArrays] = {}
    for sid, pieces in parts.items():
        if not pieces:
            out[sid] = _empty_rollup()
            continue
        cols: dict[int, np.ndarray] = {
            i: np.concatenate([p[i] for p in pieces]) for i in wanted}  # type: ignore[misc]
        t = cols[0]
        if t.size > 1 and not np.all(t[1:] > t[:-1]):
            # Overlap between rows and a packed block: the stable sort keeps rows (appended
            # last) after packed entries of the same time; keep the last of each time.
            order = np.argsort(t, kind="stable")
            t = t[order]
            keep = np.ones(t.size, dtype=bool)
            keep[:-1] = t[1:] != t[:-1]
            cols = {i: c[order][keep] for i, c in cols.items()}
            t = cols[0]
        inside = (t >= lo) & (t < hi)
        if not inside.all():
            cols = {i: c[inside] for i, c in cols.items()}
        zeros = np.zeros(cols[0].size)
        full = [cols.get(i, zeros) for i in range(6)]
        out[sid] = RollupArrays(full[0], full[1].astype(np.int64), *full[2:])
    return out
