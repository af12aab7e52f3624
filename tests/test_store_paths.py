"""Data dirs the store must cope with: paths with URI-special characters, and stores that
cannot be used (a file where a directory should be, no permission, a directory or junk
where the database should be, a lock held by another process). An unusable store is a
StoreUnavailableError whose message names no filesystem path (servers send it to
clients); a data dir without a store is still "no store yet"."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import tracklab
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.monitor import Monitor, MonitorConfig
from tracklab_jupyter.runs.store import RunStore
from tracklab_jupyter.store import StoreConfig, StoreReader, StoreWriter
from tracklab_jupyter.store.db import StoreUnavailableError
from tracklab_jupyter.store.side_events import append_events

ODD = "a #b ?c=1&mode=ro %41 100% x"  # each of these broke or redirected the reader's URI


def monitor(data_dir: Path) -> Monitor:
    return Monitor(MonitorConfig(data_dir=data_dir))


def test_a_data_dir_with_uri_special_characters_reads_back(tmp_path):
    parent = tmp_path / ODD
    data = parent / "data"
    now = time.time()
    writer = StoreWriter(data, StoreConfig(), maintenance=False)
    for i in range(5):
        assert writer.write(Sample(now - 10 + i, "n1", {"x": float(i)}), block=True)
    writer.write_event(Event(now - 3, "n1", "gpu_lost", "GPU 0 lost", {"gpu": 0}))
    writer.close()
    append_events(data, [Event(now - 2, "n1", "note", "from a kernel", {})])

    frame = StoreReader(data).read(["x"], now - 60, now + 1)["n1"]
    assert frame.values[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    hist = monitor(data).history(metrics="x", start=now - 60, end=now + 1)
    assert hist.to_pandas()["x"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert [e["kind"] for e in monitor(data).events(start=now - 60)] == ["gpu_lost", "note"]

    run = tracklab.init(project="odd", system_monitor=False, data_dir=data)
    for step in range(3):
        run.log({"loss": 1.0 / (step + 1)})
    run.finish()
    with RunStore(data) as store:
        assert store.get_run(run.id)["state"] == "finished"
        assert store.metrics(run.id)["metrics"]["loss"] == [1.0, 0.5, pytest.approx(1 / 3)]
    # nothing was created beside the data dir (an unquoted "#" cut the path short there)
    assert sorted(p.name for p in parent.iterdir()) == ["data"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [ODD]


# -- stores that cannot be used ----------------------------------------------------------
def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "somefile").write_text("not a directory")
    return tmp_path / "somefile" / "data"


def _a_file(tmp_path: Path) -> Path:
    (tmp_path / "somefile").write_text("not a directory")
    return tmp_path / "somefile"


def _database_is_a_directory(tmp_path: Path) -> Path:
    (tmp_path / "data" / "metrics.db").mkdir(parents=True)
    return tmp_path / "data"


def _not_a_database(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "metrics.db").write_bytes(b"\x89PNG\r\n" + bytes(range(256)) * 20)
    return tmp_path / "data"


OPENERS: dict[str, Callable[[Path], object]] = {
    "history": lambda d: monitor(d).history(start="-1h"),
    "events": lambda d: monitor(d).events(),
    "runs": lambda d: RunStore(d).close(),
    "runs-writable": lambda d: RunStore(d, writable=True).close(),
}


@pytest.mark.parametrize("opener", list(OPENERS))
@pytest.mark.parametrize(("layout", "reason"), [
    (_under_a_file, "a part of its path is a file, not a directory"),
    (_a_file, "is a file, not a directory"),
    (_database_is_a_directory, "the database file cannot be used: it is a directory"),
    (_not_a_database, "the database file is not an SQLite database"),
])
def test_an_unusable_store_is_a_clear_error_without_the_path(tmp_path, layout, reason,
                                                             opener):
    data = layout(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(StoreUnavailableError, match=reason) as caught:
        OPENERS[opener](data)
    assert str(tmp_path) not in str(caught.value)
    assert str(data) in "".join(caught.value.__notes__)  # tracebacks still say where
    # nothing was moved, created or changed (only the recorder moves a damaged file aside)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_permission_denied_is_a_clear_error(tmp_path, monkeypatch):
    """Permissions are simulated where the file system is asked (tests may run as root)."""
    import tracklab_jupyter.runs.store as run_store
    import tracklab_jupyter.store.reader as reader

    data = tmp_path / "data"
    StoreWriter(data, StoreConfig(), maintenance=False).close()

    def denied(path: object, *args: object) -> bool:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(reader, "check_exists", denied)
    monkeypatch.setattr(run_store, "check_exists", denied)
    monkeypatch.setattr(run_store, "ensure_data_dir", denied)
    for name, open_store in OPENERS.items():
        with pytest.raises(StoreUnavailableError, match="permission denied") as caught:
            open_store(data)
        assert str(tmp_path) not in str(caught.value), name


def test_a_store_locked_by_another_process_is_a_clear_error(tmp_path, monkeypatch):
    import tracklab_jupyter.store.db as db

    data = tmp_path / "data"
    StoreWriter(data, StoreConfig(), maintenance=False).close()
    holder = sqlite3.connect(data / "metrics.db", isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(db, "_BUSY_TIMEOUT_MS", 20)
    try:
        for open_store in OPENERS.values():
            with pytest.raises(StoreUnavailableError, match="locked by another process"):
                open_store(data)
    finally:
        holder.close()
    assert monitor(data).events() == []  # usable again once the lock is gone


def test_a_data_dir_without_a_store_is_still_no_store_yet(tmp_path):
    data = tmp_path / "data"
    for read in (lambda: monitor(data).history(), lambda: monitor(data).events()):
        with pytest.raises(FileNotFoundError, match="no tracklab history"):
            read()
    with RunStore(data) as store:  # a reader sees no runs and creates nothing
        assert store.list_runs() == ([], 0)
    assert not data.exists()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.delenv("TRACKLAB_DATA_DIR", raising=False)
    yield
    from tracklab_jupyter.runs.run_writer import close_writers

    close_writers()
