"""The store writer: a queue, a thread, batched transactions.

The sampler's sink only enqueues (:meth:`StoreWriter.write` never blocks by default). The
writer thread turns samples into per-minute blocks and commits every ``flush_interval``
seconds or ``batch_size`` samples, whichever comes first; the minute still being filled is
written too (and replaced on the next flush), so other processes see samples within one
flush interval. A clean :meth:`StoreWriter.close` flushes everything; a crash loses at most
what arrived since the last commit.

When the database cannot be written (a full disk, most often), sampling goes on: the writer
warns once, keeps the newest ``max_pending_minutes`` of samples per node in memory, asks the
maintenance thread to free space, and retries with a growing delay.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracklab_jupyter.sampler.sample import Event, Sample
from tracklab_jupyter.store.buffer import Block, SampleBuffer
from tracklab_jupyter.store.config import StoreConfig
from tracklab_jupyter.store.db import is_disk_full, open_writer_db
from tracklab_jupyter.store.ids import IdCache
from tracklab_jupyter.store.maintenance import Maintenance
from tracklab_jupyter.store.paths import DB_NAME, ensure_data_dir
from tracklab_jupyter.store.query import MAX_RAW_SPAN_MS
from tracklab_jupyter.store.rollups import (
    MINUTE,
    add_to_hours,
    rebuild_hour,
    rebuild_minute,
    replace_rows,
)

log = logging.getLogger("tracklab_jupyter.store")

_MAX_EVENTS_PENDING = 1000


@dataclass
class _Info:
    node: str
    time: float
    info: dict[str, Any]


class _FlushRequest:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


_STOP = object()


class StoreWriter:
    """Writes samples and events to ``{data_dir}/metrics.db`` from its own thread.

    Use as a sampler sink: ``sampler.add_sink(writer.write)`` and
    ``sampler.add_event_sink(writer.write_event)``.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None,
                 config: StoreConfig | None = None, *, maintenance: bool = True,
                 side: bool = False) -> None:
        """``side``: a writer that adds other nodes' samples beside the recorder's writer
        (a notebook's cluster monitor while the Jupyter server records): no maintenance and
        no store-wide settings, which are the recorder's."""
        self.side = side
        maintenance = maintenance and not side
        self.config = config or StoreConfig()
        self.data_dir: Path = ensure_data_dir(data_dir)
        self.path: Path = self.data_dir / DB_NAME
        self._conn = open_writer_db(self.path, max_page_count=self.config.max_page_count)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.config.max_queue)
        self._buffer = SampleBuffer()
        self._ids = IdCache()
        self._events: deque[Event] = deque(maxlen=_MAX_EVENTS_PENDING)
        self._infos: dict[str, _Info] = {}
        self._checked_nodes: set[str] = set()
        self._retry_delay = 0.0
        self._retry_at = 0.0
        self._failing: str | None = None
        self._warned_drop = False
        self._closed = False
        self.counters = {"samples": 0, "points": 0, "flushes": 0, "failed_flushes": 0,
                         "dropped_queue_full": 0, "dropped_unwritable": 0, "events": 0}
        self.last_error: str | None = None
        if not side:
            self._write_meta(clean=False)
        self.maintenance = Maintenance(self.path, self.config) if maintenance else None
        self._thread = threading.Thread(target=self._run, name="tracklab-store-writer",
                                        daemon=True)
        self._thread.start()
        if self.maintenance is not None:
            self.maintenance.start()

    # -- public API ----------------------------------------------------------------------
    def write(self, sample: Sample, block: bool = False) -> bool:
        """Queue a sample. Never blocks unless ``block``; returns False when it was dropped
        because the queue was full."""
        try:
            self._queue.put(sample, block=block)
            return True
        except queue.Full:
            self.counters["dropped_queue_full"] += 1
            if not self._warned_drop:
                self._warned_drop = True
                log.warning("store writer is %d samples behind; dropping new samples",
                            self.config.max_queue)
            return False

    def write_event(self, event: Event) -> None:
        """Queue an event for the events table."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.counters["dropped_queue_full"] += 1

    def write_info(self, node: str, info: dict[str, Any]) -> None:
        """Queue a node's static facts (kept one per node, for readers elsewhere)."""
        try:
            self._queue.put_nowait(_Info(node, time.time(), info))
        except queue.Full:
            self.counters["dropped_queue_full"] += 1

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far now; True when it was committed."""
        if self._closed or not self._thread.is_alive():
            return False
        request = _FlushRequest()
        try:
            self._queue.put(request, timeout=timeout)
        except queue.Full:
            return False
        return request.done.wait(timeout) and request.ok

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush and stop (idempotent). Closes the minute in progress, so its rollups are
        written too."""
        if self._closed:
            return
        self._closed = True
        if self.maintenance is not None:
            self.maintenance.close(timeout)
        if self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                log.warning("store writer queue stuck; closing without a final flush")
            self._thread.join(timeout)
        if not self._thread.is_alive():
            if not self.side:
                self._write_meta(clean=True)
            self._conn.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, Any]:
        """Counters, what waits in memory, and the last error (None when healthy)."""
        return {**self.counters, "queued": self._queue.qsize(),
                "pending_samples": self._buffer.pending_samples,
                "failing": self._failing, "last_error": self.last_error,
                "path": str(self.path)}

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        interval = float(self.config.flush_interval)
        batch = self.config.batch_size
        next_flush = time.monotonic() + interval
        since = 0
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, next_flush - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._buffer.close_all()
                if not self._flush() and self._buffer.pending_samples:
                    log.warning("store writer closed with %d samples unwritten (%s)",
                                self._buffer.pending_samples, self.last_error)
                return
            if isinstance(item, Sample):
                self.counters["points"] += self._buffer.add(item)
                self.counters["samples"] += 1
                since += 1
            elif isinstance(item, Event):
                self._events.append(item)
            elif isinstance(item, _Info):
                self._infos[item.node] = item
            elif isinstance(item, _FlushRequest):
                item.ok = self._flush()
                item.done.set()
                since = 0
                next_flush = time.monotonic() + interval
                continue
            now = time.monotonic()
            if since >= batch or now >= next_flush:
                if now >= self._retry_at:
                    self._flush()
                    since = 0
                next_flush = now + interval

    def _flush(self) -> bool:
        self._buffer.close_idle(time.time(), max(5.0, 2 * float(self.config.flush_interval)))
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            written = self._write_all(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._ids.rollback()
            self._on_failure(exc)
            return False
        self._ids.commit()
        self._after_commit(written)
        return True

    # -- writing -------------------------------------------------------------------------
    def _write_all(self, conn: sqlite3.Connection) -> list[tuple[Block, int]]:
        written: list[tuple[Block, int]] = []
        for node, buf in self._buffer.nodes.items():
            node_id = self._ids.node(conn, node)
            for block in buf.closed:
                written.append((block, self._write_block(conn, node_id, block, final=True)))
            for block in buf.late.values():
                written.append((block, self._write_late(conn, node_id, block)))
            if buf.open is not None and buf.open.dirty:
                written.append((buf.open, self._write_block(conn, node_id, buf.open,
                                                            final=False)))
        if self._events:
            conn.executemany(
                "INSERT INTO events (time, node, kind, message, data) VALUES (?, ?, ?, ?, ?)",
                [(e.time, e.node, e.kind, e.message, json.dumps(e.data, default=str))
                 for e in self._events])
        for info in self._infos.values():
            conn.execute("INSERT OR REPLACE INTO node_info (node, time, info) VALUES (?, ?, ?)",
                         (info.node, info.time, json.dumps(info.info, default=str)))
        return written

    def _others_in_minute(self, conn: sqlite3.Connection, node_id: int, block: Block,
                          t0: int) -> bool:
        start = block.minute * 1000
        row = conn.execute(
            "SELECT 1 FROM raw_ticks WHERE node_id = ? AND t0 >= ? AND t0 < ? AND t1 >= ? "
            "AND t0 != ? AND t0 != ? LIMIT 1",
            (node_id, start - MAX_RAW_SPAN_MS, start + MINUTE * 1000, start, t0,
             block.written_t0 if block.written_t0 is not None else t0)).fetchone()
        return row is not None

    def _write_block(self, conn: sqlite3.Connection, node_id: int, block: Block,
                     final: bool) -> int:
        encoded = block.encode()
        sids = [self._ids.series(conn, node_id, s.name) for s in encoded.series]
        if block.written_t0 is not None and block.written_t0 != encoded.t0:
            # A late sample moved the block's start: drop the version stored under the old key.
            conn.execute("DELETE FROM raw_ticks WHERE node_id = ? AND t0 = ?",
                         (node_id, block.written_t0))
            conn.executemany("DELETE FROM raw WHERE series_id = ? AND t0 = ?",
                             [(sid, block.written_t0) for sid in sids])
        if block.merge is None:
            block.merge = (block.node not in self._checked_nodes
                           and self._others_in_minute(conn, node_id, block, encoded.t0))
        conn.execute("INSERT OR REPLACE INTO raw_ticks (node_id, t0, t1, n, data) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (node_id, encoded.t0, encoded.t1, encoded.n, encoded.ticks))
        conn.executemany(
            "INSERT OR REPLACE INTO raw (series_id, t0, t1, n, mask, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(sid, encoded.t0, encoded.t1, s.n, s.mask, s.data)
             for sid, s in zip(sids, encoded.series, strict=True)])
        if block.merge:
            every = self._ids.node_series(conn, node_id)
            rebuild_minute(conn, node_id, every, block.minute)
            if final:
                rebuild_hour(conn, every, block.minute // 3600 * 3600)
        else:
            rows = [(sid, block.minute, s.vmin, s.vmax, s.vsum, s.n, s.last)
                    for sid, s in zip(sids, encoded.series, strict=True)]
            replace_rows(conn, MINUTE, rows)
            if final:
                add_to_hours(conn, rows)
        return encoded.t0

    def _write_late(self, conn: sqlite3.Connection, node_id: int, block: Block) -> int:
        """Samples for a minute already written and gone from memory: a block of their own,
        then that minute and its hour are recomputed from everything stored."""
        encoded = block.encode()
        inserted = conn.execute(
            "INSERT OR IGNORE INTO raw_ticks (node_id, t0, t1, n, data) VALUES (?, ?, ?, ?, ?)",
            (node_id, encoded.t0, encoded.t1, encoded.n, encoded.ticks)).rowcount
        if not inserted:
            log.debug("dropped %d late samples of %s: a block with the same first time exists",
                      encoded.n, block.node)
            return encoded.t0
        sids = [self._ids.series(conn, node_id, s.name) for s in encoded.series]
        conn.executemany(
            "INSERT OR IGNORE INTO raw (series_id, t0, t1, n, mask, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(sid, encoded.t0, encoded.t1, s.n, s.mask, s.data)
             for sid, s in zip(sids, encoded.series, strict=True)])
        every = self._ids.node_series(conn, node_id)
        rebuild_minute(conn, node_id, every, block.minute)
        rebuild_hour(conn, every, block.minute // 3600 * 3600)
        return encoded.t0

    def _after_commit(self, written: list[tuple[Block, int]]) -> None:
        for block, t0 in written:
            block.written_t0 = t0
            block.dirty = False
            self._checked_nodes.add(block.node)
        for buf in self._buffer.nodes.values():
            buf.closed.clear()
            buf.late.clear()
        self.counters["events"] += len(self._events)
        self._events.clear()
        self._infos.clear()
        self.counters["flushes"] += 1
        self._retry_delay = 0.0
        self._retry_at = 0.0
        if self._failing is not None:
            log.warning("store is writable again (%s); pending samples written",
                        self.path)
            self._failing = None

    def _on_failure(self, exc: sqlite3.Error) -> None:
        self.counters["failed_flushes"] += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        kind = "full" if is_disk_full(exc) else str(exc)
        if self._failing != kind:
            if kind == "full":
                log.warning(
                    "cannot write %s: database or disk is full. Live sampling goes on; the "
                    "newest %d minutes of samples are kept in memory and writing is retried.",
                    self.path, self.config.max_pending_minutes)
            else:
                log.warning("cannot write %s (%s); retrying", self.path, exc)
            self._failing = kind
        if kind == "full" and self.maintenance is not None:
            self.maintenance.request()
        interval = float(self.config.flush_interval)
        self._retry_delay = min(float(self.config.max_retry_interval),
                                self._retry_delay * 2 if self._retry_delay else interval)
        self._retry_at = time.monotonic() + self._retry_delay
        self.counters["dropped_unwritable"] += self._buffer.trim(
            self.config.max_pending_minutes)

    def _write_meta(self, clean: bool) -> None:
        cfg = self.config
        values = {
            "clean_shutdown": "1" if clean else "0",
            "retention.raw_s": str(cfg.raw_retention),
            "retention.1min_s": str(cfg.minute_retention),
            "retention.1h_s": str(cfg.hour_retention),
            "max_bytes": str(cfg.max_bytes),
            "writer": json.dumps({"pid": os.getpid(), "hostname": socket.gethostname(),
                                  "time": time.time()}),
        }
        try:
            with_tx = self._conn
            with_tx.execute("BEGIN IMMEDIATE")
            with_tx.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                values.items())
            with_tx.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            log.warning("could not record store settings in %s: %s", self.path, exc)
