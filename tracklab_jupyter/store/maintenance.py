"""Background upkeep of the store: compaction, retention and the size cap.

Runs on its own thread and connection. Heavy work (decoding, re-encoding) happens outside
write transactions, and each write transaction covers one small unit (one node-hour, one
series-day), so the writer never waits more than a few milliseconds for it.

* **Compaction**: the minute blocks of each finished hour are merged into one block per
  series (fewer, larger blocks read much faster); 1-min rollup rows of finished days and
  1-h rows of finished weeks are packed into compressed blocks.
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
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tracklab_jupyter.store.codec import (
    decode_rollup,
    encode_ints,
    encode_mask,
    encode_rollup,
    encode_values,
)
from tracklab_jupyter.store.config import StoreConfig
from tracklab_jupyter.store.db import connect
from tracklab_jupyter.store.query import PACK_SPAN_S, load_raw

log = logging.getLogger("tracklab_jupyter.store")

HOUR_MS = 3_600_000
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
            stats.update(self.apply_retention(now))
            stats["compacted_hours"] = self.compact_raw()
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
            expired += self._write(lambda tier=tier, cut=cut: conn.execute(
                "DELETE FROM rollup WHERE tier = ? AND t < ?", (tier, cut)).rowcount)
            expired += self._expire_blocks(tier, cut)
        longest = max(float(cfg.raw_retention), float(cfg.minute_retention),
                      float(cfg.hour_retention))
        self._write(lambda: conn.execute("DELETE FROM events WHERE time < ?", (now - longest,)))
        stats["rollups_expired"] = expired
        return stats

    def _expire_blocks(self, tier: int, cut: int) -> int:
        """Delete packed blocks entirely older than ``cut``; trim the one ``cut`` falls in
        once it holds an hour or more of expired entries (so it is rewritten hourly, not on
        every pass)."""
        conn = self._conn
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

    # -- raw compaction ------------------------------------------------------------------
    def compact_raw(self) -> int:
        """Merge the blocks of every finished node-hour into one; returns hours merged."""
        conn = self._conn
        merged = 0
        node_ids = [r[0] for r in conn.execute("SELECT id FROM nodes")]
        for node_id in node_ids:
            keys = conn.execute("SELECT t0, t1, n FROM raw_ticks WHERE node_id = ? "
                                "ORDER BY t0", (node_id,)).fetchall()
            if not keys:
                continue
            newest = keys[-1][0]
            by_hour: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
            for key in keys:
                by_hour[key[0] // HOUR_MS].append(key)
            for hour, blocks in sorted(by_hour.items()):
                # Finished: the writer has moved to a later hour (so no block of this hour
                # is still being rewritten).
                if len(blocks) > 1 and (hour + 1) * HOUR_MS <= newest:
                    merged += self._compact_hour(node_id, hour * HOUR_MS, blocks)
        return merged

    def _compact_hour(self, node_id: int, start: int, blocks: list[tuple[int, int, int]]) -> int:
        conn = self._conn
        end = start + HOUR_MS
        sids = [r[0] for r in conn.execute("SELECT id FROM series WHERE node_id = ?",
                                           (node_id,))]
        conn.execute("BEGIN")  # one snapshot for the reads
        try:
            times, values = load_raw(conn, node_id, sids, start, end)
        finally:
            conn.execute("COMMIT")
        if times.size == 0:
            return 0
        t0, t1 = int(times[0]), int(times[-1])
        ticks = encode_ints(times)
        rows = []
        for sid, row in zip(sids, values, strict=True):
            present = ~np.isnan(row)
            count = int(present.sum())
            if count == 0:
                continue
            mask = None if count == row.size else encode_mask(present)
            rows.append((sid, t0, t1, count, mask, encode_values(row[present])))

        def swap() -> int:
            current = conn.execute(
                "SELECT t0, t1, n FROM raw_ticks WHERE node_id = ? AND t0 >= ? AND t0 < ? "
                "ORDER BY t0", (node_id, start, end)).fetchall()
            if current != blocks:
                return 0  # the writer added a (late) block meanwhile: try again next pass
            self._delete_raw_batch([(node_id, b[0]) for b in blocks], {node_id: sids})
            conn.execute("INSERT INTO raw_ticks (node_id, t0, t1, n, data) "
                         "VALUES (?, ?, ?, ?, ?)", (node_id, t0, t1, int(times.size), ticks))
            conn.executemany("INSERT INTO raw (series_id, t0, t1, n, mask, data) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
            return 1

        return self._write(swap)

    # -- rollup packing ------------------------------------------------------------------
    def pack_rollups(self, now: float) -> int:
        conn = self._conn
        packed = 0
        series = self._node_series()
        for node_id, sids in series.items():
            newest = conn.execute("SELECT max(t1) FROM raw_ticks WHERE node_id = ?",
                                  (node_id,)).fetchone()[0]
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
