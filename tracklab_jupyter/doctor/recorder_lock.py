"""The recorder lock check: who holds ``{data_dir}/recorder.lock``, read without taking it
(the kernel's ``/proc/locks`` names the real holder; the file names the process that took it),
whether that process still runs here, and whether it still writes."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from tracklab_jupyter.doctor.report import Finding, duration_words, ok, problem
from tracklab_jupyter.store.paths import DB_NAME, LOCK_NAME

SECTION = "data dir"


def lock_check(path: Path, stale_s: float) -> Finding:
    """Who holds ``{path}/recorder.lock`` (per the kernel, and per the file), whether that
    process runs, and whether it still writes (a newest sample older than ``stale_s``)."""
    lock = path / LOCK_NAME
    holder = _holder_file(lock)
    named = _describe(holder)
    kernel_pids = flock_holders(lock)
    held = bool(kernel_pids) if kernel_pids is not None else _held(lock)
    age = _newest_age(path)
    if not held:
        if holder:
            return ok(SECTION, "recorder lock", f"free (last held by {named}); no monitor "
                      "records here now, the next one to start takes it")
        return ok(SECTION, "recorder lock", "free: no monitor records here now")
    alive = _alive(holder)
    real = f"; the kernel says pid {', '.join(map(str, kernel_pids))}" if kernel_pids else ""
    if alive is False:
        return problem(SECTION, "recorder lock",
                       f"held, but the process it names ({named}) is not running{real}: a "
                       "child that inherited the lock, or a process in another container",
                       f"find the holder with `fuser -v {lock}` (or `lsof {lock}`) and stop "
                       "it; the next monitor to start then records")
    if age is not None and age > stale_s:
        return problem(SECTION, "recorder lock",
                       f"held by {named}, but the newest sample is {duration_words(age)} old: "
                       "the recorder is stuck", "look at that process's log, then restart "
                       "it (its Jupyter server or tracklab-jupyter serve)")
    state = "alive" if alive else "on another host; cannot check it from here"
    return ok(SECTION, "recorder lock", f"held by {named} ({state})")


def _holder_file(lock: Path) -> dict[str, Any] | None:
    try:
        text = lock.read_text(encoding="utf-8")
        value = json.loads(text) if text.strip() else None
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "an unknown process"
    since = holder.get("since")
    when = (time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since))
            if isinstance(since, (int, float)) else "")
    return f"pid {holder.get('pid', '?')} on {holder.get('hostname', '?')}{when}"


def _alive(holder: dict[str, Any] | None) -> bool | None:
    """Whether the named process runs (None: unknown, or on another host)."""
    if not holder or holder.get("hostname") != socket.gethostname():
        return None
    try:
        pid = int(holder.get("pid", 0))
    except (TypeError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def flock_holders(lock: Path) -> list[int] | None:
    """The pids holding a ``flock`` on ``lock`` per /proc/locks (Linux), without taking
    it; None where that file cannot be read."""
    try:
        st = lock.stat()
        text = Path("/proc/locks").read_text()
    except FileNotFoundError:
        return []
    except OSError:
        return None
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2312734 0 EOF" ("->" marks a waiter)
        if "->" in parts or len(parts) < 6:
            continue
        if parts[1] == "FLOCK" and parts[5] == ident:
            pids.append(int(parts[4]))
    return pids


def _held(lock: Path) -> bool:
    """Whether someone holds the lock, by trying it (where /proc/locks is missing)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the shared lock taken above, if any
    return False


def _newest_age(path: Path) -> float | None:
    from tracklab_jupyter.store.db import connect

    db = path / DB_NAME
    if not db.exists():
        return None
    try:
        conn = connect(db, readonly=True)
    except (OSError, sqlite3.Error):
        return None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema")}
        newest = max((conn.execute(f"SELECT max(t1) FROM {t}").fetchone()[0] or 0
                      for t in ("tail", "minutes", "raw_ticks") if t in tables), default=0)
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return time.time() - newest / 1000 if newest else None
