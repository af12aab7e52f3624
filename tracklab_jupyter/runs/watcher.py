"""Noticing runs written by other processes (a training script in a terminal) and telling
live readers through the hub.

One thread checks ``PRAGMA data_version`` on an idle read connection every
:data:`POLL_S` seconds: SQLite changes that number whenever another connection commits,
so an unchanged store costs one cheap statement and no query. The recorder commits samples
every second, so a changed number mostly means new samples: one query of three indexed
maxima tells whether runs changed, and only then do two indexed queries fetch what is new:
runs whose ``change_seq`` grew (and deletion tombstones), and ``run_metrics`` rows past the
last id seen. Every second the thread also looks for runs
whose process died (:mod:`~tracklab_jupyter.runs.lifecycle`) and marks them crashed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tracklab_jupyter.runs.lifecycle import find_crashed
from tracklab_jupyter.runs.store import RunStore, step_columns, time_columns
from tracklab_jupyter.sampler.hub import RUN, RUN_METRICS, Hub
from tracklab_jupyter.store.db import StoreUnavailableError
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.runs")

# While a run view listens (a widget, a WebSocket client), changes are looked for four times
# a second, so a run's end reaches it before the host samples that follow the end; with no
# listener, once a second (crashed runs are still marked within REAP_S).
POLL_S = 0.25
IDLE_POLL_S = 1.0
REAP_S = 1.0
BATCH_ROWS = 50_000


class RunWatcher:
    """Publishes ``RUN`` and ``RUN_METRICS`` items on ``hub`` for changes to the store at
    ``data_dir`` made by any process. ``reap``: mark crashed runs of ``node``."""

    def __init__(self, data_dir: Path, hub: Hub, node: str, *, reap: bool = True) -> None:
        self.data_dir = data_dir
        self.hub = hub
        self.node = node
        self.reap = reap
        self._stop = threading.Event()
        self._store: RunStore | None = None
        self._writable: RunStore | None = None
        self._seq = 0
        self._metric_id = 0
        self._data_version: int | None = None
        self._known: dict[str, tuple[str, str]] = {}  # id -> (project, state)
        self.polls = 0
        self._thread = threading.Thread(target=self._run, name="tracklab-run-watcher",
                                        daemon=True)

    def start(self) -> None:
        """Start watching. Everything committed from now on is published: the starting
        point is taken here, before the thread runs."""
        try:
            self._store = self._open(existing_is_old=True)
        except Exception as exc:  # a damaged store: the recorder deals with it; retry later
            log.warning("tracklab: cannot read runs yet (%s)", exc)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        for store in (self._store, self._writable):
            if store is not None:
                store.close()

    def _open(self, existing_is_old: bool) -> RunStore | None:
        """The read connection, or None while there is no store with runs. A store that
        appears later is all news: its runs are published as created."""
        store = RunStore(self.data_dir)
        if store._conn is None:
            return None
        if existing_is_old:
            self._seq, self._metric_id = store.last_change()
            self._known = {r[0]: (r[1], r[2]) for r in store.conn.execute(
                "SELECT r.id, p.name, r.state FROM runs r "
                "JOIN projects p ON p.id = r.project_id")}
        return store

    def _run(self) -> None:
        name_os_thread()
        next_reap = 0.0
        while not self._stop.wait(POLL_S if self.hub.listened(RUN, RUN_METRICS)
                                  else IDLE_POLL_S):
            try:
                if self._store is None:
                    self._store = self._open(existing_is_old=False)
                    if self._store is None:
                        continue
                version = self._store.conn.execute("PRAGMA data_version").fetchone()[0]
                if version != self._data_version:
                    self._data_version = version
                    if self._store.last_change() != (self._seq, self._metric_id):
                        self.poll()
                if self.reap and time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + REAP_S
                    self._reap()
            except (sqlite3.Error, StoreUnavailableError) as exc:
                # An unusable store is reported by the recorder and the API (503): quiet.
                log.debug("tracklab: watching runs failed (%s); reopening", exc)
                if self._store is not None:
                    self._store.close()
                self._store = None
            except Exception:
                log.exception("tracklab: watching runs failed; retrying")

    def poll(self) -> None:
        """Publish what changed since the last poll (the thread calls this)."""
        store = self._store
        if store is None:
            return
        self.polls += 1
        since = self._seq
        changes: list[tuple[int, dict[str, Any]]] = []
        for seq, run in store.changed_runs(since):
            previous = self._known.get(run["id"])
            reason = ("created" if previous is None
                      else "state" if previous[1] != run["state"] else "updated")
            self._known[run["id"]] = (run["project"], run["state"])
            changes.append((seq, {"reason": reason, "run": run}))
        for seq, run_id, project in store.deleted_runs(since):
            self._known.pop(run_id, None)
            changes.append((seq, {"reason": "deleted", "run": {"id": run_id,
                                                               "project": project}}))
        for seq, change in sorted(changes, key=lambda c: c[0]):
            self._seq = max(self._seq, seq)
            self.hub.publish(RUN, change)
        while True:
            rows = store.new_metric_rows(self._metric_id, BATCH_ROWS)
            if not rows:
                break
            self._metric_id = rows[-1][0]
            self._publish_metrics(rows)
            if len(rows) < BATCH_ROWS:
                break

    def _publish_metrics(self, rows: list[tuple[Any, ...]]) -> None:
        by_run: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in rows:
            by_run[row[1]].append(row)
        for run_id, run_rows in by_run.items():
            logged = sorted((r for r in run_rows if r[2] is not None), key=lambda r: (r[2], r[0]))
            process = [r for r in run_rows if r[2] is None]
            project = self._known.get(run_id, ("", ""))[0]
            update: dict[str, Any] = {"run": run_id, "project": project,
                                      **step_columns((r[2], r[3], r[4], r[5]) for r in logged)}
            if process:
                update["process"] = time_columns((r[3], r[4], r[5]) for r in process)
            self.hub.publish(RUN_METRICS, update)

    def _reap(self) -> None:
        store = self._store
        if store is None:
            return
        crashed = find_crashed(store, self.node)
        if not crashed:
            return
        if self._writable is None:
            self._writable = RunStore(self.data_dir, writable=True)
        for run_id, reason in crashed:
            if self._writable.mark_crashed(run_id, reason):
                log.info("tracklab: run %s crashed: %s", run_id, reason)
