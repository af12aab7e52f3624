"""Projects, runs and run metrics in the SQLite store (schema version 2, docs/RUNS.md).

:class:`RunStore` is used by every process: a training script writes its run through it
(from :class:`~tracklab_jupyter.runs.run_writer.RunWriter`'s thread), servers read it for the
REST API and edit or delete runs. Writes are short transactions beside the recorder's
sample writer, which SQLite's WAL mode and busy timeout allow.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import math
import os
import re
import reprlib
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tracklab_jupyter.store.db import (
    check_exists,
    connect,
    open_writer_db,
    unavailable_as_error,
)
from tracklab_jupyter.store.paths import DB_NAME, ensure_data_dir, resolve_data_dir
from tracklab_jupyter.store.schema import SCHEMA_VERSION, check_version

RUNNING, FINISHED, FAILED, CRASHED = "running", "finished", "failed", "crashed"
RUN_STATES = (RUNNING, FINISHED, FAILED, CRASHED)
_PROJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_PROJECT = 128
MAX_NAME = 200
MAX_TAGS = 64
MAX_TAG = 64
MAX_NOTES = 100_000
#: Characters of a caller's input that an error message repeats (servers send it back).
ECHO_CHARS = 100

#: (run id, step or None, time, metric name, value or None) as stored in ``run_metrics``.
MetricRow = tuple[str, int | None, float, str, float | None]


class RunNotFoundError(LookupError):
    """No run with that id in the store."""


class ProjectNotFoundError(LookupError):
    """No project with that name in the store."""


class RunConflictError(RuntimeError):
    """The run is in a state that does not allow the change (deleting a running run)."""


# -- validation -----------------------------------------------------------------------
# Each check measures its input before doing any work on it, and its error repeats at
# most ECHO_CHARS characters of it.

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = ECHO_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 5


def echo(value: Any) -> str:
    """``repr(value)`` cut to about ECHO_CHARS characters, saying how long a long string
    was; cheap for any size."""
    if isinstance(value, str) and len(value) > ECHO_CHARS:
        return f"{value[:ECHO_CHARS]!r}… ({len(value)} characters)"
    text = _REPR.repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def check_project(name: Any) -> str:
    """A project name: 1-128 letters, digits, ``.``, ``_`` or ``-``, starting with a
    letter or digit (it appears in URLs)."""
    if not isinstance(name, str) or len(name) > MAX_PROJECT or not _PROJECT_RE.fullmatch(name):
        raise ValueError(
            f"project must be 1-{MAX_PROJECT} letters, digits, '.', '_' or '-' starting with a "
            f"letter or digit (it is used in URLs), e.g. 'mnist-resnet'; got {echo(name)}")
    return name


def check_run_name(name: Any) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME or not name.strip():
        raise ValueError(f"a run name is a non-empty string of at most {MAX_NAME} "
                         f"characters; got {echo(name)}")
    return name.strip()


def check_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list | tuple | set | frozenset):
        raise ValueError(f"tags must be a list of strings, got {echo(tags)}")
    if len(tags) > MAX_TAGS:  # counted as given, before any per-tag work
        raise ValueError(f"at most {MAX_TAGS} tags, got {len(tags)}")
    out: dict[str, None] = {}  # an ordered set: first occurrence wins
    for tag in tags:
        if not isinstance(tag, str) or len(tag) > MAX_TAG or not tag.strip():
            raise ValueError(f"each tag is a non-empty string of at most {MAX_TAG} "
                             f"characters; got {echo(tag)}")
        out[tag.strip()] = None
    return list(out)


def check_notes(notes: Any) -> str:
    if notes is None:
        return ""
    if not isinstance(notes, str) or len(notes) > MAX_NOTES:
        got = f"{len(notes)} characters" if isinstance(notes, str) else type(notes).__name__
        raise ValueError(f"notes must be a string of at most {MAX_NOTES} characters; "
                         f"got {got}")
    return notes


def _listing(names: Sequence[str], empty: str, most: int = 20) -> str:
    """Names for an error message: the first ``most`` of them, then how many in all."""
    if not names:
        return empty
    shown = ", ".join(echo(n) if len(n) > ECHO_CHARS else n for n in names[:most])
    return shown if len(names) <= most else f"{shown}, … ({len(names)} in all)"


def check_limit(limit: Any, what: str = "limit") -> int | None:
    """A page size: None (no limit) or a whole number, 1 or more."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ValueError(f"{what} must be a whole number, 1 or more; got {echo(limit)}")
    return limit


def finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become None (null)."""
    return value if value is not None and math.isfinite(value) else None


# -- turning rows into columns ---------------------------------------------------------

def _pivot(rows: Iterable[tuple[Any, float, str, float | None]], names: Sequence[str] = ()
           ) -> tuple[list[Any], list[float], dict[str, list[float | None]]]:
    """``(row key, time, name, value)`` rows, grouped by key (rows of one key adjacent), as
    ``(keys, first time of each key, {name: values})`` with None where a name is missing."""
    keys: list[Any] = []
    times: list[float] = []
    columns: dict[str, list[float | None]] = {n: [] for n in names}
    for key, t, name, value in rows:
        if not keys or keys[-1] != key:
            keys.append(key)
            times.append(t)
            for column in columns.values():
                column.append(None)
        column = columns.get(name)
        if column is None:
            column = columns[name] = [None] * len(keys)
        column[-1] = finite(value)
    return keys, times, columns


def step_columns(rows: Iterable[tuple[int, float, str, float | None]],
                 names: Sequence[str] | None = None) -> dict[str, Any]:
    """``(step, time, name, value)`` rows, ordered by step, as ``{"step", "time",
    "metrics"}`` columns: one row per step, ``None`` where a metric was not logged."""
    steps, times, columns = _pivot(rows, names or ())
    return {"step": steps, "time": times, "metrics": columns}


def time_columns(rows: Iterable[tuple[float, str, float | None]]) -> dict[str, Any]:
    """``(time, name, value)`` rows ordered by time (one tick's rows share a time) as
    ``{"time", "metrics"}`` columns."""
    _keys, times, columns = _pivot((t, t, name, value) for t, name, value in rows)
    return {"time": times, "metrics": columns}


_SUMMARY_SQL = """SELECT r.id, p.name, r.name, r.state, r.tags, r.node, r.pid, r.start,
    r."end", r.heartbeat, r.summary FROM runs r JOIN projects p ON p.id = r.project_id"""
_FULL_SQL = """SELECT r.id, p.name, r.name, r.state, r.tags, r.node, r.pid, r.start,
    r."end", r.heartbeat, r.summary, r.config, r.notes, r.command, r.cwd, r.git, r.python,
    r.error, r.system_monitor, r.processes FROM runs r JOIN projects p ON p.id = r.project_id"""


def _summary(row: Sequence[Any], now: float) -> dict[str, Any]:
    run_id, project, name, state, tags, node, pid, start, end, heartbeat, summary = row[:11]
    duration = (end if end is not None else (now if state == RUNNING else heartbeat)) - start
    return {"id": run_id, "project": project, "name": name, "state": state,
            "tags": json.loads(tags), "node": node, "pid": pid, "start": start, "end": end,
            "heartbeat": heartbeat, "duration_s": max(0.0, duration),
            "summary": json.loads(summary)}


def _full(row: Sequence[Any], now: float) -> dict[str, Any]:
    out = _summary(row, now)
    config, notes, command, cwd, git, python, error, system_monitor, processes = row[11:]
    out.update({"config": json.loads(config), "notes": notes, "command": command, "cwd": cwd,
                "git": json.loads(git) if git else None, "python": python, "error": error,
                "system_monitor": bool(system_monitor), "processes": json.loads(processes)})
    return out


def open_run_db(data_dir: str | Path | None = None) -> sqlite3.Connection:
    """A writable connection to the store, creating or migrating it when needed (a
    training script may be the first process to use a data dir)."""
    path = ensure_data_dir(data_dir) / DB_NAME
    if path.is_dir():  # SQLite would only say "unable to open database file"
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if path.exists():
        conn = connect(path)
        try:
            if check_version(conn, path) >= SCHEMA_VERSION:
                return conn
        except BaseException:
            conn.close()
            raise
        conn.close()
    # New or older file: the writer's opening creates the schema or migrates it (each
    # step in a transaction that rechecks the version, so a racing recorder is harmless).
    return open_writer_db(path, thorough_check=False)


class RunStore:
    """Reads and edits runs. ``writable=False`` never creates or changes anything; a store
    that does not exist yet reads as empty. A store that cannot be used (its path runs
    through a file, access denied, not a database) raises StoreUnavailableError."""

    def __init__(self, data_dir: str | Path | None = None, *, writable: bool = False) -> None:
        self.data_dir = resolve_data_dir(data_dir)
        self.path = self.data_dir / DB_NAME
        self._conn: sqlite3.Connection | None = None
        with unavailable_as_error(self.data_dir):
            if writable:
                self._conn = open_run_db(self.data_dir)
            elif check_exists(self.path):
                self._conn = self._open_reader()

    def _open_reader(self) -> sqlite3.Connection | None:
        conn = connect(self.path, readonly=True)
        try:
            version = check_version(conn, self.path)
            conn.execute("PRAGMA query_only = ON")
        except BaseException:
            conn.close()
            raise
        if version < 2:  # written by an older recorder: no runs yet
            conn.close()
            return None
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("this store holds no runs yet")
        return self._conn

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [] if self._conn is None else self._conn.execute(sql, args).fetchall()

    # -- reading -------------------------------------------------------------------------
    def list_projects(self) -> list[dict[str, Any]]:
        rows = self._rows("""SELECT p.name, p.created, r.state, count(r.id), max(r.start)
                             FROM projects p LEFT JOIN runs r ON r.project_id = p.id
                             GROUP BY p.id, r.state ORDER BY p.name""")
        projects: dict[str, dict[str, Any]] = {}
        for name, created, state, count, last in rows:
            p = projects.setdefault(name, {"name": name, "created": created, "runs": 0,
                                           "running": 0, "states": {}, "last_start": None})
            if state is not None:
                p["states"][state] = count
                p["runs"] += count
                if state == RUNNING:
                    p["running"] = count
                if last is not None and (p["last_start"] is None or last > p["last_start"]):
                    p["last_start"] = last
        return list(projects.values())

    def project(self, name: str) -> dict[str, Any]:
        for p in self.list_projects():
            if p["name"] == name:
                return p
        known = [p["name"] for p in self.list_projects()]
        raise ProjectNotFoundError(f"no project {echo(name)}; projects: "
                                   f"{_listing(known, 'none yet')}")

    def list_runs(self, project: str | None = None, state: str | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Runs, newest first, and how many match in all."""
        where, args = [], []
        if project is not None:
            where.append("p.name = ?")
            args.append(project)
        if state is not None:
            where.append("r.state = ?")
            args.append(state)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        now = time.time()
        rows = self._rows(f"{_SUMMARY_SQL}{clause} ORDER BY r.start DESC, r.id LIMIT ? OFFSET ?",
                          [*args, limit, offset])
        total = self._rows("SELECT count(*) FROM runs r JOIN projects p ON p.id = r.project_id"
                           + clause, args)
        return [_summary(r, now) for r in rows], (total[0][0] if total else 0)

    def get_run(self, run_id: str) -> dict[str, Any]:
        rows = self._rows(_FULL_SQL + " WHERE r.id = ?", [run_id])
        if not rows:
            raise RunNotFoundError(f"no run {echo(run_id)} in {self.path} (run ids are listed by "
                                   "tracklab.runs() and GET api/runs)")
        return _full(rows[0], time.time())

    def metric_names(self, run_id: str, *, process: bool = False) -> list[str]:
        op = "IS NULL" if process else "IS NOT NULL"
        return [r[0] for r in self._rows(
            f"SELECT DISTINCT name FROM run_metrics WHERE run_id = ? AND step {op} "
            "ORDER BY name", [run_id])]

    def metrics(self, run_id: str, names: Sequence[str] | None = None,
                start_step: int | None = None, end_step: int | None = None,
                limit: int | None = None) -> dict[str, Any]:
        """The run's logged metrics as columns (``RunMetrics`` of docs/RUNS.md). ``names``
        may hold globs; one that matches nothing raises ValueError.

        ``limit``: at most that many steps (rows). ``next_start_step`` is the first step
        of the next page, to pass as ``start_step`` (same ``end_step``), or None when no
        step is left."""
        check_limit(limit)
        self.get_run(run_id)  # 404 before anything else
        chosen = self._choose(run_id, names, process=False)
        where = "WHERE run_id = ? AND step IS NOT NULL"
        args: list[Any] = [run_id]
        if start_step is not None:
            where += " AND step >= ?"
            args.append(start_step)
        if end_step is not None:
            where += " AND step <= ?"
            args.append(end_step)
        if chosen is not None:
            where += f" AND name IN ({','.join('?' * len(chosen))})"
            args += chosen
        next_start: int | None = None
        if limit is not None:
            # The page ends before the (limit+1)-th distinct step; both reads walk the
            # (run_id, step) index in order, so a page costs its own rows, not the run's.
            cut = self._rows(f"SELECT step FROM run_metrics {where} GROUP BY step "
                             "ORDER BY step LIMIT 1 OFFSET ?", [*args, limit])
            if cut:
                next_start = cut[0][0]
                where += " AND step < ?"
                args.append(next_start)
        columns = step_columns(self._rows(
            f"SELECT step, time, name, value FROM run_metrics {where} ORDER BY step, id", args),
            chosen)
        return {"run": run_id, **columns, "next_start_step": next_start}

    def process_metrics(self, run_id: str, names: Sequence[str] | None = None
                        ) -> dict[str, Any]:
        """The run's process-tree series (``tree.*``) as ``{"time", "metrics"}``."""
        chosen = self._choose(run_id, names, process=True, strict=False)
        sql = "SELECT time, name, value FROM run_metrics WHERE run_id = ? AND step IS NULL"
        args: list[Any] = [run_id]
        if chosen is not None:
            sql += f" AND name IN ({','.join('?' * len(chosen))})"
            args += chosen
        return time_columns(self._rows(sql + " ORDER BY time, id", args))

    def _choose(self, run_id: str, names: Sequence[str] | None, *, process: bool,
                strict: bool = True) -> list[str] | None:
        if not names:
            return None
        available = self.metric_names(run_id, process=process)
        chosen: list[str] = []
        for pattern in names:
            found = [n for n in available if fnmatch.fnmatchcase(n, pattern)]
            if not found and strict:
                raise ValueError(f"run {run_id} has no metric {echo(pattern)}; it has: "
                                 f"{_listing(available, 'none yet')}")
            chosen += [n for n in found if n not in chosen]
        return chosen

    def running(self) -> list[tuple[str, str, int | None, float | None, float]]:
        """``(id, node, pid, pid_start, heartbeat)`` of every run in state running."""
        return [tuple(r) for r in self._rows(  # type: ignore[misc]
            "SELECT id, node, pid, pid_start, heartbeat FROM runs WHERE state = ?", [RUNNING])]

    # -- changes since a point (for watchers) --------------------------------------------
    def last_change(self) -> tuple[int, int]:
        """``(newest change_seq, newest run_metrics id)``: where a watcher starts."""
        rows = self._rows("""SELECT max(coalesce((SELECT max(change_seq) FROM runs), 0),
                                        coalesce((SELECT max(change_seq) FROM run_deleted), 0)),
                                    coalesce((SELECT max(id) FROM run_metrics), 0)""")
        return (rows[0][0], rows[0][1]) if rows else (0, 0)

    def changed_runs(self, since_seq: int) -> list[tuple[int, dict[str, Any]]]:
        now = time.time()
        rows = self._rows(_SUMMARY_SQL.replace("SELECT ", "SELECT r.change_seq, ", 1)
                          + " WHERE r.change_seq > ? ORDER BY r.change_seq", [since_seq])
        return [(r[0], _summary(r[1:], now)) for r in rows]

    def deleted_runs(self, since_seq: int) -> list[tuple[int, str, str]]:
        return [tuple(r) for r in self._rows(  # type: ignore[misc]
            "SELECT change_seq, run_id, project FROM run_deleted WHERE change_seq > ? "
            "ORDER BY change_seq", [since_seq])]

    def new_metric_rows(self, since_id: int, limit: int = 100_000
                        ) -> list[tuple[int, str, int | None, float, str, float | None]]:
        return [tuple(r) for r in self._rows(  # type: ignore[misc]
            "SELECT id, run_id, step, time, name, value FROM run_metrics WHERE id > ? "
            "ORDER BY id LIMIT ?", [since_id, limit])]

    # -- writing -------------------------------------------------------------------------
    def _write(self) -> _Transaction:
        return _Transaction(self.conn)

    @staticmethod
    def _next_seq(conn: sqlite3.Connection) -> int:
        row = conn.execute("""SELECT max(coalesce((SELECT max(change_seq) FROM runs), 0),
                              coalesce((SELECT max(change_seq) FROM run_deleted), 0))""")
        return int(row.fetchone()[0]) + 1

    def create_run(self, run: dict[str, Any]) -> None:
        """Insert a new run (and its project if new). ``run`` holds the columns."""
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO projects (name, created) VALUES (?, ?)",
                         (run["project"], run["start"]))
            project_id = conn.execute("SELECT id FROM projects WHERE name = ?",
                                      (run["project"],)).fetchone()[0]
            conn.execute(
                """INSERT INTO runs (id, project_id, name, state, node, pid, pid_start, command,
                   cwd, git, python, config, tags, notes, system_monitor, start, heartbeat,
                   change_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (run["id"], project_id, run["name"], RUNNING, run["node"], run["pid"],
                 run["pid_start"], run["command"], run["cwd"],
                 json.dumps(run["git"]) if run["git"] else None, run["python"],
                 run["config"], json.dumps(run["tags"]), run["notes"],
                 int(run["system_monitor"]), run["start"], run["start"],
                 self._next_seq(conn)))

    def count_runs(self, project: str) -> int:
        rows = self._rows("SELECT count(*) FROM runs r JOIN projects p ON p.id = r.project_id "
                          "WHERE p.name = ?", [project])
        return rows[0][0] if rows else 0

    def write_batch(self, metrics: Sequence[MetricRow],
                    beats: Sequence[tuple[str, float, str | None, str | None]],
                    ends: Sequence[tuple[str, str, float, str | None, str]]) -> None:
        """One transaction: metric rows; heartbeats ``(id, time, summary json or None,
        processes json or None)``; ends ``(id, state, end, error, summary json)``."""
        with self._write() as conn:
            if metrics:
                conn.executemany("INSERT INTO run_metrics (run_id, step, time, name, value) "
                                 "VALUES (?, ?, ?, ?, ?)", metrics)
            for run_id, t, summary, processes in beats:
                conn.execute("UPDATE runs SET heartbeat = ?, summary = coalesce(?, summary), "
                             "processes = coalesce(?, processes) WHERE id = ?",
                             (t, summary, processes, run_id))
                # A live run that a watcher took for crashed (a stall longer than the grace
                # time) is running again.
                conn.execute("""UPDATE runs SET state = ?, "end" = NULL, error = NULL,
                                change_seq = ? WHERE id = ? AND state = ?""",
                             (RUNNING, self._next_seq(conn), run_id, CRASHED))
            for run_id, state, end, error, summary in ends:
                conn.execute("""UPDATE runs SET state = ?, "end" = ?, error = ?, summary = ?,
                                heartbeat = ?, change_seq = ? WHERE id = ? AND state = ?""",
                             (state, end, error, summary, end, self._next_seq(conn), run_id,
                              RUNNING))

    def update_run(self, run_id: str, *, name: str | None = None,
                   tags: list[str] | None = None, notes: str | None = None) -> dict[str, Any]:
        """Rename, retag or annotate a run; returns it."""
        sets, args = [], []
        if name is not None:
            sets.append("name = ?")
            args.append(check_run_name(name))
        if tags is not None:
            sets.append("tags = ?")
            args.append(json.dumps(check_tags(tags)))
        if notes is not None:
            sets.append("notes = ?")
            args.append(check_notes(notes))
        self.get_run(run_id)
        if sets:
            with self._write() as conn:
                conn.execute(f"UPDATE runs SET {', '.join(sets)}, change_seq = ? WHERE id = ?",
                             [*args, self._next_seq(conn), run_id])
        return self.get_run(run_id)

    def delete_run(self, run_id: str) -> dict[str, Any]:
        """Delete a run that is not running, with its metrics; returns what it was."""
        run = self.get_run(run_id)
        if run["state"] == RUNNING:
            raise RunConflictError(f"run {run_id} is still running: finish it (or let "
                                   "tracklab notice it crashed) before deleting it")
        with self._write() as conn:
            # The tombstone's number is taken while the run still counts in the maximum:
            # change numbers never go down.
            conn.execute("INSERT INTO run_deleted (change_seq, run_id, project, time) "
                         "VALUES (?, ?, ?, ?)",
                         (self._next_seq(conn), run_id, run["project"], time.time()))
            conn.execute("DELETE FROM run_metrics WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id = ? AND state != ?", (run_id, RUNNING))
        return run

    def mark_crashed(self, run_id: str, reason: str) -> bool:
        """Mark a running run crashed; False if it was not running any more."""
        with self._write() as conn:
            # It ended after its last heartbeat or its last logged value, whichever is later.
            cur = conn.execute(
                """UPDATE runs SET state = ?, error = ?, change_seq = ?,
                   "end" = max(heartbeat, coalesce(
                       (SELECT max(time) FROM run_metrics WHERE run_id = ?), heartbeat))
                   WHERE id = ? AND state = ?""",
                (CRASHED, reason, self._next_seq(conn), run_id, run_id, RUNNING))
            return cur.rowcount > 0


class _Transaction:
    """``with`` block around one IMMEDIATE transaction (the store's connections are in
    autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
