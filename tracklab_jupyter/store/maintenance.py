"""Background upkeep of the store: compaction, retention and the size cap.

Runs on its own thread and connection, once a minute: nothing of it is on the 1 Hz path, and
a pass with nothing due only reads a few small indexes (no write transaction). Heavy work
(decoding, re-encoding) happens outside write transactions, and each write transaction
covers one small unit (one node-hour, one series-day), so the writer never waits more than
a few milliseconds for it.

* **Orphaned tails**: tail rows whose writer died (a kernel killed mid-minute, a recorder
  killed with ``kill -9``) are sealed into minutes, as their writer would have done.
* **Compaction**: the minute rows of each finished node-hour (and the minute blocks of
  stores written before them) are merged into one block per series (fewer, larger blocks
  read much faster), and the hour's 1-min and 1-h rollup rows are written in the same
  transaction; 1-min rollup rows of finished days and 1-h rows of finished weeks are packed
  into compressed blocks.
* **Retention**: raw blocks older than the raw retention go (whole blocks, so up to an hour
  more is kept), and rollups older than their tier's retention (packed blocks as a whole:
  up to a day more of 1-min rollups, a week more of 1-h ones).
* **Size cap**: while the live data is larger than ``max_bytes``, the oldest unit (an hour
  of raw, a day of 1-min, a week of 1-h) of the tier whose oldest data is oldest relative to
  its retention is dropped; every tier so loses its oldest data first, in proportion. Freed
  pages are then given back to the file system (incremental vacuum).
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from tracklab_jupyter.store.codec import (
    decode_rollup,
    decode_tail,
    encode_rollup,
    encode_samples,
    encode_sealed,
)
from tracklab_jupyter.store.config import StoreConfig
from tracklab_jupyter.store.db import configure_checkpoints, connect
from tracklab_jupyter.store.query import PACK_SPAN_S, live_tail, load_raw
from tracklab_jupyter.store.rollups import HOUR, MINUTE, replace_rows, rows_of
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.store")

HOUR_MS = 3_600_000
# An hour is merged once the node's data has moved past it, or this long after its end for
# a node that stopped sending.
_HOUR_GRACE_MS = 120_000
# Live tail rows written this long ago are sealed whoever wrote them: a live writer seals its
# minutes within seconds of their end, and one that cannot write keeps at most
# StoreConfig.max_pending_minutes of them in memory, so no live writer still holds them.
_ORPHAN_MARGIN_S = 3600.0
# Rollup rows are packed (merged into their day or week block) once the node's data is this
# far past them: minutes are final once closed, an hour row once its last minute is folded
# in. Rows newer than that stay rows, so a reader decodes at most ~2 h of them per tier.
_PACK_AFTER_S = {60: 600, 3600: 2 * 3600}
_DELETE_BATCH = 20
_VACUUM_PAGES = 2048


def _block_columns(tier: int, t0: int, data: bytes) -> list[np.ndarray]:
    """A packed block as [t, count, min, max, sum, last]."""
    offsets, count, vmin, vmax, vsum, last = decode_rollup(data)
    return [t0 + offsets * tier, count, vmin, vmax, vsum, last]  # type: ignore[list-item]


def _insert_block(conn: sqlite3.Connection, tier: int, sid: int,
                  cols: list[np.ndarray]) -> None:
    """Store [t, count, min, max, sum, last] (sorted by t) as one block keyed by its first
    entry, so min(t0) is the tier's true oldest time."""
    t = cols[0]
    t0 = int(t[0])
    data = encode_rollup((t - t0) // tier, cols[1], cols[2], cols[3], cols[4], cols[5])
    conn.execute("INSERT INTO rollup_block (tier, series_id, t0, t1, n, data) "
                 "VALUES (?, ?, ?, ?, ?, ?)", (tier, sid, t0, int(t[-1]), int(t.size), data))


class Maintenance:
    """Upkeep of one database. :meth:`start` runs :meth:`run_once` every
    ``config.maintenance_interval`` seconds (or sooner after :meth:`request`)."""

    def __init__(self, path: Path, config: StoreConfig) -> None:
        self.config = config
        self._conn = connect(path)
        configure_checkpoints(self._conn)
        if config.max_page_count is not None:
            self._conn.execute(f"PRAGMA max_page_count = {int(config.max_page_count)}")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self.last: dict[str, Any] = {}

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tracklab-store-maintenance",
                                            daemon=True)
            self._thread.start()

    def request(self) -> None:
        """Run soon (e.g. after a write failed for lack of space)."""
        self._wake.set()

    def close(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._conn.close()

    def _run(self) -> None:
        name_os_thread()
        interval = float(self.config.maintenance_interval)
        # A first pass soon after start: data left from a previous run may be due.
        self._wake.wait(min(interval, 5.0))
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
            except Exception as exc:  # upkeep must never die: retry on the next pass
                key = type(exc).__name__ + str(exc)
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("store maintenance failed (will retry): %s: %s",
                                type(exc).__name__, exc)
            self._wake.wait(interval)

    # -- one pass ------------------------------------------------------------------------
    def run_once(self, now: float | None = None) -> dict[str, Any]:
        """Retention, compaction, packing and the size cap, once. Returns counts."""
        now = time.time() if now is None else now
        with self._lock:
            if self._stop.is_set() and self._thread is not None and not self._thread.is_alive():
                return {}
            stats: dict[str, Any] = {}
            stats["sealed_orphans"] = self.seal_orphans(now)
            stats["compacted_hours"] = self.compact_raw(now)
            stats.update(self.apply_retention(now))
            stats["packed_blocks"] = self.pack_rollups(now)
            stats.update(self.apply_size_cap(now))
            self.last = stats
            return stats

    # -- helpers -------------------------------------------------------------------------
    def _node_series(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for sid, node_id in self._conn.execute("SELECT id, node_id FROM series"):
            out[node_id].append(sid)
        return out

    def _write(self, fn: Any, *args: Any) -> Any:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(*args)
            conn.execute("COMMIT")
            return result
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _delete_raw(self, keys: list[tuple[int, int]]) -> int:
        """Delete raw blocks by ``(node_id, t0)``, a few per transaction."""
        series = self._node_series()
        for i in range(0, len(keys), _DELETE_BATCH):
            self._write(self._delete_raw_batch, keys[i:i + _DELETE_BATCH], series)
        return len(keys)

    def _delete_raw_batch(self, keys: list[tuple[int, int]],
                          series: dict[int, list[int]]) -> None:
        conn = self._conn
        for node_id, t0 in keys:
            sids = series.get(node_id, [])
            for j in range(0, len(sids), 500):
                chunk = sids[j:j + 500]
                conn.execute(f"DELETE FROM raw WHERE series_id IN ({','.join('?' * len(chunk))})"
                             " AND t0 = ?", (*chunk, t0))
            conn.execute("DELETE FROM raw_ticks WHERE node_id = ? AND t0 = ?", (node_id, t0))

    # -- retention -----------------------------------------------------------------------
    def apply_retention(self, now: float) -> dict[str, int]:
        cfg = self.config
        conn = self._conn
        cut_ms = int((now - float(cfg.raw_retention)) * 1000)
        keys = conn.execute("SELECT node_id, t0 FROM raw_ticks WHERE t1 < ?",
                            (cut_ms,)).fetchall()
        stats = {"raw_blocks_expired": self._delete_raw(keys)}
        expired = 0
        for tier, retention in ((60, cfg.minute_retention), (3600, cfg.hour_retention)):
            cut = int(now - float(retention))
            # Read before writing: a pass with nothing due opens no write transaction.
            if conn.execute("SELECT 1 FROM rollup WHERE tier = ? AND t < ? LIMIT 1",
                            (tier, cut)).fetchone():
                expired += self._write(lambda tier=tier, cut=cut: conn.execute(
                    "DELETE FROM rollup WHERE tier = ? AND t < ?", (tier, cut)).rowcount)
            expired += self._expire_blocks(tier, cut)
        longest = max(float(cfg.raw_retention), float(cfg.minute_retention),
                      float(cfg.hour_retention))
        if conn.execute("SELECT 1 FROM events WHERE time < ? LIMIT 1",
                        (now - longest,)).fetchone():
            self._write(lambda: conn.execute("DELETE FROM events WHERE time < ?",
                                             (now - longest,)))
        stats["rollups_expired"] = expired
        return stats

    def _expire_blocks(self, tier: int, cut: int) -> int:
        """Delete packed blocks entirely older than ``cut``; trim the one ``cut`` falls in
        once it holds an hour or more of expired entries (so it is rewritten hourly, not on
        every pass)."""
        conn = self._conn
        dropped = 0
        if conn.execute("SELECT 1 FROM rollup_block WHERE tier = ? AND t0 < ? AND t1 < ? "
                        "LIMIT 1", (tier, cut, cut)).fetchone():
            dropped = self._write(lambda: conn.execute(
                "DELETE FROM rollup_block WHERE tier = ? AND t0 < ? AND t1 < ?",
                (tier, cut, cut)).rowcount)
        stale = conn.execute("SELECT series_id, t0 FROM rollup_block WHERE tier = ? AND t0 < ?",
                             (tier, cut - 3600)).fetchall()
        for sid, t0 in stale:
            dropped += self._write(self._trim_block, tier, sid, t0, cut)
        return dropped

    def _trim_block(self, tier: int, sid: int, t0: int, cut: int) -> int:
        conn = self._conn
        row = conn.execute("SELECT data FROM rollup_block WHERE tier = ? AND series_id = ? "
                           "AND t0 = ?", (tier, sid, t0)).fetchone()
        if row is None:
            return 0
        cols = _block_columns(tier, t0, row[0])
        keep = cols[0] >= cut
        conn.execute("DELETE FROM rollup_block WHERE tier = ? AND series_id = ? AND t0 = ?",
                     (tier, sid, t0))
        if keep.any():
            _insert_block(conn, tier, sid, [c[keep] for c in cols])
        return int((~keep).sum())

    # -- orphaned tails ------------------------------------------------------------------
    def seal_orphans(self, now: float) -> int:
        """Seal the live tail rows of writers that died (and any live tail row too old to
        belong to a live writer's memory); returns minutes sealed."""
        conn = self._conn
        writers = conn.execute("SELECT id, pid, started, host FROM writers").fetchall()
        dead = [wid for wid, pid, started, host in writers if not _alive(pid, started, host)]
        # By when rows were written, never by their sample times, which may be far in the
        # past (a backfill, a node with a skewed clock) while their writer still holds them.
        cut = now - 60 * self.config.max_pending_minutes - _ORPHAN_MARGIN_S
        done = set(conn.execute("SELECT writer, node_id, minute FROM minutes "
                                "WHERE writer IS NOT NULL").fetchall())
        old = {key[0] for key in conn.execute(
            "SELECT writer, node_id, minute FROM tail WHERE written < ?", (cut,))
            if key not in done}
        sealed = 0
        for wid in dead:
            sealed += self._write(self._seal_writer, wid, None)
        for wid in old - set(dead):
            sealed += self._write(self._seal_writer, wid, cut)
        return sealed

    def _seal_writer(self, writer: int, before: float | None) -> int:
        """Seal ``writer``'s live tail rows (only minutes whose rows were all written before
        ``before`` when given; otherwise all, and then its rows and its entry in the writers
        table go)."""
        conn = self._conn
        done = set(conn.execute("SELECT node_id, minute FROM minutes WHERE writer = ?",
                                (writer,)).fetchall())
        groups: dict[tuple[int, int], list[bytes]] = defaultdict(list)
        newest: dict[tuple[int, int], float] = {}
        for node_id, minute, written, data in conn.execute(
                "SELECT node_id, minute, written, data FROM tail WHERE writer = ? ORDER BY t0",
                (writer,)):
            if (node_id, minute) not in done:
                groups[(node_id, minute)].append(data)
                newest[(node_id, minute)] = max(newest.get((node_id, minute), written),
                                                written)
        if before is not None:  # whole minutes only: sealing hides all its tail rows
            groups = {key: rows for key, rows in groups.items() if newest[key] < before}
        for (node_id, minute), rows in groups.items():
            self._seal_minute(writer, node_id, minute, [decode_tail(data) for data in rows])
        if before is None:
            conn.execute("DELETE FROM tail WHERE writer = ?", (writer,))
            conn.execute("DELETE FROM writers WHERE id = ?", (writer,))
        return len(groups)

    def _seal_minute(self, writer: int, node_id: int, minute: int,
                     tails: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """One minute row from tail rows' (times, series ids, values), as their writer
        would have sealed the minute."""
        sids = sorted({int(s) for _, ids, _ in tails for s in ids.tolist()})
        row_of = {sid: i for i, sid in enumerate(sids)}
        times = np.concatenate([t for t, _, _ in tails])
        values = np.full((len(sids), times.size), np.nan)
        offset = 0
        for t, ids, plain in tails:
            for j, sid in enumerate(ids.tolist()):
                values[row_of[sid], offset:offset + t.size] = plain[j]
            offset += t.size
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[:, order]
        ticks, encoded = encode_samples(times, values)
        series = [(sid, *enc) for sid, enc in zip(sids, encoded, strict=True)
                  if enc is not None]
        self._conn.execute(
            "INSERT INTO minutes (node_id, minute, writer, t0, t1, n, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (node_id, minute, writer, int(times[0]),
                                             int(times[-1]), int(times.size),
                                             encode_sealed(ticks, series)))

    # -- raw compaction ------------------------------------------------------------------
    def compact_raw(self, now: float | None = None) -> int:
        """Merge every finished node-hour's minutes (and the minute blocks of stores written
        before them) into one block per series, writing the hour's rollups; returns hours
        merged."""
        conn = self._conn
        now_ms = int((time.time() if now is None else now) * 1000)
        raw_cut = now_ms - int(float(self.config.raw_retention) * 1000)
        newest: dict[int, int] = dict(conn.execute(
            "SELECT node_id, max(t1) FROM raw_ticks GROUP BY node_id").fetchall())
        todo: set[tuple[int, int]] = set()
        sealed: set[tuple[int | None, int, int]] = set()
        for writer, node_id, minute, t1 in conn.execute(
                "SELECT writer, node_id, minute, t1 FROM minutes"):
            todo.add((node_id, minute * 1000 // HOUR_MS))
            sealed.add((writer, node_id, minute))
            newest[node_id] = max(newest.get(node_id, t1), t1)
        open_hours: set[tuple[int, int]] = set()
        for writer, node_id, minute, t1 in conn.execute(
                "SELECT writer, node_id, minute, t1 FROM tail"):
            if (writer, node_id, minute) not in sealed:
                open_hours.add((node_id, minute * 1000 // HOUR_MS))
                newest[node_id] = max(newest.get(node_id, t1), t1)
        # Stores written before the tail have minute blocks in raw_ticks.
        todo.update(conn.execute(
            f"SELECT node_id, t0 / {HOUR_MS} AS h FROM raw_ticks GROUP BY node_id, h "
            "HAVING count(*) > 1").fetchall())
        merged = 0
        for node_id, hour in sorted(todo):
            end = (hour + 1) * HOUR_MS
            finished = end <= newest.get(node_id, 0) or now_ms >= end + _HOUR_GRACE_MS
            if not finished or (node_id, hour) in open_hours:
                continue  # a writer may still add to it (a live tail row is in it)
            if end <= raw_cut and self._has_hour_rollup(node_id, hour * HOUR_MS // 1000):
                # Late samples for an hour whose raw data has expired: its rollups cannot be
                # recomputed whole, so they stay as they are and the samples go.
                self._write(self._drop_hour_minutes, node_id, hour * HOUR_MS)
                continue
            merged += self._compact_hour(node_id, hour * HOUR_MS, keep_raw=end > raw_cut)
        return merged

    def _has_hour_rollup(self, node_id: int, hour: int) -> bool:
        conn = self._conn
        sids = "SELECT id FROM series WHERE node_id = ?"
        return bool(conn.execute(
            f"SELECT 1 FROM rollup WHERE tier = {HOUR} AND t = ? AND series_id IN ({sids}) "
            f"UNION ALL SELECT 1 FROM rollup_block WHERE tier = {HOUR} AND t0 <= ? "
            f"AND t1 >= ? AND series_id IN ({sids}) LIMIT 1",
            (hour, node_id, hour, hour, node_id)).fetchone())

    def _drop_hour_minutes(self, node_id: int, start: int) -> None:
        """Delete a node-hour's minute rows and the stale tail rows they sealed."""
        span = (node_id, start // 1000, (start + HOUR_MS) // 1000)
        # Stale rows only, decided in this transaction: a live row, or a slot the writer
        # has reused meanwhile, stays.
        self._conn.execute(
            "DELETE FROM tail WHERE node_id = ? AND minute >= ? AND minute < ? AND EXISTS ("
            "SELECT 1 FROM minutes m WHERE m.writer = tail.writer AND m.node_id = tail.node_id "
            "AND m.minute = tail.minute)", span)
        self._conn.execute("DELETE FROM minutes WHERE node_id = ? AND minute >= ? "
                           "AND minute < ?", span)

    def _hour_keys(self, node_id: int, start: int) -> tuple[list[tuple[int, int, int]],
                                                            list[int]]:
        """What the hour is stored as: its raw blocks' keys and its minute rows."""
        conn = self._conn
        blocks = conn.execute(
            "SELECT t0, t1, n FROM raw_ticks WHERE node_id = ? AND t0 >= ? AND t0 < ? "
            "ORDER BY t0", (node_id, start, start + HOUR_MS)).fetchall()
        minutes = [r[0] for r in conn.execute(
            "SELECT id FROM minutes WHERE node_id = ? AND minute >= ? AND minute < ? "
            "ORDER BY id", (node_id, start // 1000, (start + HOUR_MS) // 1000))]
        return blocks, minutes

    def _compact_hour(self, node_id: int, start: int, keep_raw: bool = True) -> int:
        """Merge one node-hour into one raw block (none when ``keep_raw`` is False: the hour
        is past the raw retention) and write its rollup rows, in one transaction."""
        conn = self._conn
        end = start + HOUR_MS
        sids = [r[0] for r in conn.execute("SELECT id FROM series WHERE node_id = ?",
                                           (node_id,))]
        conn.execute("BEGIN")  # one snapshot for the reads
        try:
            keys = self._hour_keys(node_id, start)
            times, values = load_raw(conn, node_id, sids, start, end, tails=False)
        finally:
            conn.execute("COMMIT")
        if times.size == 0:
            return 0
        t0, t1 = int(times[0]), int(times[-1])
        ticks, encoded = encode_samples(times, values)
        rows = [(sid, t0, t1, int(np.count_nonzero(~np.isnan(row))), *enc)
                for sid, row, enc in zip(sids, values, encoded, strict=True) if enc is not None]
        minutes = rows_of(MINUTE, sids, times, values)
        hours = rows_of(HOUR, sids, times, values)

        def swap() -> int:
            if (self._hour_keys(node_id, start) != keys
                    or live_tail(conn, node_id, start, end)):
                return 0  # a writer added to the hour meanwhile: try again next pass
            self._delete_raw_batch([(node_id, b[0]) for b in keys[0]], {node_id: sids})
            self._drop_hour_minutes(node_id, start)
            if keep_raw:
                conn.execute("INSERT INTO raw_ticks (node_id, t0, t1, n, data) "
                             "VALUES (?, ?, ?, ?, ?)", (node_id, t0, t1, int(times.size), ticks))
                conn.executemany("INSERT INTO raw (series_id, t0, t1, n, mask, data) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", rows)
            # Every sample of the hour is here, so its rollups are replaced, not added to.
            replace_rows(conn, MINUTE, minutes)
            replace_rows(conn, HOUR, hours)
            return 1

        return self._write(swap)

    # -- rollup packing ------------------------------------------------------------------
    def pack_rollups(self, now: float) -> int:
        conn = self._conn
        packed = 0
        series = self._node_series()
        for node_id, sids in series.items():
            newest = conn.execute(
                "SELECT max(t) FROM (SELECT max(t1) AS t FROM raw_ticks WHERE node_id = ? "
                "UNION ALL SELECT max(t1) FROM minutes WHERE node_id = ?)",
                (node_id, node_id)).fetchone()[0]
            frontier = min(now, newest / 1000) if newest is not None else now
            for tier, span in PACK_SPAN_S.items():
                # Whole hours only, so each block is rewritten at most once an hour.
                cutoff = int((frontier - _PACK_AFTER_S[tier]) // 3600 * 3600)
                todo: set[tuple[int, int]] = set()
                for j in range(0, len(sids), 500):
                    chunk = sids[j:j + 500]
                    todo.update(conn.execute(
                        f"SELECT DISTINCT series_id, t / {span} FROM rollup WHERE tier = ? "
                        f"AND series_id IN ({','.join('?' * len(chunk))}) AND t < ?",
                        (tier, *chunk, cutoff)).fetchall())
                for sid, k in sorted(todo):
                    s0 = int(k) * span
                    packed += self._write(self._pack_one, tier, sid, s0, min(s0 + span, cutoff))
        return packed

    def _pack_one(self, tier: int, sid: int, s0: int, stop: int) -> int:
        """Merge the rows of one series in ``[s0, stop)`` into the block starting at s0."""
        conn = self._conn
        rows = conn.execute(
            "SELECT t, count, min, max, sum, last FROM rollup WHERE tier = ? AND series_id = ? "
            "AND t >= ? AND t < ? ORDER BY t", (tier, sid, s0, stop)).fetchall()
        if not rows:
            return 0
        table = np.array(rows, dtype=np.float64)
        cols = [table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2],
                table[:, 3], table[:, 4], table[:, 5]]
        # The packed block of this span, if any: its first entry (t0) lies in the span.
        old = conn.execute("SELECT t0, data FROM rollup_block WHERE tier = ? AND series_id = ? "
                           "AND t0 >= ? AND t0 < ?",
                           (tier, sid, s0, s0 + PACK_SPAN_S[tier])).fetchone()
        if old is not None:
            prev = _block_columns(tier, old[0], old[1])
            fresh = set(cols[0].tolist())
            keep = np.array([t not in fresh for t in prev[0].tolist()], dtype=bool)
            cols = [np.concatenate([p[keep], c]) for p, c in zip(prev, cols, strict=True)]
            order = np.argsort(cols[0], kind="stable")
            cols = [c[order] for c in cols]
            conn.execute("DELETE FROM rollup_block WHERE tier = ? AND series_id = ? AND t0 = ?",
                         (tier, sid, old[0]))
        _insert_block(conn, tier, sid, cols)
        conn.execute("DELETE FROM rollup WHERE tier = ? AND series_id = ? AND t >= ? AND t < ?",
                     (tier, sid, s0, stop))
        return 1

    # -- size cap ------------------------------------------------------------------------
    def used_bytes(self) -> int:
        """Bytes of live pages (the file minus its free pages)."""
        conn = self._conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def _oldest(self) -> dict[str, float]:
        conn = self._conn
        out: dict[str, float] = {}
        raw = conn.execute("SELECT min(t0) FROM raw_ticks").fetchone()[0]
        if raw is not None:
            out["raw"] = raw / 1000
        for tier, name in ((60, "1min"), (3600, "1h")):
            candidates = [
                conn.execute("SELECT min(t) FROM rollup WHERE tier = ?", (tier,)).fetchone()[0],
                conn.execute("SELECT min(t0) FROM rollup_block WHERE tier = ?",
                             (tier,)).fetchone()[0]]
            present = [c for c in candidates if c is not None]
            if present:
                out[name] = float(min(present))
        return out

    def apply_size_cap(self, now: float) -> dict[str, int]:
        cap = int(self.config.max_bytes)
        conn = self._conn
        dropped = 0
        over = self.used_bytes() > cap
        while self.used_bytes() > cap:
            oldest = self._oldest()
            if not oldest:
                break
            tier = max(oldest, key=lambda name: (now - oldest[name]) / self.config.retention(name))
            if tier == "raw":
                limit = (int(oldest["raw"] * 1000) // HOUR_MS + 1) * HOUR_MS
                keys = conn.execute("SELECT node_id, t0 FROM raw_ticks WHERE t0 < ?",
                                    (limit,)).fetchall()
                removed = self._delete_raw(keys)
            else:
                number = 60 if tier == "1min" else 3600
                span = PACK_SPAN_S[number]
                limit = int(oldest[tier] // span * span + span)

                def drop(number: int = number, limit: int = limit) -> int:
                    return (conn.execute("DELETE FROM rollup WHERE tier = ? AND t < ?",
                                         (number, limit)).rowcount
                            + conn.execute("DELETE FROM rollup_block WHERE tier = ? AND t0 < ?",
                                           (number, limit)).rowcount)

                removed = self._write(drop)
            if not removed:
                break
            dropped += removed
        if over:
            log.warning("store above its size cap (%d bytes): dropped %d oldest blocks/rows",
                        cap, dropped)
        vacuumed = self._vacuum(force=over)
        return {"cap_dropped": dropped, "vacuumed_pages": vacuumed}

    def vacuum(self) -> int:
        """Give every free page back to the file system now; returns pages freed."""
        with self._lock:
            return self._vacuum(force=True)

    def _vacuum(self, force: bool) -> int:
        """Give free pages back to the file system when there are many (or after capping)."""
        conn = self._conn
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        if not free or (not force and free * size < 16 << 20):
            return 0
        total = 0
        while free:
            conn.execute(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})").fetchall()
            left = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if left >= free:  # auto_vacuum is off (a database made elsewhere): nothing to do
                break
            total += free - left
            free = left
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return total


def _alive(pid: int, started: float, host: str) -> bool:
    """Whether the writer process ``pid`` started at ``started`` still runs (a writer on
    another host counts as alive: only the age rule seals its rows)."""
    if host != socket.gethostname():
        return True
    try:
        process = psutil.Process(pid)
        if started and abs(process.create_time() - started) >= 1.0:
            return False  # the pid now belongs to another process
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True
