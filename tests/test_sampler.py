"""The sampler thread, the hub and hardware-change detection, with small real collectors."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import wait_for

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
    """Its slow read blocks until the test releases it: ticks must go on meanwhile."""

    name = "slow"
    slow_interval = 0.2

    def __init__(self) -> None:
        self.slow_threads: set[str] = set()
        self.entered = threading.Event()
        self.release = threading.Event()

    def read(self) -> Reading:
        return Reading(gauges={"mem.used_bytes": 1.0})

    def read_slow(self) -> Reading:
        self.slow_threads.add(threading.current_thread().name)
        self.entered.set()
        self.release.wait(30)
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
        wait_for(lambda: len(got) >= 5, 30, "five ticks")
        sampler.stop()
        live = sub.drain()
    assert len(got) == collector.reads  # one sample per read, none lost or doubled
    assert all(s.node == "n1" for s in got)
    times = [s.time for s in got]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert "net.recv_bytes_per_s" not in got[0].metrics  # a rate needs two readings
    # 100 units per tick over the time between the ticks: the seconds each rate implies
    # (100 / rate) add up to the span of the samples' own times. Summed, a stall between
    # the sampler's two clock reads only counts at the two ends, hence the tolerance.
    rates = [s.metrics["net.recv_bytes_per_s"] for s in got[1:]]
    assert all(r > 0 for r in rates)
    assert sum(100.0 / r for r in rates) == pytest.approx(got[-1].time - got[0].time, rel=0.2)
    for s in got[1:]:
        assert s.metrics["cpu.util_pct"] == 42.0
        assert s.metrics["tracklab.sample_cpu_ms"] > 0  # CPU clocks count nanoseconds
    # the hub coalesced: a reader that never read holds only the newest sample
    assert len(live) == 1 and live[0][1] is got[-1]


def test_start_and_stop_are_idempotent_and_stop_is_prompt():
    collector = CountingCollector()
    sampler = Sampler([collector], interval=3600.0)  # stop must not wait for the next tick
    sampler.start()
    sampler.start()
    assert len([t for t in threading.enumerate() if t.name == "tracklab-sampler"]) == 1
    wait_for(lambda: collector.reads, 30, "the first tick")
    stopper = threading.Thread(target=lambda: (sampler.stop(), sampler.stop()), daemon=True)
    stopper.start()
    stopper.join(60)
    assert not stopper.is_alive(), "stop() waited for the next tick"
    assert not sampler.running
    assert not [t for t in threading.enumerate() if t.name.startswith("tracklab-sampler")]


def test_slow_reads_run_on_their_own_thread_and_reach_samples():
    slow = SlowCollector()
    sampler = Sampler([slow], interval=0.1)
    got = []
    sampler.add_sink(got.append)
    sampler.start()
    try:
        assert slow.entered.wait(30)
        # while the slow read is stuck, the ticks go on (they never wait for it)
        before = len(got)
        wait_for(lambda: len(got) >= before + 3, 30, "ticks while the slow read is stuck")
        assert not any("net.connections" in s.metrics for s in got)
        slow.release.set()
        wait_for(lambda: any(s.metrics.get("net.connections") == 7.0 for s in got), 30,
                 "the slow reading in a sample")
    finally:
        slow.release.set()
        sampler.stop()
    assert slow.slow_threads == {"tracklab-sampler-slow-slow"}


class HangingSlowCollector(Collector):
    """A vendor tool stuck until its timeout (npu-smi) on the slow path: here until the
    test releases it."""

    name = "hanging"
    slow_interval = 0.1

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = 0

    def read_slow(self) -> Reading:
        self.entered.set()
        self.release.wait(30)
        self.returned += 1
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
    hanging = HangingSlowCollector()
    other = CountingSlowCollector("other", "net.recv_bytes_per_s", 100.0)
    sampler = Sampler([hanging, other], interval=0.1)
    sampler.start()
    try:
        assert hanging.entered.wait(30)
        # five reads of the other while the hanging one has not returned once
        wait_for(lambda: other._value >= 5 * 100.0, 30, "the other collector's slow reads")
        assert hanging.returned == 0
    finally:
        hanging.release.set()
        sampler.stop(timeout=3)


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
    # The figures themselves are measured in bench/sampler.py; here: they are reported.
    sampler = Sampler([CountingCollector()], interval=0.1)
    sampler.start()
    wait_for(lambda: sampler.stats()["samples"] >= 3, 30, "three ticks")
    sampler.stop()
    stats = sampler.stats()
    assert stats["samples"] >= 3
    assert stats["mean_sample_cpu_ms"] > 0 and stats["cpu_share_pct"] > 0
    assert stats["last_sample_age_s"] is not None and stats["last_sample_age_s"] >= 0


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
    got: list = [None]
    waiter = threading.Thread(target=lambda: got.__setitem__(0, sub.get(timeout=3600)),
                              daemon=True)
    waiter.start()
    threading.Timer(0.05, sub.close).start()
    waiter.join(60)  # woken by close, not by its own (hour-long) timeout
    assert not waiter.is_alive() and got[0] == []


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
