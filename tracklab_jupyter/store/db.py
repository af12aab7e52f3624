"""Opening the database: pragmas, damage detection, and moving a damaged file aside.

Only the writer (the recorder) creates, migrates or moves files; readers open what exists.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tracklab_jupyter.store.schema import check_version, migrate

log = logging.getLogger("tracklab_jupyter.store")

_MAGIC = b"SQLite format 3\x00"
_BUSY_TIMEOUT_MS = 5000
# SQLite result codes (sqlite3.SQLITE_* names exist only from Python 3.11 on some builds).
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_NOTADB = 26


class StoreCorruptError(sqlite3.DatabaseError):
    """The file is damaged (not a database, truncated, failing its integrity check)."""


class StoreUnavailableError(RuntimeError):
    """The store cannot be used: its path runs through a file, access is denied, the
    database file is a directory or not a database. The message holds no filesystem path
    (servers send it to clients); the data dir is in the exception's notes and its cause."""


def is_corruption(exc: BaseException) -> bool:
    """Whether a sqlite3 error means a damaged file (as opposed to locked, full, ...)."""
    if isinstance(exc, StoreCorruptError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def is_disk_full(exc: BaseException) -> bool:
    """Whether a sqlite3 error means "database or disk is full"."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == SQLITE_FULL
    return "full" in str(exc).lower()


def unavailable_reason(exc: BaseException) -> str | None:
    """Why ``exc`` makes the store unusable, in words without a path; None for errors that
    mean something else (a missing store: FileNotFoundError; a newer schema)."""
    if isinstance(exc, FileNotFoundError):
        return None
    if isinstance(exc, NotADirectoryError):
        return "the data directory cannot be used: a part of its path is a file, not a directory"
    if isinstance(exc, FileExistsError):  # mkdir of a data dir that is a file
        return "the data directory cannot be used: it is a file, not a directory"
    if isinstance(exc, PermissionError):
        return "the data directory cannot be used: permission denied"
    if isinstance(exc, IsADirectoryError):
        return "the database file cannot be used: it is a directory"
    if isinstance(exc, OSError):
        # strerror, never str(exc): the latter names the file.
        detail = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        return f"the data directory cannot be used: {detail.lower()}"
    if isinstance(exc, sqlite3.Error):
        if is_corruption(exc):
            return "the database file is not an SQLite database, or it is damaged"
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return "the database is locked by another process; try again later"
        if "unable to open" in text:
            return "the database file cannot be opened (permissions, or a directory in its place)"
        # SQLite's own messages name no files.
        return f"the database cannot be used: {exc}"
    return None


@contextmanager
def unavailable_as_error(data_dir: Path) -> Iterator[None]:
    """Turn errors that make the store at ``data_dir`` unusable into
    :class:`StoreUnavailableError` (others, FileNotFoundError included, pass through)."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        reason = unavailable_reason(exc)
        if reason is None:
            raise
        error = StoreUnavailableError(reason)
        error.add_note(f"data dir: {data_dir}")  # for tracebacks, not for str(error)
        raise error from exc


def check_exists(path: Path) -> bool:
    """Whether ``path`` exists. Unlike Path.exists(), a parent that is a file raises
    NotADirectoryError (it is not a store that is missing) and denied access raises."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    return True


def sqlite_uri(path: Path, **params: str) -> str:
    """A ``file:`` URI for ``path`` with every special character (``#``, ``?``, ``%``,
    spaces) percent-encoded; SQLite decodes them again."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return Path(os.path.abspath(path)).as_uri() + (f"?{query}" if query else "")


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT ourselves).

    ``check_same_thread`` is off because a connection is handed from the thread that opens
    it to the thread that uses it; each connection is still used by one thread at a time.
    """
    if readonly:
        if not check_exists(path):
            raise FileNotFoundError(f"no tracklab store at {path}")
        if path.is_dir():  # SQLite would only say "unable to open database file"
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        # rw, not ro: WAL readers need the -shm file. mode=rw never creates the file.
        conn = sqlite3.connect(sqlite_uri(path, mode="rw"), uri=True, isolation_level=None,
                               check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return conn


def _header_problem(path: Path) -> str | None:
    """Why the file is not a usable database, from its header and size alone (cheap)."""
    size = path.stat().st_size
    if size == 0:
        return None  # SQLite treats an empty file as a new database
    with open(path, "rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(_MAGIC):
        return "not an SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    change_counter = header[24:28]
    valid_for = header[92:96]
    # The in-header page count is trusted when its "valid-for" number matches the change
    # counter; a file shorter than that count was truncated.
    if pages and change_counter == valid_for and size < pages * page_size:
        return f"truncated ({size} bytes, header says {pages * page_size})"
    return None


def move_aside(path: Path, reason: str) -> Path:
    """Rename a damaged database (and its -wal/-shm files) to ``*.corrupt-<time>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            # A stale WAL must never be replayed into the fresh database.
            os.replace(extra, target.with_name(target.name + suffix))
    log.warning("%s is damaged (%s); moved it to %s and started a fresh store",
                path, reason, target.name)
    return target


def _check(conn: sqlite3.Connection, thorough: bool) -> None:
    """Raise StoreCorruptError when the database fails a read of its schema (or, when
    ``thorough``, PRAGMA quick_check)."""
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    if thorough:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            raise StoreCorruptError("; ".join(str(r[0]) for r in rows[:3]))


#: Page size of new stores. Every commit writes each page it changed whole, and the
#: recorder commits once a second, mostly one tail row of a few hundred bytes: with 1 KiB
#: pages a flush writes about 1 KiB where 4 KiB pages (SQLite's default) write 4 KiB. On the
#: 2-core machine (31 series, a flush per 1 Hz sample, WAL frames counted over 5 minutes) a
#: store with 1 KiB pages wrote 89 KB/min to its WAL, one with 4 KiB pages 279 KB/min; in
#: bench/store.py 30 days of 1-min rollups read back 6 % slower and the file was 10 %
#: smaller. Existing stores keep theirs (changing it needs a VACUUM outside WAL mode).
PAGE_SIZE = 1024
#: Checkpoint when the WAL holds this many bytes. A checkpoint copies each page changed
#: since the last one into the database file once, however often it changed, so a rarer
#: checkpoint writes less: the tail's pages change every second but are copied once per
#: checkpoint. 4 MiB is about 45 minutes of the recorder at 1 Hz with 1 KiB pages.
CHECKPOINT_BYTES = 4 << 20
#: After a checkpoint the WAL file is cut back to this size (SQLite reuses it from the start
#: otherwise); twice the checkpoint size, so the usual WAL is reused, never truncated and
#: regrown, while one grown by a large transaction does not keep its size.
WAL_SIZE_LIMIT = 2 * CHECKPOINT_BYTES


def configure_checkpoints(conn: sqlite3.Connection) -> None:
    """The checkpoint settings above, for every connection that writes (any of them may
    run the automatic checkpoint after its commit)."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_BYTES // page_size}")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")


def _configure_writer(conn: sqlite3.Connection, max_page_count: int | None) -> None:
    # page_size and auto_vacuum must be chosen before the first table exists; on an existing
    # database both are no-ops. INCREMENTAL lets the size cap give pages back to the file
    # system.
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a committed batch survives a process crash (kill -9); only an OS
    # crash or power cut can lose the last commits, never corrupt the file. Commits do not
    # wait for the disk (only checkpoints fsync).
    conn.execute("PRAGMA synchronous = NORMAL")
    configure_checkpoints(conn)
    if max_page_count is not None:
        conn.execute(f"PRAGMA max_page_count = {int(max_page_count)}")


def _closed_cleanly(conn: sqlite3.Connection) -> bool:
    """Whether the last writer closed the database cleanly (or it is new)."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    if not has_meta:
        return True
    row = conn.execute("SELECT value FROM meta WHERE key = 'clean_shutdown'").fetchone()
    return row is None or row[0] == "1"


def open_writer_db(path: Path, *, max_page_count: int | None = None,
                   thorough_check: bool | None = None) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the database for writing.

    A damaged file is moved aside and a fresh database is started. A database from a newer
    version raises StoreVersionError and is left untouched. ``thorough_check`` runs
    ``PRAGMA quick_check`` (None: only when the last writer did not close cleanly, since it
    reads the whole file).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        problem = _header_problem(path)
        if problem is not None:
            move_aside(path, problem)
    for attempt in range(2):
        if not path.exists():
            # Owner-only from the start (SQLite gives the -wal/-shm files the same mode).
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = connect(path)
        try:
            check_version(conn, path)  # before any pragma that could write to the file
            thorough = (not _closed_cleanly(conn)) if thorough_check is None else thorough_check
            _check(conn, thorough)
            _configure_writer(conn, max_page_count)
            migrate(conn, path)
            return conn
        except sqlite3.DatabaseError as exc:
            conn.close()
            if attempt or not is_corruption(exc):
                raise
            move_aside(path, str(exc))
    raise AssertionError("unreachable")


def open_reader_db(path: Path) -> sqlite3.Connection:
    """Open an existing database for reading; never creates, migrates or moves files."""
    conn = connect(path, readonly=True)
    try:
        check_version(conn, path)
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn
