"""The data dir checks: the directory (exists, owner-only, writable), free space against
the store's size cap, SQLite and WAL on that filesystem, the store (opens, schema version,
size per tier, newest sample) and the recorder lock (``recorder_lock.py``).

Nothing here changes the store: it is opened read-only, and the write test uses a file of
its own that it removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from tracklab_jupyter.doctor.recorder_lock import lock_check
from tracklab_jupyter.doctor.report import Finding, duration_words, ok, problem, skipped, warning
from tracklab_jupyter.metrics.units import format_bytes
from tracklab_jupyter.store.config import StoreConfig
from tracklab_jupyter.store.paths import DB_NAME

SECTION = "data dir"
#: Below this much free space the store cannot be trusted to take the next flush.
MIN_FREE_BYTES = 64 << 20
#: The write test: enough to need a real data block on any filesystem.
_PROBE_BYTES = 64 << 10
#: A newest sample older than this, with a recorder holding the lock, is a stuck recorder.
STALE_SAMPLE_S = 120.0
#: Filesystems where SQLite's WAL (shared memory between processes) is not safe.
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "lustre",
              "gpfs", "beegfs", "ceph", "glusterfs", "fuse.gcsfuse", "fuse.s3fs")

_SET_DIR = "set TRACKLAB_DATA_DIR (or c.TrackLab.data_dir, serve --data-dir) to a directory "


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


def data_dir_checks(data_dir: Path, *, max_bytes: int | None = None,
                    writer: dict[str, Any] | None = None,
                    disk_usage: Callable[[str], Any] = shutil.disk_usage) -> list[Finding]:
    """Every data dir finding. ``writer`` is a running recorder's writer stats (the server
    passes its own), ``disk_usage`` is shutil's unless a test gives another."""
    cap = int(max_bytes if max_bytes is not None else StoreConfig().max_bytes)
    if not data_dir.exists():
        return [warning(SECTION, "directory", f"{data_dir} does not exist: nothing has been "
                        "recorded here yet",
                        "start the monitor once (`jupyter lab` or `tracklab-jupyter serve`); "
                        "it creates the directory owner-only")]
    if not data_dir.is_dir():
        return [problem(SECTION, "directory", f"{data_dir} is not a directory",
                        _SET_DIR + "or move the file away")]
    out = [_ownership(data_dir), _writable(data_dir)]
    out.append(_free_space(data_dir, cap, disk_usage))
    out.append(_sqlite(data_dir))
    out.extend(_store(data_dir))
    out.append(lock_check(data_dir, STALE_SAMPLE_S))
    if writer is not None and writer.get("failing"):
        out.append(problem(SECTION, "writes", "the recorder cannot write: "
                           f"{writer.get('last_error') or 'unknown error'}; "
                           f"{writer.get('pending_samples', 0)} samples wait in memory",
                           "free disk space or fix the directory's permissions; writing "
                           "resumes by itself"))
    return out


def _ownership(path: Path) -> Finding:
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.geteuid():
        return warning(SECTION, "permissions", f"{path} belongs to uid {st.st_uid}, not to "
                       f"you (uid {os.geteuid()})",
                       f"sudo chown -R {os.geteuid()} {path}, or " + _SET_DIR + "of your own")
    if mode & 0o077:
        return warning(SECTION, "permissions", f"{path} is mode {mode:o}: other users can "
                       "read your metrics and runs", f"chmod 700 {path}")
    return ok(SECTION, "permissions", f"{path} is owner-only ({mode:o})")


def _writable(path: Path) -> Finding:
    """Write and fsync a real file: os.access is wrong for root, read-only mounts and
    full disks alike."""
    probe = path / f".tracklab-doctor-{uuid.uuid4().hex[:8]}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * _PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return problem(SECTION, "writable", f"cannot write in {path}: {exc.strerror or exc}",
                       f"chmod u+w {path} (and check the filesystem is not full or "
                       "mounted read-only), or " + _SET_DIR + "you can write")
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return ok(SECTION, "writable", f"wrote and synced {_PROBE_BYTES // 1024} KiB")


def _store_bytes(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            total += (path / (DB_NAME + suffix)).stat().st_size
    return total


def _free_space(path: Path, cap: int, disk_usage: Callable[[str], Any]) -> Finding:
    usage = disk_usage(str(path))
    used = _store_bytes(path)
    grow = max(0, cap - used)
    found = (f"{format_bytes(usage.free)} free of {format_bytes(usage.total)}; the store uses "
             f"{format_bytes(used)} of its {format_bytes(cap)} cap")
    if usage.free < MIN_FREE_BYTES:
        return problem(SECTION, "free space", found + ": the disk is (nearly) full, new "
                       "samples wait in memory and the oldest are dropped",
                       f"free space on the filesystem of {path}, or " + _SET_DIR
                       + "on another disk")
    if usage.free < grow:
        return warning(SECTION, "free space",
                       found + f": the store may grow by {format_bytes(grow)}",
                       "free space, or lower the store's size cap")
    return ok(SECTION, "free space", found, free=usage.free, store=used, cap=cap)


def filesystem_type(path: Path) -> str:
    """The type of the filesystem ``path`` is on, from /proc/self/mounts ('' if unknown)."""
    best, kind = "", ""
    target = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            mount = parts[1].replace("\\040", " ")
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind = mount, parts[2]
    return kind


def _sqlite(path: Path) -> Finding:
    """SQLite's version, and WAL really working on this filesystem (a scratch database)."""
    version = sqlite3.sqlite_version
    fs = filesystem_type(path)
    probe = path / f".tracklab-doctor-{uuid.uuid4().hex[:8]}.db"
    try:
        conn = sqlite3.connect(str(probe), isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("CREATE TABLE t (x)")
            conn.execute("INSERT INTO t VALUES (1)")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return problem(SECTION, "SQLite", f"SQLite {version} cannot write a database in "
                       f"{path}{f' ({fs})' if fs else ''}: {exc}", _SET_DIR + "on a local disk")
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                Path(str(probe) + suffix).unlink()
    if mode != "wal" or fs in NETWORK_FS:
        return warning(SECTION, "SQLite", f"SQLite {version}, journal mode {mode} on "
                       f"{fs or 'this filesystem'}: readers and the recorder in other "
                       "processes need WAL on a local disk",
                       _SET_DIR + "on a local disk (not NFS or another network filesystem)")
    return ok(SECTION, "SQLite", f"SQLite {version}, WAL works on {fs or 'this filesystem'}")


def _store(path: Path) -> list[Finding]:
    from tracklab_jupyter.store.db import connect
    from tracklab_jupyter.store.schema import SCHEMA_VERSION, read_version

    db = path / DB_NAME
    if not db.exists():
        return [warning(SECTION, "store", f"no {DB_NAME} yet: nothing recorded here",
                        "start the monitor (`jupyter lab` or `tracklab-jupyter serve`)")]
    try:
        conn = connect(db, readonly=True)
    except (OSError, sqlite3.Error) as exc:
        return [problem(SECTION, "store", f"{db} does not open: {exc}",
                        f"check its permissions (ls -l {db}); a damaged file is moved aside "
                        "by the next start")]
    try:
        try:
            version = read_version(conn)
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table'")}
        except sqlite3.Error as exc:
            return [problem(SECTION, "store", f"{db} is not a readable database: {exc}",
                            "stop every monitor, then move the file aside "
                            f"(mv {db} {db}.bad); a new one is started")]
        out = [_schema(version, SCHEMA_VERSION)]
        out.append(ok(SECTION, "size", _tier_sizes(conn, tables)))
        out.append(_newest(conn, tables))
        return out
    finally:
        conn.close()


def _schema(version: int, current: int) -> Finding:
    if version > current:
        return problem(SECTION, "schema", f"schema version {version}, written by a newer "
                       f"tracklab-jupyter (this one reads up to {current})",
                       "pip install -U tracklab-jupyter, or " + _SET_DIR + "of its own")
    if version < current:
        return warning(SECTION, "schema", f"schema version {version}, older than this "
                       f"version's {current}: the store is migrated when the monitor starts",
                       "restart the Jupyter server (or tracklab-jupyter serve): the running "
                       "one is an older tracklab-jupyter, or has not started since the upgrade")
    return ok(SECTION, "schema", f"schema version {version} (current)")


#: Tables of each part of the store (the rollup tables hold both rollup tiers).
_PARTS = {"raw": ("tail", "minutes", "raw", "raw_ticks"),
          "rollups": ("rollup", "rollup_block"),
          "runs": ("runs", "run_metrics", "run_deleted", "projects"),
          "events": ("events",)}


def _tier_sizes(conn: sqlite3.Connection, tables: set[str]) -> str:
    """Bytes per part from SQLite's dbstat (pages, indexes included), the rollups split
    into 1min and 1h by their share of rows."""
    try:
        pages = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_schema"))
    except sqlite3.Error:  # SQLite built without dbstat
        return "sizes per tier unknown (SQLite without dbstat)"
    by_table: dict[str, int] = {}
    for name, size in pages.items():
        table = owner.get(name) or name.removeprefix("sqlite_autoindex_").rsplit("_", 1)[0]
        by_table[table] = by_table.get(table, 0) + int(size or 0)
    sizes = {part: sum(by_table.get(t, 0) for t in names) for part, names in _PARTS.items()}
    rollups = sizes.pop("rollups")
    shares = {60: 0, 3600: 0}
    for table in ("rollup", "rollup_block"):
        if table in tables:
            for tier, count in conn.execute(f"SELECT tier, count(*) FROM {table} GROUP BY tier"):
                if tier in shares:
                    shares[tier] += int(count)
    rows = sum(shares.values()) or 1
    parts = {"raw": sizes["raw"], "1min": rollups * shares[60] // rows,
             "1h": rollups * shares[3600] // rows, "runs": sizes["runs"],
             "events": sizes["events"]}
    return ", ".join(f"{name} {format_bytes(size)}" for name, size in parts.items())


def _newest(conn: sqlite3.Connection, tables: set[str]) -> Finding:
    newest_ms = 0
    for table in ("tail", "minutes", "raw_ticks"):
        if table in tables:
            value = conn.execute(f"SELECT max(t1) FROM {table}").fetchone()[0]
            newest_ms = max(newest_ms, int(value or 0))
    if not newest_ms:
        return skipped(SECTION, "newest sample", "no samples stored yet")
    age = time.time() - newest_ms / 1000
    found = f"the newest sample is {duration_words(age)} old"
    return ok(SECTION, "newest sample", found, age_s=round(age, 1)) if age < STALE_SAMPLE_S \
        else skipped(SECTION, "newest sample", found + " (judged with the recorder lock)",
                     age_s=round(age, 1))
