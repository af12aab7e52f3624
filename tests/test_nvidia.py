"""The NVIDIA backend against the fake NVML replaying the recorded H200.

Expected values are read from ``fixtures/nvidia-h200/gpu_probe.json`` (and a few spelled
out, to catch a fixture and the code drifting together): they are what the real NVML said.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml
import pytest
from conftest import backend_opener, device_metrics

from tracklab_jupyter.accelerators.base import AcceleratorUnavailable, NoDevices
from tracklab_jupyter.accelerators.nvidia import NvidiaBackend
from tracklab_jupyter.accelerators.registry import open_backends
from tracklab_jupyter.metrics.catalogue import is_known

try:
    from .fake_nvml import FIXTURE_DIR, FakeNvml
except ImportError:
    from fake_nvml import FIXTURE_DIR, FakeNvml

Factory = Callable[..., FakeNvml]

PROBE = json.loads((FIXTURE_DIR / "gpu_probe.json").read_text())
BUSY = {k: v["value"] for k, v in PROBE["busy"][0].items()}
IDLE = {k: v["value"] for k, v in PROBE["idle"][0].items()}
SLOW_CALLS = ("nvmlDeviceGetPcieThroughput", "nvmlDeviceGetTotalEnergyConsumption",
              "nvmlDeviceGetMaxClockInfo", "nvmlDeviceGetMigMode", "nvmlDeviceGetCount")


backends = backend_opener(NvidiaBackend)


def gpu_metrics(gauges: dict[str, float], index: int) -> dict[str, float]:
    return device_metrics(gauges, "gpu", index)


# -- values and units ----------------------------------------------------------------------
def test_busy_values_and_units_match_the_recording(fake_nvml: FakeNvml, backends: Any) -> None:
    g = gpu_metrics(backends().read().gauges, 0)
    assert g["power_w"] == pytest.approx(686.452)  # 686452 mW
    assert g["power_w"] == pytest.approx(BUSY["power_mw"] / 1000)
    assert g["mem_used_bytes"] == 1059913728  # v2: reserved memory is not "used"
    assert g["mem_reserved_bytes"] == 644939776
    assert g["mem_total_bytes"] == BUSY["memory_v2"]["total"] == 150754820096
    assert g["mem_pct"] == pytest.approx(1059913728 / 150754820096 * 100)
    assert g["temp_c"] == 58
    assert g["throttle_reasons"] == 4  # software power cap
    assert g["util_pct"] == 97 and g["mem_util_pct"] == 23
    assert g["sm_clock_mhz"] == 1530 and g["mem_clock_mhz"] == 3201
    assert g["power_limit_w"] == 700
    assert g["pstate"] == 0
    assert g["enc_util_pct"] == 0 and g["dec_util_pct"] == 0
    assert g["ecc_uncorrected_errors"] == 0 and g["ecc_corrected_errors"] == 0
    # One compute process: the recorded load (pid 450) holding all the used memory.
    assert g["procs"] == 1
    assert g[f"proc.{PROBE['load_pid']}.mem_used_bytes"] == 1059913728
    assert "fan_pct" not in g  # NotSupported on the H200: absent, not zero


def test_idle_values(fake_nvml_factory: Factory, backends: Any) -> None:
    fake_nvml_factory(mode="idle")
    g = gpu_metrics(backends().read().gauges, 0)
    assert g["mem_used_bytes"] == 0
    assert g["mem_reserved_bytes"] == IDLE["memory_v2"]["reserved"] == 644939776
    assert g["power_w"] == pytest.approx(97.237)
    assert g["throttle_reasons"] == 1  # idle
    assert g["util_pct"] == 0 and g["sm_clock_mhz"] == 345 and g["temp_c"] == 35
    assert g["procs"] == 0
    assert not any(k.startswith("proc.") for k in g)


def test_slow_values_and_units(fake_nvml: FakeNvml, backends: Any) -> None:
    g = gpu_metrics(backends().read_slow().gauges, 0)
    assert g["energy_j"] == pytest.approx(4593.717)  # 4593717 mJ
    assert g["pcie_tx_bytes_per_s"] == BUSY["pcie_tx_kbs"] * 1024  # NVML gives KB/s
    assert g["pcie_rx_bytes_per_s"] == BUSY["pcie_rx_kbs"] * 1024


def test_every_metric_name_is_in_the_catalogue(fake_nvml_factory: Factory,
                                               backends: Any) -> None:
    fake_nvml_factory(gpus=2, mig=2)
    backend = backends()
    names = set(backend.read().gauges) | set(backend.read_slow().gauges)
    assert "gpu.1.mig.1.mem_used_bytes" in names
    assert [n for n in names if not is_known(n)] == []


def test_info(fake_nvml: FakeNvml, backends: Any) -> None:
    info = backends().info()
    assert info["vendor"] == "nvidia"
    assert info["driver_version"] == "580.159.04"
    assert info["cuda_driver_version"] == "13.0"  # NVML says 13000
    assert info["nvml_version"] == "13.580.159.04"
    (dev,) = info["devices"]
    assert dev == dev | {
        "index": 0, "name": "NVIDIA H200", "uuid": BUSY["uuid"], "serial": BUSY["serial"],
        "pci_bus_id": "00000000:00:06.0", "vendor": "nvidia", "compute_capability": "9.0",
        "mem_total_bytes": 150754820096, "power_limit_w": 700.0, "max_sm_clock_mhz": 1980,
        "max_mem_clock_mhz": 3201, "temp_slowdown_c": 89, "state": "ok",
        "ecc_mode": {"current": True, "pending": True},
        "mig_mode": {"current": False, "pending": False}, "mig_devices": [],
    }
    json.dumps(info)  # served as JSON as it is


def test_eight_gpus_have_distinct_identities(fake_nvml_factory: Factory,
                                             backends: Any) -> None:
    fake_nvml_factory(gpus=8)
    backend = backends()
    devices = backend.info()["devices"]
    assert [d["index"] for d in devices] == list(range(8))
    for key in ("uuid", "serial", "pci_bus_id"):
        assert len({d[key] for d in devices}) == 8, key
    assert devices[0]["uuid"] == BUSY["uuid"]  # GPU 0 is the recorded one
    gauges = backend.read().gauges
    assert all(gauges[f"gpu.{i}.power_w"] == pytest.approx(686.452) for i in range(8))


# -- selection -----------------------------------------------------------------------------
def test_select_by_index(fake_nvml_factory: Factory, backends: Any) -> None:
    fake_nvml_factory(gpus=4)
    backend = backends(["3", "1"])
    # Metric indices are NVML indices, whatever the order or position in the selection.
    assert [d["index"] for d in backend.info()["devices"]] == [1, 3]
    gpus = {int(k.split(".")[1]) for k in backend.read().gauges}
    assert gpus == {1, 3}


def test_select_by_uuid_and_unique_prefix(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(gpus=4)
    assert [d["index"] for d in backends([fake.uuid(2)]).info()["devices"]] == [2]
    prefix = fake.uuid(3)[:8]  # "GPU-" + 4 hex digits
    assert [d["index"] for d in backends([prefix]).info()["devices"]] == [3]
    bare = fake.uuid(1)[4:10].upper()  # without "GPU-", other case
    assert [d["index"] for d in backends(bare).info()["devices"]] == [1]
    assert fake.count("nvmlDeviceGetMigDeviceHandleByIndex") == 0  # MIG is off: not asked


def test_ambiguous_or_unknown_selectors_are_skipped(fake_nvml_factory: Factory,
                                                    backends: Any) -> None:
    fake_nvml_factory(gpus=3)
    assert [d["index"] for d in backends(["GPU-", "7", "2"]).info()["devices"]] == [2]
    with pytest.raises(AcceleratorUnavailable, match="no NVIDIA GPU selected"):
        backends(["GPU-", "9"])


def test_mig_uuid_selects_its_parent(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(gpus=2, mig=2)
    assert [d["index"] for d in backends([fake.mig_uuid(1, 1)]).info()["devices"]] == [1]


def test_cuda_visible_devices(fake_nvml_factory: Factory, backends: Any,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_nvml_factory(gpus=4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"2,{fake.uuid(0)}")
    assert [d["index"] for d in backends().info()["devices"]] == [0, 2]
    # CUDA's rule: the list ends at the first entry that matches nothing.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,-1,2")
    assert [d["index"] for d in backends().info()["devices"]] == [1]
    # An explicit selection wins over the variable.
    assert [d["index"] for d in backends(["3"]).info()["devices"]] == [3]


@pytest.mark.parametrize("value", ["", "-1", " , "])
def test_cuda_visible_devices_hiding_every_gpu(fake_nvml_factory: Factory, backends: Any,
                                               monkeypatch: pytest.MonkeyPatch,
                                               value: str) -> None:
    fake = fake_nvml_factory(gpus=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    with pytest.raises(AcceleratorUnavailable, match="CUDA_VISIBLE_DEVICES"):
        backends()
    assert not fake.initialized  # NVML shut down again


# -- opening and closing -------------------------------------------------------------------
def write_nvidia_pci(root: Path) -> Path:
    """A host root whose PCI bus holds the recorded H200 (nvidia_smi_q.txt: Bus Id
    00000000:00:06.0, Device Id 0x233510DE) as the 3D controller (class 0x0302) it is."""
    dev = root / "sys" / "bus" / "pci" / "devices" / "0000:00:06.0"
    dev.mkdir(parents=True)
    for name, value in (("vendor", "0x10de"), ("device", "0x2335"), ("class", "0x030200")):
        (dev / name).write_text(value + "\n")
    return root


def test_no_library(fake_nvml_factory: Factory, backends: Any, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKLAB_HOST_ROOT", str(write_nvidia_pci(tmp_path / "host")))
    fake = fake_nvml_factory(library_missing=True)
    with pytest.raises(AcceleratorUnavailable) as info:
        backends()
    assert str(info.value) == "NVML library not found (no NVIDIA driver installed)"
    assert fake.count("nvmlShutdown") == 0
    found, notes = open_backends()
    assert found == [] and notes == [
        "nvidia: NVML library not found (no NVIDIA driver installed)"]


def test_no_library_and_no_nvidia_gpu_is_silent(fake_nvml_factory: Factory, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An AMD or TPU host has nvidia-ml-py (a dependency) but no NVIDIA driver: no note."""
    host = tmp_path / "host"
    (host / "sys" / "bus" / "pci" / "devices").mkdir(parents=True)
    monkeypatch.setenv("TRACKLAB_HOST_ROOT", str(host))
    fake_nvml_factory(library_missing=True)
    with pytest.raises(NoDevices):
        NvidiaBackend.open()
    assert open_backends() == ([], [])
    fake_nvml_factory(gpus=0)  # a driver, and no GPU on this host
    assert open_backends() == ([], [])
    write_nvidia_pci(host.parent / "other")
    monkeypatch.setenv("TRACKLAB_HOST_ROOT", str(host.parent / "other"))
    assert open_backends()[1] == ["nvidia: NVML found no NVIDIA GPU"]


def test_driver_not_loaded(fake_nvml_factory: Factory, backends: Any) -> None:
    fake_nvml_factory(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    with pytest.raises(AcceleratorUnavailable, match=r"^NVIDIA driver not loaded$"):
        backends()


def test_no_gpu(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(gpus=0)
    with pytest.raises(AcceleratorUnavailable, match="no NVIDIA GPU"):
        backends()
    assert not fake.initialized


def test_no_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with pytest.raises(AcceleratorUnavailable, match="nvidia-ml-py"):
        NvidiaBackend.open()


def test_explicit_module_argument(backends: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # never imported when given
    fake = FakeNvml(gpus=2, mode="idle")
    backend = backends(nvml=fake)
    assert len(backend.info()["devices"]) == 2


def test_nvml_initialised_once_and_shut_down_once(fake_nvml: FakeNvml) -> None:
    backend = NvidiaBackend.open()
    for _ in range(5):
        backend.read()
    backend.read_slow()
    backend.info()
    assert fake_nvml.count("nvmlInit") == 1 and fake_nvml.count("nvmlShutdown") == 0
    backend.close()
    backend.close()
    assert fake_nvml.count("nvmlShutdown") == 1 and not fake_nvml.initialized
    assert backend.read().gauges == {} and backend.read_slow().gauges == {}


def test_open_through_open_backends(fake_nvml_factory: Factory) -> None:
    fake_nvml_factory(gpus=2)
    found, notes = open_backends(["1"])
    try:
        assert notes == [] and [b.vendor for b in found] == ["nvidia"]
        assert [d["index"] for d in found[0].devices()] == [1]
    finally:
        for backend in found:
            backend.close()


# -- cheap path / slow path ------------------------------------------------------------------
def test_slow_calls_are_never_made_by_read(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(gpus=2)
    backend = backends()
    fake.reset_counts()
    for _ in range(10):
        backend.read()
    assert {name: fake.count(name) for name in SLOW_CALLS} == dict.fromkeys(SLOW_CALLS, 0)
    backend.read_slow()
    assert fake.count("nvmlDeviceGetPcieThroughput") == 4  # TX and RX, two GPUs
    assert fake.count("nvmlDeviceGetTotalEnergyConsumption") == 2
    assert fake.count("nvmlDeviceGetMaxClockInfo") == 0  # static: read once at open



# -- utilisation per process (slow path) -----------------------------------------------------
PROC_UTIL = "nvmlDeviceGetProcessUtilization"


def proc_figures(gauges: dict[str, float], index: int = 0) -> dict[str, float]:
    """The ``proc.{pid}.util_pct`` / ``mem_util_pct`` values of GPU ``index``."""
    return {k: v for k, v in gpu_metrics(gauges, index).items()
            if k.startswith("proc.") and k.endswith("util_pct")}


def test_process_utilisation_is_read_on_the_slow_path_only(fake_nvml: FakeNvml,
                                                           backends: Any) -> None:
    """2 ms per GPU on the H200: never on the 1 Hz path. Each call asks for the samples
    after the newest one the previous call returned."""
    backend = backends()
    fake_nvml.reset_counts()
    for _ in range(5):
        assert proc_figures(backend.read().gauges) == {}
    assert fake_nvml.count(PROC_UTIL) == 0
    pid = PROBE["load_pid"]  # the recorded load, as the running-process list reports it
    (recorded,) = BUSY["process_utilization"]
    assert (recorded["smUtil"], recorded["memUtil"]) == (86, 19)
    expected = {f"proc.{pid}.util_pct": 86.0, f"proc.{pid}.mem_util_pct": 19.0}
    assert proc_figures(backend.read_slow().gauges) == expected
    assert all(is_known(f"gpu.0.{name}") for name in expected)
    assert fake_nvml.util_since[0] == 0  # the first call: every sample NVML holds
    assert proc_figures(backend.read_slow().gauges) == expected
    assert fake_nvml.count(PROC_UTIL) == 2
    assert fake_nvml.util_since[0] > 0  # the second: after the first one's newest sample


def test_process_utilisation_is_the_mean_of_the_windows_samples(
        fake_nvml: FakeNvml, backends: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = backends()
    pid = PROBE["load_pid"]
    asked: list[int] = []

    def samples(handle: Any, since: int) -> list[Any]:
        asked.append(since)
        return [fake_nvml.nvmlFriendlyObject({"pid": pid, "timeStamp": since + step,
                                              "smUtil": sm, "memUtil": 10, "encUtil": 0,
                                              "decUtil": 0})
                for step, sm in ((100, 40), (300, 90), (200, 80))]

    monkeypatch.setattr(fake_nvml, PROC_UTIL, samples)
    assert proc_figures(backend.read_slow().gauges)[f"proc.{pid}.util_pct"] == 70.0
    backend.read_slow()
    assert asked == [0, 300]  # lastSeenTimeStamp: the newest sample's, not the last one's


def test_process_utilisation_when_nothing_ran(fake_nvml_factory: Factory,
                                             backends: Any) -> None:
    """NotFound is NVML's "no sample in the window": a process that holds memory was idle
    (0), an idle GPU without processes has no per-process figure, and NVML is asked again."""
    fake = fake_nvml_factory(mode="idle")  # recorded NotFound, no compute process
    backend = backends()
    assert proc_figures(backend.read_slow().gauges) == {}
    assert proc_figures(backend.read_slow().gauges) == {}
    assert fake.count(PROC_UTIL) == 2  # asked again: NotFound is no failure to remember

    busy = fake_nvml_factory()
    backend = backends()
    pid = PROBE["load_pid"]
    busy.inject(PROC_UTIL, error=pynvml.NVML_ERROR_NOT_FOUND, times=1)
    assert proc_figures(backend.read_slow().gauges) == {f"proc.{pid}.util_pct": 0.0,
                                                        f"proc.{pid}.mem_util_pct": 0.0}
    assert proc_figures(backend.read_slow().gauges)[f"proc.{pid}.util_pct"] == 86
    # Another passing error is no answer: no figure (not a made-up 0), asked again.
    busy.inject(PROC_UTIL, error=pynvml.NVML_ERROR_TIMEOUT, times=1)
    assert proc_figures(backend.read_slow().gauges) == {}
    assert proc_figures(backend.read_slow().gauges)[f"proc.{pid}.util_pct"] == 86


def test_process_utilisation_not_supported_or_under_mig(fake_nvml_factory: Factory,
                                                        backends: Any) -> None:
    fake = fake_nvml_factory()
    fake.inject(PROC_UTIL, error=pynvml.NVML_ERROR_NOT_SUPPORTED)
    backend = backends()
    for _ in range(3):
        gauges = backend.read_slow().gauges
        assert proc_figures(gauges) == {} and "gpu.0.energy_j" in gauges
    assert fake.count(PROC_UTIL) == 1  # remembered, not asked again
    assert "proc_util" in backend.info()["devices"][0]["unsupported"]

    mig = fake_nvml_factory(mig=2)
    backend = backends()
    assert proc_figures(backend.read_slow().gauges) == {}
    assert mig.count(PROC_UTIL) == 0  # NVML has none under MIG: not even asked


# What each call read() may make cost on the real H200 (the probe key that recorded it).
READ_CALL_COST_KEY = {
    "nvmlDeviceGetUtilizationRates": "utilization", "nvmlDeviceGetMemoryInfo": "memory_v2",
    "nvmlDeviceGetMemoryInfo_v2": "memory_v2", "nvmlDeviceGetTemperature": "temp_gpu",
    "nvmlDeviceGetPowerUsage": "power_mw", "nvmlDeviceGetEnforcedPowerLimit": "power_limit_mw",
    "nvmlDeviceGetClockInfo": "clock_sm", "nvmlDeviceGetPerformanceState": "pstate",
    "nvmlDeviceGetCurrentClocksEventReasons": "throttle",
    "nvmlDeviceGetEncoderUtilization": "encoder", "nvmlDeviceGetDecoderUtilization": "decoder",
    "nvmlDeviceGetTotalEccErrors": "ecc_uncorrected_volatile",
    "nvmlDeviceGetFanSpeed": "fan", "nvmlDeviceGetComputeRunningProcesses": "compute_procs",
}


def test_read_makes_only_fast_calls(fake_nvml: FakeNvml, backends: Any) -> None:
    """Every call of a steady read() took under 100 µs on the real H200; the fan call's
    NotSupported (156 µs) is paid once, on the first read."""
    backend = backends()

    def costs() -> dict[str, float]:
        fake_nvml.reset_counts()
        backend.read()
        assert set(fake_nvml.calls) <= set(READ_CALL_COST_KEY), "a call of unknown cost"
        return {name: PROBE["busy"][0][READ_CALL_COST_KEY[name]]["median_us"]
                for name in fake_nvml.calls}

    first = costs()
    assert {name for name, us in first.items() if us >= 100} == {"nvmlDeviceGetFanSpeed"}
    assert max(costs().values()) < 100


# -- failure isolation ---------------------------------------------------------------------
def test_not_supported_field_is_absent_and_not_asked_again(fake_nvml_factory: Factory,
                                                           backends: Any) -> None:
    fake = fake_nvml_factory(gpus=2)
    fake.inject("nvmlDeviceGetPowerUsage", gpu=0, error=pynvml.NVML_ERROR_NOT_SUPPORTED)
    backend = backends()
    for _ in range(4):
        gauges = backend.read().gauges
        assert "gpu.0.power_w" not in gauges
        assert gauges["gpu.1.power_w"] == pytest.approx(686.452)
        assert gauges["gpu.0.temp_c"] == 58 and gauges["gpu.0.util_pct"] == 97
    assert fake.count("nvmlDeviceGetPowerUsage", gpu=0) == 1
    assert fake.count("nvmlDeviceGetPowerUsage", gpu=1) == 4
    assert fake.count("nvmlDeviceGetFanSpeed", gpu=1) == 1  # recorded NotSupported
    assert "power" in backend.info()["devices"][0]["unsupported"]


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
                                  pynvml.NVML_ERROR_NO_PERMISSION])
def test_other_permanent_errors(fake_nvml: FakeNvml, backends: Any, code: int) -> None:
    fake_nvml.inject("nvmlDeviceGetTemperature", error=code)
    backend = backends()
    assert "gpu.0.temp_c" not in backend.read().gauges
    assert "gpu.0.temp_c" not in backend.read().gauges
    assert fake_nvml.count("nvmlDeviceGetTemperature") == 1


def test_not_found_means_no_value_now(fake_nvml: FakeNvml, backends: Any) -> None:
    backend = backends()
    fake_nvml.inject("nvmlDeviceGetTemperature", error=pynvml.NVML_ERROR_NOT_FOUND, times=1)
    assert "gpu.0.temp_c" not in backend.read().gauges
    assert backend.read().gauges["gpu.0.temp_c"] == 58  # asked again, and back
    assert fake_nvml.count("nvmlDeviceGetTemperature") == 2


def test_a_non_nvml_exception_hides_only_its_field(fake_nvml: FakeNvml, backends: Any) -> None:
    fake_nvml.inject("nvmlDeviceGetClockInfo", error=TypeError("binding mismatch"))
    gauges = backends().read().gauges
    assert "gpu.0.sm_clock_mhz" not in gauges and "gpu.0.mem_clock_mhz" not in gauges
    assert gauges["gpu.0.power_w"] == pytest.approx(686.452)


def test_a_function_missing_from_the_binding(fake_nvml: FakeNvml, backends: Any) -> None:
    fake_nvml.remove("nvmlDeviceGetEncoderUtilization")
    gauges = backends().read().gauges
    assert "gpu.0.enc_util_pct" not in gauges and gauges["gpu.0.dec_util_pct"] == 0


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_GPU_IS_LOST, pynvml.NVML_ERROR_UNKNOWN])
def test_lost_gpu_stops_alone(fake_nvml_factory: Factory, backends: Any, code: int) -> None:
    fake = fake_nvml_factory(gpus=3)
    backend = backends()
    fake.inject("nvmlDeviceGetPowerUsage", gpu=1, error=code)
    reading = backend.read()
    assert set(gpu_metrics(reading.gauges, 1)) == set()  # even fields read before the loss
    assert gpu_metrics(reading.gauges, 0)["power_w"] == pytest.approx(686.452)
    assert gpu_metrics(reading.gauges, 2)["power_w"] == pytest.approx(686.452)
    (event,) = reading.events
    assert set(event) == {"kind", "message", "data"}
    assert event["kind"] == "gpu_lost"
    assert event["data"]["gpu"] == 1 and event["data"]["uuid"] == fake.uuid(1)
    assert "GPU 1" in event["message"]
    states = [d["state"] for d in backend.info()["devices"]]
    assert states == ["ok", "lost", "ok"]
    # Later: no second event, no more calls on GPU 1, the others go on (slow path too).
    calls_on_1 = sum(n for (_, gpu), n in fake.gpu_calls.items() if gpu == 1)
    later = [backend.read(), backend.read_slow(), backend.read()]
    assert [e for r in later for e in r.events] == []
    assert sum(n for (_, gpu), n in fake.gpu_calls.items() if gpu == 1) == calls_on_1
    assert all("gpu.0.power_w" in r.gauges or "gpu.0.energy_j" in r.gauges for r in later)
    assert not any(k.startswith("gpu.1.") for r in later for k in r.gauges)


def test_lost_gpu_seen_by_the_slow_path_is_reported_once(fake_nvml_factory: Factory,
                                                         backends: Any) -> None:
    fake = fake_nvml_factory(gpus=2)
    backend = backends()
    fake.lose(0)
    slow = backend.read_slow()
    assert [e["kind"] for e in slow.events] == ["gpu_lost"]
    pid = PROBE["load_pid"] + 1  # the fake's process on GPU 1
    assert set(gpu_metrics(slow.gauges, 1)) == {"energy_j", "pcie_tx_bytes_per_s",
                                                 "pcie_rx_bytes_per_s", f"proc.{pid}.util_pct",
                                                 f"proc.{pid}.mem_util_pct"}
    fast = backend.read()
    assert fast.events == [] and not any(k.startswith("gpu.0.") for k in fast.gauges)


def test_gpu_lost_before_opening(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(gpus=2)
    fake.lose(1)
    backend = backends()
    assert [d["state"] for d in backend.info()["devices"]] == ["ok", "lost"]
    reading = backend.read()
    assert [(e["kind"], e["data"]["gpu"]) for e in reading.events] == [("gpu_lost", 1)]
    assert backend.read().events == []


# -- fallbacks -----------------------------------------------------------------------------
def test_memory_v1_fallback(fake_nvml: FakeNvml, backends: Any) -> None:
    fake_nvml.inject("nvmlDeviceGetMemoryInfo_v2", error=pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
    backend = backends()
    for _ in range(3):
        g = gpu_metrics(backend.read().gauges, 0)
        # v1 counts driver-reserved memory as used, and cannot tell it apart.
        assert g["mem_used_bytes"] == BUSY["memory"]["used"] == 1704853504
        assert g["mem_total_bytes"] == 150754820096
        assert "mem_reserved_bytes" not in g
    assert fake_nvml.count("nvmlDeviceGetMemoryInfo_v2") == 1


def test_memory_v1_when_the_binding_has_no_v2(fake_nvml: FakeNvml, backends: Any) -> None:
    del fake_nvml.nvmlMemory_v2  # nvidia-ml-py older than the v2 struct
    g = gpu_metrics(backends().read().gauges, 0)
    assert g["mem_used_bytes"] == 1704853504 and "mem_reserved_bytes" not in g
    assert fake_nvml.count("nvmlDeviceGetMemoryInfo_v2") == 0


@pytest.mark.parametrize("how", ["driver", "binding"])
def test_throttle_reasons_fallback(fake_nvml: FakeNvml, backends: Any, how: str) -> None:
    if how == "driver":
        fake_nvml.inject("nvmlDeviceGetCurrentClocksEventReasons",
                         error=pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
    else:
        fake_nvml.remove("nvmlDeviceGetCurrentClocksEventReasons")
    backend = backends()
    assert backend.read().gauges["gpu.0.throttle_reasons"] == 4
    assert backend.read().gauges["gpu.0.throttle_reasons"] == 4
    assert fake_nvml.count("nvmlDeviceGetCurrentClocksThrottleReasons") == 2
    assert fake_nvml.count("nvmlDeviceGetCurrentClocksEventReasons") <= 1


# -- MIG -----------------------------------------------------------------------------------
def test_mig_devices_reported(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(gpus=1, mig=3)
    backend = backends()
    (dev,) = backend.info()["devices"]
    assert dev["mig_mode"] == {"current": True, "pending": True}
    assert [m["index"] for m in dev["mig_devices"]] == [0, 1, 2]
    assert [m["uuid"] for m in dev["mig_devices"]] == [fake.mig_uuid(0, i) for i in range(3)]
    assert dev["mig_devices"][0]["mem_total_bytes"] == 150754820096 // 8
    g = gpu_metrics(backend.read().gauges, 0)
    assert g["mig.0.mem_used_bytes"] == 1059913728 and g["mig.1.mem_used_bytes"] == 0
    assert g["mig.2.mem_total_bytes"] == 150754820096 // 8
    assert "mig.3.mem_used_bytes" not in g
    # MIG has no whole-GPU utilisation; everything else is still there.
    assert "util_pct" not in g and g["power_w"] == pytest.approx(686.452)


def test_mig_mode_change_is_an_event(fake_nvml: FakeNvml, backends: Any) -> None:
    backend = backends()
    assert backend.read_slow().events == []
    fake_nvml.set_mig(0, 2)
    events = backend.read_slow().events
    assert [e["kind"] for e in events] == ["mig_mode_changed"]
    assert events[0]["data"] | {"gpu": 0, "current": True, "pending": True} == events[0]["data"]
    assert backend.read_slow().events == []
    assert len(backend.info()["devices"][0]["mig_devices"]) == 2
    g = gpu_metrics(backend.read().gauges, 0)
    assert "mig.1.mem_used_bytes" in g and "util_pct" not in g
    fake_nvml.set_mig(0, 0)
    assert [e["kind"] for e in backend.read_slow().events] == ["mig_mode_changed"]
    g = gpu_metrics(backend.read().gauges, 0)
    assert g["util_pct"] == 97  # asked afresh after the change
    assert not any(k.startswith("mig.") for k in g)


def test_mig_devices_changing_under_mig(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(mig=1)
    backend = backends()
    fake.set_mig(0, 3)
    (event,) = backend.read_slow().events
    assert event["kind"] == "mig_devices_changed" and len(event["data"]["mig_devices"]) == 3


# -- a GPU that appears --------------------------------------------------------------------
def test_gpu_appeared(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(gpus=2)
    backend = backends()
    fake.set_gpu_count(3)
    (event,) = backend.read_slow().events
    assert event["kind"] == "gpu_appeared"
    assert event["data"] == {"gpu": 2, "uuid": fake.uuid(2), "monitored": True}
    assert backend.read().gauges["gpu.2.power_w"] == pytest.approx(686.452)
    assert len(backend.info()["devices"]) == 3
    assert backend.read_slow().events == []


def test_gpu_appeared_outside_the_selection(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(gpus=2)
    backend = backends(["0"])
    fake.set_gpu_count(3)
    (event,) = backend.read_slow().events
    assert event["data"] == {"gpu": 2, "uuid": fake.uuid(2), "monitored": False}
    assert not any(k.startswith("gpu.2.") for k in backend.read().gauges)


# -- trace replay --------------------------------------------------------------------------
def trace_rows() -> list[dict[str, str]]:
    with (FIXTURE_DIR / "h200_trace.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_trace_replays_the_recorded_phases(fake_nvml_factory: Factory, backends: Any) -> None:
    rows = trace_rows()
    t0 = float(rows[0]["t"])
    fake = fake_nvml_factory(mode="trace")
    backend = backends()
    seen = set()
    for row in rows[::40]:
        fake.seek(float(row["t"]) - t0 + 0.01)
        g = gpu_metrics(backend.read().gauges, 0)
        assert g["util_pct"] == int(row["gpu_util"]), row["t"]
        assert g["power_w"] == pytest.approx(int(row["gpu_power_mw"]) / 1000)
        assert g["temp_c"] == int(row["gpu_temp"])
        assert g["throttle_reasons"] == int(row["gpu_throttle"])
        assert g["mem_used_bytes"] + g["mem_reserved_bytes"] == int(row["gpu_mem_used"])
        seen.add(row["phase"])
    assert seen == {"idle", "compute", "memory"}


def test_trace_energy_and_staggered_gpus(fake_nvml_factory: Factory, backends: Any) -> None:
    fake = fake_nvml_factory(gpus=2, mode="trace", trace_stagger_s=30.0)
    backend = backends()
    fake.seek(10.0)
    gauges = backend.read().gauges
    assert gauges["gpu.0.util_pct"] == 0  # idle phase
    assert gauges["gpu.1.util_pct"] > 80  # 40 s in: compute phase
    first = backend.read_slow().gauges["gpu.0.energy_j"]
    fake.seek(60.0)
    assert backend.read_slow().gauges["gpu.0.energy_j"] > first


# -- the subprocess shim ---------------------------------------------------------------------
def test_shim_replaces_pynvml_in_a_subprocess(tmp_path: Path) -> None:
    shim = Path(__file__).resolve().parent / "shim"
    code = textwrap.dedent("""
        import json, pynvml
        from tracklab_jupyter.accelerators.nvidia import NvidiaBackend
        b = NvidiaBackend.open()
        print(json.dumps({"fake": getattr(pynvml, "IS_FAKE", False),
                          "n": len(b.info()["devices"]),
                          "power": b.read().gauges["gpu.1.power_w"],
                          "not_supported": issubclass(pynvml.NVMLError_NotSupported,
                                                      pynvml.NVMLError)}))
        b.close()
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(shim), os.environ.get("PYTHONPATH", "")]),
        "TRACKLAB_FAKE_NVML_GPUS": "3", "TRACKLAB_FAKE_NVML_MODE": "idle"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == {"fake": True, "n": 3, "power": 97.237,
                                      "not_supported": True}


def test_shim_without_library(tmp_path: Path) -> None:
    shim = Path(__file__).resolve().parent / "shim"
    code = ("from tracklab_jupyter.accelerators.registry import open_backends\n"
            "print(open_backends()[1])")
    env = {**os.environ, "PYTHONPATH": str(shim), "TRACKLAB_FAKE_NVML_NO_LIBRARY": "1",
           "TRACKLAB_HOST_ROOT": str(write_nvidia_pci(tmp_path / "host"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=True)
    assert "NVML library not found" in out.stdout
