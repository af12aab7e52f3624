"""The sampler thread, the hub and hardware-change detection, with small real collectors."""

from __future__ import annotations

import threading
import time

import pytest

from tracklab_jupyter.collectors.base import Collector, Reading
from tracklab_jupyter.sampler.hardware_events import HardwareWatcher
from tracklab_jupyter.sampler.hub import EVENT, SAMPLE, Hub
from tracklab_jupyter.sampler.rates import RateTracker
from tracklab_jupyter.sampler.sampler import Sampler, validate_interval


class CountingCollector(Collector):
    """A counter that grows by ``step`` per read, and a gauge."""

    name = "counting"

    def __init__(self, step: float = 100.0) -> None:
        self.value = 0.0
        self.step = step
        self.reads = 0

    def read(self) -> Reading:
        self.reads += 1
        self.value += self.step
        return Reading(gauges={"cpu.util_pct": 42.0},
                       counters={"net.recv_bytes_per_s": self.value})


class SlowCollector(Collector):
    name = "slow"
    slow_interval = 0.2

    def __init__(self) -> None:
        self.slow_threads: set[str] = set()

    def read(self) -> Reading:
        return Reading(gauges={"mem.used_bytes": 1.0})

    def read_slow(self) -> Reading:
        self.slow_threads.add(threading.current_thread().name)
        time.sleep(0.05)  # a 50 ms call must not delay ticks
        return Reading(gauges={"net.connections": 7.0})


class BrokenCollector(Collector):
    name = "broken"

    def info(self) -> dict:
        raise RuntimeError("no info here")

    def read(self) -> Reading:
        raise RuntimeError("sensor fell off")


@pytest.mark.parametrize("bad", [0.0, 0.05, 3601, -1, "fast", None, float("nan")])
def test_interval_out_of_range_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="sampling interval must be"):
        validate_interval(bad)


def test_interval_bounds_are_accepted():
    assert validate_interval(0.1) == 0.1
    assert validate_interval("3600") == 3600.0


def test_rates_use_elapsed_time_and_ignore_resets():
    rates = RateTracker()
    assert rates.update({"x": 100.0}, now=10.0) == {}
    assert rates.update({"x": 300.0}, now=12.0) == {"x": 100.0}
    # a counter that went backwards (reset or 32-bit wrap) yields no rate, not a negative one
    assert rates.update({"x": 5.0}, now=13.0) == {}
    assert rates.update({"x": 25.0}, now=14.0) == {"x": 20.0}
    # an absurd jump (a counter re-created with garbage) is dropped too
    assert rates.update({"x": 1e18}, now=15.0) == {}


def test_sampler_ticks_computes_rates_and_publishes():
    collector = CountingCollector(step=100.0)
    hub = Hub()
    sampler = Sampler([collector], interval=0.1, node="n1", hub=hub)
    got = []
    sampler.add_sink(got.append)
    with hub.subscribe([SAMPLE]) as sub:
        sampler.start()
        time.sleep(0.55)
        sampler.stop()
        live = sub.drain()
    assert 4 <= len(got) <= 7
    assert all(s.node == "n1" for s in got)
    times = [s.time for s in got]
    assert times == sorted(times)
    assert "net.recv_bytes_per_s" not in got[0].metrics  # a rate needs two readings
    # 100 units per 0.1 s tick: about 1000 per second
    for s in got[2:]:
        assert 700 < s.metrics["net.recv_bytes_per_s"] < 1400
        assert s.metrics["cpu.util_pct"] == 42.0
        assert s.metrics["tracklab.sample_cpu_ms"] >= 0
    # the hub coalesced: a reader that never read holds only the newest sample
    assert len(live) == 1 and live[0][1] is got[-1]


def test_start_and_stop_are_idempotent_and_stop_is_prompt():
    sampler = Sampler([CountingCollector()], interval=2.0)
    sampler.start()
    sampler.start()
    assert len([t for t in threading.enumerate() if t.name == "tracklab-sampler"]) == 1
    time.sleep(0.05)
    t0 = time.monotonic()
    sampler.stop()
    sampler.stop()
    assert time.monotonic() - t0 < 2.0
    assert not sampler.running
    assert not [t for t in threading.enumerate() if t.name.startswith("tracklab-sampler")]


def test_slow_reads_run_on_their_own_thread_and_reach_samples():
    slow = SlowCollector()
    sampler = Sampler([slow], interval=0.1)
    got = []
    sampler.add_sink(got.append)
    sampler.start()
    time.sleep(0.6)
    sampler.stop()
    assert slow.slow_threads == {"tracklab-sampler-slow-slow"}
    assert any(s.metrics.get("net.connections") == 7.0 for s in got)
    # 50 ms slow calls never stretched a tick: wall time per sample stays small
    assert max(s.metrics.get("tracklab.sample_ms", 0) for s in got) < 40


class HangingSlowCollector(Collector):
    """A vendor tool stuck until its timeout (npu-smi) on the slow path."""

    name = "hanging"
    slow_interval = 0.1

    def read_slow(self) -> Reading:
        time.sleep(2.0)
        return Reading()


class CountingSlowCollector(Collector):
    """Slow reads with a cumulative counter, as a collector of its own."""

    slow_interval = 0.1

    def __init__(self, name: str, counter: str, step: float) -> None:
        self.name, self._counter, self._step, self._value = name, counter, step, 0.0

    def read_slow(self) -> Reading:
        self._value += self._step
        return Reading(counters={self._counter: self._value})


def test_a_hanging_slow_read_never_holds_up_another_collectors():
    other = CountingSlowCollector("other", "net.recv_bytes_per_s", 100.0)
    sampler = Sampler([HangingSlowCollector(), other], interval=0.1)
    sampler.start()
    try:
        time.sleep(0.9)
    finally:
        sampler.stop(timeout=3)
    assert other._value >= 5 * 100.0  # kept its own 0.1 s cadence while the other hung


def test_slow_counters_of_two_collectors_both_become_rates():
    a = CountingSlowCollector("a", "net.recv_bytes_per_s", 100.0)
    b = CountingSlowCollector("b", "disk.read_bytes_per_s", 50.0)
    sampler = Sampler([a, b], interval=1.0)
    for _ in range(3):
        sampler.read_slow(a)
        sampler.read_slow(b)
        time.sleep(0.02)
    metrics = sampler.sample_once().metrics
    assert metrics["net.recv_bytes_per_s"] > 0 and metrics["disk.read_bytes_per_s"] > 0


def test_one_broken_collector_does_not_stop_the_others(caplog):
    sampler = Sampler([BrokenCollector(), CountingCollector()], interval=0.1)
    sample = sampler.sample_once()
    sample = sampler.sample_once()
    assert sample.metrics["cpu.util_pct"] == 42.0
    assert sampler.info["broken"] == {}
    warnings = [r for r in caplog.records if "sensor fell off" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not every tick


def test_stats_report_own_cost():
    sampler = Sampler([CountingCollector()], interval=0.1)
    sampler.start()
    time.sleep(0.35)
    sampler.stop()
    stats = sampler.stats()
    assert stats["samples"] >= 3
    assert 0 <= stats["mean_sample_cpu_ms"] < 50
    assert 0 <= stats["cpu_share_pct"] < 100
    assert stats["last_sample_age_s"] is not None


def test_slow_subscriber_never_blocks_others():
    hub = Hub()
    slow = hub.subscribe([SAMPLE, EVENT])
    fast = hub.subscribe([SAMPLE])
    for i in range(1000):
        hub.publish(SAMPLE, i)
        assert fast.drain() == [(SAMPLE, i)]
    hub.publish(EVENT, "e1")
    hub.publish(EVENT, "e2")
    assert slow.drain() == [(SAMPLE, 999), (EVENT, "e1"), (EVENT, "e2")]
    assert slow.dropped == 999
    slow.close()
    fast.close()
    assert hub.subscriber_count == 0


def test_subscription_get_wakes_on_publish_and_on_close():
    hub = Hub()
    sub = hub.subscribe([SAMPLE])
    threading.Timer(0.05, hub.publish, args=(SAMPLE, "x")).start()
    assert sub.get(timeout=2) == [(SAMPLE, "x")]
    threading.Timer(0.05, sub.close).start()
    t0 = time.monotonic()
    assert sub.get(timeout=2) == []
    assert time.monotonic() - t0 < 1


def test_a_failing_notify_callback_does_not_break_publishing():
    hub = Hub()

    def boom() -> None:
        raise RuntimeError("reader gone")

    bad = hub.subscribe([SAMPLE], notify=boom)
    good = hub.subscribe([SAMPLE])
    hub.publish(SAMPLE, 1)
    assert good.drain() == [(SAMPLE, 1)]
    assert bad.drain() == [(SAMPLE, 1)]


def test_watcher_reports_throttling_ecc_and_temperature():
    watcher = HardwareWatcher()
    watcher.set_info({"gpu": {"devices": [{"index": 0, "temp_slowdown_c": 89}]}})
    # values as recorded on the H200: idle mask 0x1, busy 0x4 (software power cap)
    assert watcher.check({"gpu.0.throttle_reasons": 1, "gpu.0.temp_c": 35,
                          "gpu.0.ecc_uncorrected_errors": 0}) == []
    events = watcher.check({"gpu.0.throttle_reasons": 4, "gpu.0.temp_c": 58,
                            "gpu.0.ecc_uncorrected_errors": 0})
    assert [e["kind"] for e in events] == ["throttle_start"]
    assert events[0]["data"]["reasons"] == ["software power cap"]
    events = watcher.check({"gpu.0.throttle_reasons": 4, "gpu.0.temp_c": 90,
                            "gpu.0.ecc_uncorrected_errors": 2})
    assert sorted(e["kind"] for e in events) == ["ecc_errors", "temp_high"]
    events = watcher.check({"gpu.0.throttle_reasons": 1, "gpu.0.temp_c": 80,
                            "gpu.0.ecc_uncorrected_errors": 2})
    assert sorted(e["kind"] for e in events) == ["temp_normal", "throttle_stop"]


def test_collector_events_reach_the_hub_with_time_and_node():
    class LosingCollector(Collector):
        name = "gpu"

        def read(self) -> Reading:
            return Reading(events=[{"kind": "gpu_lost", "message": "GPU 1 lost",
                                    "data": {"gpu": 1}}])

    hub = Hub()
    sampler = Sampler([LosingCollector()], interval=1, node="box", hub=hub)
    seen = []
    sampler.add_event_sink(seen.append)
    with hub.subscribe([EVENT]) as sub:
        sample = sampler.sample_once()
        (topic, event), = sub.drain()
    assert topic == EVENT and event.kind == "gpu_lost" and event.node == "box"
    assert event.time == sample.time and seen == [event]
