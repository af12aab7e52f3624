"""Adding events from a process that does not record (a kernel timing its cells while the
Jupyter server records): one short transaction beside the recorder's writer, which SQLite's
WAL mode and busy timeout allow."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tracklab_jupyter.metrics.sample import Event
from tracklab_jupyter.store.db import connect
from tracklab_jupyter.store.paths import DB_NAME


def append_events(data_dir: Path, events: Iterable[Event]) -> int:
    """Insert ``events`` into the store at ``data_dir``; returns how many. The store must
    exist (a recorder created it); raises FileNotFoundError otherwise."""
    rows = [(e.time, e.node, e.kind, e.message, json.dumps(e.data, default=str)) for e in events]
    conn = connect(Path(data_dir) / DB_NAME, readonly=True)  # never creates or migrates
    try:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO events (time, node, kind, message, data) VALUES (?, ?, ?, ?, ?)",
                rows)
    finally:
        conn.close()
    return len(rows)
