"""The store writer: a queue, a thread, batched transactions.

The sampler's sink only enqueues (:meth:`StoreWriter.write` never blocks by default). The
writer thread turns samples into per-minute blocks and commits every ``flush_interval``
seconds or ``batch_size`` samples, whichever comes first. A commit stores what each open
minute got since the previous one as one small tail row per node, in a slot (rowid) freed
by a minute sealed earlier, so the commit overwrites one existing page: other processes
see samples within one flush interval, at a cost that does not grow with the minute. Each
minute that closed is sealed in the same commit: its block is encoded once into a
``minutes`` row, which makes its tail rows stale. Rollups are not written here: the
maintenance thread writes them when it merges a finished hour into raw blocks, and readers
compute the newest ones from the minutes and the tail. A clean :meth:`StoreWriter.close`
seals and flushes everything; a crash loses at most what arrived since the last commit, and
the recorder's maintenance seals the tail rows the crashed writer left.

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

import psutil

from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.store.buffer import Block, SampleBuffer
from tracklab_jupyter.store.codec import encode_sealed, encode_tail
from tracklab_jupyter.store.config import StoreConfig
from tracklab_jupyter.store.db import is_disk_full, open_writer_db
from tracklab_jupyter.store.ids import IdCache
from tracklab_jupyter.store.maintenance import Maintenance
from tracklab_jupyter.store.paths import DB_NAME, ensure_data_dir
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.store")

_MAX_EVENTS_PENDING = 1000
# A tail row's rowid is its writer's id shifted by this many bits, plus the writer's own
# slot number, so writers never collide.
_SLOT_BITS = 24


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
        # The writer thread sleeps on this, not on the queue (see _run).
        self._wake = threading.Event()
        self._next_flush: float | None = None  # monotonic; None: no timed flush armed
        self._buffer = SampleBuffer()
        self._ids = IdCache()
        self._events: deque[Event] = deque(maxlen=_MAX_EVENTS_PENDING)
        self._infos: dict[str, _Info] = {}
        # This writer's row in the writers table, made by the first commit (so a store that
        # cannot be written yet does not stop the writer from starting).
        self._writer_id: int | None = None
        # Tail slots: numbers handed out so far, and those whose rows are stale (reusable).
        self._slot_count = 0
        self._free_slots: list[int] = []
        self._new_slots: list[tuple[Block, int]] = []  # taken by the flush in progress
        self._kept_tail = False  # a dropped block left live tail rows (maintenance seals them)
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
        except queue.Full:
            self.counters["dropped_queue_full"] += 1
            if not self._warned_drop:
                self._warned_drop = True
                log.warning("store writer is %d samples behind; dropping new samples",
                            self.config.max_queue)
            return False
        self._nudge()
        return True

    def write_event(self, event: Event) -> None:
        """Queue an event for the events table."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.counters["dropped_queue_full"] += 1
        self._nudge()

    def write_info(self, node: str, info: dict[str, Any]) -> None:
        """Queue a node's static facts (kept one per node, for readers elsewhere)."""
        try:
            self._queue.put_nowait(_Info(node, time.time(), info))
        except queue.Full:
            self.counters["dropped_queue_full"] += 1
        self._nudge()

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far now; True when it was committed."""
        if self._closed or not self._thread.is_alive():
            return False
        request = _FlushRequest()
        try:
            self._queue.put(request, timeout=timeout)
        except queue.Full:
            return False
        self._wake.set()
        return request.done.wait(timeout) and request.ok

    def _nudge(self) -> None:
        """Wake the writer only when its own clock would not: it sleeps with no flush due
        (the queue was empty), or a batch is full. A sample of a busy node is picked up by
        the next timed flush, so the sampler's put wakes no one."""
        if self._next_flush is None or self._queue.qsize() >= self.config.batch_size:
            self._wake.set()

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
            self._wake.set()
            self._thread.join(timeout)
        if not self._thread.is_alive():
            if self._buffer.pending_samples == 0 and not self._kept_tail:
                self._unregister()
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
        """Flush on the writer's own clock, not on each sample's arrival: while a timed
        flush is armed, a put into the queue wakes no one; the first sample after a quiet
        spell arms it half an interval ahead, and each timed flush that wrote something
        re-arms it one interval on. With samples as often as flushes the thread wakes once
        per flush, between the sampler's ticks, never to wait for the sampler's GIL (each
        wake-up costs this thread more than the work it does)."""
        name_os_thread()
        interval = float(self.config.flush_interval)
        since = 0  # samples taken since the last flush
        while True:
            woken = self._wake.wait(self._wait(self._next_flush))
            self._wake.clear()
            stop, requests, samples = self._drain()
            since += samples
            if stop:
                self._buffer.close_all()
                ok = self._flush()
                if not ok and self._buffer.pending_samples:
                    log.warning("store writer closed with %d samples unwritten (%s)",
                                self._buffer.pending_samples, self.last_error)
                self._answer(requests, ok)
                return
            now = time.monotonic()
            armed = self._next_flush is not None
            timed = armed and now >= self._next_flush - 0.05 * interval  # type: ignore[operator]
            # Unarmed and not woken: a quiet node's minute to seal, or a retry, is due.
            if requests or (now >= self._retry_at
                            and (timed or since >= self.config.batch_size or not (armed or woken))):
                wrote = self._has_pending()
                self._answer(requests, self._flush())
                since = 0
                if timed:  # keep the phase while the node sends; sleep once it stops
                    step = self._next_flush + interval  # type: ignore[operator]
                    self._next_flush = (max(step, now + 0.5 * interval) if wrote
                                        or self._has_pending() else None)
                elif not armed and self._has_pending():  # a failed flush: retry on time
                    self._next_flush = now + interval
            elif not armed and self._has_pending():
                self._next_flush = now + interval / 2
            if self._next_flush is None and not self._queue.empty():
                self._wake.set()  # a put raced with the decision to sleep: its nudge is lost

    @staticmethod
    def _answer(requests: list[_FlushRequest], ok: bool) -> None:
        for request in requests:
            request.ok = ok
            request.done.set()

    def _drain(self) -> tuple[bool, list[_FlushRequest], int]:
        """Take everything queued: (stop asked, flush requests, samples taken)."""
        stop, requests, samples = False, [], 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return stop, requests, samples
            if isinstance(item, Sample):
                self.counters["points"] += self._buffer.add(item)
                self.counters["samples"] += 1
                samples += 1
            elif isinstance(item, Event):
                self._events.append(item)
            elif isinstance(item, _Info):
                self._infos[item.node] = item
            elif isinstance(item, _FlushRequest):
                requests.append(item)
            elif item is _STOP:
                stop = True

    def _has_pending(self) -> bool:
        """Whether anything waits to be written."""
        return bool(self._events or self._infos
                    or any(buf.has_pending for buf in self._buffer.nodes.values()))

    def _wait(self, flush_at: float | None) -> float | None:
        """Seconds until the writer has something to do without being woken: the timed
        flush while one is armed (or anything waits to be written), else the moment an open
        minute of a node that went quiet must be sealed; None (sleep until woken) when
        idle."""
        now = time.monotonic()
        if flush_at is not None or self._has_pending():
            return max(0.0, max(flush_at if flush_at is not None else now,
                                self._retry_at) - now)
        idle = self._idle_seconds()
        wall = time.time()
        waits = [max(block.minute + 60 + idle - wall, block.last_add + idle - now)
                 for buf in self._buffer.nodes.values()
                 if (block := buf.open) is not None]
        return max(0.0, min(waits)) + 0.01 if waits else None

    def _idle_seconds(self) -> float:
        """How long an open minute waits for more samples after its end before it is
        sealed anyway (a node that stopped sending)."""
        return max(5.0, 2 * float(self.config.flush_interval))

    def _flush(self) -> bool:
        self._buffer.close_idle(time.time(), self._idle_seconds())
        conn = self._conn
        registered = self._writer_id is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            tailed, sealed = self._write_all(conn)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._ids.rollback()
            if not registered:
                self._writer_id = None
            for block, slot in self._new_slots:  # their rows were rolled back
                block.slots.remove(slot)
                self._free_slots.append(slot)
            self._new_slots.clear()
            self._on_failure(exc)
            return False
        self._ids.commit()
        self._new_slots.clear()
        self._after_commit(tailed, sealed)
        return True

    # -- writing -------------------------------------------------------------------------
    def _write_all(self, conn: sqlite3.Connection) -> tuple[list[Block], list[Block]]:
        """Seal closed minutes, store the open ones' new samples; returns the blocks that
        got a tail row and the blocks sealed."""
        tailed: list[Block] = []
        sealed: list[Block] = []
        for node, buf in self._buffer.nodes.items():
            if not buf.has_pending:
                continue
            node_id = self._ids.node(conn, node)
            for block in (*buf.closed, *buf.late.values()):
                self._seal(conn, node_id, block)
                sealed.append(block)
            if buf.open is not None and buf.open.unflushed:
                self._append_tail(conn, node_id, buf.open)
                tailed.append(buf.open)
        if self._events:
            conn.executemany(
                "INSERT INTO events (time, node, kind, message, data) VALUES (?, ?, ?, ?, ?)",
                [(e.time, e.node, e.kind, e.message, json.dumps(e.data, default=str))
                 for e in self._events])
        for info in self._infos.values():
            conn.execute("INSERT OR REPLACE INTO node_info (node, time, info) VALUES (?, ?, ?)",
                         (info.node, info.time, json.dumps(info.info, default=str)))
        return tailed, sealed

    def _writer(self, conn: sqlite3.Connection) -> int:
        if self._writer_id is None:
            self._writer_id = conn.execute(
                "INSERT INTO writers (pid, started, host) VALUES (?, ?, ?)",
                (os.getpid(), _process_started(), socket.gethostname())).lastrowid
        return self._writer_id

    def _append_tail(self, conn: sqlite3.Connection, node_id: int, block: Block) -> None:
        """One row with what ``block`` got since the last flush, in a reused slot: the
        commit overwrites one page and allocates none."""
        times, names, values = block.tail()
        sids = self._ids.series_of(conn, node_id, names)
        writer = self._writer(conn)
        if self._free_slots:
            local = self._free_slots.pop()
        else:
            local = self._slot_count
            self._slot_count += 1
        block.slots.append(local)
        self._new_slots.append((block, local))
        conn.execute("INSERT OR REPLACE INTO tail (slot, writer, node_id, minute, t0, t1, n, "
                     "written, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (writer << _SLOT_BITS | local, writer, node_id, block.minute, min(times),
                      max(times), len(times), time.time(), encode_tail(times, sids, values)))

    def _seal(self, conn: sqlite3.Connection, node_id: int, block: Block) -> None:
        """Store a closed minute whole, encoded once; its tail rows are stale from then on
        (a row naming this writer, node and minute exists)."""
        encoded = block.encode()
        series = [(self._ids.series(conn, node_id, name), mask, data)
                  for name, mask, data in encoded.series]
        conn.execute("INSERT INTO minutes (node_id, minute, writer, t0, t1, n, data) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (node_id, block.minute, self._writer(conn) if block.slots else None,
                      encoded.t0, encoded.t1, encoded.n, encode_sealed(encoded.ticks, series)))

    def _after_commit(self, tailed: list[Block], sealed: list[Block]) -> None:
        for block in tailed:
            block.flushed = len(block.times)
        for block in sealed:
            self._free_slots.extend(block.slots)
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

    def _unregister(self) -> None:
        """Every tail row of this writer is stale: drop them and leave the writers table."""
        if self._writer_id is None:
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM tail WHERE writer = ?", (self._writer_id,))
            self._conn.execute("DELETE FROM writers WHERE id = ?", (self._writer_id,))
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:  # the recorder's maintenance tidies it later
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            log.debug("could not unregister store writer %d: %s", self._writer_id, exc)

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
        dropped, kept_tail = self._buffer.trim(self.config.max_pending_minutes)
        self.counters["dropped_unwritable"] += dropped
        self._kept_tail = self._kept_tail or kept_tail

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


def _process_started() -> float:
    """This process's start time, which with its pid tells it apart from a later process
    that reuses the pid."""
    try:
        return psutil.Process().create_time()
    except psutil.Error:
        return 0.0
