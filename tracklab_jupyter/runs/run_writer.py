"""The run writer: one thread per process and data dir that batches what runs log.

``run.log`` only appends to a list under a lock; this thread commits the batch about four
times a second (so a server sees values within a second), writes each run's heartbeat and
summary, and samples the process tree of runs with ``system_monitor=True`` once per
interval. A database that is busy or full delays a batch, it never blocks ``run.log``; rows
beyond :data:`MAX_PENDING_ROWS` are dropped oldest first, with a warning.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tracklab_jupyter.runs.lifecycle import HEARTBEAT_S
from tracklab_jupyter.runs.process_tree import ProcessTree, gpu_memory_by_pid
from tracklab_jupyter.runs.store import MetricRow, RunStore, finite
from tracklab_jupyter.settings import DEFAULT_INTERVAL
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.runs")

FLUSH_S = 0.25
MAX_PENDING_ROWS = 1_000_000


@dataclass
class ActiveRun:
    """What the writer keeps for a running run of this process."""

    run_id: str
    system_monitor: bool
    interval: float
    summary: dict[str, float | None] = field(default_factory=dict)
    summary_dirty: bool = False
    processes: str | None = None
    #: The latest system sample's metrics (for GPU memory per pid), or None.
    latest_metrics: Callable[[], dict[str, float] | None] = lambda: None


class RunWriter:
    """Batches run metrics, heartbeats and ends into the store at ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.store = RunStore(data_dir, writable=True)
        #: Guards the store's connection: the caller's thread (creating a run) and this
        #: thread (batches) both use it.
        self.db_lock = threading.Lock()
        self._cond = threading.Condition()
        self._rows: list[MetricRow] = []
        self._ends: list[tuple[str, str, float, str | None, str]] = []
        self._active: dict[str, ActiveRun] = {}
        self._tree: ProcessTree | None = None
        self._flushed = 0  # batches committed, for flush() waiters
        self._wanted = 0
        self._stop = False
        self._warned_drop = False
        self._thread = threading.Thread(target=self._run, name="tracklab-run-writer",
                                        daemon=True)
        self._thread.start()

    # -- called from run methods (any thread) ---------------------------------------------
    def add(self, run: ActiveRun) -> None:
        with self._cond:
            self._active[run.run_id] = run
            self._cond.notify_all()  # its first heartbeat and tick are due now

    def log(self, run_id: str, rows: list[MetricRow], values: dict[str, float | None]) -> None:
        with self._cond:
            if not self._rows:
                self._cond.notify_all()  # a batch starts: the thread may be asleep
            self._rows.extend(rows)
            if len(self._rows) > MAX_PENDING_ROWS:
                del self._rows[:len(self._rows) - MAX_PENDING_ROWS]
                if not self._warned_drop:
                    self._warned_drop = True
                    log.warning("tracklab: the store cannot keep up; dropping the oldest "
                                "unsaved run metrics")
            run = self._active.get(run_id)
            if run is not None:
                run.summary.update({k: finite(v) for k, v in values.items()})
                run.summary_dirty = True

    def end(self, run_id: str, state: str, end: float, error: str | None) -> None:
        with self._cond:
            run = self._active.pop(run_id, None)
            summary = json.dumps(run.summary if run else {})
            self._ends.append((run_id, state, end, error, summary))
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything handed over so far is committed; False on timeout."""
        with self._cond:
            self._wanted += 1  # waiters: the thread keeps committing while there are any
            target = self._flushed + 2  # the batch in progress may predate this call
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._flushed >= target or self._stop,
                                           timeout)
            finally:
                self._wanted -= 1

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self.db_lock:
            self.store.close()

    # -- the thread -----------------------------------------------------------------------
    def _run(self) -> None:
        name_os_thread()
        next_tick = next_beat = last_commit = time.monotonic()
        while True:
            with self._cond:
                if self._stop:
                    return
                timeout = self._timeout(last_commit, next_tick, next_beat)
                if timeout is None or timeout > 0:
                    self._cond.wait(timeout)
                active = list(self._active.values())
            last_commit = time.monotonic()
            now_mono, now = time.monotonic(), time.time()
            tick = now_mono >= next_tick
            beat = now_mono >= next_beat
            if tick:
                interval = min((r.interval for r in active), default=DEFAULT_INTERVAL)
                next_tick = now_mono + interval
                self._sample_trees([r for r in active if r.system_monitor], now)
            if beat:
                next_beat = now_mono + HEARTBEAT_S
            self._commit(active, now, beat)

    def _timeout(self, last_commit: float, next_tick: float, next_beat: float) -> float | None:
        """How long the thread may sleep (None: until notified). Logged rows are batched
        for FLUSH_S; otherwise it wakes for the next heartbeat or process-tree tick of a
        running run, and not at all without one."""
        now = time.monotonic()
        if self._rows or self._ends or self._wanted:
            return last_commit + FLUSH_S - now
        if not self._active:
            return None
        due = next_beat
        if any(r.system_monitor for r in self._active.values()):
            due = min(due, next_tick)
        return due - now

    def _sample_trees(self, runs: list[ActiveRun], now: float) -> None:
        if not runs:
            return
        try:
            if self._tree is None:
                self._tree = ProcessTree()
            latest = runs[0].latest_metrics()
            totals, processes = self._tree.sample(gpu_memory_by_pid(latest or {}))
        except Exception:
            log.debug("tracklab: reading the process tree failed", exc_info=True)
            return
        table = json.dumps(processes)
        rows: list[MetricRow] = []
        for run in runs:
            rows += [(run.run_id, None, now, name, finite(v)) for name, v in totals.items()]
            run.processes = table
        with self._cond:
            self._rows.extend(rows)

    def _commit(self, active: list[ActiveRun], now: float, beat: bool) -> None:
        with self._cond:
            rows, self._rows = self._rows, []
            ends, self._ends = self._ends, []
            wanted = self._wanted
            beats = []
            for run in active:
                if beat or run.summary_dirty or run.processes is not None:
                    summary = json.dumps(run.summary) if run.summary_dirty else None
                    beats.append((run.run_id, now, summary, run.processes))
                    run.summary_dirty = False
                    run.processes = None
        if rows or beats or ends:
            try:
                with self.db_lock:
                    self.store.write_batch(rows, beats, ends)
            except sqlite3.Error as exc:
                log.warning("tracklab: could not save run data (%s); retrying", exc)
                with self._cond:  # put it back in front, in order
                    self._rows[:0] = rows
                    self._ends[:0] = ends
                    for run_id, *_ in beats:
                        if run_id in self._active:
                            self._active[run_id].summary_dirty = True
                return
        with self._cond:
            if wanted or rows or ends:
                self._flushed += 1
            self._cond.notify_all()


_writers: dict[Path, RunWriter] = {}
_writers_lock = threading.Lock()


def run_writer(data_dir: Path) -> RunWriter:
    """This process's writer for ``data_dir`` (created on first use)."""
    with _writers_lock:
        writer = _writers.get(data_dir)
        if writer is None:
            writer = _writers[data_dir] = RunWriter(data_dir)
        return writer


def close_writers() -> None:
    with _writers_lock:
        writers = list(_writers.values())
        _writers.clear()
    for writer in writers:
        writer.close()

