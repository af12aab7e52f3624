"""The AMD backend against the fake amdsmi (recorded MI250 and R9700 outputs) and against a
recorded amdgpu sysfs tree (``fixtures/amdgpu-sysfs``, used as ``TRACKLAB_HOST_ROOT``).

Expected values are read from the recordings in ``fixtures/amd-mi`` (and a few spelled out,
to catch a fixture and the code drifting together): they are what AMD's tools said.
"""

from __future__ import annotations

import errno
import importlib.abc
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import backend_opener, device_metrics

from tracklab_jupyter.accelerators import amd_sysfs
from tracklab_jupyter.accelerators.amd import AmdBackend
from tracklab_jupyter.accelerators.base import AcceleratorUnavailable, NoDevices
from tracklab_jupyter.accelerators.registry import open_backends
from tracklab_jupyter.metrics.catalogue import spec_for
from tracklab_jupyter.sampler.hardware_events import HardwareWatcher

try:
    from .fake_amdsmi import FIXTURE_DIR, FakeAmdSmi, shim_env
except ImportError:
    from fake_amdsmi import FIXTURE_DIR, FakeAmdSmi, shim_env

Factory = Callable[..., FakeAmdSmi]
MIB = 1024 * 1024
MI250 = json.loads((FIXTURE_DIR / "rocm_smi_mi250_rocm6.json").read_text())["card0"]
R9700_PROCS = json.loads((FIXTURE_DIR / "r9700_amd_smi_process.json").read_text())
SHIM = Path(__file__).resolve().parent / "shim"
# Calls that cost milliseconds (a process walk, the whole metrics table) or are static.
SLOW_CALLS = ("amdsmi_get_gpu_process_list", "amdsmi_get_gpu_total_ecc_count",
              "amdsmi_get_energy_count", "amdsmi_get_pcie_info", "amdsmi_get_gpu_metrics_info",
              "amdsmi_get_violation_status", "amdsmi_get_gpu_asic_info",
              "amdsmi_get_power_cap_info", "amdsmi_get_gpu_fan_speed_max")


backends = backend_opener(AmdBackend)


def gpu_metrics(gauges: dict[str, float], index: int) -> dict[str, float]:
    return device_metrics(gauges, "gpu", index)


def rec_float(key: str) -> float:
    return float(MI250[key].strip("()").removesuffix("Mhz"))


# -- amdsmi: values and units -----------------------------------------------------------------
def test_mi250_info_equals_the_recording(fake_amdsmi: FakeAmdSmi, backends: Any) -> None:
    info = backends().info()
    assert info["vendor"] == "amd" and info["kind"] == "gpu" and info["source"] == "amdsmi"
    assert info["driver_version"] == "6.2.4"
    assert "amdsmi" not in info  # amdsmi was used: no reason to give
    (dev,) = info["devices"]
    unique = MI250["Unique ID"]  # "0x1f9de0957d137942"
    assert dev == dev | {
        "index": 0, "vendor": "amd", "kind": "gpu", "state": "ok",
        "name": "AMD INSTINCT MI250 (MCM) OAM AC MBA",
        "serial": "0x1F9DE0957D137942", "board_serial": MI250["Serial Number"],
        "pci_bus_id": "0000:29:00.0",
        # No recording holds amdsmi's UUID: the ROCm runtime's "GPU-" + unique id stands in.
        "uuid": "GPU-" + unique[2:], "power_limit_w": 560.0,
    }
    assert "mem_total_bytes" not in dev and "temp_slowdown_c" not in dev  # not recorded
    json.dumps(info)


def test_mi250_read_equals_the_recording(fake_amdsmi: FakeAmdSmi, backends: Any) -> None:
    g = gpu_metrics(backends().read().gauges, 0)
    assert g == {
        "util_pct": float(MI250["GPU use (%)"]),
        "mem_util_pct": float(MI250["GPU Memory Read/Write Activity (%)"]),
        "temp_c": rec_float("Temperature (Sensor edge) (C)"),
        "junction_temp_c": rec_float("Temperature (Sensor junction) (C)"),
        "mem_temp_c": rec_float("Temperature (Sensor memory) (C)"),
        "power_w": rec_float("Average Graphics Package Power (W)"),
        "power_limit_w": rec_float("Max Graphics Package Power (W)"),
        "sm_clock_mhz": rec_float("sclk clock speed:"),
        "mem_clock_mhz": rec_float("mclk clock speed:"),
    }
    assert (g["temp_c"], g["junction_temp_c"], g["power_w"], g["sm_clock_mhz"]) == (
        43, 44, 91, 800)
    # mm_activity is "N/A" and VRAM/fan were not recorded: absent, never zero.


def test_mi250_slow_values(fake_amdsmi: FakeAmdSmi, backends: Any) -> None:
    g = gpu_metrics(backends().read_slow().gauges, 0)
    # accumulator x resolution µJ: what rocm-smi printed as "Accumulated Energy (uJ)".
    assert g == {"energy_j": pytest.approx(float(MI250["Accumulated Energy (uJ)"]) / 1e6)}


def test_r9700_values_and_units(fake_amdsmi_factory: Factory, backends: Any) -> None:
    fake_amdsmi_factory(gpus=2, mode="r9700")
    backend = backends()
    info = backend.info()
    assert (info["driver_version"], info["rocm_version"], info["amdsmi_version"]) == (
        "6.16.6", "7.2.0", "26.2.1")
    assert [d["pci_bus_id"] for d in info["devices"]] == ["0000:03:00.0", "0000:43:00.0"]
    # 32624 MiB, which rocminfo shows as a 33406976 KB pool on the same model.
    assert info["devices"][0]["mem_total_bytes"] == 32624 * MIB == 33406976 * 1024
    gauges = backend.read().gauges
    g0, g1 = gpu_metrics(gauges, 0), gpu_metrics(gauges, 1)
    assert g0["util_pct"] == 100 and g0["mem_util_pct"] == 0 and g0["mm_util_pct"] == 0
    assert g0["mem_used_bytes"] == 29777 * MIB and g0["mem_total_bytes"] == 32624 * MIB
    assert g0["mem_pct"] == pytest.approx(29777 / 32624 * 100)
    assert (g0["power_w"], g1["power_w"], g0["power_limit_w"]) == (103, 92, 300)
    assert g0["fan_pct"] == pytest.approx(38.82, abs=0.005)  # amd-smi printed 38.82
    assert g1["fan_pct"] == pytest.approx(40.0)
    assert not any(k.startswith(("temp", "junction", "sm_clock")) for k in g0)


def test_per_process_vram(fake_amdsmi_factory: Factory, backends: Any) -> None:
    fake_amdsmi_factory(gpus=2, mode="r9700")
    slow = backends().read_slow().gauges
    for gpu in (0, 1):
        recorded = R9700_PROCS[gpu]["process_list"]
        g = gpu_metrics(slow, gpu)
        assert g["procs"] == len(recorded) == 4
        for entry in recorded:
            proc = entry["process_info"]
            assert g[f"proc.{proc['pid']}.mem_used_bytes"] == (
                proc["memory_usage"]["vram_mem"]["value"])
        assert g["proc.213952.mem_used_bytes"] == 21008920000
        assert g["ecc_uncorrected_errors"] == 0 and "ecc_corrected_errors" not in g


def test_amdsmi_6_1_shapes(fake_amdsmi_factory: Factory, backends: Any) -> None:
    """amdsmi 6.1 (read in its amdsmi_interface.py) names some keys differently, returns
    all-ones integers where 7.x says "N/A", and lists processes as handles."""
    mi250 = fake_amdsmi_factory(gpus=1)
    power, clock, energy = (mi250.amdsmi_get_power_info, mi250.amdsmi_get_clock_info,
                            mi250.amdsmi_get_energy_count)
    mi250.amdsmi_get_power_info = lambda h: {  # no socket_power; uint32 all-ones: no value
        k: 0xFFFFFFFF if v == "N/A" else v for k, v in power(h).items() if k != "socket_power"}
    mi250.amdsmi_get_clock_info = lambda h, c: {
        "cur_clk": clock(h, c)["clk"], "max_clk": clock(h, c)["max_clk"],
        "min_clk": clock(h, c)["min_clk"], "sleep_clk": 0xFFFFFFFF}
    mi250.amdsmi_get_energy_count = lambda h: {
        "power": energy(h)["energy_accumulator"],
        "counter_resolution": energy(h)["counter_resolution"]}
    backend = backends()
    g = gpu_metrics(backend.read().gauges, 0)
    assert (g["power_w"], g["sm_clock_mhz"], g["mem_clock_mhz"]) == (91, 800, 1600)
    assert gpu_metrics(backend.read_slow().gauges, 0)["energy_j"] == pytest.approx(
        float(MI250["Accumulated Energy (uJ)"]) / 1e6)
    backend.close()

    r9700 = fake_amdsmi_factory(gpus=1, mode="r9700")
    listing = r9700.amdsmi_get_gpu_process_list
    r9700.amdsmi_get_gpu_process_list = lambda h: [p["pid"] for p in listing(h)]
    r9700.amdsmi_get_gpu_process_info = lambda h, pid: next(
        p for p in listing(h) if p["pid"] == pid)
    # 6.1 hands raw struct fields back: a bandwidth the card does not report is all ones.
    r9700.amdsmi_get_pcie_info = lambda h: {"pcie_metric": {"pcie_bandwidth": 0xFFFFFFFF}}
    g = gpu_metrics(backends().read_slow().gauges, 0)
    assert g["procs"] == 4 and g["proc.213953.mem_used_bytes"] == 20503796000
    assert "pcie_bytes_per_s" not in g


def test_every_metric_is_in_the_catalogue_for_amd(fake_amdsmi_factory: Factory,
                                                   backends: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    names: set[str] = set()
    for mode in ("mi250", "r9700"):
        fake = fake_amdsmi_factory(gpus=2, mode=mode)
        fake.set_violation(0, active_ppt_pwr=True)
        backend = backends()
        names |= set(backend.read().gauges) | set(backend.read_slow().gauges)
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # the same host, read through sysfs
    backend = backends()
    assert backend.info()["source"] == "sysfs"
    names |= set(backend.read().gauges) | set(backend.read_slow().gauges)
    suffixes = {n.split(".", 2)[2] for n in names}
    assert {"util_pct", "mm_util_pct", "junction_temp_c", "fan_pct", "energy_j",
            "throttle_reasons", "procs", "proc.213952.mem_used_bytes"} <= suffixes
    unknown = [n for n in names if spec_for(n) is None or "amd" not in spec_for(n).vendors]
    assert unknown == []


# -- the sysfs fallback -----------------------------------------------------------------------
SYSFS_CARD1 = {  # the RX 7900 XTX of LACT's snapshot
    "util_pct": 3.0, "temp_c": 53.0, "junction_temp_c": 61.0, "mem_temp_c": 68.0,
    "power_w": 68.0, "power_limit_w": 290.0, "sm_clock_mhz": 31.0, "mem_clock_mhz": 1249.0,
}
SYSFS_CARD2 = {  # prometheus/procfs's card
    "util_pct": 4.0, "mem_used_bytes": 1490378752.0, "mem_total_bytes": 8573157376.0,
    "mem_pct": pytest.approx(1490378752 / 8573157376 * 100),
}


def assert_sysfs_cards(backend: AmdBackend, first: int = 0) -> None:
    info = backend.info()
    assert info["source"] == "sysfs"
    devices = info["devices"]
    # card0 (ast) and the card0-VGA-1 connector are not AMD GPUs.
    assert [d["index"] for d in devices] == [first, first + 1]
    assert devices[0] == devices[0] | {"name": "AMD GPU (1002:744c)", "temp_slowdown_c": 100.0,
                                       "power_limit_w": 290.0, "state": "ok"}
    assert devices[1] == devices[1] | {"uuid": "GPU-0123456789abcdef",
                                       "serial": "0123456789abcdef",
                                       "mem_total_bytes": 8573157376}
    gauges = backend.read().gauges
    assert gpu_metrics(gauges, first) == SYSFS_CARD1
    assert gpu_metrics(gauges, first + 1) == SYSFS_CARD2


def test_sysfs_when_amdsmi_is_not_installed(no_amdsmi: Path, backends: Any) -> None:
    backend = backends()
    assert backend.info()["amdsmi"] == "not installed: pip install tracklab-jupyter[amd]"
    assert_sysfs_cards(backend)
    assert backend.read_slow().gauges == {} and backend.found == 2


class _NoNativeLibrary(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import amdsmi`` as on a machine with the package but no libamd_smi.so: the real
    wrapper prints two lines and then fails with KeyError."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name == "amdsmi":
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        print("Could not load libamd_smi.so")
        print("Unable to find libamd_smi.so library try installing amd-smi-lib from your "
              "package manager")
        raise KeyError("libamd_smi.so")


def test_sysfs_when_import_raises_key_error(amd_host: Path, backends: Any,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoNativeLibrary(), *sys.meta_path])
    backend = backends(first_index=3)
    note = backend.info()["amdsmi"]
    assert "KeyError: 'libamd_smi.so'" in note and "amd-smi-lib" in note
    assert "\n" not in note
    assert_sysfs_cards(backend, first=3)
    assert capsys.readouterr().out == ""  # the wrapper's prints stay out of stdout


@pytest.mark.parametrize(("status", "words"), [
    ("DRIVER_NOT_LOADED", "amdgpu driver not loaded"),
    ("NO_PERM", "render and video groups"),
    ("INIT_ERROR", "AMDSMI_STATUS_INIT_ERROR"),
])
def test_sysfs_when_amdsmi_init_fails(fake_amdsmi_factory: Factory, backends: Any,
                                      status: str, words: str) -> None:
    fake = fake_amdsmi_factory(init_error=status)
    backend = backends()
    assert words in backend.info()["amdsmi"]
    assert_sysfs_cards(backend)
    assert not fake.initialized and fake.count("amdsmi_get_processor_handles") == 0


def test_sysfs_when_amdsmi_finds_no_gpu(fake_amdsmi_factory: Factory, backends: Any) -> None:
    fake = fake_amdsmi_factory(gpus=0)
    backend = backends()
    assert backend.info()["amdsmi"] == "amdsmi found no AMD GPU"
    assert not fake.initialized  # shut down again before falling back
    assert_sysfs_cards(backend)


@pytest.mark.parametrize("initstate", [None, "going\n", ""])
def test_no_devices_without_a_live_amdgpu(amd_host: Path, fake_amdsmi: FakeAmdSmi,
                                          initstate: str | None) -> None:
    path = amd_host / "sys/module/amdgpu/initstate"
    if initstate is None:
        path.unlink()
    else:
        path.write_text(initstate)
    with pytest.raises(NoDevices):
        AmdBackend.open()
    assert fake_amdsmi.count("amdsmi_init") == 0  # nothing loaded on a non-AMD machine
    found, notes = open_backends(only=["amd"])
    assert found == [] and notes == []  # silent: no note for hardware that is not there


def test_no_amd_card_in_sysfs(no_amdsmi: Path) -> None:
    for card in ("card1", "card2"):
        shutil.rmtree(no_amdsmi / "sys/class/drm" / card)
    with pytest.raises(AcceleratorUnavailable, match="no amdgpu card") as info:
        AmdBackend.open()
    assert info.value.found == 0 and "pip install tracklab-jupyter[amd]" in str(info.value)


def test_sysfs_card_removed_is_lost_once(no_amdsmi: Path, backends: Any) -> None:
    backend = backends()
    shutil.rmtree(no_amdsmi / "sys/class/drm/card2")
    slow = backend.read_slow()
    (event,) = slow.events
    assert event["kind"] == "gpu_lost" and event["data"]["gpu"] == 1
    assert event["data"]["uuid"] == "GPU-0123456789abcdef"
    assert [d["state"] for d in backend.info()["devices"]] == ["ok", "lost"]
    later = [backend.read(), backend.read_slow(), backend.read()]
    assert [e for r in later for e in r.events] == []
    assert gpu_metrics(later[0].gauges, 0) == SYSFS_CARD1
    assert not any(k.startswith("gpu.1.") for r in later for k in r.gauges)


def kernel_errors(monkeypatch: pytest.MonkeyPatch, path: Path, errors: list[int]) -> None:
    """pread on ``path``'s descriptor fails with these errnos, in turn (then reads again):
    the kernel's answers we cannot make a regular file give."""
    real_pread, real_open = os.pread, os.open
    fds: set[int] = set()

    def open_(p: Any, flags: int, *args: Any) -> int:
        fd = real_open(p, flags, *args)
        if Path(p) == path:
            fds.add(fd)
        return fd

    def pread(fd: int, size: int, offset: int) -> bytes:
        if fd in fds and errors:
            code = errors.pop(0)
            raise OSError(code, os.strerror(code))
        return real_pread(fd, size, offset)

    monkeypatch.setattr(amd_sysfs.os, "open", open_)
    monkeypatch.setattr(amd_sysfs.os, "pread", pread)


def test_sysfs_enodev_is_lost(no_amdsmi: Path, backends: Any,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    kernel_errors(monkeypatch, no_amdsmi / "sys/class/drm/card1/device/gpu_busy_percent",
                  [errno.ENODEV])
    backend = backends()
    reading = backend.read()
    assert [(e["kind"], e["data"]["gpu"]) for e in reading.events] == [("gpu_lost", 0)]
    assert gpu_metrics(reading.gauges, 0) == {}  # even fields read before the loss
    assert gpu_metrics(reading.gauges, 1) == SYSFS_CARD2


def test_sysfs_field_errors(no_amdsmi: Path, backends: Any,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    dev = no_amdsmi / "sys/class/drm/card1/device"
    kernel_errors(monkeypatch, dev / "hwmon/hwmon3/power1_average", [errno.EOPNOTSUPP])
    backend = backends()
    for _ in range(3):  # unsupported: off for good, the other fields go on
        g = gpu_metrics(backend.read().gauges, 0)
        assert "power_w" not in g and g["temp_c"] == 53
    assert backend.info()["devices"][0]["unsupported"] == ["power_w"]
    kernel_errors(monkeypatch, dev / "gpu_busy_percent", [errno.EBUSY])
    busy = backends()  # a GPU in reset answers EBUSY: no value now, asked again
    assert "util_pct" not in gpu_metrics(busy.read().gauges, 0)
    assert gpu_metrics(busy.read().gauges, 0)["util_pct"] == 3
    assert busy.read().events == []


# -- amdsmi: failure isolation ----------------------------------------------------------------
def test_unsupported_field_is_marked_off_and_not_asked_again(fake_amdsmi_factory: Factory,
                                                             backends: Any) -> None:
    fake = fake_amdsmi_factory(gpus=2)
    fake.inject("amdsmi_get_power_info", gpu=0)  # AMDSMI_STATUS_NOT_SUPPORTED
    backend = backends()
    for _ in range(4):
        gauges = backend.read().gauges
        assert "gpu.0.power_w" not in gauges and gauges["gpu.1.power_w"] == 91
        assert gauges["gpu.0.temp_c"] == 43 and gauges["gpu.0.sm_clock_mhz"] == 800
    assert fake.count("amdsmi_get_power_info", gpu=0) == 1
    assert fake.count("amdsmi_get_power_info", gpu=1) == 4
    # Not recorded on the MI250, so NOT_SUPPORTED once, then never asked again.
    assert fake.count("amdsmi_get_gpu_vram_usage", gpu=1) == 1
    assert "power" in backend.info()["devices"][0]["unsupported"]


@pytest.mark.parametrize("error", ["BUSY", "IO", FakeAmdSmi().AmdSmiRetryException()])
def test_transient_error_means_no_value_now(fake_amdsmi: FakeAmdSmi, backends: Any,
                                            error: Any) -> None:
    backend = backends()
    fake_amdsmi.inject("amdsmi_get_temp_metric", error=error, times=1)
    assert "gpu.0.temp_c" not in backend.read().gauges
    assert backend.read().gauges["gpu.0.temp_c"] == 43  # asked again, and back
    assert backend.read().events == []


@pytest.mark.parametrize("error", [TypeError("binding mismatch"), "NO_PERM", "INVAL"])
def test_other_permanent_errors(fake_amdsmi: FakeAmdSmi, backends: Any, error: Any) -> None:
    fake_amdsmi.inject("amdsmi_get_clock_info", error=error)
    backend = backends()
    for _ in range(3):
        gauges = backend.read().gauges
        assert "gpu.0.sm_clock_mhz" not in gauges and gauges["gpu.0.power_w"] == 91
    assert fake_amdsmi.count("amdsmi_get_clock_info") == 2  # GFX and MEM, once each


def test_a_function_missing_from_the_binding(fake_amdsmi: FakeAmdSmi, backends: Any) -> None:
    fake_amdsmi.remove("amdsmi_get_gpu_activity")  # an older amdsmi
    gauges = backends().read().gauges
    assert "gpu.0.util_pct" not in gauges and gauges["gpu.0.temp_c"] == 43


@pytest.mark.parametrize("how", ["lose", "NOT_FOUND", "DRIVER_NOT_LOADED"])
def test_lost_gpu_stops_alone(fake_amdsmi_factory: Factory, backends: Any, how: str) -> None:
    fake = fake_amdsmi_factory(gpus=3)
    backend = backends()
    if how == "lose":
        fake.lose(1)
    else:
        fake.inject("amdsmi_get_temp_metric", gpu=1, error=how)
    reading = backend.read()
    assert gpu_metrics(reading.gauges, 1) == {}  # even fields read before the loss
    assert gpu_metrics(reading.gauges, 0)["power_w"] == 91
    assert gpu_metrics(reading.gauges, 2)["power_w"] == 91
    (event,) = reading.events
    assert event["kind"] == "gpu_lost" and set(event) == {"kind", "message", "data"}
    assert event["data"] | {"gpu": 1, "vendor": "amd",
                            "uuid": backend.info()["devices"][1]["uuid"]} == event["data"]
    assert "GPU 1" in event["message"]
    assert [d["state"] for d in backend.info()["devices"]] == ["ok", "lost", "ok"]
    calls_on_1 = sum(n for (_, gpu), n in fake.gpu_calls.items() if gpu == 1)
    later = [backend.read(), backend.read_slow(), backend.read()]
    assert [e for r in later for e in r.events] == []
    assert sum(n for (_, gpu), n in fake.gpu_calls.items() if gpu == 1) == calls_on_1
    assert not any(k.startswith("gpu.1.") for r in later for k in r.gauges)
    assert later[2].gauges["gpu.2.temp_c"] == 43


def test_lost_gpu_seen_by_the_slow_path_is_reported_once(fake_amdsmi_factory: Factory,
                                                         backends: Any) -> None:
    fake = fake_amdsmi_factory(gpus=2)
    backend = backends()
    fake.lose(0)
    slow = backend.read_slow()
    assert [e["kind"] for e in slow.events] == ["gpu_lost"]
    assert set(gpu_metrics(slow.gauges, 1)) == {"energy_j"}
    fast = backend.read()
    assert fast.events == [] and not any(k.startswith("gpu.0.") for k in fast.gauges)


def test_loss_seen_by_both_paths_at_once_is_one_event(fake_amdsmi_factory: Factory,
                                                      backends: Any) -> None:
    """read() and read_slow() run on different threads; both may meet the loss."""
    fake = fake_amdsmi_factory(gpus=2, mode="r9700")
    backend = backends()
    both_inside = threading.Barrier(2, timeout=10)

    def gone_on_gpu_1(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(handle: Any, *args: Any) -> Any:
            if handle.gpu == 1:
                both_inside.wait()  # the two paths are in a call on GPU 1 together
                raise fake.AmdSmiLibraryException(fake.amdsmi_wrapper.AMDSMI_STATUS_NOT_FOUND)
            return fn(handle, *args)
        return call

    for name in ("amdsmi_get_gpu_activity", "amdsmi_get_gpu_total_ecc_count"):
        setattr(fake, name, gone_on_gpu_1(getattr(fake, name)))
    readings: list[Any] = []
    threads = [threading.Thread(target=lambda f=f: readings.append(f()))
               for f in (backend.read, backend.read_slow)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    events = [e for r in readings for e in r.events] + backend.read().events
    assert [(e["kind"], e["data"]["gpu"]) for e in events] == [("gpu_lost", 1)]


def test_gpu_lost_before_opening(fake_amdsmi_factory: Factory, backends: Any) -> None:
    fake = fake_amdsmi_factory(gpus=2)
    fake.lose(1)
    backend = backends()
    assert [d["state"] for d in backend.info()["devices"]] == ["ok", "lost"]
    assert [(e["kind"], e["data"]["gpu"]) for e in backend.read().events] == [("gpu_lost", 1)]
    assert backend.read().events == []


def test_process_list_errors_never_lose_the_gpu(fake_amdsmi_factory: Factory,
                                                backends: Any) -> None:
    fake = fake_amdsmi_factory(mode="r9700")
    fake.inject("amdsmi_get_gpu_process_list", error="NOT_FOUND", times=1)
    backend = backends()
    first = backend.read_slow()
    assert first.events == [] and "gpu.0.procs" not in first.gauges
    assert backend.read_slow().gauges["gpu.0.procs"] == 4


def test_slow_calls_are_never_made_by_read(fake_amdsmi_factory: Factory,
                                           backends: Any) -> None:
    fake = fake_amdsmi_factory(gpus=2, mode="r9700")
    backend = backends()
    fake.reset_counts()
    for _ in range(5):
        backend.read()
    assert {n: fake.count(n) for n in SLOW_CALLS} == dict.fromkeys(SLOW_CALLS, 0)
    backend.read_slow()
    assert fake.count("amdsmi_get_gpu_process_list") == 2
    assert fake.count("amdsmi_get_gpu_asic_info") == 0  # static: read once at open


def test_amdsmi_initialised_once_and_shut_down_once(fake_amdsmi: FakeAmdSmi) -> None:
    backend = AmdBackend.open()
    for _ in range(3):
        backend.read()
    backend.read_slow()
    assert fake_amdsmi.count("amdsmi_init") == 1 and fake_amdsmi.count("amdsmi_shut_down") == 0
    backend.close()
    backend.close()
    assert fake_amdsmi.count("amdsmi_shut_down") == 1 and not fake_amdsmi.initialized
    assert backend.read().gauges == {} and backend.read_slow().gauges == {}


# -- selection ----------------------------------------------------------------------------------
def indices(backend: AmdBackend) -> list[int]:
    return [d["index"] for d in backend.info()["devices"]]


@pytest.mark.parametrize(("rocr", "hip", "expected"), [
    ("3,1", None, [3, 5]),
    (None, "0,2", [2, 4]),
    ("3,1", "1", [3]),  # HIP numbers what ROCR left, in ROCR's order: its 1 is physical 1
    ("3,1", "0", [5]),
    ("2,-1,0", None, [4]),  # the list ends at the first entry naming nothing
    ("GPU-30aef1a67d137942", None, [3]),  # by the runtime's UUID
])
def test_rocr_and_hip_visible_devices(fake_amdsmi_factory: Factory, backends: Any,
                                      monkeypatch: pytest.MonkeyPatch, rocr: str | None,
                                      hip: str | None, expected: list[int]) -> None:
    fake_amdsmi_factory(gpus=4)
    for name, value in (("ROCR_VISIBLE_DEVICES", rocr), ("HIP_VISIBLE_DEVICES", hip)):
        if value is not None:
            monkeypatch.setenv(name, value)
    backend = backends(first_index=2)
    assert indices(backend) == expected
    assert backend.found == 4
    assert {int(k.split(".")[1]) for k in backend.read().gauges} == set(expected)


@pytest.mark.parametrize("value", ["", "-1"])
def test_visibility_hiding_every_gpu(fake_amdsmi_factory: Factory, backends: Any,
                                     monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    fake = fake_amdsmi_factory(gpus=3)
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", value)
    with pytest.raises(AcceleratorUnavailable, match="HIP_VISIBLE_DEVICES") as info:
        backends(first_index=2)
    assert info.value.found == 3  # the next vendor's GPUs keep their numbers
    assert not fake.initialized


def test_explicit_selection_by_index(fake_amdsmi_factory: Factory, backends: Any,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_amdsmi_factory(gpus=4)
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "0")  # an explicit selection wins
    assert indices(backends(["5", "gpu.3"], first_index=2)) == [3, 5]
    with pytest.raises(AcceleratorUnavailable, match="no AMD GPU selected") as info:
        backends(["0", "1", "npu.2"], first_index=2)  # NVIDIA's GPUs, an NPU
    assert info.value.found == 4


def test_explicit_selection_by_uuid_and_serial(fake_amdsmi_factory: Factory,
                                               backends: Any) -> None:
    fake = fake_amdsmi_factory(gpus=4)
    serial = fake.card(2).asic_serial  # "0x422002B77D137942"
    uuid = "GPU-" + serial[2:].lower()
    assert indices(backends([uuid], first_index=2)) == [4]
    assert indices(backends([uuid[4:12].upper()], first_index=2)) == [4]  # unique prefix
    assert indices(backends([serial], first_index=2)) == [4]
    assert indices(backends([fake.card(3).board_serial], first_index=2)) == [5]
    assert indices(backends(["0000:2a:00.0"], first_index=2)) == [3]  # PCI address
    with pytest.raises(AcceleratorUnavailable):
        backends(["GPU-"], first_index=2)  # ambiguous: every GPU


def test_numbering_after_nvidia_through_the_registry(fake_nvml_factory: Callable[..., Any],
                                                     fake_amdsmi_factory: Factory) -> None:
    fake_nvml_factory(gpus=2)
    fake_amdsmi_factory(gpus=2)
    for selection, amd_indices in ((None, [2, 3]), (["3"], [3])):
        found, notes = open_backends(selection, only=["nvidia", "amd"])
        try:
            assert [n for n in notes if not n.startswith("nvidia:")] == []
            by_vendor = {b.vendor: [d["index"] for d in b.devices()] for b in found}
            assert by_vendor.get("amd") == amd_indices
        finally:
            for backend in found:
                backend.close()


# -- throttle status ------------------------------------------------------------------------
def test_throttle_status_reaches_events(fake_amdsmi_factory: Factory, backends: Any) -> None:
    fake = fake_amdsmi_factory(gpus=2)
    fake.set_violation(0)  # MI300-style counters, nothing active
    backend = backends()
    watcher = HardwareWatcher()
    watcher.set_info({"amd": backend.info()})
    calm = backend.read_slow().gauges
    assert calm["gpu.0.throttle_reasons"] == 0 and "gpu.1.throttle_reasons" not in calm
    assert watcher.check(calm) == []
    fake.set_violation(0, active_ppt_pwr=True, active_hbm_thrm=True)
    hot = backend.read_slow().gauges
    assert hot["gpu.0.throttle_reasons"] == 0x1 | 0x4
    (event,) = watcher.check(hot)
    assert event["kind"] == "throttle_start"
    assert event["data"]["reasons"] == ["power limit", "temperature limit"]
    fake.set_violation(0)
    assert [e["kind"] for e in watcher.check(backend.read_slow().gauges)] == ["throttle_stop"]


def test_throttle_status_folded_from_the_64_bit_mask(fake_amdsmi: FakeAmdSmi,
                                                     backends: Any) -> None:
    # SMU_THROTTLER_PPT0_BIT (0) and SMU_THROTTLER_TEMP_HOTSPOT_BIT (33), as the kernel
    # lays out indep_throttle_status (throttle.py).
    fake_amdsmi.set_metrics(0, indep_throttle_status=(1 << 0) | (1 << 33))
    backend = backends()
    assert backend.read_slow().gauges["gpu.0.throttle_reasons"] == 0x1 | 0x4
    assert fake_amdsmi.count("amdsmi_get_gpu_metrics_info") == 1


def test_throttle_bool_from_the_binding_is_no_value(fake_amdsmi: FakeAmdSmi,
                                                    backends: Any) -> None:
    # amdsmi 6.1 and 7.0.2 return indep_throttle_status as bool(status): no reason in it.
    fake_amdsmi.set_metrics(0, indep_throttle_status=True)
    backend = backends()
    for _ in range(3):
        assert "gpu.0.throttle_reasons" not in backend.read_slow().gauges
    assert fake_amdsmi.count("amdsmi_get_gpu_metrics_info") == 1  # costly: not asked again


# -- the subprocess shim ----------------------------------------------------------------------
def run_snapshot(**env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                            "HIP_VISIBLE_DEVICES")}
    environ["PYTHONPATH"] = os.pathsep.join([str(SHIM), environ.get("PYTHONPATH", "")])
    environ.update(TRACKLAB_FAKE_NVML_GPUS="0", **env)
    proc = subprocess.run([sys.executable, "-m", "tracklab_jupyter", "snapshot", "--json"],
                          capture_output=True, text=True, env=environ, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # stdout must be JSON and nothing else


def test_shim_lists_two_amd_gpus_in_a_snapshot() -> None:
    snap = run_snapshot(**shim_env(gpus=2))
    devices = snap["info"]["amd"]["devices"]
    assert [(d["index"], d["vendor"], d["kind"]) for d in devices] == [
        (0, "amd", "gpu"), (1, "amd", "gpu")]
    assert snap["info"]["amd"]["source"] == "amdsmi"
    assert len({d["uuid"] for d in devices}) == 2
    assert snap["metrics"]["gpu.1.power_w"] == 91
    assert "nvidia" not in snap["info"]


def test_shim_without_the_native_library_falls_back_to_sysfs() -> None:
    snap = run_snapshot(**shim_env(gpus=2), TRACKLAB_FAKE_AMD_NO_LIBRARY="1")
    amd = snap["info"]["amd"]
    assert amd["source"] == "sysfs" and "KeyError" in amd["amdsmi"]
    assert snap["metrics"]["gpu.0.power_w"] == 68 and snap["metrics"]["gpu.1.util_pct"] == 4
