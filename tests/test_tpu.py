"""The Google TPU backend: chips from a recorded PCI tree, values through the real gRPC client
against a fake runtime server replaying recorded replies (tests/fixtures/tpu/README.md)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from conftest import unavailable
from fake_tpu_runtime import (
    DUTY_CYCLE,
    GIB,
    HBM_BW_UTIL,
    MEMORY_USAGE,
    TOTAL_MEMORY,
    ConnectionCounter,
    recorded_values,
)

from tracklab_jupyter.accelerators import tpu
from tracklab_jupyter.accelerators.base import AcceleratorUnavailable, NoDevices, Selection
from tracklab_jupyter.accelerators.registry import open_backends
from tracklab_jupyter.metrics.catalogue import spec_for

REPO = Path(__file__).resolve().parent.parent
TPU_LOG = "tracklab_jupyter.accelerators.tpu"


class Clock:
    """A monotonic clock the test moves (the backend's retry schedule runs on it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_tpu(selection=None, **options) -> tpu.TpuBackend:
    return tpu.TpuBackend.open(selection, **options)


def gib_line(used: float, total: float) -> str:
    """HBM as tpu-info prints it ("18.45 GiB / 31.25 GiB")."""
    return f"{used / GIB:.2f} GiB / {total / GIB:.2f} GiB"


# -- chips from PCI ------------------------------------------------------------------------
@pytest.mark.parametrize(("generation", "name", "cores"), [
    ("v5e", "TPU v5e", 1), ("v4", "TPU v4", 1), ("v5p", "TPU v5p", 1), ("v6e", "TPU v6e", 1),
    ("7x", "TPU7x", 2), ("v3", "TPU v3", 2), ("v2", "TPU v2", 2)])
def test_chips_found_from_pci_with_their_generation(tpu_host, generation, name, cores):
    tpu_host(chips=2, generation=generation)
    chips = tpu.find_chips()
    # The recorded v5e VM's TPU function first; gVNIC (0x1ae0:0x0042) is not a chip.
    assert [c.bus_id for c in chips] == ["0000:00:05.0", "0000:00:08.0"]
    assert {c.name for c in chips} == {name}
    assert {c.generation.cores for c in chips} == {cores}
    assert [c.dev_path for c in chips] == ["/dev/vfio/0", "/dev/vfio/1"]


def test_an_unknown_google_device_is_a_tpu_only_with_an_accelerator_class(tpu_host):
    root = tpu_host(chips=1, device_id="0x0099")  # the recorded chip's class: 0xff0000
    (chip,) = tpu.find_chips()
    assert chip.name == "TPU (PCI device 0x0099)" and chip.generation.cores == 1
    (root / "sys/bus/pci/devices/0000:00:05.0/class").write_text("0x020000\n")  # a NIC
    assert tpu.find_chips() == []


def test_recorded_v5e_vm_is_one_chip_and_gvnic_is_not_a_tpu(tpu_host, tpu_runtime):
    tpu_host(chips=1, generation="v5e")
    tpu_runtime(start=False)
    backend = open_tpu()
    try:
        (dev,) = backend.info()["devices"]
        assert dev["name"] == "TPU v5e" and dev["pci_bus_id"] == "0000:00:05.0"
        assert dev["pci_device_id"] == "0x0063" and dev["uuid"] == ""
        assert (dev["vendor"], dev["kind"], dev["index"]) == ("google", "tpu", 0)
        assert backend.found == 1
    finally:
        backend.close()


def test_no_tpu_chip_means_no_devices_silently(tpu_host):
    tpu_host(chips=0)  # the VM's other devices stay, gVNIC with Google's vendor id among them
    with pytest.raises(NoDevices):
        open_tpu()
    backends, notes = open_backends(only=["tpu"])
    assert (backends, notes) == ([], [])


def test_missing_grpc_says_what_to_install(tpu_host, monkeypatch):
    tpu_host(chips=2)
    monkeypatch.setitem(sys.modules, "grpc", None)  # import grpc raises ImportError
    with pytest.raises(AcceleratorUnavailable, match=r"install tracklab-jupyter\[tpu\]") as exc:
        open_tpu()
    assert exc.value.found == 2
    backends, notes = open_backends(only=["tpu"])
    assert backends == [] and len(notes) == 1, notes
    assert "tracklab-jupyter[tpu]" in notes[0]


# -- values through the real client ---------------------------------------------------------
def test_values_equal_the_recording(tpu_host, tpu_runtime):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static")
    backend = open_tpu()
    try:
        g = backend.read_slow().gauges
    finally:
        backend.close()
    used = recorded_values("v6e-4-static", MEMORY_USAGE)
    total = recorded_values("v6e-4-static", TOTAL_MEMORY)
    duty = recorded_values("v6e-4-static", DUTY_CYCLE)
    for i in range(4):
        assert g[f"tpu.{i}.mem_used_bytes"] == used[i]
        assert g[f"tpu.{i}.mem_total_bytes"] == total[i]
        assert g[f"tpu.{i}.util_pct"] == duty[i] == 100.0
        assert g[f"tpu.{i}.mem_pct"] == pytest.approx(used[i] / total[i] * 100)
    # Printed as tpu-info prints them, the bytes give back the README's table.
    assert [gib_line(g[f"tpu.{i}.mem_used_bytes"], g[f"tpu.{i}.mem_total_bytes"])
            for i in range(4)] == ["18.45 GiB / 31.25 GiB"] + ["10.40 GiB / 31.25 GiB"] * 3
    # The recording has no HBM bandwidth: absent, never zero.
    assert not [k for k in g if k.endswith("hbm_bw_util_pct")]
    assert runtime.calls[MEMORY_USAGE] == 2  # open + one read


def test_zero_is_a_value_not_an_absence(tpu_host, tpu_runtime):
    tpu_host(chips=4, generation="v4")
    tpu_runtime("v4-4-small-array")
    backend = open_tpu()
    try:
        g = backend.read_slow().gauges
        info = backend.info()
    finally:
        backend.close()
    assert [g[f"tpu.{i}.mem_used_bytes"] for i in range(4)] == [0.0] * 4
    assert [g[f"tpu.{i}.util_pct"] for i in range(4)] == [0.0] * 4
    assert gib_line(g["tpu.0.mem_used_bytes"], g["tpu.0.mem_total_bytes"]) == \
        "0.00 GiB / 31.75 GiB"
    assert {d["state"] for d in info["devices"]} == {"ok"}
    assert {d["mem_total_bytes"] for d in info["devices"]} == {round(31.75 * GIB)}


def test_global_device_ids_of_a_slice_map_to_the_host_chips_in_order(tpu_host, tpu_runtime):
    tpu_host(chips=4, generation="v6e")
    tpu_runtime("v6e-4-streaming")  # the runtime numbered this host's devices 8, 9, 12, 13
    backend = open_tpu()
    try:
        g = backend.read_slow().gauges
    finally:
        backend.close()
    assert [gib_line(g[f"tpu.{i}.mem_used_bytes"], g[f"tpu.{i}.mem_total_bytes"])
            for i in range(4)] == ["17.26 GiB / 31.25 GiB"] + ["9.26 GiB / 31.25 GiB"] * 3


def test_dual_core_chips_fold_cores_into_one_chip(tpu_host, tpu_runtime):
    tpu_host(chips=4, generation="v3")
    tpu_runtime("v3-8-layout")  # 8 per-core HBM entries, 4 per-chip duty cycles
    backend = open_tpu()
    try:
        g = backend.read_slow().gauges
    finally:
        backend.close()
    used = recorded_values("v3-8-layout", MEMORY_USAGE)
    total = recorded_values("v3-8-layout", TOTAL_MEMORY)
    duty = recorded_values("v3-8-layout", DUTY_CYCLE)
    for chip in range(4):
        assert g[f"tpu.{chip}.mem_used_bytes"] == used[2 * chip] + used[2 * chip + 1]
        assert g[f"tpu.{chip}.mem_total_bytes"] == total[2 * chip] + total[2 * chip + 1]
        assert g[f"tpu.{chip}.util_pct"] == duty[chip]


def test_more_runtime_devices_than_chips_fill_the_chips_in_order(tpu_host, tpu_runtime):
    tpu_host(chips=4, generation="v6e")
    tpu_runtime("v6e-8-metric")  # eight devices for four chips: never an index error
    backend = open_tpu()
    try:
        g = backend.read_slow().gauges
    finally:
        backend.close()
    used = recorded_values("v6e-8-metric", MEMORY_USAGE)
    assert [g[f"tpu.{i}.mem_used_bytes"] for i in range(4)] == [used[i] for i in range(4)]
    assert not [k for k in g if k.startswith(("tpu.4.", "tpu.7."))]


def test_reply_entries_named_by_device_ordinal_or_not_gauges():
    try:
        from tpu_info.proto import tpu_metric_service_pb2 as pb
    except ImportError:
        unavailable("tpu-info is not installed (pip install -e '.[test]' installs it)")
    duty = recorded_values("v6e-4-static", DUTY_CYCLE)
    ordinal = [pb.Attribute(key="device_ordinal", value=pb.AttrValue(string_attr="2")),
               pb.Attribute(key="core_type", value=pb.AttrValue(string_attr="tc"))]
    metrics = [
        # newer metrics name the device in a key-value list (tpu-info's hlo_queue_size)
        pb.Metric(attribute=pb.Attribute(value=pb.AttrValue(
            kvlist_attr=pb.KeyValueList(attributes=ordinal))), gauge=pb.Gauge(as_double=duty[2])),
        pb.Metric(attribute=pb.Attribute(key="device-id", value=pb.AttrValue(int_attr=1)),
                  gauge=pb.Gauge(as_double=duty[1])),
        # a distribution, a string gauge and an entry without a device: skipped
        pb.Metric(attribute=pb.Attribute(key="device-id", value=pb.AttrValue(int_attr=0)),
                  distribution=pb.Distribution(count=1)),
        pb.Metric(attribute=pb.Attribute(key="device-id", value=pb.AttrValue(int_attr=0)),
                  gauge=pb.Gauge(as_string="x")),
        pb.Metric(attribute=pb.Attribute(key="x", value=pb.AttrValue(string_attr="tc")),
                  gauge=pb.Gauge(as_double=duty[0])),
    ]
    reply = pb.MetricResponse(metric=pb.TPUMetric(name=DUTY_CYCLE, metrics=metrics))
    assert tpu.entries(reply) == [(2, duty[2]), (1, duty[1])]


def test_hbm_bandwidth_where_the_runtime_offers_it(tpu_host, tpu_runtime):
    tpu_host(chips=8, generation="v6e")
    tpu_runtime("v6e-8-hbm-bw")  # only HBM bandwidth recorded, for devices 0-2
    backend = open_tpu()
    try:
        g = backend.read_slow().gauges
        devices = backend.info()["devices"]
    finally:
        backend.close()
    assert g == {f"tpu.{i}.hbm_bw_util_pct": 0.0 for i in range(3)}
    assert [d["state"] for d in devices] == ["ok"] * 3 + ["idle"] * 5
    assert "does not use it" in devices[3]["idle_reason"]


@pytest.mark.parametrize("missing", ["not_found", "empty"])
def test_a_metric_the_runtime_does_not_offer_is_absent_and_others_stay(
        tpu_host, tpu_runtime, missing):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static", missing=missing)
    backend = open_tpu()
    try:
        for _ in range(3):
            g = backend.read_slow().gauges
        info = backend.info()
    finally:
        backend.close()
    assert not [k for k in g if "hbm_bw" in k]
    assert {k.split(".", 2)[2] for k in g} == {"mem_used_bytes", "mem_total_bytes",
                                                  "mem_pct", "util_pct"}
    if missing == "not_found":  # not offered by this runtime: asked once, not every second
        assert runtime.calls[HBM_BW_UTIL] == 1
        assert info["devices"][0]["unsupported"] == ["hbm_bw_util_pct"]
    else:  # an empty reply is "no value now": asked again
        assert runtime.calls[HBM_BW_UTIL] == 4
        assert "unsupported" not in info["devices"][0]


def test_a_failing_metric_costs_only_that_metric_that_time(tpu_host, tpu_runtime):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static")
    backend = open_tpu()
    try:
        runtime.fail(DUTY_CYCLE, grpc.StatusCode.INTERNAL)
        g = backend.read_slow().gauges
        assert "tpu.0.util_pct" not in g and g["tpu.0.mem_used_bytes"] > 0
        assert {d["state"] for d in backend.info()["devices"]} == {"ok"}
        runtime.clear()
        assert backend.read_slow().gauges["tpu.0.util_pct"] == 100.0
    finally:
        backend.close()


def test_read_makes_no_runtime_call(tpu_host, tpu_runtime):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static")
    backend = open_tpu()
    try:
        before = sum(runtime.calls.values())
        for _ in range(50):
            assert backend.read().gauges == {}
        assert sum(runtime.calls.values()) == before
        assert backend.slow_interval == 1.0
    finally:
        backend.close()


# -- no runtime, runtime coming and going ----------------------------------------------------
def test_no_runtime_listening_lists_idle_chips_without_values_or_noise(
        tpu_host, tpu_runtime, clock, caplog):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime(start=False)
    caplog.set_level(logging.DEBUG)
    backend = open_tpu(clock=clock)
    try:
        for _ in range(20):
            clock.now += 1.0
            reading = backend.read_slow()
            assert reading.gauges == {} and reading.events == []
        info = backend.info()
    finally:
        backend.close()
    assert [d["state"] for d in info["devices"]] == ["idle"] * 4
    reason = info["devices"][0]["idle_reason"]
    assert "no TPU program running" in reason and runtime.address in reason
    assert info["runtime_serving"] is False
    lines = [r for r in caplog.records if r.name == TPU_LOG]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_while_idle_connection_attempts_follow_the_backoff_not_the_tick(tpu_host, clock,
                                                                        monkeypatch):
    tpu_host(chips=4, generation="v6e")
    counter = ConnectionCounter()  # accepts TCP and hangs up: every attempt is counted
    monkeypatch.setenv("TRACKLAB_TPU_METRICS_ADDR", counter.address)
    try:
        backend = open_tpu(clock=clock)
        start = clock.now
        for _ in range(30):  # 30 s of slow reads, one a second
            clock.now += 1.0
            backend.read_slow()
        # Tries at 0 (open), then 2, 4, 8, 8 s apart: 0, 2, 6, 14, 22, 30.
        assert counter.count == 6
        assert backend.info()["devices"][0]["state"] == "idle"
        time.sleep(1.5)  # gRPC's own reconnects would show up here (0.8 s, 2.6 s, ...)
        assert counter.count == 6
        backend.close()
        assert clock.now - start == 30
    finally:
        counter.close()


def test_runtime_starting_later_turns_chips_ok_and_stopping_turns_them_idle(
        tpu_host, tpu_runtime, clock, caplog):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime(start=False)
    caplog.set_level(logging.INFO, logger=TPU_LOG)
    backend = open_tpu(clock=clock)
    try:
        runtime.start()
        clock.now += 1.0  # the backoff has not passed: not tried yet
        assert backend.read_slow().gauges == {}
        assert runtime.calls[TOTAL_MEMORY] == 0
        clock.now += 1.0
        reading = backend.read_slow()
        assert reading.gauges["tpu.0.mem_used_bytes"] == recorded_values(
            "v6e-4-static", MEMORY_USAGE)[0]
        (event,) = reading.events
        assert event["kind"] == tpu.STATE_EVENT
        assert event["data"]["state"] == "ok" and event["data"]["previous"] == "idle"
        assert event["data"]["devices"] == ["tpu.0", "tpu.1", "tpu.2", "tpu.3"]
        devices = backend.info()["devices"]
        assert {d["state"] for d in devices} == {"ok"}
        assert not any("idle_reason" in d for d in devices)
        assert backend.read_slow().events == []  # still ok: no new event

        runtime.stop()
        clock.now += 1.0
        reading = backend.read_slow()
        assert reading.gauges == {}
        (event,) = reading.events
        assert event["data"]["state"] == "idle" and event["data"]["previous"] == "ok"
        assert "no TPU program running" in event["message"]
        assert {d["state"] for d in backend.info()["devices"]} == {"idle"}
        # mem_total_bytes is the chip's size: still known while idle.
        assert backend.info()["devices"][0]["mem_total_bytes"] == round(31.25 * GIB)
        for _ in range(10):
            clock.now += 1.0
            assert backend.read_slow().events == []
    finally:
        backend.close()
    # One line each: idle at open, active, idle again.
    messages = [r.getMessage() for r in caplog.records if r.name == TPU_LOG]
    assert len(messages) == 3
    assert [("active" in m) for m in messages] == [False, True, False]


def test_a_new_runtime_is_asked_again_for_what_the_old_one_lacked(tpu_host, tpu_runtime,
                                                                   clock):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static")
    backend = open_tpu(clock=clock)
    try:
        backend.read_slow()
        assert runtime.calls[HBM_BW_UTIL] == 1
        runtime.stop()
        clock.now += 1.0
        backend.read_slow()
        runtime.start()
        clock.now += 2.0
        assert backend.read_slow().gauges
        assert runtime.calls[HBM_BW_UTIL] == 2
    finally:
        backend.close()


def test_a_hung_runtime_costs_one_deadline_then_waits_for_the_backoff(tpu_host, tpu_runtime,
                                                                      clock, monkeypatch):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static")
    monkeypatch.setattr(tpu.TpuBackend, "rpc_timeout_s", 0.05)
    backend = open_tpu(clock=clock)
    try:
        runtime.stall(0.5)
        clock.now += 1.0
        wall = time.perf_counter()
        assert backend.read_slow().gauges == {}
        assert time.perf_counter() - wall < 0.4  # one deadline, not one per metric
        reason = backend.info()["devices"][0]["idle_reason"]
        assert "did not answer within 0.05 s" in reason
        calls = sum(runtime.calls.values())
        clock.now += 1.0
        backend.read_slow()
        assert sum(runtime.calls.values()) == calls
    finally:
        backend.close()


def test_info_does_not_wait_for_a_hung_runtime(tpu_host, tpu_runtime, clock, monkeypatch):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static")
    monkeypatch.setattr(tpu.TpuBackend, "rpc_timeout_s", 0.6)
    backend = open_tpu(clock=clock)
    try:
        runtime.stall(1.0)
        poll = threading.Thread(target=backend.read_slow)
        poll.start()
        time.sleep(0.1)  # the poll now waits for its deadline
        wall = time.perf_counter()
        assert backend.info()["devices"][0]["state"] == "ok"
        assert time.perf_counter() - wall < 0.25
        poll.join()
        assert backend.info()["devices"][0]["state"] == "idle"
    finally:
        backend.close()


def test_one_of_two_addresses_serving_gives_values(tpu_host, tpu_runtime, monkeypatch):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static")
    counter = ConnectionCounter()
    monkeypatch.setenv("TRACKLAB_TPU_METRICS_ADDR", f"{counter.address},{runtime.address}")
    try:
        backend = open_tpu()
        g = backend.read_slow().gauges
        info = backend.info()
        backend.close()
    finally:
        counter.close()
    assert g["tpu.3.util_pct"] == 100.0
    assert info["metrics_addresses"] == [counter.address, runtime.address]
    assert info["runtime_serving"] is True


# -- addresses, visibility, selection -------------------------------------------------------
def test_metrics_addresses_from_the_environment(monkeypatch):
    for name in ("TRACKLAB_TPU_METRICS_ADDR", "TPU_RUNTIME_METRICS_PORTS"):
        monkeypatch.delenv(name, raising=False)
    assert tpu.metrics_addresses() == ["localhost:8431"]
    monkeypatch.setenv("TPU_RUNTIME_METRICS_PORTS", "8431,8432")
    assert tpu.metrics_addresses() == ["localhost:8431", "localhost:8432"]
    monkeypatch.setenv("TRACKLAB_TPU_METRICS_ADDR", "127.0.0.1:9000, [::1]:9001")
    assert tpu.metrics_addresses() == ["127.0.0.1:9000", "[::1]:9001"]
    for bad in ("nonsense", "host:", "a:1,b", "h:123456", "h:65536"):
        monkeypatch.setenv("TRACKLAB_TPU_METRICS_ADDR", bad)
        with pytest.raises(ValueError, match=r"TRACKLAB_TPU_METRICS_ADDR=.*host:port"):
            tpu.metrics_addresses()
    monkeypatch.delenv("TRACKLAB_TPU_METRICS_ADDR")
    monkeypatch.setenv("TPU_RUNTIME_METRICS_PORTS", "8431,x")
    with pytest.raises(ValueError, match="TPU_RUNTIME_METRICS_PORTS"):
        tpu.metrics_addresses()


def test_a_bad_address_variable_is_one_line_not_a_crash(tpu_host, monkeypatch):
    tpu_host(chips=4)
    monkeypatch.setenv("TRACKLAB_TPU_METRICS_ADDR", "not an address")
    backends, notes = open_backends(only=["tpu"])
    assert backends == [] and len(notes) == 1 and "TRACKLAB_TPU_METRICS_ADDR" in notes[0]


def test_tpu_visible_chips_keeps_those_chips(tpu_host, tpu_runtime, monkeypatch):
    tpu_host(chips=4, generation="v6e")
    tpu_runtime("v6e-4-static")  # the runtime reports all four: matched by device id
    monkeypatch.setenv("TPU_VISIBLE_CHIPS", "3,1")
    backend = open_tpu()
    try:
        assert [d["index"] for d in backend.info()["devices"]] == [1, 3]
        assert backend.found == 4
        g = backend.read_slow().gauges
    finally:
        backend.close()
    assert {k.split(".")[1] for k in g} == {"1", "3"}
    assert gib_line(g["tpu.1.mem_used_bytes"], g["tpu.1.mem_total_bytes"]) == \
        "10.40 GiB / 31.25 GiB"


def test_a_runtime_seeing_only_the_visible_chips_numbers_them_from_zero(
        tpu_host, tpu_runtime, monkeypatch):
    tpu_host(chips=4, generation="v6e")
    tpu_runtime("v6e-8-hbm-bw")  # three devices, 0-2: the three chips left visible
    monkeypatch.setenv("TPU_VISIBLE_CHIPS", "1,2,3")
    backend = open_tpu()
    try:
        g = backend.read_slow().gauges
    finally:
        backend.close()
    assert set(g) == {"tpu.1.hbm_bw_util_pct", "tpu.2.hbm_bw_util_pct", "tpu.3.hbm_bw_util_pct"}


@pytest.mark.parametrize("value", ["", "-1", "7"])
def test_tpu_visible_chips_hiding_every_chip(tpu_host, monkeypatch, value):
    tpu_host(chips=4)
    monkeypatch.setenv("TPU_VISIBLE_CHIPS", value)
    with pytest.raises(AcceleratorUnavailable, match="TPU_VISIBLE_CHIPS") as exc:
        open_tpu()
    assert exc.value.found == 4


@pytest.mark.parametrize(("selectors", "chosen"), [
    (["tpu.2"], [2]), (["0000:00:08.0"], [1]), (["0000:00:0a"], [3]),
    (["tpu.0", "0000:00:09.0"], [0, 2])])
def test_explicit_selection(tpu_host, tpu_runtime, monkeypatch, selectors, chosen):
    tpu_host(chips=4, generation="v6e")
    tpu_runtime(start=False)
    monkeypatch.setenv("TPU_VISIBLE_CHIPS", "3")  # an explicit selection wins
    sel = Selection.parse(selectors)
    backend = open_tpu(sel)
    try:
        assert [d["index"] for d in backend.info()["devices"]] == chosen
    finally:
        backend.close()
    assert sel.unmatched() == []


@pytest.mark.parametrize("selectors", [["0"], ["tpu.9"], ["0000:00"]])
def test_a_selection_naming_no_single_chip(tpu_host, selectors):
    tpu_host(chips=4)
    with pytest.raises(AcceleratorUnavailable, match="no TPU chip selected"):
        open_tpu(Selection.parse(selectors))


# -- catalogue, closing, the snapshot command ------------------------------------------------
@pytest.mark.parametrize(("recording", "generation", "chips"), [
    ("v6e-4-static", "v6e", 4), ("v6e-8-hbm-bw", "v6e", 8), ("v3-8-layout", "v3", 4)])
def test_every_metric_is_in_the_catalogue_for_google(tpu_host, tpu_runtime, recording,
                                                     generation, chips):
    tpu_host(chips=chips, generation=generation)
    tpu_runtime(recording)
    backend = open_tpu()
    try:
        names = set(backend.read_slow().gauges)
    finally:
        backend.close()
    assert names
    for name in names:
        spec = spec_for(name)
        assert spec is not None and "google" in spec.vendors, name


def test_close_is_idempotent_and_stops_reads(tpu_host, tpu_runtime):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static")
    backend = open_tpu()
    backend.close()
    backend.close()
    calls = sum(runtime.calls.values())
    assert backend.read_slow().gauges == {} and backend.read().gauges == {}
    assert sum(runtime.calls.values()) == calls


def test_snapshot_subprocess_lists_tpu_chips_with_values(tpu_host, tpu_runtime):
    root = tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime("v6e-4-static")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(TRACKLAB_HOST_ROOT=str(root), TRACKLAB_TPU_METRICS_ADDR=runtime.address,
               PYTHONPATH=str(REPO / "tests" / "shim"), TRACKLAB_FAKE_NVML_GPUS="0")
    proc = subprocess.run([sys.executable, "-m", "tracklab_jupyter", "snapshot", "--json"],
                          capture_output=True, text=True, env=env, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    devices = snap["info"]["tpu"]["devices"]
    assert [(d["vendor"], d["kind"], d["index"], d["state"]) for d in devices] == [
        ("google", "tpu", i, "ok") for i in range(4)]
    assert {d["name"] for d in devices} == {"TPU v6e"}
    used = recorded_values("v6e-4-static", MEMORY_USAGE)
    for i in range(4):
        assert snap["metrics"][f"tpu.{i}.mem_used_bytes"] == used[i]
        assert snap["metrics"][f"tpu.{i}.util_pct"] == 100.0


# -- through the sampler ---------------------------------------------------------------------
def sampler_with(backend: tpu.TpuBackend):
    from tracklab_jupyter.sampler.sampler import Sampler
    events = []
    sampler = Sampler([backend], interval=1.0, node="tpu-host")
    sampler.add_event_sink(events.append)
    return sampler, events


def test_sampler_merges_the_slow_values_and_publishes_state_changes(tpu_host, tpu_runtime,
                                                                    clock):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime(start=False)
    backend = open_tpu(clock=clock)
    sampler, events = sampler_with(backend)
    try:
        sampler.read_slow(backend)
        assert not [k for k in sampler.sample_once().metrics if k.startswith("tpu.")]
        runtime.start()
        clock.now += 2.0
        sampler.read_slow(backend)
        metrics = sampler.sample_once().metrics
        assert metrics["tpu.0.mem_used_bytes"] == recorded_values(
            "v6e-4-static", MEMORY_USAGE)[0]
        assert [e.kind for e in events] == [tpu.STATE_EVENT]
        runtime.stop()
        clock.now += 1.0
        sampler.read_slow(backend)
        assert not [k for k in sampler.sample_once().metrics if k.startswith("tpu.")]
        assert [e.data["state"] for e in events] == ["ok", "idle"]
    finally:
        sampler.close()


def test_sampler_info_follows_the_chip_state(tpu_host, tpu_runtime, clock):
    tpu_host(chips=4, generation="v6e")
    runtime = tpu_runtime(start=False)
    backend = open_tpu(clock=clock)
    sampler, _ = sampler_with(backend)
    try:
        assert sampler.info["tpu"]["devices"][0]["state"] == "idle"
        runtime.start()
        clock.now += 2.0
        sampler.read_slow(backend)
        assert sampler.info["tpu"]["devices"][0]["state"] == "ok"
    finally:
        sampler.close()
