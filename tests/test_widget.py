"""tracklab.widget() in this process (ipywidgets' stand-in comm): arguments, the message
protocol, the shared feed's thread, and that closed widgets leave nothing behind."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest
from conftest import wait_for
from widget_recorder import Recorded, _fresh_kernel_monitor, feed_threads, ready  # noqa: F401 (autouse)

import tracklab
from tracklab_jupyter.process_monitor import process_monitor


def decode(content: dict, buffers: list) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = content["n"]
    times = np.frombuffer(buffers[0], dtype=np.float64)
    values = np.frombuffer(buffers[1], dtype=np.float64).reshape(len(content["names"]), n)
    return times, dict(zip(content["names"], values, strict=True))








@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"window": "fortnight"}, "duration"),
    ({"window": 0.5}, "window must be between"),
    ({"node": "elsewhere"}, "unknown node"),
    ({"height": 5}, "height must be"),
])
def test_bad_arguments_say_what_to_fix(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        tracklab.widget(**kwargs)


def test_ready_gets_init_backfill_then_live_batches():
    monitor = process_monitor()
    wait_for(lambda: monitor.latest is not None and "cpu.util_pct" in monitor.latest.metrics)
    time.sleep(0.5)
    widget = tracklab.widget(window="1m", metrics=["cpu.*", "mem.*"])
    sent = Recorded(widget)
    ready(widget)
    (init, _), = sent.of("init")
    assert init["node"] == monitor.node and init["interval_s"] == 0.2
    assert init["info"]["cpu_count"] >= 1
    (backfill, buffers), = sent.of("data")
    assert backfill["backfill"] is True and backfill["n"] >= 2
    times, series = decode(backfill, buffers)
    assert np.all(np.diff(times) > 0)
    assert set(series) and all(n.startswith(("cpu.", "mem.")) for n in series)
    assert np.nanmax(series["mem.used_bytes"]) > 0
    assert "live" in widget.status
    wait_for(lambda: len(sent.of("data")) >= 3)  # live batches from the flusher
    live = [decode(c, b) for c, b in sent.of("data")[1:]]
    assert all(t[0] > times[-1] for t, _ in live)  # no sample sent twice
    widget.close()


def test_several_widgets_share_one_feed_thread_which_ends_with_the_last():
    process_monitor()
    widgets = [tracklab.widget() for _ in range(3)]
    recorders = [Recorded(w) for w in widgets]
    for w in widgets:
        ready(w)
    wait_for(lambda: all(len(r.of("data")) >= 2 for r in recorders))
    assert len(feed_threads()) == 1
    for w in widgets[:2]:
        w.close()
    assert len(feed_threads()) == 1
    widgets[2].close()
    wait_for(lambda: not feed_threads())


def test_thousand_display_close_cycles_leave_no_threads_or_memory():
    import tracemalloc

    monitor = process_monitor()
    wait_for(lambda: monitor.latest is not None)
    threads_before = threading.active_count()

    def cycle() -> None:
        widget = tracklab.widget(window="10s")
        Recorded(widget)
        ready(widget)
        widget.close()

    for _ in range(50):  # warm caches
        cycle()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    for _ in range(1000):
        cycle()
    gc.collect()
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    wait_for(lambda: not feed_threads())
    assert threading.active_count() <= threads_before
    assert grown < 2 * 1024 * 1024, f"{grown} bytes kept after 1000 widgets"


def test_a_longer_window_or_other_metrics_resend_init_and_backfill():
    monitor = process_monitor()
    wait_for(lambda: monitor.latest is not None)
    widget = tracklab.widget(window="30s")
    sent = Recorded(widget)
    ready(widget)
    widget.window_s = 120.0
    widget.metrics = ["mem.*"]
    assert len(sent.of("init")) == 3
    backfills = [c for c, _ in sent.of("data") if c["backfill"]]
    assert len(backfills) == 3 and all(n.startswith("mem.") for n in backfills[-1]["names"])
    widget.close()


def test_kernel_series_reach_the_widget_only_when_asked():
    from tracklab_jupyter.metrics.sample import Sample
    from tracklab_jupyter.notebook.columns import to_columns

    kid = "0f3c2a9e-1b2c-4d5e-8f90-123456789abc"
    samples = [Sample(1.0, "n", {"cpu.util_pct": 5.0}),
               Sample(2.0, "n", {"cpu.util_pct": 6.0, f"kernel.{kid}.rss_bytes": 1e8}),
               Sample(2.5, "n", {f"kernel.{kid}.cpu_pct": 3.0})]  # a kernel-only row
    header, (times, _values) = to_columns(samples, [])
    assert header == {"names": ["cpu.util_pct"], "n": 2}
    assert np.frombuffer(times).tolist() == [1.0, 2.0]
    header, _ = to_columns(samples, ["kernel.*.rss_bytes"])
    assert header == {"names": [f"kernel.{kid}.rss_bytes"], "n": 3}
