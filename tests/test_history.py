"""``tracklab.history()`` and the ``history`` command: selection, times, tiers, pandas,
exports and errors, against real stores in tmp_path."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import unavailable

from tracklab_jupyter.cli import main
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.store import StoreConfig, StoreNotFoundError, StoreWriter
from tracklab_jupyter.store.maintenance import Maintenance
from tracklab_jupyter.store.timespec import TimeFormatError, parse_duration, parse_time
from tracklab_jupyter.system_history import History, UnknownMetricError, history

HOUR = 3600
NAMES = ("cpu.util_pct", "gpu.0.util_pct", "gpu.1.util_pct", "mem.used_bytes")


def value(name: str, i: int) -> float:
    return float((i * (NAMES.index(name) + 1)) % 100)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """40 minutes of 1 Hz samples from two nodes ending now, and one event."""
    root = tmp_path_factory.mktemp("history")
    now = time.time()
    start = now - 2400
    writer = StoreWriter(root, maintenance=False)
    for i in range(2400):
        writer.write(Sample(start + i, "alpha", {n: value(n, i) for n in NAMES}), block=True)
        if i % 2 == 0:
            writer.write(Sample(start + i + 0.5, "beta", {"cpu.util_pct": 50.0}), block=True)
    writer.write_event(Event(now - 60, "alpha", "gpu_lost", "GPU 1 lost", {"gpu": 1}))
    writer.close()
    return root, start


# -- time and duration forms ---------------------------------------------------------------
def test_time_forms():
    now = 1_750_000_000.0
    assert parse_time("-15min", now) == now - 900
    assert parse_time("-2h", now) == parse_time("now-2h", now) == now - 7200
    assert parse_time("-1d", now) == now - 86400
    assert parse_time("now", now) == now
    assert parse_time(1_700_000_000, now) == 1_700_000_000.0
    assert parse_time("1700000000", now) == 1_700_000_000.0
    assert parse_time("2025-06-01T12:00:00Z") == datetime(2025, 6, 1, 12, tzinfo=UTC).timestamp()
    assert parse_time("2025-06-01 12:00") == parse_time("2025-06-01T12:00:00+00:00")
    assert parse_time(datetime(2025, 6, 1, 12)) == parse_time("2025-06-01T12:00Z")
    assert parse_time(pd.Timestamp("2025-06-01 12:00", tz="UTC")) == parse_time("2025-06-01 12:00")
    assert parse_time(np.datetime64("2025-06-01T12:00")) == parse_time("2025-06-01 12:00")
    assert parse_duration("10s") == 10 and parse_duration("1min") == 60
    assert parse_duration("2h") == 7200 and parse_duration(timedelta(minutes=5)) == 300
    assert parse_duration(90) == 90


@pytest.mark.parametrize("bad", ["yesterday", "-15 fortnights", "2025-13-01", "", None])
def test_bad_time_shows_accepted_forms(bad):
    with pytest.raises(TimeFormatError, match=r"Accepted: .*ISO 8601.*-15min"):
        parse_time(bad)


def test_bad_step_shows_accepted_forms(store):
    with pytest.raises(TimeFormatError, match="'10s', '1min'"):
        history("cpu.util_pct", step="often", data_dir=store[0])
    with pytest.raises(TimeFormatError, match="cannot read 'last tuesday' as a time"):
        history("cpu.util_pct", start="last tuesday", data_dir=store[0])


# -- selection -----------------------------------------------------------------------------
def test_names_globs_and_lists(store):
    root, _ = store
    assert history("gpu.*.util_pct", node="alpha", data_dir=root).metrics == [
        "gpu.0.util_pct", "gpu.1.util_pct"]
    listed = history(["mem.used_bytes", "gpu.?.util_pct", "mem.used_bytes"], node="alpha",
                     data_dir=root)
    assert listed.metrics == ["mem.used_bytes", "gpu.0.util_pct", "gpu.1.util_pct"]
    assert list(listed.to_pandas().columns) == listed.metrics
    assert history(data_dir=root, node="alpha").metrics == sorted(NAMES)


def test_unknown_metric_lists_close_matches(store):
    with pytest.raises(UnknownMetricError, match=r"close matches: cpu\.util_pct"):
        history("cpu.utl_pct", data_dir=store[0])
    with pytest.raises(UnknownMetricError, match=r"gpu\.0\.util_pct"):
        history("gpu.*.utilisation", data_dir=store[0])
    with pytest.raises(UnknownMetricError, match="known metric, but this machine has not"):
        history("cpu.temp_c", data_dir=store[0])


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreNotFoundError, match=r"no tracklab history in .*record"):
        history("cpu.util_pct", data_dir=tmp_path / "nothing")


# -- values, pandas ------------------------------------------------------------------------
def test_raw_to_pandas_single_node(store):
    root, start = store
    result = history(["cpu.util_pct", "mem.used_bytes"], start="-30min", node="alpha",
                     data_dir=root)
    assert isinstance(result, History) and result.tier == "raw" and result.step is None
    df = result.to_pandas()
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert df.index.name == "time" and list(df.columns) == ["cpu.util_pct", "mem.used_bytes"]
    assert 1795 <= len(df) <= 1805 and df.index.is_monotonic_increasing
    first = round(df.index[0].timestamp() - start)
    assert df["mem.used_bytes"].iloc[0] == value("mem.used_bytes", first)
    assert [e.kind for e in result.events] == ["gpu_lost"]


def test_several_nodes_give_multiindex_columns(store):
    df = history("cpu.util_pct", start="-10min", data_dir=store[0]).to_pandas()
    assert df.columns.names == ["node", "metric"]
    assert list(df.columns) == [("alpha", "cpu.util_pct"), ("beta", "cpu.util_pct")]
    assert df[("beta", "cpu.util_pct")].dropna().eq(50.0).all()
    assert df[("alpha", "cpu.util_pct")].notna().sum() > 590


@pytest.mark.parametrize("agg", ["mean", "min", "max", "last"])
def test_step_and_agg_match_pandas_resample(store, agg):
    root, _ = store
    # One range for both reads: "-5min" twice would be two different instants, and the
    # last bin could then hold a sample more in one read than in the other.
    end = time.time() - 300
    start = end - 900
    raw = history("gpu.1.util_pct", start=start, end=end, node="alpha",
                  data_dir=root).to_pandas()["gpu.1.util_pct"]
    binned = history("gpu.1.util_pct", start=start, end=end, step="10s", agg=agg,
                     node="alpha", data_dir=root)
    assert binned.tier == "raw" and binned.step == 10
    expected = getattr(raw.resample("10s"), agg)().dropna()
    got = binned.to_pandas()["gpu.1.util_pct"]
    pd.testing.assert_series_equal(got, expected, check_names=False, check_freq=False)


def test_one_list_of_aggregates_and_one_check(store, tmp_path):
    """AGGREGATES (store/config.py) is what every reader offers, and check_agg what refuses
    any other: history() before it opens the store, the reader, REST, the command line."""
    import argparse

    from tracklab_jupyter.commands.history import register
    from tracklab_jupyter.server.openapi import openapi_dict
    from tracklab_jupyter.store.config import AGGREGATES
    from tracklab_jupyter.store.query import FIELDS_FOR
    from tracklab_jupyter.store.reader import StoreReader

    assert AGGREGATES == ("mean", "min", "max", "last")
    assert set(FIELDS_FOR) - {None} == set(AGGREGATES)
    message = r"agg must be one of mean, min, max, last; got 'median'"
    with pytest.raises(ValueError, match=message):  # not StoreNotFoundError: checked first
        history("cpu.util_pct", agg="median", data_dir=tmp_path / "nothing")
    reader = StoreReader(store[0])
    try:
        with pytest.raises(ValueError, match=message):
            reader.read(["cpu.util_pct"], 0, 1, agg="median")
    finally:
        reader.close()
    doc = openapi_dict()
    assert doc["components"]["schemas"]["History"]["properties"]["agg"]["enum"] == list(
        AGGREGATES)
    agg = next(p for p in doc["paths"]["/api/history"]["get"]["parameters"]
               if p["name"] == "agg")
    assert agg["schema"]["enum"] == list(AGGREGATES)
    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    (command,) = sub.choices.values()
    assert next(a for a in command._actions if a.dest == "agg").choices == AGGREGATES


def test_rollup_tier_for_minute_steps(store):
    root, _ = store
    result = history("gpu.0.util_pct", start="-30min", step="5min", node="alpha",
                     data_dir=root)
    assert result.tier == "1min" and result.step == 300
    raw = history("gpu.0.util_pct", start="-30min", node="alpha",
                  data_dir=root).to_pandas()["gpu.0.util_pct"]
    df = result.to_pandas()
    assert (df.index.minute % 5 == 0).all() and (df.index.second == 0).all()
    full = df.index[1:-1]  # bins wholly inside the range
    expected = raw.resample("5min").mean().loc[full]
    np.testing.assert_allclose(df.loc[full, "gpu.0.util_pct"], expected, rtol=1e-9)


def test_tier_chosen_from_range_and_step(tmp_path):
    """Raw for the last hour, 1-min rollups for 3 days, 1-h rollups for 6 days."""
    now = time.time()
    start = (now - 6 * 86400) // HOUR * HOUR
    writer = StoreWriter(tmp_path, maintenance=False)
    for i in range(int((now - start) // 120)):  # a sample every 2 minutes
        writer.write(Sample(start + i * 120, "n1", {"x": float(i % 50)}), block=True)
    writer.close()
    config = StoreConfig(raw_retention="1h", minute_retention="3d", hour_retention="30d")
    upkeep = Maintenance(tmp_path / "metrics.db", config)
    upkeep.run_once()
    upkeep.close()

    def tier(**kwargs) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return history("x", data_dir=tmp_path, **kwargs).tier

    assert tier(start="-30min") == "raw"
    assert tier(start="-2d") == "1min"
    assert tier(start="-5d") == "1h"
    assert tier(start="-30min", step="10s") == "raw"
    assert tier(start="-2d", step="15min") == "1min"
    assert tier(start="-2d", step="1h") == "1h"
    with pytest.warns(UserWarning, match="finer than the data kept"):
        coarse = history("x", start="-2d", step="10s", data_dir=tmp_path)
    assert coarse.tier == "1min" and coarse.step == 60
    week = history("x", start="-6d", data_dir=tmp_path).to_pandas()
    assert week.index[0] <= pd.Timestamp(start + 3600, unit="s", tz="UTC")
    assert week["x"].between(0, 49).all()


# -- exports -------------------------------------------------------------------------------
def test_to_csv_and_to_parquet(store, tmp_path):
    result = history(["cpu.util_pct", "gpu.0.util_pct"], start="-5min", node="alpha",
                     data_dir=store[0])
    calls: list[tuple[int, int]] = []
    result.to_csv(tmp_path / "out.csv", progress=lambda done, total: calls.append((done, total)),
                  chunk_rows=100)
    back = pd.read_csv(tmp_path / "out.csv", index_col="time", parse_dates=True)
    assert list(back.columns) == result.metrics and len(back) == len(result)
    assert calls[-1][0] == calls[-1][1] == len(result) and len(calls) > 1
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        unavailable("pyarrow is not installed (pip install -e '.[test]' installs it)")
    result.to_parquet(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), result.to_pandas(),
                                  check_freq=False, check_column_type=False)
    both = history("cpu.util_pct", start="-5min", data_dir=store[0])
    both.to_parquet(tmp_path / "nodes.parquet")
    assert list(pd.read_parquet(tmp_path / "nodes.parquet").columns) == [
        "alpha/cpu.util_pct", "beta/cpu.util_pct"]


def test_to_parquet_names_pyarrow_when_missing(store, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    result = history("cpu.util_pct", start="-1min", data_dir=store[0])
    with pytest.raises(ImportError, match="pip install pyarrow"):
        result.to_parquet(tmp_path / "out.parquet")


# -- the command line ----------------------------------------------------------------------
def test_history_command_exports_csv_with_progress(store, tmp_path, capsys):
    out = tmp_path / "export.csv"
    code = main(["history", "--metrics", "cpu.util_pct,gpu.*.util_pct", "--start", "-30min",
                 "--node", "alpha", "--csv", str(out), "--data-dir", str(store[0])])
    assert code == 0
    df = pd.read_csv(out, index_col="time")
    assert list(df.columns) == ["cpu.util_pct", "gpu.0.util_pct", "gpu.1.util_pct"]
    assert "wrote" in capsys.readouterr().err
    assert main(["history", "--list", "--data-dir", str(store[0])]) == 0
    assert capsys.readouterr().out.split() == sorted(NAMES)
    code = main(["history", "--metrics", "cpu.util", "--data-dir", str(store[0])])
    assert code == 2 and "close matches: cpu.util_pct" in capsys.readouterr().err
    code = main(["history", "--start", "-1fortnight", "--data-dir", str(store[0])])
    assert code == 2 and "Accepted:" in capsys.readouterr().err


def test_progress_bar_draws_for_long_exports(capsys):
    from tracklab_jupyter.commands.history import ProgressBar

    bar = ProgressBar("writing x.csv", min_total=10)
    bar(5, 100)
    bar(100, 100)
    bar.finish()
    err = capsys.readouterr().err
    assert "\rwriting x.csv [###" in err and "100% 100/100 rows" in err and err.endswith("\n")


def test_importing_history_loads_neither_pandas_nor_numpy():
    code = ("import sys, tracklab_jupyter.system_history; "
            "print('pandas' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_young_store_is_read_raw_not_from_its_first_rollup_bucket():
    """A store a few seconds old: its 1-min and 1-h buckets start before the first raw
    sample, which must not make the planner fall back to one 1-min row (seen on a real
    H200 box: 12 s of recording came back as a single row)."""
    from tracklab_jupyter.store.plan import choose_tier

    first = 1_800_000_035.3  # 35 s into a minute
    oldest = {"raw": first, "1min": 1_800_000_000.0, "1h": 1_799_998_800.0}
    assert choose_tier(first - 120, None, oldest).tier == "raw"
    assert choose_tier(first - 120, 10.0, oldest).tier == "raw"
    # raw kept 48 h, minute rollups older: a week-long query reads the rollups
    oldest = {"raw": first, "1min": first - 20 * 86400, "1h": first - 20 * 86400}
    assert choose_tier(first - 7 * 86400, None, oldest).tier == "1min"
