"""Storage benchmark: the tracklab store against a naive one-row-per-point table.

Writes ``--hours`` (default 24) of 1 Hz samples for 100 series with realistic shapes
through the real StoreWriter: 8 GPUs replaying the phases of a real H200 trace
(``tests/fixtures/nvidia-h200/h200_trace.csv``: idle, compute-bound, memory-bound) with
per-GPU variation, noisy CPU cores, memory, rates derived from monotonic counters over
jittered intervals (as the sampler computes them), a monotonic energy counter, and the
sampler's own noisy timings. Then prints:

* bytes per point on disk: the raw tier, and the whole file (raw + rollups + indexes);
* write throughput through the writer (points/s);
* the time to load the whole range × 100 series of raw samples into pandas;
* the time to load ``--days`` (default 30) × 100 series of 1-min rollups into pandas;

and the same figures for a naive baseline built in the same run: one row per point
``(ts, series_id, value)`` with an index on ``(series_id, ts)``, read with
``pandas.read_sql`` and pivoted to the same wide shape. Run: ``python bench/store.py``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tracklab_jupyter.metrics.sample import Sample
from tracklab_jupyter.store import StoreConfig, StoreWriter
from tracklab_jupyter.store.maintenance import Maintenance
from tracklab_jupyter.store.rollups import replace_rows
from tracklab_jupyter.system_history import history

TRACE = Path(__file__).resolve().parent.parent / "tests/fixtures/nvidia-h200/h200_trace.csv"
NODE = "bench-node"
GPUS = 8
TARGET_RAW_BPP = 2.0
TARGET_SMALLER = 15.0
TARGET_LOAD_S = 0.3
TARGET_FASTER = 10.0


# -- realistic data ----------------------------------------------------------------------
def load_trace() -> dict[str, dict[str, np.ndarray]]:
    """The trace's columns, split by phase (idle / compute / memory)."""
    with open(TRACE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    phases: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        cols = phases.setdefault(row["phase"], {})
        for key, value in row.items():
            if key not in ("phase", "t") and value != "":
                cols.setdefault(key, []).append(float(value))
    return {p: {k: np.asarray(v) for k, v in cols.items() if len(v) == len(cols["gpu_util"])}
            for p, cols in phases.items()}


def phase_schedule(n: int, rng: np.random.Generator) -> np.ndarray:
    """Per second, which phase a GPU is in: idle gaps between compute- and memory-bound
    jobs of 10-60 minutes."""
    out = np.empty(n, dtype=object)
    i = 0
    while i < n:
        phase = rng.choice(["idle", "compute", "memory"], p=[0.4, 0.35, 0.25])
        length = int(rng.integers(5, 40) * 60 if phase == "idle" else rng.integers(10, 60) * 60)
        out[i:i + length] = phase
        i += length
    return out


def replay(trace: dict[str, dict[str, np.ndarray]], schedule: np.ndarray, column: str,
           rng: np.random.Generator) -> np.ndarray:
    """A column of the trace played along a phase schedule, each phase looping its rows
    from a random offset."""
    out = np.empty(schedule.size)
    starts = np.flatnonzero(np.r_[True, schedule[1:] != schedule[:-1]])
    ends = np.r_[starts[1:], schedule.size]
    for s, e in zip(starts, ends, strict=True):
        source = trace[schedule[s]][column]
        offset = int(rng.integers(0, source.size))
        out[s:e] = np.take(source, np.arange(offset, offset + e - s), mode="wrap")
    return out


def generate(n: int, seed: int = 7) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(times, names, values)``: n jittered 1 Hz timestamps, 100 names, values (n, 100)."""
    rng = np.random.default_rng(seed)
    trace = load_trace()
    t0 = (time.time() - n - 120) // 60 * 60
    # The sampler keeps its phase; each tick lands a little after it, by 0-3 ms.
    times = t0 + np.arange(n) + np.abs(rng.normal(0, 0.0015, n))
    elapsed = np.diff(times, prepend=times[0] - 1.0)
    cols: dict[str, np.ndarray] = {}
    gpu0_schedule = None
    for g in range(GPUS):
        schedule = phase_schedule(n, rng)
        gpu0_schedule = schedule if g == 0 else gpu0_schedule
        util = replay(trace, schedule, "gpu_util", rng)
        cols[f"gpu.{g}.util_pct"] = util
        cols[f"gpu.{g}.mem_util_pct"] = replay(trace, schedule, "gpu_mem_util", rng)
        cols[f"gpu.{g}.mem_used_bytes"] = replay(trace, schedule, "gpu_mem_used", rng)
        cols[f"gpu.{g}.temp_c"] = replay(trace, schedule, "gpu_temp", rng) + rng.integers(-2, 3)
        power_mw = replay(trace, schedule, "gpu_power_mw", rng) + rng.integers(-500, 500, n)
        cols[f"gpu.{g}.power_w"] = power_mw / 1000
        cols[f"gpu.{g}.sm_clock_mhz"] = replay(trace, schedule, "gpu_sm_clock", rng)
        cols[f"gpu.{g}.energy_j"] = (2_378_138 + np.cumsum(power_mw)) / 1000  # mJ counter
        cols[f"gpu.{g}.throttle_reasons"] = replay(trace, schedule, "gpu_throttle", rng)
    busy = gpu0_schedule != "idle"
    cpu = replay(trace, gpu0_schedule, "cpu_pct", rng) + rng.normal(0, 3, n)
    cols["cpu.util_pct"] = np.round(np.clip(cpu, 0, 100), 1)
    for c in range(16):
        level = np.where(busy & (c % 4 == 0), 85.0, 3.0) + rng.normal(0, 4 if c % 4 else 8, n)
        spikes = rng.random(n) < 0.05
        level[spikes] += rng.uniform(20, 90, int(spikes.sum()))
        cols[f"cpu.core.{c}.util_pct"] = np.round(np.clip(level, 0, 100), 1)
    cols["cpu.load1"] = np.round(replay(trace, gpu0_schedule, "load1", rng) * 2048) / 2048
    total = 137_438_953_472
    used = replay(trace, gpu0_schedule, "mem_used", rng) + 4096 * np.cumsum(
        rng.integers(-3, 4, n))
    cols["mem.used_bytes"] = used
    cols["mem.available_bytes"] = total - used
    cols["mem.util_pct"] = np.round(used / total * 100, 1)

    def rate(deltas: np.ndarray) -> np.ndarray:
        return deltas / elapsed  # like the sampler: counter delta over the measured interval

    reads = np.where(rng.random(n) < np.where(busy, 0.3, 0.02), 1, 0) * rng.integers(1, 2048, n)
    writes = np.where(rng.random(n) < 0.2, 1, 0) * rng.integers(1, 256, n)
    cols["disk.read_bytes_per_s"] = rate(reads * 4096.0)
    cols["disk.write_bytes_per_s"] = rate(writes * 4096.0)
    cols["disk.iops"] = rate(np.ceil(reads / 32) + np.ceil(writes / 8))
    packets_in = rng.poisson(np.where(busy, 400, 30), n)
    packets_out = rng.poisson(np.where(busy, 300, 25), n)
    cols["net.recv_bytes_per_s"] = rate(packets_in * rng.integers(60, 1500, n).astype(float))
    cols["net.sent_bytes_per_s"] = rate(packets_out * rng.integers(60, 1500, n).astype(float))
    cols["net.recv_packets_per_s"] = rate(packets_in.astype(float))
    cols["net.sent_packets_per_s"] = rate(packets_out.astype(float))
    cols["tracklab.sample_ms"] = rng.lognormal(np.log(0.45), 0.25, n)
    cols["tracklab.sample_cpu_ms"] = rng.lognormal(np.log(0.38), 0.2, n)
    cols["swap.used_bytes"] = np.zeros(n)
    disk_used = 412_000_000_000 + 4096 * np.cumsum(rng.integers(0, 50, n) * (rng.random(n) < 0.1))
    cols["disk./.used_bytes"] = disk_used.astype(float)
    cols["disk./.util_pct"] = np.round(disk_used / 1_000_000_000_000 * 100, 1)
    cols["net.connections"] = 40 + np.cumsum(rng.integers(-1, 2, n)) % 30
    cols["proc.count"] = 180 + np.cumsum(rng.integers(-1, 2, n) * (rng.random(n) < 0.05)) % 40
    cols["proc.threads"] = 900 + np.cumsum(rng.integers(-3, 4, n) * (rng.random(n) < 0.2)) % 200
    names = list(cols)
    assert len(names) == 100, len(names)
    values = np.column_stack([np.asarray(cols[k], dtype=np.float64) for k in names])
    return times, names, values


# -- measuring ---------------------------------------------------------------------------
def table_bytes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    finally:
        conn.close()


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def write_tracklab(root: Path, times: np.ndarray, names: list[str],
                   values: np.ndarray) -> float:
    writer = StoreWriter(root, StoreConfig(raw_retention="30d"))
    start = time.perf_counter()
    for t, row in zip(times.tolist(), values.tolist(), strict=True):
        writer.write(Sample(t, NODE, dict(zip(names, row, strict=True))), block=True)
    writer.close()
    elapsed = time.perf_counter() - start
    # Compaction and packing normally run in the background every minute; run them now so
    # the sizes and reads below are those of a store in its steady state.
    # Compaction frees the minute blocks' pages; they are reused by later writes, and the
    # maintenance pass gives them back once there are many. Give them back now, so the file
    # size is that of the live data.
    upkeep = Maintenance(root / "metrics.db", StoreConfig(raw_retention="30d"))
    upkeep.run_once(now=float(times[-1]) + 1)
    upkeep.vacuum()
    upkeep.close()
    return elapsed


def write_baseline(path: Path, times: np.ndarray, values: np.ndarray) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE points (ts REAL NOT NULL, series_id INTEGER NOT NULL, "
                 "value REAL NOT NULL)")
    conn.execute("CREATE INDEX points_series_ts ON points (series_id, ts)")
    start = time.perf_counter()
    series = np.arange(values.shape[1])
    for i in range(0, times.size, 600):
        chunk = values[i:i + 600]
        ts = np.repeat(times[i:i + 600], chunk.shape[1])
        sid = np.tile(series, chunk.shape[0])
        with conn:
            conn.executemany("INSERT INTO points VALUES (?, ?, ?)",
                             zip(ts.tolist(), sid.tolist(), chunk.ravel().tolist(), strict=True))
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def read_baseline(path: Path, start: float, end: float) -> pd.DataFrame:
    conn = sqlite3.connect(path)
    try:
        long = pd.read_sql("SELECT ts, series_id, value FROM points WHERE ts >= ? AND ts < ?",
                           conn, params=(start, end))
    finally:
        conn.close()
    wide = long.pivot(index="ts", columns="series_id", values="value")
    wide.index = pd.to_datetime(wide.index, unit="s", utc=True)
    return wide


def minute_rollups(times: np.ndarray, values: np.ndarray, days: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, ...]:
    """``days`` of per-minute (t, count, min, max, sum, last) for every series, made by
    looping the minute aggregates of the generated data with a little variation."""
    minutes = values.shape[0] // 60
    shaped = values[:minutes * 60].reshape(minutes, 60, -1)
    base = [shaped.min(1), shaped.max(1), shaped.sum(1), shaped[:, -1]]
    total = days * 1440
    reps = -(-total // minutes)
    scale = 1 + rng.normal(0, 0.02, (reps * minutes, 1))
    agg = [np.round(np.tile(b, (reps, 1))[:total] * scale[:total], 3) for b in base]
    end = (times[-1] // 60) * 60
    t = (end - total * 60 + np.arange(total) * 60).astype(np.int64)
    return (t, np.full((total, values.shape[1]), 60), *agg)


def write_minute_store(root: Path, names: list[str], data: tuple) -> None:
    """A store whose 1-min tier holds ``data``: rows written with the writer's own rollup
    code, then packed by the real maintenance pass."""
    StoreWriter(root, maintenance=False).close()  # create the schema
    conn = sqlite3.connect(root / "metrics.db", isolation_level=None)
    t, count, vmin, vmax, vsum, last = data
    with conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO nodes (name) VALUES (?)", (NODE,))
        conn.executemany("INSERT INTO series (node_id, name) VALUES (1, ?)",
                         [(n,) for n in names])
        for j in range(len(names)):
            replace_rows(conn, 60, zip([j + 1] * t.size, t.tolist(), vmin[:, j].tolist(),
                                       vmax[:, j].tolist(), vsum[:, j].tolist(),
                                       count[:, j].tolist(), last[:, j].tolist(), strict=True))
        conn.execute("COMMIT")
    conn.close()
    # The data reaches back exactly ``days``: keep a day more than that so none expires.
    keep = StoreConfig(minute_retention=f"{len(t) // 1440 + 1}d")
    upkeep = Maintenance(root / "metrics.db", keep)
    upkeep.run_once(now=float(t[-1]) + 7200)
    upkeep.close()


def write_minute_baseline(path: Path, data: tuple) -> None:
    t, count, _, _, vsum, _ = data
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE points (ts REAL NOT NULL, series_id INTEGER NOT NULL, "
                 "value REAL NOT NULL)")
    conn.execute("CREATE INDEX points_series_ts ON points (series_id, ts)")
    mean = vsum / count
    sid = np.tile(np.arange(mean.shape[1]), mean.shape[0])
    with conn:
        conn.executemany("INSERT INTO points VALUES (?, ?, ?)", zip(
            np.repeat(t, mean.shape[1]).astype(float).tolist(), sid.tolist(),
            mean.ravel().tolist(), strict=True))
    conn.close()


# -- report ------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=24.0,
                        help="hours of 1 Hz data to write (default: %(default)s)")
    parser.add_argument("--days", type=int, default=30,
                        help="days of 1-min rollups to read back (default: %(default)s)")
    parser.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level="WARNING")
    work = Path(args.dir or tempfile.mkdtemp(prefix="tracklab-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n = int(args.hours * 3600)
    print(f"generating {args.hours:g} h × 100 series at 1 Hz ({n * 100:,} points) in {work}")
    times, names, values = generate(n)
    points = int(np.count_nonzero(~np.isnan(values)))
    start, end = float(times[0]), float(times[-1]) + 1

    print("writing through StoreWriter ...", flush=True)
    ours_write = write_tracklab(work / "tracklab", times, names, values)
    sizes = table_bytes(work / "tracklab" / "metrics.db")
    # The raw tier: hour blocks, and the newest hour still in minutes and the tail.
    raw_bytes = sum(v for k, v in sizes.items() if k in ("raw", "raw_ticks", "minutes", "tail")
                    or k.startswith(("sqlite_autoindex_raw_", "sqlite_autoindex_raw_ticks_")))
    ours_total = (work / "tracklab" / "metrics.db").stat().st_size
    print("writing the baseline ...", flush=True)
    base_write = write_baseline(work / "baseline.db", times, values)
    base_total = (work / "baseline.db").stat().st_size

    print("reading raw into pandas ...", flush=True)
    ours_load, frame = best_of(lambda: history(start=start, end=end,
                                               data_dir=work / "tracklab").to_pandas())
    assert frame.shape == (n, 100), frame.shape
    check = frame[names].to_numpy()
    error = np.nanmax(np.abs(check - values) / np.maximum(np.abs(values).max(0), 1e-300))
    base_load, base_frame = best_of(lambda: read_baseline(work / "baseline.db", start, end), 1)
    assert base_frame.shape == (n, 100), base_frame.shape

    print(f"building {args.days} days of 1-min rollups ...", flush=True)
    rng = np.random.default_rng(11)
    minute_data = minute_rollups(times, values, args.days, rng)
    write_minute_store(work / "minutes", names, minute_data)
    upkeep = Maintenance(work / "minutes" / "metrics.db", StoreConfig(minute_retention="60d"))
    upkeep.vacuum()
    upkeep.close()
    write_minute_baseline(work / "minutes-baseline.db", minute_data)
    m_start = float(minute_data[0][0])
    m_end = float(minute_data[0][-1]) + 60
    ours_min, mframe = best_of(lambda: history(start=m_start, end=m_end, step="1min",
                                               data_dir=work / "minutes").to_pandas())
    assert mframe.shape == (args.days * 1440, 100), mframe.shape
    base_min, _ = best_of(
        lambda: read_baseline(work / "minutes-baseline.db", m_start, m_end), 1)
    min_bytes = (work / "minutes" / "metrics.db").stat().st_size
    min_base_bytes = (work / "minutes-baseline.db").stat().st_size

    raw_bpp = raw_bytes / points
    smaller = base_total / raw_bytes
    faster = base_load / ours_load
    rows = [
        ("points written", f"{points:,}", f"{points:,}", ""),
        ("bytes/point, raw tier", f"{raw_bpp:.3f}", f"{base_total / points:.2f}",
         f"{smaller:.1f}× smaller  (target ≤ {TARGET_RAW_BPP} B, ≥ {TARGET_SMALLER:g}×: "
         f"{verdict(raw_bpp <= TARGET_RAW_BPP and smaller >= TARGET_SMALLER)})"),
        ("bytes/point, whole file (raw + rollups)", f"{ours_total / points:.3f}",
         f"{base_total / points:.2f}",
         f"{base_total / ours_total:.1f}× smaller"),
        ("write throughput, points/s", f"{points / ours_write:,.0f}",
         f"{points / base_write:,.0f}", f"{base_write / ours_write:.2f}× the baseline's "
         "(ours includes building each sample dict and encoding)"),
        (f"{args.hours:g} h × 100 raw into pandas, s", f"{ours_load:.3f}", f"{base_load:.3f}",
         f"{faster:.1f}× faster  (target ≤ {TARGET_LOAD_S} s, ≥ {TARGET_FASTER:g}×: "
         f"{verdict(ours_load <= TARGET_LOAD_S and faster >= TARGET_FASTER)})"),
        (f"{args.days} d × 100 at 1 min into pandas, s", f"{ours_min:.3f}", f"{base_min:.3f}",
         f"{base_min / ours_min:.1f}× faster"),
        (f"{args.days} d × 100 at 1 min on disk, MB", f"{min_bytes / 1e6:.1f}",
         f"{min_base_bytes / 1e6:.1f}", f"{min_base_bytes / min_bytes:.1f}× smaller"),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'':{width}}  {'tracklab':>12}  {'baseline':>12}  ratio")
    for label, ours, base, ratio in rows:
        print(f"{label:{width}}  {ours:>12}  {base:>12}  {ratio}")
    print(f"\nlargest raw round-trip error, relative to each series' largest value: {error:.2e}")
    print("raw tier tables:", {k: v for k, v in sizes.items() if "raw" in k})
    return 0


if __name__ == "__main__":
    sys.exit(main())
