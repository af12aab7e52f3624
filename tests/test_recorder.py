"""One recorder per host and data dir: the lock, the roles, takeover, and the ``record``
command as a real child process (SIGINT/SIGTERM flush, SIGKILL loses at most a batch)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import wait_for

from tracklab_jupyter.collectors.base import Collector, Reading
from tracklab_jupyter.recorder import (
    READER,
    RECORDER,
    DataDirLock,
    Recorder,
    RecorderConfig,
)
from tracklab_jupyter.sampler.sampler import Sampler
from tracklab_jupyter.store import StoreConfig, StoreReader, StoreWriter

FLUSH_S = 1.0  # the record command's default flush interval
INTERVAL_S = 0.2


class Ticker(Collector):
    name = "ticker"

    def __init__(self) -> None:
        self.i = 0

    def read(self) -> Reading:
        self.i += 1
        return Reading(gauges={"test.tick": float(self.i)})


def factory(node: str) -> Callable[[], Sampler]:
    return lambda: Sampler([Ticker()], interval=0.1, node=node)


def config(data_dir: Path, takeover: float = 0.2) -> RecorderConfig:
    return RecorderConfig(data_dir=data_dir, store=StoreConfig(flush_interval=0.1),
                          takeover_interval=takeover)




def start_record(data_dir: Path, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracklab_jupyter", "record", "--interval", str(INTERVAL_S),
         "--data-dir", str(data_dir), *extra],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    line = proc.stderr.readline()
    assert line.startswith("recording "), line + proc.stderr.read()
    return proc


def newest_sample_time(data_dir: Path) -> float | None:
    try:
        with StoreReader(data_dir) as reader:
            latest = reader.latest()
    except FileNotFoundError:
        return None
    return latest.time if latest else None


# -- in process ----------------------------------------------------------------------------
def test_second_recorder_reads_then_takes_over(tmp_path):
    changes: list[str] = []
    first = Recorder(config(tmp_path), sampler_factory=factory("first"))
    second = Recorder(config(tmp_path), sampler_factory=factory("second"),
                      on_role_change=changes.append)
    try:
        assert (first.role, second.role) == (RECORDER, READER)
        assert second.sampler is None and second.writer is None
        holder = second.holder()
        assert holder["pid"] == os.getpid() and holder["hostname"] == socket.gethostname()
        wait_for(lambda: second.reader.metrics(), 5, "the recorder's first flush")
        first.stop()
        wait_for(lambda: second.role == RECORDER, 3, "takeover")
        assert changes == [RECORDER]
        wait_for(lambda: "second" in second.reader.nodes(), 5, "the new recorder's samples")
    finally:
        first.stop()
        second.stop()
    assert StoreReader(tmp_path).nodes() == ["first", "second"]
    assert (tmp_path / "recorder.lock").read_text() == ""  # released, holder cleared


def test_stop_flushes_every_sample(tmp_path):
    recorder = Recorder(config(tmp_path), sampler_factory=factory("n1"))
    time.sleep(0.7)
    sampler = recorder.sampler
    recorder.stop()
    taken = sampler.stats()["samples"]
    frame = StoreReader(tmp_path).read(["test.tick"], 0, time.time() + 1)["n1"]
    assert taken >= 5 and frame.values[0].tolist() == [float(i) for i in range(1, taken + 1)]


def test_forked_child_does_not_keep_the_lock(tmp_path):
    lock = DataDirLock(tmp_path)
    assert lock.acquire()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child outlives the lock holder's release
        os.write(ready_w, b"x")  # the after-fork hook has run by now
        time.sleep(2)
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
        lock.release()
        other = DataDirLock(tmp_path)
        assert other.acquire()
        other.release()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)


# -- the record command in child processes -------------------------------------------------
def test_record_killed_with_sigkill_loses_at_most_the_unflushed_batch(tmp_path):
    proc = start_record(tmp_path)
    try:
        wait_for(lambda: (newest_sample_time(tmp_path) or 0) > time.time() - 1.5, 10,
                 "samples from the recorder")
        time.sleep(1.5)
    finally:
        killed_at = time.time()
        proc.kill()
        proc.wait()
    path = tmp_path / "metrics.db"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    assert dict(conn.execute("SELECT key, value FROM meta"))["clean_shutdown"] == "0"
    conn.close()
    newest = newest_sample_time(tmp_path)
    # Only samples after the last commit can be lost: one flush interval plus one tick.
    assert killed_at - newest <= FLUSH_S + INTERVAL_S + 0.5
    # The next recorder opens it cleanly (checked, not moved aside) and appends.
    StoreWriter(tmp_path).close()
    assert not list(tmp_path.glob("metrics.db.corrupt-*"))


def test_second_record_is_refused_and_sigterm_flushes(tmp_path):
    first = start_record(tmp_path)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "tracklab_jupyter", "record", "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 3
        assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr
        assert "already recorded" in second.stderr
        time.sleep(0.5)
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=30)
    stopped = time.time()
    assert first.returncode == 0
    assert "stopped:" in err
    meta = dict(sqlite3.connect(tmp_path / "metrics.db").execute("SELECT key, value FROM meta"))
    assert meta["clean_shutdown"] == "1"
    writer = json.loads(meta["writer"])
    assert writer["pid"] == first.pid
    assert stopped - newest_sample_time(tmp_path) <= INTERVAL_S + 0.5  # nothing left behind


def test_reader_sees_samples_within_2s_and_takes_over_when_the_recorder_dies(tmp_path):
    proc = start_record(tmp_path)
    reader_side = Recorder(config(tmp_path, takeover=0.3), sampler_factory=factory("heir"))
    try:
        assert reader_side.role == READER
        assert reader_side.holder()["pid"] == proc.pid
        wait_for(lambda: newest_sample_time(tmp_path), 10, "first samples")
        for _ in range(8):  # the newest stored sample is never more than 2 s old
            newest = newest_sample_time(tmp_path)
            assert time.time() - newest <= 2.0
            time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        dead_at = time.monotonic()
        wait_for(lambda: reader_side.role == RECORDER, 5, "takeover")
        assert time.monotonic() - dead_at <= 3.0
        wait_for(lambda: "heir" in reader_side.reader.nodes(), 5, "the heir's samples")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader_side.stop()


def test_record_sigint_stops_cleanly(tmp_path):
    proc = start_record(tmp_path)
    wait_for(lambda: newest_sample_time(tmp_path), 10, "first samples")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped:" in err


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKLAB_DATA_DIR", str(tmp_path / "not-used"))
