"""``(node, metric) -> series id`` for the writer, with ids from a failed transaction
forgotten so a retry does not use rows that were rolled back."""

from __future__ import annotations

import sqlite3


class IdCache:
    def __init__(self) -> None:
        self._nodes: dict[str, int] = {}
        self._series: dict[tuple[int, str], int] = {}
        self._new_nodes: dict[str, int] = {}
        self._new_series: dict[tuple[int, str], int] = {}
        self._loaded = False

    def _load(self, conn: sqlite3.Connection) -> None:
        self._nodes = dict(conn.execute("SELECT name, id FROM nodes").fetchall())
        self._series = {(node_id, name): sid for sid, node_id, name in conn.execute(
            "SELECT id, node_id, name FROM series")}
        self._loaded = True

    def node(self, conn: sqlite3.Connection, name: str) -> int:
        if not self._loaded:
            self._load(conn)
        node_id = self._nodes.get(name) or self._new_nodes.get(name)
        if node_id is None:
            conn.execute("INSERT OR IGNORE INTO nodes (name) VALUES (?)", (name,))
            node_id = conn.execute("SELECT id FROM nodes WHERE name = ?", (name,)).fetchone()[0]
            self._new_nodes[name] = node_id
        return node_id

    def series(self, conn: sqlite3.Connection, node_id: int, name: str) -> int:
        key = (node_id, name)
        sid = self._series.get(key) or self._new_series.get(key)
        if sid is None:
            conn.execute("INSERT OR IGNORE INTO series (node_id, name) VALUES (?, ?)", key)
            sid = conn.execute("SELECT id FROM series WHERE node_id = ? AND name = ?",
                               key).fetchone()[0]
            self._new_series[key] = sid
        return sid

    def series_of(self, conn: sqlite3.Connection, node_id: int,
                  names: list[str]) -> list[int]:
        """:meth:`series` of each name (one dict lookup each for those already known)."""
        known = self._series
        out = []
        for name in names:
            sid = known.get((node_id, name))
            out.append(sid if sid is not None else self.series(conn, node_id, name))
        return out

    def commit(self) -> None:
        self._nodes.update(self._new_nodes)
        self._series.update(self._new_series)
        self._new_nodes.clear()
        self._new_series.clear()

    def rollback(self) -> None:
        self._new_nodes.clear()
        self._new_series.clear()
        self._loaded = False  # reload: another writer might have added rows meanwhile
