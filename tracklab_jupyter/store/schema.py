"""The database schema, its version, and forward migrations.

The version lives in ``PRAGMA user_version``. Opening a database whose version is newer than
:data:`SCHEMA_VERSION` raises :class:`StoreVersionError` before anything is written to it.

Layout (times: ``raw*`` in epoch milliseconds, rollups in epoch seconds):

* ``nodes`` / ``series``: ``(node, metric name) -> series id``.
* ``raw_ticks``: one row per node and block: the sample times of that block (shared by every
  series of the node, so they are stored once). A block is one minute while it is being
  written; the background compaction merges each finished hour into one block.
* ``raw``: one row per series and block, keyed like its ``raw_ticks`` row, with the values
  and, when the series is missing from some samples, a presence mask.
* ``rollup``: recent 1-min (``tier`` 60) and 1-h (``tier`` 3600) rows: min, max, sum, count,
  last. ``rollup_block`` holds older ones packed per series (a day of minutes, a week of
  hours), keyed by their first entry. A row wins over a packed entry with the same time.
* ``events``: hardware changes (later run and cell markers), queryable alongside metrics.
* ``node_info``: each node's static facts as JSON, for readers in other processes.
* ``meta``: key/value facts about the store (its retention, when it was written cleanly).

Version 2 adds runs (docs/RUNS.md):

* ``projects`` / ``runs``: one row per run. ``change_seq`` grows with every change worth
  telling watchers about (created, state, edits), so another process can ask "what changed
  since N" with one indexed query; heartbeats and summaries do not bump it.
* ``run_metrics``: one row per logged value. Process-tree rows (``tree.*``) have no step.
* ``run_deleted``: tombstones, so watchers in other processes hear of deletions.

Version 3 adds the tail and sealed minutes, so a flush writes one small row instead of
rewriting the minute in progress (issue 14):

* ``tail``: what one flush added to a node's open minute, one row per flush, plain. Rows
  live in slots (the rowid) that their writer reuses once the minute is sealed, so a flush
  overwrites one row of a page that already exists: one page written, no page allocated or
  freed. A tail row is stale, and ignored by readers, once ``minutes`` holds a row with its
  writer, node and minute.
* ``minutes``: one row per node and closed minute, every series in it, encoded once when
  the minute closes, in the transaction that makes its tail rows stale (``writer`` names
  whose tail rows it replaces; NULL for late samples, which never had tail rows).
* ``writers``: the processes writing tail rows (pid, process start time, host), so the tail
  rows of one that died can be sealed by the recorder's maintenance. Ids are never reused
  (AUTOINCREMENT): a new writer must not inherit a dead one's sealed minutes. A tail row
  also keeps when it was written (``written``, epoch s): sample times can be far in the past
  (a backfill, a node with a skewed clock), so only the write time tells a row that no live
  writer still holds.

The maintenance thread merges each finished node-hour's minutes into ``raw``/``raw_ticks``
blocks and writes that hour's 1-min and 1-h ``rollup`` rows in the same transaction (and
deletes the hour's stale tail rows), so every sample is counted in exactly one place:
readers take raw blocks and rollups as stored, and add ``minutes`` and the live ``tail``.
Neither table has a secondary index: they hold about an hour per node, and an index would
cost a second page written on every flush.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 3


class StoreVersionError(RuntimeError):
    """The database was written by a newer version of tracklab-jupyter."""


_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE nodes (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    node_id INTEGER NOT NULL REFERENCES nodes(id),
    name TEXT NOT NULL,
    UNIQUE (node_id, name)
);
-- Blob tables are rowid tables: their blobs are larger than a page, and rowid tables keep
-- overflow pages full where WITHOUT ROWID ones would leave them half empty.
CREATE TABLE raw_ticks (
    node_id INTEGER NOT NULL,
    t0 INTEGER NOT NULL,
    t1 INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (node_id, t0)
);
CREATE TABLE raw (
    series_id INTEGER NOT NULL,
    t0 INTEGER NOT NULL,
    t1 INTEGER NOT NULL,
    n INTEGER NOT NULL,
    mask BLOB,
    data BLOB NOT NULL,
    PRIMARY KEY (series_id, t0)
);
CREATE TABLE rollup (
    tier INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    t INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    count INTEGER NOT NULL,
    last REAL NOT NULL,
    PRIMARY KEY (tier, series_id, t)
) WITHOUT ROWID;
CREATE TABLE rollup_block (
    tier INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    t0 INTEGER NOT NULL,
    t1 INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (tier, series_id, t0)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_time ON events (time);
CREATE TABLE node_info (node TEXT PRIMARY KEY, time REAL NOT NULL, info TEXT NOT NULL);
"""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, and migrations run inside our transaction.
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


_V2 = """
CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                       created REAL NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    node TEXT NOT NULL,
    pid INTEGER,
    pid_start REAL,
    command TEXT NOT NULL DEFAULT '',
    cwd TEXT NOT NULL DEFAULT '',
    git TEXT,
    python TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL DEFAULT '{}',
    summary TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    notes TEXT NOT NULL DEFAULT '',
    processes TEXT NOT NULL DEFAULT '[]',
    system_monitor INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    start REAL NOT NULL,
    "end" REAL,
    heartbeat REAL NOT NULL,
    change_seq INTEGER NOT NULL
);
CREATE INDEX runs_project ON runs (project_id, start);
CREATE INDEX runs_start ON runs (start);
CREATE INDEX runs_change ON runs (change_seq);
CREATE INDEX runs_state ON runs (state);
CREATE TABLE run_metrics (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    step INTEGER,
    time REAL NOT NULL,
    name TEXT NOT NULL,
    value REAL
);
CREATE INDEX run_metrics_run ON run_metrics (run_id, step);
CREATE TABLE run_deleted (change_seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL,
                          project TEXT NOT NULL, time REAL NOT NULL);
"""


_V3 = """
CREATE TABLE tail (
    slot INTEGER PRIMARY KEY,
    writer INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    t0 INTEGER NOT NULL,
    t1 INTEGER NOT NULL,
    n INTEGER NOT NULL,
    written REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE minutes (
    id INTEGER PRIMARY KEY,
    node_id INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    writer INTEGER,
    t0 INTEGER NOT NULL,
    t1 INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE writers (id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER NOT NULL,
                      started REAL NOT NULL, host TEXT NOT NULL);
"""


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    _run_script(conn, _V1)


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    _run_script(conn, _V2)


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    _run_script(conn, _V3)


#: MIGRATIONS[v] turns a version v-1 database into version v. Append, never edit.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_to_1,
                                                               2: _migrate_to_2,
                                                               3: _migrate_to_3}


def read_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_version(conn: sqlite3.Connection, path: object) -> int:
    """The schema version; raises :class:`StoreVersionError` when it is newer than ours."""
    version = read_version(conn)
    if version > SCHEMA_VERSION:
        from tracklab_jupyter._version import __version__

        raise StoreVersionError(
            f"{path} was written by a newer tracklab-jupyter (schema version {version}; "
            f"tracklab-jupyter {__version__} reads up to version {SCHEMA_VERSION}). "
            "It was left untouched: upgrade tracklab-jupyter, or use another data dir "
            "(--data-dir or TRACKLAB_DATA_DIR).")
    return version


def migrate(conn: sqlite3.Connection, path: object) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; each step is its own transaction."""
    version = check_version(conn, path)
    while version < SCHEMA_VERSION:
        target = version + 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another writer may have migrated between our read and the lock.
            if read_version(conn) == version:
                MIGRATIONS[target](conn)
                conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = check_version(conn, path)
    return version
