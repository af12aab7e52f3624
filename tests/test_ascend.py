"""The Ascend NPU backend: the npu-smi parser on real recordings, the npu-smi fallback through
a fake ``npu-smi`` replaying them, and the DCMI path through a fake ``libdcmi.so`` (C, built at
test time) answering with the same recordings' values.

Recordings (``tests/fixtures/ascend``, see its README): ``910b3-x8``, an Atlas A2 box with
8 Ascend 910B3 running vLLM (npu-smi 25.5.1); ``a3-x8``, an Atlas A3 box with 8 NPUs of two
chips each (npu-smi 25.3.rc1). Expected values are spelled out where they matter, so a
parser and a fake drifting together still fail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import backend_opener, device_metrics

from tracklab_jupyter.accelerators import ascend_smi
from tracklab_jupyter.accelerators.ascend import AscendBackend, davinci_devices
from tracklab_jupyter.accelerators.base import AcceleratorUnavailable, NoDevices
from tracklab_jupyter.accelerators.registry import open_backends
from tracklab_jupyter.metrics.catalogue import spec_for
from tracklab_jupyter.sampler.hardware_events import HardwareWatcher

try:
    from .conftest_ascend import ASCEND_FIXTURES, FakeDcmi, FakeNpuSmi, make_host
except ImportError:
    from conftest_ascend import ASCEND_FIXTURES, FakeDcmi, FakeNpuSmi, make_host

MIB = 1024 * 1024
B3 = ASCEND_FIXTURES / "910b3-x8"
A3 = ASCEND_FIXTURES / "a3-x8"
NOT_SUPPORT, IN_CONTAINER, TIME_OUT = -8255, -8013, -8006
# npu-smi 25.5.1 on the 910B3 box, NPU by NPU: (power W, temp °C, HBM used MiB, pid, MiB).
B3_ROWS = [(99.4, 34, 59189, 3233241, 55844), (91.1, 32, 59184, 3233701, 55840),
           (86.9, 33, 59186, 3234962, 55842), (93.2, 35, 59186, 3235553, 55842),
           (88.7, 37, 59932, 3232170, 56588), (91.5, 37, 59944, 3231929, 56600),
           (94.9, 37, 59021, 2895155, 55671), (90.1, 39, 19319, 1886762, 15975)]
B3_BUS = ["0000:C1:00.0", "0000:C2:00.0", "0000:81:00.0", "0000:82:00.0", "0000:01:00.0",
          "0000:02:00.0", "0000:41:00.0", "0000:42:00.0"]

DcmiFactory = Callable[..., FakeDcmi]
SmiFactory = Callable[..., FakeNpuSmi]


backends = backend_opener(AscendBackend)


def npu(gauges: dict[str, float], index: int) -> dict[str, float]:
    return device_metrics(gauges, "npu", index)


def everything(backend: AscendBackend) -> dict[str, float]:
    """What the sampler's samples hold: the fast values, then the slow ones over them."""
    gauges = dict(backend.read().gauges)
    gauges.update(backend.read_slow().gauges)
    return gauges


# -- the npu-smi parser on real tables -------------------------------------------------------------
def test_parser_on_the_910b3_table() -> None:
    info = ascend_smi.parse_info((B3 / "npu-smi-info.txt").read_text())
    assert info.version == "25.5.1"
    assert [(c.npu_id, c.chip_id) for c in info.chips] == [(n, 0) for n in range(8)]
    for chip, (power, temp, hbm, _pid, _mem), bus in zip(info.chips, B3_ROWS, B3_BUS,
                                                         strict=True):
        assert (chip.power_w, chip.temp_c, chip.aicore_pct) == (power, temp, 0)
        assert (chip.hbm_used_mib, chip.hbm_total_mib) == (hbm, 65536)  # "59189/ 65536"
        assert chip.used_total_mib == (hbm, 65536)  # HBM, not the empty "0 / 0" column
        assert (chip.health, chip.health_word, chip.bus_id) == (0, "OK", bus)
        assert chip.name == "Ascend 910B3" and chip.second_id is None
    assert info.process_table
    assert [(p.npu_id, p.chip_id, p.pid, p.name, p.mem_mib) for p in info.processes][::7] == [
        (0, 0, 3233241, "VLLMWorker_TP", 55844), (7, 0, 1886762, "VLLMEngineCor", 15975)]


def test_parser_on_the_a3_table_with_two_chips_per_npu() -> None:
    info = ascend_smi.parse_info((A3 / "npu-smi-info.txt").read_text())
    assert info.version == "25.3.rc1"
    assert len(info.chips) == 16
    assert [(c.npu_id, c.chip_id, c.second_id) for c in info.chips[:4]] == [
        (0, 0, 0), (0, 1, 1), (1, 0, 2), (1, 1, 3)]
    first, second = info.chips[0], info.chips[1]
    assert second.second_label == "Phy-ID" and first.name == "Ascend 910"
    assert (first.power_w, first.temp_c, first.aicore_pct) == (199.1, 32, 8)
    assert second.power_w is None  # npu-smi prints "-" for the second chip of a card
    assert (second.temp_c, second.aicore_pct, second.hbm_used_mib) == (30, 7, 52518)
    assert info.chips[4].used_total_mib == (3145, 65536)  # "3145 / 65536"
    # Seven processes with empty names; pid 4071418 holds memory on both chips of NPU 0.
    assert [(p.npu_id, p.chip_id, p.pid, p.mem_mib) for p in info.processes] == [
        (0, 0, 4071417, 47881), (0, 0, 4071418, 112), (0, 0, 4071419, 112),
        (0, 0, 4071420, 112), (0, 1, 4071418, 49681), (1, 0, 4071419, 48681),
        (1, 1, 4071420, 49701)]
    assert {p.name for p in info.processes} == {""}


def test_logical_ids_from_npu_smi_info_m() -> None:
    ids = ascend_smi.parse_logic_ids((B3 / "npu-smi-info-m.txt").read_text())
    assert ids == {(n, 0): n for n in range(8)}  # the MCU rows (logical id "-") skipped


@pytest.mark.parametrize(("word", "code"), [("OK", 0), ("Warning", 1), ("Alarm", 2),
                                            ("Critical", 3), ("critical", 3), ("NA", None),
                                            ("", None)])
def test_health_words(word: str, code: int | None) -> None:
    assert ascend_smi.health_code(word) == code
    # The same word in a recorded row: NPU 3's health cell replaced.
    table = (B3 / "npu-smi-info.txt").read_text().replace(
        "| 3     910B3               | OK            |",
        f"| 3     910B3               | {word:<13} |")
    chip = ascend_smi.parse_info(table).chips[3]
    assert chip.health == code and chip.power_w == 93.2


@pytest.mark.parametrize("text", ["", "Error: the command is not supported\n",
                                  (B3 / "npu-smi-info-m.txt").read_text()])
def test_parser_rejects_output_without_chips(text: str) -> None:
    with pytest.raises(ascend_smi.SmiError):
        ascend_smi.parse_info(text)


def test_chip_names_are_spelled_one_way() -> None:
    assert {ascend_smi.chip_name(t) for t in ("910B3", "Ascend 910B3", "ascend910B3")} == {
        "Ascend 910B3"}
    assert ascend_smi.chip_name("Ascend910") == "Ascend 910"


# -- the npu-smi fallback ----------------------------------------------------------------------
def test_npu_smi_backend_reads_only_on_the_slow_path(fake_npu_smi_factory: SmiFactory,
                                                     backends: Any) -> None:
    smi = fake_npu_smi_factory("910b3-x8")
    backend = backends()
    assert smi.calls() == ["info", "info -m"]  # once at open: the chips and logical ids
    assert backend.slow_interval >= 5
    for _ in range(5):
        assert backend.read().gauges == {}
    assert len(smi.calls()) == 2  # read() never runs npu-smi
    gauges = backend.read_slow().gauges
    assert smi.calls()[2:] == ["info"]
    for index, (power, temp, hbm, pid, mem) in enumerate(B3_ROWS):
        g = npu(gauges, index)
        assert g == {
            "health": 0, "util_pct": 0, "power_w": power, "temp_c": temp,
            "mem_used_bytes": hbm * MIB, "mem_total_bytes": 65536 * MIB,
            "mem_pct": pytest.approx(hbm / 65536 * 100), "procs": 1,
            f"proc.{pid}.mem_used_bytes": mem * MIB}
    info = backend.info()
    assert (info["source"], info["driver_version"]) == ("npu-smi", "25.5.1")
    assert info["devices"][7] == info["devices"][7] | {
        "index": 7, "kind": "npu", "vendor": "huawei", "name": "Ascend 910B3", "npu_id": 7,
        "chip_id": 0, "logic_id": 7, "pci_bus_id": "0000:42:00.0",
        "mem_total_bytes": 65536 * MIB, "state": "ok"}


def test_npu_smi_backend_on_the_a3_box(fake_npu_smi_factory: SmiFactory, backends: Any) -> None:
    smi = fake_npu_smi_factory("a3-x8")  # no `npu-smi info -m` recorded: table order
    backend = backends()
    devices = backend.info()["devices"]
    assert [(d["index"], d["npu_id"], d["chip_id"], d["phy_id"]) for d in devices[:3]] == [
        (0, 0, 0, 0), (1, 0, 1, 1), (2, 1, 0, 2)]
    assert "logic_id" not in devices[0]
    gauges = backend.read_slow().gauges
    assert npu(gauges, 0)["power_w"] == 199.1 and "power_w" not in npu(gauges, 1)
    assert npu(gauges, 1)["util_pct"] == 7
    assert npu(gauges, 0)["procs"] == 4 and npu(gauges, 1)["procs"] == 1
    assert gauges["npu.0.proc.4071418.mem_used_bytes"] == 112 * MIB
    assert gauges["npu.1.proc.4071418.mem_used_bytes"] == 49681 * MIB
    assert npu(gauges, 4)["procs"] == 0  # "No running processes found in NPU 2"
    assert len(smi.calls()) == 3


@pytest.mark.parametrize("mode", ["fail", "garbage", "hang"])
def test_a_failing_npu_smi_gives_no_values_and_one_warning(
        fake_npu_smi_factory: SmiFactory, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    smi = fake_npu_smi_factory("910b3-x8")
    backend = AscendBackend.open(smi_timeout=0.5)
    assert npu(backend.read_slow().gauges, 0)["power_w"] == 99.4
    smi.mode(mode)
    caplog.set_level(logging.DEBUG, logger="tracklab_jupyter.accelerators.ascend")
    start = time.monotonic()
    for _ in range(3):
        assert backend.read_slow().gauges == {}
    assert time.monotonic() - start < 3 * 0.5 + 3  # bounded by the timeout, hang or not
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "npu-smi" in warnings[0].getMessage()
    smi.mode("ok")
    assert npu(backend.read_slow().gauges, 0)["power_w"] == 99.4  # and back
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_no_process_table_means_no_process_count(fake_npu_smi_factory: SmiFactory,
                                                 backends: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An npu-smi that prints no process table (some products and versions): the process
    count is unknown, so absent, not 0."""
    fake_npu_smi_factory("910b3-x8")
    table = (B3 / "npu-smi-info.txt").read_text()
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "npu-smi-info.txt").write_text(table[:table.index("| NPU     Chip ")])
    monkeypatch.setenv("TRACKLAB_FAKE_NPU_SMI_DIR", str(cut))
    g = npu(backends().read_slow().gauges, 0)
    assert g["power_w"] == 99.4 and not any(k.startswith("proc") for k in g)


def test_npu_smi_chip_that_leaves_the_table_is_lost_once(fake_npu_smi_factory: SmiFactory,
                                                         backends: Any) -> None:
    smi = fake_npu_smi_factory("a3-x8")
    backend = backends()
    smi.drop(1)  # NPU 1: chips 2 and 3
    reading = backend.read_slow()
    assert sorted(e["data"]["npu"] for e in reading.events) == [2, 3]
    assert {e["kind"] for e in reading.events} == {"gpu_lost"}
    assert not npu(reading.gauges, 2) and not npu(reading.gauges, 3)
    assert npu(reading.gauges, 4)["power_w"] == 165.4
    smi.drop(None)
    again = backend.read_slow()
    assert again.events == [] and not npu(again.gauges, 2)
    assert [d["state"] for d in backend.info()["devices"][1:5]] == ["ok", "lost", "lost", "ok"]


# -- the DCMI path, through the fake library ----------------------------------------------------
@pytest.mark.parametrize("recording", ["910b3-x8", "a3-x8"])
def test_dcmi_gives_what_npu_smi_printed(recording: str, fake_dcmi_factory: DcmiFactory,
                                         fake_npu_smi_factory: SmiFactory,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The two sources agree on every value both offer (ctypes structs, units, numbering)."""
    library = fake_dcmi_factory(recording).path
    fake_npu_smi_factory(recording)
    from_smi = AscendBackend.open()
    smi_gauges = from_smi.read_slow().gauges
    monkeypatch.setenv("TRACKLAB_DCMI_LIBRARY", str(library))
    from_dcmi = AscendBackend.open()
    assert from_dcmi.info()["source"] == "dcmi"
    dcmi_gauges = everything(from_dcmi)
    extra = {k for k in dcmi_gauges if k.endswith(("aicpu_util_pct", "hbm_bw_util_pct"))}
    assert {k: dcmi_gauges[k] for k in dcmi_gauges.keys() - extra} == smi_gauges
    drop = {"source", "library", "npu_smi"}
    smi_info = {k: v for k, v in from_smi.info().items() if k not in drop}
    dcmi_info = {k: v for k, v in from_dcmi.info().items() if k not in drop}
    for dev in dcmi_info["devices"]:  # only DCMI reads the serial; only npu-smi the Phy-ID
        dev.pop("serial", None)
        dev.pop("unsupported", None)
    for dev in smi_info["devices"]:
        dev.pop("phy_id", None)
        if recording == "a3-x8":  # no `npu-smi info -m` recorded; the fake numbers in order
            dev["logic_id"] = dev["index"]
    assert dcmi_info == smi_info


def test_dcmi_values_and_units(fake_dcmi_factory: DcmiFactory, backends: Any) -> None:
    fake_dcmi_factory("910b3-x8")
    backend = backends()
    fast = backend.read().gauges
    g = npu(fast, 0)
    assert g == {"health": 0, "util_pct": 0, "power_w": 99.4, "temp_c": 34,
                 "mem_used_bytes": 59189 * MIB, "mem_total_bytes": 65536 * MIB,
                 "mem_pct": pytest.approx(90.315, abs=1e-3)}
    slow = npu(backend.read_slow().gauges, 0)
    # AI CPU and HBM bandwidth were recorded (`npu-smi info -t usages -i 0`) for NPU 0 only.
    assert slow == {"aicpu_util_pct": 0, "hbm_bw_util_pct": 0, "procs": 1,
                    "proc.3233241.mem_used_bytes": 55844 * MIB}
    assert "aicpu_util_pct" not in npu(backend.read_slow().gauges, 1)
    info = backend.info()
    assert (info["source"], info["driver_version"]) == ("dcmi", "25.5.1")
    assert info["devices"][0] == info["devices"][0] | {
        "name": "Ascend 910B3", "serial": "1023C7991472", "pci_bus_id": "0000:C1:00.0",
        "logic_id": 0, "npu_id": 0, "chip_id": 0, "mem_total_bytes": 65536 * MIB}
    assert "serial" not in info["devices"][1]  # recorded for NPU 0 only


def test_slow_dcmi_calls_are_never_made_by_read(fake_dcmi_factory: DcmiFactory,
                                                backends: Any) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    backend = backends()
    fake.reset_counts()
    for _ in range(10):
        backend.read()
    assert fake.count("dcmi_get_device_resource_info") == 0
    assert fake.count("dcmi_get_device_utilization_rate") == 80  # AI Core only: 10 x 8
    assert fake.count("dcmi_get_device_chip_info") == 0  # static: read once at open
    assert fake.count("dcmi_get_device_power_info") == 80
    backend.read_slow()
    assert fake.count("dcmi_get_device_resource_info") == 8


def test_a_slow_fast_path_call_moves_to_the_slow_path(fake_dcmi_factory: DcmiFactory,
                                                      backends: Any) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    backend = backends()
    fake.set_delay("dcmi_get_device_power_info", 3000)  # 3 ms a call, every chip
    backend.read()  # 8 slow calls in a row
    assert backend.info()["slow_fields"] == ["power"]
    fake.reset_counts()
    fast = backend.read().gauges
    assert "npu.0.power_w" not in fast and fast["npu.0.temp_c"] == 34
    assert fake.count("dcmi_get_device_power_info") == 0
    assert backend.read_slow().gauges["npu.0.power_w"] == 99.4
    assert fake.count("dcmi_get_device_power_info") == 8


def test_an_occasionally_slow_call_stays_on_the_fast_path(fake_dcmi_factory: DcmiFactory,
                                                          backends: Any) -> None:
    """A busy host preempts the odd call: only a field slow call after call is moved."""
    fake = fake_dcmi_factory("910b3-x8")
    backend = backends()
    fake.set_delay("dcmi_get_device_power_info", 3000, card=3)  # one chip in eight
    for _ in range(5):
        assert backend.read().gauges["npu.3.power_w"] == 93.2
    assert "slow_fields" not in backend.info()


# -- failures: per field, per chip ---------------------------------------------------------------
@pytest.mark.parametrize("code", [NOT_SUPPORT, IN_CONTAINER])
def test_not_supported_field_is_absent_and_not_asked_again(
        fake_dcmi_factory: DcmiFactory, backends: Any, code: int) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    fake.set_error("dcmi_get_device_power_info", card=2, dev=0, code=code)
    backend = backends()
    for _ in range(4):
        gauges = backend.read().gauges
        assert "npu.2.power_w" not in gauges
        assert gauges["npu.2.temp_c"] == 33 and gauges["npu.1.power_w"] == 91.1
    assert fake.count("dcmi_get_device_power_info", card=2) == 1
    assert fake.count("dcmi_get_device_power_info", card=1) == 4
    assert backend.info()["devices"][2]["unsupported"] == ["power"]


def test_a3_second_chip_power_is_absent_not_zero(fake_dcmi_factory: DcmiFactory,
                                                 backends: Any) -> None:
    fake = fake_dcmi_factory("a3-x8")
    backend = backends()
    for _ in range(3):
        gauges = backend.read().gauges
    assert gauges["npu.2.power_w"] == 200.3 and "npu.3.power_w" not in gauges
    assert fake.count("dcmi_get_device_power_info", card=1, dev=1) == 1


def test_transient_error_means_no_value_now(fake_dcmi_factory: DcmiFactory,
                                            backends: Any) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    backend = backends()
    fake.set_error("dcmi_get_device_temperature", code=TIME_OUT)
    assert "npu.0.temp_c" not in backend.read().gauges
    fake.set_error("dcmi_get_device_temperature", code=0)
    assert backend.read().gauges["npu.0.temp_c"] == 34  # asked again, and back
    assert fake.count("dcmi_get_device_temperature", card=0) == 2


def test_a_library_without_some_functions(fake_dcmi_factory: DcmiFactory,
                                          backends: Any) -> None:
    """An older driver: no process list; the PCI bus id from the older call."""
    fake_dcmi_factory("910b3-x8", old_driver=True)
    backend = backends()
    gauges = everything(backend)
    assert not any(".proc" in k for k in gauges)
    assert gauges["npu.0.power_w"] == 99.4 and gauges["npu.0.aicpu_util_pct"] == 0
    dev = backend.info()["devices"][0]
    assert "procs" in dev["unsupported"] and dev["pci_bus_id"] == "0000:C1:00.0"


def test_pci_bus_id_from_the_older_call_when_v2_is_not_supported(
        fake_dcmi_factory: DcmiFactory, backends: Any) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    fake.set_error("dcmi_get_device_pcie_info_v2")
    devices = backends().info()["devices"]
    assert [d["pci_bus_id"] for d in devices] == B3_BUS
    assert fake.count("dcmi_get_device_pcie_info") == 8


def test_lost_chip_stops_alone(fake_dcmi_factory: DcmiFactory, backends: Any) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    backend = backends()
    fake.lose(1, 0)
    reading = backend.read()
    (event,) = reading.events
    assert set(event) == {"kind", "message", "data"} and event["kind"] == "gpu_lost"
    assert event["data"] | {"npu": 1, "device": "npu.1", "vendor": "huawei"} == event["data"]
    assert "NPU 1" in event["message"]
    assert not npu(reading.gauges, 1)  # not even fields read before the loss
    assert npu(reading.gauges, 0)["power_w"] == 99.4 and npu(reading.gauges, 2)["temp_c"] == 33
    assert [d["state"] for d in backend.info()["devices"][:3]] == ["ok", "lost", "ok"]
    calls = fake.count(card=1)
    later = [backend.read(), backend.read_slow(), backend.read()]
    assert [e for r in later for e in r.events] == []
    assert fake.count(card=1) == calls  # never asked again
    assert all(not npu(r.gauges, 1) for r in later)
    assert npu(later[1].gauges, 0)["procs"] == 1


def test_health_saying_absent_marks_the_chip_lost(fake_dcmi_factory: DcmiFactory,
                                                  backends: Any) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    backend = backends()
    fake.set_value(4, 0, "health", 0xFFFFFFFF)  # DCMI: "the device does not exist"
    (event,) = backend.read().events
    assert event["data"]["npu"] == 4
    assert backend.read().events == []


def test_chip_lost_before_opening(fake_dcmi_factory: DcmiFactory, backends: Any) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    fake.lose(7, 0)
    backend = backends()
    assert backend.info()["devices"][7]["state"] == "lost"
    assert [(e["kind"], e["data"]["npu"]) for e in backend.read().events] == [("gpu_lost", 7)]
    assert backends(["npu.0"]).read().events == []  # not selected: not our event


def test_health_change_is_an_event(fake_dcmi_factory: DcmiFactory, backends: Any) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    backend = backends()
    watcher = HardwareWatcher()
    watcher.set_info({"ascend": backend.info()})
    assert watcher.check(backend.read().gauges) == []
    fake.set_value(3, 0, "health", 1)  # DCMI: minor alarm, npu-smi's "Warning"
    (event,) = watcher.check(backend.read().gauges)
    assert event["kind"] == "health_changed"
    assert event["data"] | {"npu": 3, "health": "warning", "previous": "ok"} == event["data"]
    assert watcher.check(backend.read().gauges) == []


def test_metric_index_is_the_logical_id(fake_dcmi_factory: DcmiFactory,
                                        backends: Any) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    for card in range(8):  # logical ids in the reverse order of the cards
        fake.set_value(card, 0, "logic", 7 - card)
    devices = backends().info()["devices"]
    assert [(d["index"], d["npu_id"], d["logic_id"]) for d in devices][:2] == [(7, 0, 7),
                                                                              (6, 1, 6)]
    gauges = backends().read().gauges
    assert gauges["npu.7.power_w"] == 99.4 and gauges["npu.0.power_w"] == 90.1
    fake.set_value(1, 0, "logic", 7)  # two chips claim logical id 7: positions instead
    assert [d["index"] for d in backends().info()["devices"]] == list(range(8))


def test_a_process_listed_twice_on_a_chip_counts_once(fake_npu_smi_factory: SmiFactory,
                                                      backends: Any,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory is summed per pid and chip; ``procs`` counts distinct pids."""
    fake_npu_smi_factory("a3-x8")
    row = "| 0       0                 | 4071417       |                          | 47881"
    table = (A3 / "npu-smi-info.txt").read_text()
    line = next(x for x in table.splitlines() if x.startswith(row))
    doubled = tmp_path / "doubled"
    doubled.mkdir()
    (doubled / "npu-smi-info.txt").write_text(table.replace(line, f"{line}\n{line}"))
    monkeypatch.setenv("TRACKLAB_FAKE_NPU_SMI_DIR", str(doubled))
    g = npu(backends().read_slow().gauges, 0)
    assert g["proc.4071417.mem_used_bytes"] == 2 * 47881 * MIB and g["procs"] == 4


# -- selection ---------------------------------------------------------------------------------
def test_ascend_rt_visible_devices(fake_dcmi_factory: DcmiFactory, backends: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dcmi_factory("910b3-x8")
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "6,2")
    backend = backends()
    assert [d["index"] for d in backend.info()["devices"]] == [2, 6]
    assert {k.split(".")[1] for k in backend.read().gauges} == {"2", "6"}
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "1,-1,3")  # the list ends at "-1"
    assert [d["index"] for d in backends().info()["devices"]] == [1]
    monkeypatch.setenv("ASCEND_RT_VISIBLE_DEVICES", "")
    with pytest.raises(AcceleratorUnavailable, match="ASCEND_RT_VISIBLE_DEVICES"):
        backends()
    # An explicit selection wins over the variable.
    assert [d["index"] for d in backends(["npu.5"]).info()["devices"]] == [5]


def test_explicit_selection(fake_dcmi_factory: DcmiFactory, backends: Any) -> None:
    fake_dcmi_factory("910b3-x8")
    assert [d["index"] for d in backends("npu.1").info()["devices"]] == [1]
    assert [d["index"] for d in backends(["npu.3", "0000:41:00.0"]).info()["devices"]] == [3, 6]
    assert [d["index"] for d in backends("1023c79").info()["devices"]] == [0]  # serial prefix
    with pytest.raises(AcceleratorUnavailable, match="no Ascend NPU selected"):
        backends(["1", "gpu.0", "npu.9"])  # GPU selectors never name an NPU


def test_selection_through_npu_smi(fake_npu_smi_factory: SmiFactory, backends: Any) -> None:
    fake_npu_smi_factory("a3-x8")
    backend = backends(["npu.3", "0000:9D:00.0"])
    assert [(d["index"], d["npu_id"], d["chip_id"]) for d in backend.info()["devices"]] == [
        (0, 0, 0), (3, 1, 1)]
    assert {k.split(".")[1] for k in backend.read_slow().gauges} == {"0", "3"}


# -- every name in the catalogue -------------------------------------------------------------------
def test_every_metric_is_in_the_catalogue_for_huawei(fake_dcmi_factory: DcmiFactory,
                                                     fake_npu_smi_factory: SmiFactory,
                                                     backends: Any) -> None:
    fake_dcmi_factory("910b3-x8")  # AI CPU and HBM bandwidth recorded here
    names = set(everything(backends()))
    fake_npu_smi_factory("a3-x8")
    names |= set(everything(backends()))
    assert {n.split(".", 2)[2] for n in names if ".proc." not in n} >= {
        "util_pct", "aicpu_util_pct", "mem_used_bytes", "mem_total_bytes", "mem_pct",
        "hbm_bw_util_pct", "temp_c", "power_w", "health", "procs"}
    for name in names:
        spec = spec_for(name)
        assert spec is not None and "huawei" in spec.vendors, name


# -- detection and opening ------------------------------------------------------------------------
def test_no_davinci_devices_means_no_devices(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKLAB_HOST_ROOT", str(tmp_path))
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "davinci_manager").touch()  # the manager alone is no NPU
    assert davinci_devices() == []
    with pytest.raises(NoDevices):
        AscendBackend.open()
    found, notes = open_backends(only=["ascend"])
    assert found == [] and notes == []  # silent: no such hardware


def test_davinci_devices_under_the_host_root(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make_host(tmp_path, 3, monkeypatch)
    assert davinci_devices() == ["davinci0", "davinci1", "davinci2"]


def test_neither_dcmi_nor_npu_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_host(tmp_path, 1, monkeypatch)
    monkeypatch.setenv("TRACKLAB_DCMI_LIBRARY", str(tmp_path / "missing" / "libdcmi.so"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AcceleratorUnavailable) as info:
        AscendBackend.open()
    message = str(info.value)
    assert "\n" not in message and "install the Ascend NPU driver" in message
    assert "libdcmi.so not loadable" in message and "npu-smi not found" in message
    found, notes = open_backends(only=["ascend"])
    assert found == [] and notes == [f"ascend: {message}"]


def test_dcmi_init_failure_falls_back_to_npu_smi(fake_dcmi_factory: DcmiFactory,
                                                 fake_npu_smi_factory: SmiFactory,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    library = fake.path
    fake_npu_smi_factory("910b3-x8")
    monkeypatch.setenv("TRACKLAB_DCMI_LIBRARY", str(library))
    fake.set_init_error(-8020)  # resource occupied
    backend = AscendBackend.open()
    assert backend.info()["source"] == "npu-smi"
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AcceleratorUnavailable, match=r"resources occupied \(-8020\)"):
        AscendBackend.open()


def test_open_through_open_backends(fake_dcmi_factory: DcmiFactory) -> None:
    fake_dcmi_factory("a3-x8")
    found, notes = open_backends(["npu.1", "npu.15"], only=["ascend"])
    try:
        assert notes == [] and [b.vendor for b in found] == ["huawei"]
        assert [d["index"] for d in found[0].devices()] == [1, 15]
    finally:
        for backend in found:
            backend.close()


def test_closed_backend_reads_nothing(fake_dcmi_factory: DcmiFactory) -> None:
    fake = fake_dcmi_factory("910b3-x8")
    backend = AscendBackend.open()
    backend.close()
    backend.close()
    fake.reset_counts()
    assert backend.read().gauges == {} and backend.read_slow().gauges == {}
    assert fake.count() == 0
