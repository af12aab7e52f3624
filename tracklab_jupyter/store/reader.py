"""Reading the store from any process: series, samples, rollups, events, live tail.

A reader never creates, migrates or moves files. Every read runs in one SQLite read
transaction, so it sees one consistent state even while the recorder commits.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.store.config import TIER_SECONDS, StoreConfig, check_agg
from tracklab_jupyter.store.db import check_exists, open_reader_db
from tracklab_jupyter.store.paths import DB_NAME, resolve_data_dir
from tracklab_jupyter.store.plan import Plan, choose_tier
from tracklab_jupyter.store.query import load_raw, load_rollup
from tracklab_jupyter.store.resample import bin_raw, bin_rollups
from tracklab_jupyter.store.rollups import concat, recent_rollups
from tracklab_jupyter.store.schema import SCHEMA_VERSION, read_version


def _ms(t: float) -> int:
    """Epoch seconds to whole milliseconds, the way the writer stores sample times."""
    return round(t * 1000)


def _least(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


class StoreNotFoundError(FileNotFoundError):
    """There is no store (yet) in the data dir."""


@dataclass
class Frame:
    """One node's data: times (int64 epoch ms, ascending) and one row of values per name."""

    node: str
    times_ms: np.ndarray
    names: list[str]
    values: np.ndarray  # float64, shape (len(names), len(times_ms)), NaN where missing

    @property
    def points(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.values)))


class StoreReader:
    """Read access to ``{data_dir}/metrics.db``. Thread-safe; opens the file lazily."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self.data_dir: Path = resolve_data_dir(data_dir)
        self.path: Path = self.data_dir / DB_NAME
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._series: dict[tuple[str, str], int] = {}
        self._series_max = -1

    # -- plumbing ------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # A parent that is a file raises NotADirectoryError: the store is unusable,
            # not missing.
            if not check_exists(self.path):
                raise StoreNotFoundError(
                    f"no tracklab history in {self.data_dir}: nothing has been recorded there "
                    "yet. Start a recorder (`python -m tracklab_jupyter record`, or the "
                    "Jupyter server extension), or pass data_dir / set TRACKLAB_DATA_DIR.")
            self._conn = open_reader_db(self.path)
        return self._conn

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection | None]:
        """A read transaction; yields None while the store has no schema yet."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn if read_version(conn) >= SCHEMA_VERSION else None
            finally:
                conn.execute("COMMIT")

    def _refresh_series(self, conn: sqlite3.Connection) -> None:
        top = conn.execute("SELECT max(id) FROM series").fetchone()[0]
        if top is not None and top != self._series_max:
            self._series = {(node, name): sid for sid, node, name in conn.execute(
                "SELECT s.id, n.name, s.name FROM series s JOIN nodes n ON n.id = s.node_id")}
            self._series_max = top

    def _node_ids(self, conn: sqlite3.Connection) -> dict[str, int]:
        return dict(conn.execute("SELECT name, id FROM nodes").fetchall())

    # -- catalogue -----------------------------------------------------------------------
    def series(self, node: str | None = None) -> list[tuple[str, str]]:
        """Every stored ``(node, metric)`` pair, sorted."""
        with self._snapshot() as conn:
            if conn is None:
                return []
            self._refresh_series(conn)
            return sorted(k for k in self._series if node is None or k[0] == node)

    def metrics(self, node: str | None = None) -> list[str]:
        """Names of the stored metrics (of one node, or of all), sorted."""
        return sorted({name for _, name in self.series(node)})

    def nodes(self) -> list[str]:
        with self._snapshot() as conn:
            return [] if conn is None else sorted(self._node_ids(conn))

    def config(self) -> StoreConfig:
        """The recorder's retention settings, as it recorded them in the store."""
        with self._snapshot() as conn:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if conn else {}
        defaults = StoreConfig()
        return StoreConfig(
            raw_retention=float(meta.get("retention.raw_s", defaults.raw_retention)),
            minute_retention=float(meta.get("retention.1min_s", defaults.minute_retention)),
            hour_retention=float(meta.get("retention.1h_s", defaults.hour_retention)),
            max_bytes=int(meta.get("max_bytes", defaults.max_bytes)))

    def info(self, node: str | None = None) -> dict[str, Any]:
        """Static facts per node (``{node: info}``), as the recorder last wrote them."""
        with self._snapshot() as conn:
            if conn is None:
                return {}
            rows = conn.execute("SELECT node, info FROM node_info").fetchall()
        return {n: json.loads(i) for n, i in rows if node is None or n == node}

    def oldest(self) -> dict[str, float | None]:
        """Epoch seconds of the oldest data in each tier (None when the tier is empty)."""
        with self._snapshot() as conn:
            if conn is None:
                return dict.fromkeys(TIER_SECONDS)
            # Minutes and tail count for every tier: readers roll them up on the fly.
            recent = conn.execute("SELECT min(t) FROM (SELECT min(t0) AS t FROM minutes "
                                  "UNION ALL SELECT min(t0) FROM tail)").fetchone()[0]
            raw = _least(conn.execute("SELECT min(t0) FROM raw_ticks").fetchone()[0], recent)
            out: dict[str, float | None] = {"raw": raw / 1000 if raw is not None else None}
            for name, tier in (("1min", 60), ("1h", 3600)):
                # Packed blocks are always older than rows, so rows only matter without them.
                value = conn.execute("SELECT min(t0) FROM rollup_block WHERE tier = ?",
                                     (tier,)).fetchone()[0]
                if value is None:
                    value = conn.execute("SELECT min(t) FROM rollup WHERE tier = ?",
                                         (tier,)).fetchone()[0]
                if recent is not None:
                    value = _least(value, recent // 1000 // tier * tier)
                out[name] = float(value) if value is not None else None
            return out

    def plan(self, start: float, step: float | None) -> Plan:
        """Which tier (and step) a query from ``start`` would use."""
        return choose_tier(start, step, self.oldest())

    def raw_rows(self, start: float, end: float, node: str | None = None) -> int:
        """About how many samples ``[start, end)`` holds, for the node with the most (or for
        ``node``), from the blocks' counts alone: a raw read's size, known cheaply."""
        with self._snapshot() as conn:
            if conn is None:
                return 0
            where = "WHERE t1 >= ? AND t0 < ?" + (" AND node_id = ?" if node else "")
            sql = (f"SELECT coalesce(max(c), 0) FROM (SELECT node_id, sum(n) AS c FROM ("
                   f"SELECT node_id, n FROM raw_ticks {where} UNION ALL "
                   f"SELECT node_id, n FROM minutes {where} UNION ALL "
                   f"SELECT node_id, n FROM tail {where}) GROUP BY node_id)")
            args: list[Any] = [_ms(start), _ms(end)]
            if node is not None:
                ids = self._node_ids(conn)
                if node not in ids:
                    return 0
                args.append(ids[node])
            # Blocks overlapping the range count whole, and stale tail rows count: an upper
            # bound by about a block.
            return int(conn.execute(sql, args * 3).fetchone()[0])

    # -- data ----------------------------------------------------------------------------
    def _select(self, conn: sqlite3.Connection, names: Iterable[str] | None,
                node: str | Sequence[str] | None) -> dict[str, list[tuple[str, int]]]:
        """node -> [(name, series id)] for the wanted names (all when None)."""
        self._refresh_series(conn)
        nodes = {node} if isinstance(node, str) else set(node) if node is not None else None
        wanted = list(dict.fromkeys(names)) if names is not None else None
        out: dict[str, list[tuple[str, int]]] = {}
        if wanted is None:
            for (n, name), sid in sorted(self._series.items()):
                if nodes is None or n in nodes:
                    out.setdefault(n, []).append((name, sid))
            return out
        for n in sorted({k[0] for k in self._series}):
            if nodes is not None and n not in nodes:
                continue
            pairs = [(name, self._series[(n, name)]) for name in wanted
                     if (n, name) in self._series]
            if pairs:
                out[n] = pairs
        return out

    def read(self, names: Iterable[str] | None, start: float, end: float, *,
             node: str | Sequence[str] | None = None, tier: str = "raw",
             step: float | None = None, agg: str = "mean") -> dict[str, Frame]:
        """Data of ``names`` (all when None) in ``[start, end)`` (epoch s) from ``tier``
        (``raw``, ``1min``, ``1h``), binned to ``step`` seconds with ``agg`` when a step is
        given (raw samples as taken otherwise). One :class:`Frame` per node with data."""
        check_agg(agg)
        frames: dict[str, Frame] = {}
        with self._snapshot() as conn:
            if conn is None:
                return frames
            node_ids = self._node_ids(conn)
            for n, pairs in self._select(conn, names, node).items():
                sids = [sid for _, sid in pairs]
                labels = [name for name, _ in pairs]
                if tier == "raw":
                    times, values = load_raw(conn, node_ids[n], sids, _ms(start), _ms(end))
                    if step is not None:
                        times, values = bin_raw(times, values, max(1, int(step * 1000)), agg)
                else:
                    resolution = TIER_SECONDS[tier]
                    stored = load_rollup(conn, resolution, sids, start, end, agg)
                    recent = recent_rollups(conn, node_ids[n], sids, resolution, start, end)
                    bucket = max(resolution, int(step or resolution))
                    times, values = bin_rollups([concat(stored[s], recent[s]) for s in sids],
                                                bucket, agg)
                frames[n] = Frame(n, times, labels, values)
        return frames

    def tail(self, since: float, metrics: Iterable[str] | None = None,
             node: str | Sequence[str] | None = None) -> list[Sample]:
        """Samples newer than ``since`` (epoch s), oldest first: the live-tail read for
        widgets and servers that poll the store from another process."""
        # Stored times are whole milliseconds: "newer" starts one millisecond after since.
        frames = self.read(metrics, (_ms(since) + 1) / 1000, time.time() + 86400, node=node)
        samples: list[Sample] = []
        for frame in frames.values():
            for j, t in enumerate(frame.times_ms.tolist()):
                column = frame.values[:, j]
                present = ~np.isnan(column)
                samples.append(Sample(t / 1000, frame.node, dict(zip(
                    (frame.names[i] for i in np.flatnonzero(present)),
                    column[present].tolist(), strict=True))))
        samples.sort(key=lambda s: s.time)
        return samples

    def latest(self, node: str | None = None, within: float = 120.0) -> Sample | None:
        """The newest sample (of ``node``, or of any node) from the last ``within`` s."""
        recent = self.tail(time.time() - within, node=node)
        return recent[-1] if recent else None

    def events(self, start: float | None = None, end: float | None = None, *,
               node: str | Sequence[str] | None = None,
               kinds: Iterable[str] | None = None, limit: int | None = None) -> list[Event]:
        """Events in ``[start, end)``, oldest first; with ``limit``, only the newest
        ``limit`` of them (still oldest first)."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ValueError(f"limit must be a whole number, 0 or more; got {limit!r}")
        sql = "SELECT time, node, kind, message, data FROM events WHERE time >= ? AND time < ?"
        args: list[Any] = [start if start is not None else 0.0,
                           end if end is not None else float("inf")]
        if node is not None:
            nodes = [node] if isinstance(node, str) else list(node)
            sql += f" AND node IN ({','.join('?' * len(nodes))})"
            args += nodes
        if kinds is not None:
            kinds = list(kinds)
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += kinds
        with self._snapshot() as conn:
            if conn is None:
                return []
            if limit is None:
                rows = conn.execute(sql + " ORDER BY time, id", args).fetchall()
            else:
                # Newest first down the time index: the scan stops at ``limit`` matches.
                rows = conn.execute(sql + " ORDER BY time DESC, id DESC LIMIT ?",
                                    [*args, limit]).fetchall()
                rows.reverse()
        return [Event(t, n, k, m, json.loads(d)) for t, n, k, m, d in rows]
