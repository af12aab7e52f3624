"""The SQLite store: encoding, writer, rollups, maintenance, damage and full-disk handling.

Everything runs against real SQLite files in tmp_path; time is simulated by stamping
samples in the past, so hours of data take a fraction of a second.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for

from tracklab_jupyter.collectors.base import Collector, Reading
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.sampler.sampler import Sampler
from tracklab_jupyter.store import (
    SCHEMA_VERSION,
    StoreConfig,
    StoreReader,
    StoreVersionError,
    StoreWriter,
)
from tracklab_jupyter.store.codec import (
    PRECISION_BITS,
    choose_scale,
    decode_ints,
    decode_mask,
    decode_rollup,
    decode_values,
    encode_ints,
    encode_mask,
    encode_rollup,
    encode_values,
)
from tracklab_jupyter.store.maintenance import Maintenance
from tracklab_jupyter.store.paths import ensure_data_dir, resolve_data_dir

HOUR = 3600


def hour_ago(hours: float) -> float:
    """An hour-aligned epoch time ``hours`` back (so tests know where blocks split)."""
    return (time.time() // HOUR - hours) * HOUR


def feed(writer: StoreWriter, start: float, n: int, metrics, step: float = 1.0,
         node: str = "n1") -> list[Sample]:
    samples = [Sample(start + i * step, node, metrics(i)) for i in range(n)]
    for sample in samples:
        assert writer.write(sample, block=True)
    return samples


def open_writer(tmp_path: Path, **config) -> StoreWriter:
    return StoreWriter(tmp_path / "data", StoreConfig(**config), maintenance=False)


# -- codec ---------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [
    np.round(np.random.default_rng(1).uniform(0, 100, 500), 1),  # percentages
    np.arange(500) * 4096.0 + 5e11,  # byte counts
    np.array([0.0615234375, 0.5, 0.125]),  # load averages (binary fractions)
    np.array([35.0, 36.0, 36.0, 35.0]),
    np.array([695.759, 691.96, 78.552]),  # watts from milliwatts
    np.zeros(100),
    np.array([7.0]),
    np.array([-1.5, 2.25, -3.0]),
])
def test_exact_values_round_trip_bit_for_bit(values):
    decoded = decode_values(encode_values(values))
    assert decoded.dtype == np.float64
    assert np.array_equal(decoded, values)
    assert choose_scale(values)[1]


def test_computed_decimals_decode_as_the_decimal():
    values = np.arange(200) * 0.1  # 0.30000000000000004 and friends
    decoded = decode_values(encode_values(values))
    assert np.max(np.abs(decoded - values)) < 1e-13
    assert decoded[3] == 0.3


def test_noisy_values_within_documented_precision():
    rng = np.random.default_rng(2)
    values = rng.normal(1e6, 3e5, 3600) / rng.uniform(0.99, 1.01, 3600)  # rates
    _, exact = choose_scale(values)
    assert not exact
    decoded = decode_values(encode_values(values))
    assert np.max(np.abs(decoded - values)) <= np.max(np.abs(values)) * 2.0**-PRECISION_BITS


def test_ints_every_delta_order_and_width():
    rng = np.random.default_rng(3)
    cases = [
        np.array([], dtype=np.int64), np.array([5]), np.array([5, -7]),
        np.arange(1000) * 1000 + 1_700_000_000_000,  # timestamps: order 2
        np.cumsum(rng.integers(-100, 100, 1000)),  # random walk: order 1
        rng.integers(-2**40, 2**40, 100),  # wide: 8 bytes
        np.array([2**62, -2**62, 0]),
    ]
    for ints in cases:
        assert np.array_equal(decode_ints(encode_ints(ints)), ints)
    ticks = np.arange(3600) * 1000 + rng.integers(0, 3, 3600) + 1_700_000_000_000
    assert len(encode_ints(ticks)) < 3600  # under a byte per jittered 1 Hz timestamp


def test_mask_and_rollup_block_round_trip():
    present = np.random.default_rng(4).random(61) > 0.3
    assert np.array_equal(decode_mask(encode_mask(present), 61), present)
    arrays = (np.array([0, 1, 5]), np.array([60, 60, 12]), np.array([1.0, 2, 3]),
              np.array([4.0, 5, 6]), np.array([100.5, 200, 30]), np.array([2.0, 3, 4]))
    decoded = decode_rollup(encode_rollup(*arrays))
    for got, want in zip(decoded, arrays, strict=True):
        assert np.array_equal(got, want)
    partial = decode_rollup(encode_rollup(*arrays), ("offsets", "count", "sum"))
    assert partial[2] is None and np.array_equal(partial[4], arrays[4])


# -- data dir --------------------------------------------------------------------------------
def test_data_dir_from_argument_env_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKLAB_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("TRACKLAB_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".tracklab"
    created = ensure_data_dir()
    assert stat.S_IMODE(created.stat().st_mode) == 0o700


def test_fresh_store_is_wal_owner_only_and_versioned(tmp_path):
    writer = open_writer(tmp_path)
    writer.close()
    path = tmp_path / "data" / "metrics.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert dict(conn.execute("SELECT key, value FROM meta"))["clean_shutdown"] == "1"


# -- writing and reading -------------------------------------------------------------------
def test_round_trip_values_masks_and_non_finite(tmp_path):
    start = hour_ago(3) + 0.25
    writer = open_writer(tmp_path)

    def metrics(i: int) -> dict[str, float]:
        m = {"cpu.util_pct": round((i * 7.3) % 100, 1), "mem.used_bytes": 4096.0 * (1000 + i),
             "net.recv_bytes_per_s": 12345.678 * (1 + math.sin(i))}
        if i % 5:
            m["gpu.0.util_pct"] = float(i % 100)  # absent from every fifth sample
        if i == 7:
            m["cpu.temp_c"] = float("nan")  # never stored
        return m

    samples = feed(writer, start, 2 * HOUR + 90, metrics)
    writer.close()
    frame = StoreReader(tmp_path / "data").read(None, start, start + 3 * HOUR)["n1"]
    assert "cpu.temp_c" not in frame.names
    assert np.array_equal(frame.times_ms, [round(s.time * 1000) for s in samples])
    for name in ("cpu.util_pct", "mem.used_bytes", "gpu.0.util_pct"):
        want = np.array([s.metrics.get(name, np.nan) for s in samples])
        got = frame.values[frame.names.index(name)]
        assert np.array_equal(got, want, equal_nan=True), name
    rates = np.array([s.metrics["net.recv_bytes_per_s"] for s in samples])
    got = frame.values[frame.names.index("net.recv_bytes_per_s")]
    assert np.max(np.abs(got - rates)) <= 2 * rates.max() * 2.0**-PRECISION_BITS


def test_rollups_min_max_mean_last_match_the_samples(tmp_path):
    start = hour_ago(3)
    writer = open_writer(tmp_path)
    rng = np.random.default_rng(5)
    values = np.round(rng.uniform(0, 100, 2 * HOUR + 600), 1)
    feed(writer, start + 0.5, values.size, lambda i: {"x": float(values[i])})
    writer.close()  # closes the last, partial minute too
    reader = StoreReader(tmp_path / "data")
    for tier, width in (("1min", 60), ("1h", HOUR)):
        buckets = values.reshape(-1, width) if values.size % width == 0 else None
        n = values.size // width * width
        buckets = values[:n].reshape(-1, width)
        for agg, fn in (("mean", np.mean), ("min", np.min), ("max", np.max),
                        ("last", lambda a, axis: a[:, -1])):
            frame = reader.read(["x"], start, start + n, tier=tier, agg=agg)["n1"]
            assert frame.times_ms[0] == start * 1000
            np.testing.assert_allclose(frame.values[0][:len(buckets)], fn(buckets, axis=1),
                                       rtol=1e-12, err_msg=f"{tier} {agg}")
    # The trailing partial hour (10 minutes) is folded in as well.
    last_hour = reader.read(["x"], start + 2 * HOUR, start + 3 * HOUR, tier="1h")["n1"]
    assert last_hour.values[0][0] == pytest.approx(values[2 * HOUR:].mean())


def test_open_minute_is_readable_before_it_closes(tmp_path):
    writer = StoreWriter(tmp_path / "data", StoreConfig(flush_interval=0.1), maintenance=False)
    now = time.time()
    writer.write(Sample(now, "n1", {"x": 1.0}))
    assert writer.flush(5)
    reader = StoreReader(tmp_path / "data")
    assert [s.metrics for s in reader.tail(now - 1)] == [{"x": 1.0}]
    minute = reader.read(["x"], now - 60, now + 60, tier="1min")["n1"]
    assert minute.values[0].tolist() == [1.0]
    writer.write(Sample(now + 0.5, "n1", {"x": 3.0}))
    assert writer.flush(5)
    assert [s.metrics["x"] for s in reader.tail(now - 1)] == [1.0, 3.0]
    assert reader.tail(now)[0].time == pytest.approx(now + 0.5, abs=1e-3)
    writer.close()


def test_late_samples_and_restart_within_a_minute_keep_rollups_exact(tmp_path):
    start = hour_ago(2)
    writer = open_writer(tmp_path)
    feed(writer, start, 150, lambda i: {"x": float(i)})  # minutes 0, 1 and half of 2
    writer.close()
    # A restarted recorder continues the same minute, and a sample for minute 0 comes late.
    writer = open_writer(tmp_path)
    feed(writer, start + 150.5, 30, lambda i: {"x": float(150 + i)})
    writer.write(Sample(start + 10.5, "n1", {"x": 1000.0}))
    writer.close()
    reader = StoreReader(tmp_path / "data")
    minutes = reader.read(["x"], start, start + 180, tier="1min", agg="max")["n1"]
    assert minutes.values[0].tolist() == [1000.0, 119.0, 179.0]
    counts = reader.read(["x"], start, start + 180, tier="1min", agg="mean")["n1"]
    assert counts.values[0][2] == pytest.approx(np.mean(np.arange(120, 180)))
    hour = reader.read(["x"], start, start + HOUR, tier="1h")["n1"]
    assert hour.values[0][0] == pytest.approx((np.arange(180).sum() + 1000) / 181)
    raw = reader.read(["x"], start, start + HOUR)["n1"]
    assert raw.times_ms.size == 181 and np.all(np.diff(raw.times_ms) >= 0)


def test_events_and_node_info_are_queryable(tmp_path):
    writer = open_writer(tmp_path)
    now = time.time()
    writer.write_event(Event(now - 5, "n1", "gpu_lost", "GPU 0 lost", {"gpu": 0}))
    writer.write_event(Event(now - 1, "n2", "throttle_start", "GPU 1 throttling",
                             {"gpu": 1, "reasons": ["power"]}))
    writer.write_info("n1", {"cpu": {"model": "test"}})
    writer.close()
    reader = StoreReader(tmp_path / "data")
    events = reader.events(now - 60)
    assert [e.kind for e in events] == ["gpu_lost", "throttle_start"]
    assert events[1].data == {"gpu": 1, "reasons": ["power"]}
    assert [e.kind for e in reader.events(now - 60, node="n2")] == ["throttle_start"]
    assert reader.events(now - 60, kinds=["gpu_lost"])[0].message == "GPU 0 lost"
    assert reader.info() == {"n1": {"cpu": {"model": "test"}}}


def test_an_events_limit_keeps_the_newest_oldest_first(tmp_path):
    from tracklab_jupyter.monitor import Monitor, MonitorConfig

    writer = open_writer(tmp_path)
    now = time.time()
    for i in range(10):  # two events share each time: the later-written one is newer
        writer.write_event(Event(now - 10 + i // 2, "n1", "a" if i % 3 else "b", f"e{i}", {}))
    writer.close()
    reader = StoreReader(tmp_path / "data")
    assert [e.message for e in reader.events(now - 60, limit=3)] == ["e7", "e8", "e9"]
    assert [e.message for e in reader.events(now - 60, kinds=["b"], limit=2)] == ["e6", "e9"]
    assert [e.message for e in reader.events(now - 60, end=now - 7, limit=3)] == [
        "e3", "e4", "e5"]
    assert len(reader.events(now - 60, limit=100)) == 10
    assert reader.events(now - 60, limit=0) == []
    with pytest.raises(ValueError, match="limit must be"):
        reader.events(now - 60, limit=-1)
    found = Monitor(MonitorConfig(data_dir=tmp_path / "data")).events(start=now - 60, limit=4)
    assert [e["message"] for e in found] == ["e6", "e7", "e8", "e9"]


def test_sampler_sink_feeds_the_writer(tmp_path):
    class Counter(Collector):
        name = "count"

        def __init__(self) -> None:
            self.i = 0

        def read(self) -> Reading:
            self.i += 1
            return Reading(gauges={"test.count": float(self.i)})

    writer = StoreWriter(tmp_path / "data", StoreConfig(flush_interval=0.1), maintenance=False)
    sampler = Sampler([Counter()], interval=0.1, node="n1")
    sampler.add_sink(writer.write)
    for _ in range(5):
        sampler.sample_once()
    writer.close()
    frame = StoreReader(tmp_path / "data").read(["test.count"], 0, time.time() + 1)["n1"]
    assert frame.values[0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


# -- maintenance ---------------------------------------------------------------------------
def test_compaction_and_packing_keep_every_value(tmp_path):
    start = hour_ago(30)
    writer = open_writer(tmp_path)
    # 28 hours at one sample per 10 s: several finished hours and one finished day.
    feed(writer, start + 0.5, 28 * 360, lambda i: {"x": float(i % 97), "y": i * 0.5}, step=10)
    writer.close()
    reader = StoreReader(tmp_path / "data")
    before_raw = reader.read(None, start, start + 30 * HOUR)["n1"]
    tiers = [(tier, agg) for tier in ("1min", "1h") for agg in ("mean", "min", "max", "last")]
    before = {key: reader.read(None, start, start + 30 * HOUR, tier=key[0], agg=key[1])["n1"]
              for key in tiers}
    upkeep = Maintenance(tmp_path / "data" / "metrics.db", StoreConfig(raw_retention="7d"))
    stats = upkeep.run_once()
    upkeep.close()
    # Every hour is finished (the node stopped two hours ago): each became one block, and
    # the recent rows are gone.
    assert stats["compacted_hours"] == 28 and stats["packed_blocks"] > 0
    conn = sqlite3.connect(tmp_path / "data" / "metrics.db")
    assert conn.execute("SELECT count(*) FROM raw_ticks").fetchone()[0] == 28
    assert conn.execute("SELECT count(*) FROM minutes").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM tail").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM rollup_block").fetchone()[0] > 0
    after_raw = reader.read(None, start, start + 30 * HOUR)["n1"]
    assert np.array_equal(after_raw.times_ms, before_raw.times_ms)
    assert np.array_equal(after_raw.values, before_raw.values)
    for (tier, agg), frame in before.items():
        again = reader.read(None, start, start + 30 * HOUR, tier=tier, agg=agg)["n1"]
        assert np.array_equal(again.times_ms, frame.times_ms), (tier, agg)
        assert np.array_equal(again.values, frame.values, equal_nan=True), (tier, agg)


def test_retention_drops_each_tier_by_age(tmp_path):
    start = hour_ago(6)
    writer = open_writer(tmp_path)
    feed(writer, start + 0.5, 6 * 60, lambda i: {"x": 1.0}, step=60)
    writer.close()
    config = StoreConfig(raw_retention="2h", minute_retention="4h", hour_retention="5h")
    upkeep = Maintenance(tmp_path / "data" / "metrics.db", config)
    upkeep.run_once(now=start + 6 * HOUR)
    upkeep.close()
    oldest = StoreReader(tmp_path / "data").oldest()
    # Raw goes in whole blocks (at most an hour more), 1-min rows precisely.
    assert start + 3 * HOUR <= oldest["raw"] <= start + 4 * HOUR + 1
    assert oldest["1min"] == start + 2 * HOUR
    assert oldest["1h"] == start + HOUR


def test_size_cap_drops_oldest_first_and_shrinks_the_file(tmp_path):
    start = hour_ago(4)
    writer = open_writer(tmp_path)
    noise = np.random.default_rng(6).normal(0, 1, (3 * HOUR, 8))
    feed(writer, start + 0.5, 3 * HOUR, lambda i: {f"s.{j}": float(noise[i, j])
                                                   for j in range(8)})
    writer.close()
    path = tmp_path / "data" / "metrics.db"
    now = start + 3 * HOUR + 60
    upkeep = Maintenance(path, StoreConfig())
    upkeep.run_once(now=now)  # compaction and packing only
    cap = upkeep.used_bytes() - 100_000  # about one hour of raw over
    upkeep.close()
    upkeep = Maintenance(path, StoreConfig(max_bytes=cap))
    stats = upkeep.run_once(now=now)
    assert upkeep.used_bytes() <= cap
    upkeep.close()
    assert stats["cap_dropped"] > 0 and stats["vacuumed_pages"] > 0
    assert path.stat().st_size <= cap + 8192
    reader = StoreReader(tmp_path / "data")
    oldest = reader.oldest()
    # Raw, the tier oldest relative to its retention, lost its oldest hour(s) ...
    assert start + HOUR <= oldest["raw"] < start + 3 * HOUR
    assert oldest["1min"] == start  # ... while the small rollup tiers kept everything,
    newest = reader.read(["s.0"], start + 2 * HOUR, start + 3 * HOUR)["n1"]
    assert newest.times_ms.size == HOUR  # and the newest hour is whole.


# -- damage, versions, full disk -------------------------------------------------------------
def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    open_writer(tmp_path).close()
    path = tmp_path / "data" / "metrics.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    mtime = path.stat().st_mtime_ns
    with pytest.raises(StoreVersionError, match=r"newer tracklab-jupyter.*left untouched"):
        open_writer(tmp_path)
    with pytest.raises(StoreVersionError):
        StoreReader(tmp_path / "data").metrics()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert path.stat().st_mtime_ns == mtime
    assert not list(path.parent.glob("*.corrupt-*"))


def test_not_a_database_is_moved_aside(tmp_path, caplog):
    data = tmp_path / "data"
    data.mkdir()
    (data / "metrics.db").write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="tracklab_jupyter.store"):
        writer = StoreWriter(data, maintenance=False)
    writer.write(Sample(time.time(), "n1", {"x": 1.0}))
    writer.close()
    aside = list(data.glob("metrics.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert "damaged" in caplog.text and aside[0].name in caplog.text
    assert StoreReader(data).metrics() == ["x"]


def test_truncated_database_is_moved_aside(tmp_path, caplog):
    writer = open_writer(tmp_path)
    feed(writer, hour_ago(3), 2 * HOUR, lambda i: {f"s.{j}": float(i * j % 101)
                                                    for j in range(10)})
    writer.close()
    path = tmp_path / "data" / "metrics.db"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with caplog.at_level(logging.WARNING, logger="tracklab_jupyter.store"):
        open_writer(tmp_path).close()
    assert "truncated" in caplog.text
    assert len(list(path.parent.glob("metrics.db.corrupt-*"))) == 1
    assert StoreReader(tmp_path / "data").metrics() == []


def test_full_disk_keeps_sampling_bounds_memory_and_recovers(tmp_path, caplog):
    # A real SQLITE_FULL: the database may not grow past max_page_count pages.
    writer = open_writer(tmp_path, max_page_count=40, max_pending_minutes=3,
                         flush_interval=0.05, max_retry_interval=0.1)
    start = hour_ago(2)
    rng = np.random.default_rng(7)
    with caplog.at_level(logging.WARNING, logger="tracklab_jupyter.store"):
        # The writer keeps taking samples off its queue while the database is full, so a
        # blocking write() returns: the feed ends (the generous join only bounds a failure).
        feeder = threading.Thread(target=feed, daemon=True, args=(
            writer, start, 20 * 60, lambda i: {f"s.{j}": float(rng.normal())
                                               for j in range(30)}))
        feeder.start()
        feeder.join(120)
        assert not feeder.is_alive(), "write() stayed blocked on the full database"
        writer.flush(5)
    stats = writer.stats()
    assert stats["failing"] == "full" and stats["failed_flushes"] >= 1
    assert stats["last_error"] == "OperationalError: database or disk is full"
    assert "database or disk is full" in caplog.text and "Live sampling goes on" in caplog.text
    assert stats["dropped_unwritable"] > 0
    assert stats["pending_samples"] <= 4 * 60  # the newest 3 closed minutes + the open one
    # Space comes back (here: the limit is lifted on the writer's own connection).
    writer._conn.execute("PRAGMA max_page_count = 1000000")
    wait_for(lambda: writer.flush(1) and not writer.stats()["failing"], 60, "recovery")
    writer.close()
    assert writer.stats()["failing"] is None
    frame = StoreReader(tmp_path / "data").read(["s.0"], start, start + HOUR)["n1"]
    assert frame.times_ms[-1] == round((start + 20 * 60 - 1) * 1000)  # the newest survive
    assert frame.times_ms.size >= 3 * 60


def test_a_failure_other_than_a_full_disk_says_what_failed_and_recovers(tmp_path, caplog):
    writer = open_writer(tmp_path, flush_interval=0.05, max_retry_interval=0.1)
    writer._conn.execute("PRAGMA query_only = 1")  # every write now fails, not for space
    start = time.time()
    with caplog.at_level(logging.WARNING, logger="tracklab_jupyter.store"):
        writer.write(Sample(start, "n1", {"x": 1.0}))
        assert not writer.flush(5)
    stats = writer.stats()
    assert stats["failing"] not in (None, "full") and "readonly" in stats["failing"]
    assert stats["last_error"].startswith("OperationalError: ") and stats["failed_flushes"]
    assert "retrying" in caplog.text and "disk is full" not in caplog.text
    writer._conn.execute("PRAGMA query_only = 0")
    wait_for(lambda: writer.flush(1) and not writer.stats()["failing"], 60, "recovery")
    writer.close()
    assert writer.flush(1) is False  # nothing can be committed after close
    assert StoreReader(tmp_path / "data").read(["x"], start - 1, start + 1)["n1"].points == 1


def test_reader_in_another_process_sees_new_samples_before_close(tmp_path):
    # A timed flush makes them visible (the writer stays open until the child saw the
    # sample); how soon is measured in bench/latency.py.
    writer = StoreWriter(tmp_path / "data", StoreConfig(flush_interval=1.0), maintenance=False)
    writer.write(Sample(time.time(), "n1", {"x": 0.0}))
    writer.flush(5)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from tracklab_jupyter.store import StoreReader
        reader = StoreReader({str(tmp_path / "data")!r})
        reader.tail(0)
        print("ready", flush=True)
        deadline = time.time() + 60  # fail in a minute, not at the suite's timeout
        while time.time() < deadline:
            for s in reader.tail(time.time() - 30):
                if s.metrics.get("x") == 42.0:
                    print(time.time(), flush=True)
                    sys.exit(0)
            time.sleep(0.05)
        print("not seen in 60 s", flush=True)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        written = time.time()
        writer.write(Sample(written, "n1", {"x": 42.0}))
        line = child.stdout.readline().strip()
        assert line != "not seen in 60 s"
        assert float(line) >= written  # seen after it was written, with the writer open
        assert writer.stats()["samples"] == 2
    finally:
        child.kill()
        child.wait()
        writer.close()


def test_writer_queue_never_blocks_the_sampler(tmp_path):
    writer = open_writer(tmp_path, max_queue=10)
    # A really stuck writer thread: its next drain of the queue blocks until released.
    entered, release = threading.Event(), threading.Event()
    drain = writer._drain

    def stuck_drain():
        entered.set()
        release.wait(120)
        return drain()
    writer._drain = stuck_drain
    start = time.time()
    writer.flush(0)  # wakes the thread, which sticks in the drain
    assert entered.wait(30)
    # The flush request waits in the queue too: 9 samples fit, the other 11 are dropped at
    # once, without blocking the caller (the sampler's thread)
    accepted: list[bool] = []
    sampler_thread = threading.Thread(target=lambda: accepted.extend(
        writer.write(Sample(start + i, "n1", {"x": float(i)})) for i in range(20)), daemon=True)
    sampler_thread.start()
    sampler_thread.join(30)  # generous: only a blocking write() runs into it
    assert not sampler_thread.is_alive(), "write() blocked on the stuck writer"
    assert accepted == [True] * 9 + [False] * 11
    assert writer.stats()["dropped_queue_full"] == 11
    # an event and a node's facts are dropped (and counted) the same way
    writer.write_event(Event(start, "n1", "gpu_lost", "GPU 1 lost"))
    writer.write_info("n1", {"system": {}})
    assert writer.stats()["dropped_queue_full"] == 13
    release.set()
    writer.close()
    frame = StoreReader(tmp_path / "data").read(["x"], start - 1, start + 60)["n1"]
    assert frame.values[0].tolist() == [float(i) for i in range(9)]  # the accepted ones


@pytest.fixture(autouse=True)
def _no_leaked_env(monkeypatch):
    monkeypatch.delenv("TRACKLAB_DATA_DIR", raising=False)
    yield
    assert os.environ.get("TRACKLAB_DATA_DIR") is None
