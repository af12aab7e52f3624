"""The vendor-neutral layer over the accelerator backends: selection across vendors, the
registry's numbering and isolation, the host-wide devices view, and what every surface
derives from it (events, per-cell lines, run process trees, Prometheus labels)."""

from __future__ import annotations

import pytest

from tracklab_jupyter.accelerators import registry
from tracklab_jupyter.accelerators.base import (
    AcceleratorBackend,
    AcceleratorUnavailable,
    Candidate,
    NoDevices,
    Selection,
    match_selector,
    visible_subset,
)
from tracklab_jupyter.accelerators.registry import devices_in, drivers_in, open_backends
from tracklab_jupyter.accelerators.throttle import describe_throttle, fold_amd_throttle
from tracklab_jupyter.metrics.sample import Sample
from tracklab_jupyter.notebook.cells import DeviceTally, format_line
from tracklab_jupyter.prometheus.exposition import render
from tracklab_jupyter.prometheus.view import NodeView, ScrapeView
from tracklab_jupyter.runs.gpu import device_readings
from tracklab_jupyter.runs.process_tree import gpu_memory_by_pid
from tracklab_jupyter.sampler.hardware_events import HardwareWatcher

UUIDS = ("GPU-8f3a0c1e-0000", "GPU-8f3b99aa-1111", "GPU-1234abcd-2222")


def _candidates(first: int = 0) -> list[Candidate]:
    return [Candidate(first + i, (uuid, f"serial-{i}")) for i, uuid in enumerate(UUIDS)]


# -- selection --------------------------------------------------------------------------

def test_selectors_name_gpus_host_wide_kinds_and_identifiers():
    gpus = _candidates(first=2)  # the second vendor's GPUs, after two NVIDIA ones
    assert match_selector("3", "gpu", gpus) == 3
    assert match_selector("1", "gpu", gpus) is None  # an NVIDIA index: not this vendor's
    assert match_selector("gpu.4", "gpu", gpus) == 4
    assert match_selector("npu.2", "gpu", gpus) is None  # another kind
    assert match_selector("gpu-1234", "gpu", gpus) == 4  # unique prefix, any case
    assert match_selector("GPU-8f3", "gpu", gpus) is None  # ambiguous prefix
    assert match_selector("GPU-8f3b99aa-1111", "gpu", gpus) == 3
    assert match_selector("serial-0", "gpu", gpus) == 2


def test_selection_records_what_matched_so_the_rest_can_be_reported():
    sel = Selection.parse("gpu.0, tpu.1,GPU-1234, nothing")
    assert sel.pick("gpu", _candidates()) == [0, 2]
    assert sel.pick("tpu", [Candidate(0), Candidate(1)]) == [1]
    assert sel.unmatched() == ["nothing"]
    assert Selection.parse(None).pick("gpu", _candidates(5)) == [5, 6, 7]
    assert Selection.parse("").pick("gpu", _candidates()) == []


def test_visibility_variables_keep_the_runtimes_rules(monkeypatch):
    gpus = _candidates(first=2)
    monkeypatch.delenv("HIP_VISIBLE_DEVICES", raising=False)
    assert visible_subset("HIP_VISIBLE_DEVICES", gpus) is None
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "2,0")
    assert visible_subset("HIP_VISIBLE_DEVICES", gpus) == [2, 4]  # the vendor's own numbers
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "0,-1,2")  # the list ends at the first bad entry
    assert visible_subset("HIP_VISIBLE_DEVICES", gpus) == [2]
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "GPU-1234abcd")
    assert visible_subset("HIP_VISIBLE_DEVICES", gpus) == [4]
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "")
    assert visible_subset("HIP_VISIBLE_DEVICES", gpus) == []


# -- the registry -----------------------------------------------------------------------

class _Recorded(AcceleratorBackend):
    """A stand-in vendor backend for the registry's own rules (numbering, isolation); the
    real backends are opened against their fakes further down."""

    count = 0
    failure: BaseException | None = None

    def __init__(self, first: int, chosen: list[int]) -> None:
        self.first, self.chosen = first, chosen
        self.found = self.count

    @classmethod
    def open(cls, selection: Selection, first_index: int = 0) -> _Recorded:
        if cls.failure is not None:
            raise cls.failure
        candidates = [Candidate(first_index + i) for i in range(cls.count)]
        chosen = selection.pick(cls.kind, candidates)
        if not chosen:
            raise AcceleratorUnavailable(f"no {cls.vendor} device selected", found=cls.count)
        return cls(first_index, chosen)


def _vendor(name: str, kind: str, count: int, failure: BaseException | None = None) -> type:
    return type(f"Fake{name}", (_Recorded,), {"name": name, "vendor": name, "kind": kind,
                                               "count": count, "failure": failure})


@pytest.fixture
def fake_registry(monkeypatch):
    """Replace the backend classes the registry imports with stand-ins."""
    classes: dict[str, type] = {}
    monkeypatch.setattr(registry, "backend_class", lambda name: classes[name])
    return classes


def test_gpu_numbers_continue_across_vendors_and_do_not_shift_with_a_selection(fake_registry):
    fake_registry.update(nvidia=_vendor("nvidia", "gpu", 2), amd=_vendor("amd", "gpu", 2),
                         ascend=_vendor("ascend", "npu", 1), tpu=_vendor("tpu", "tpu", 4))
    backends, notes = open_backends()
    assert notes == []
    assert [(b.name, b.first, b.chosen) for b in backends] == [
        ("nvidia", 0, [0, 1]), ("amd", 2, [2, 3]), ("ascend", 0, [0]), ("tpu", 0, [0, 1, 2, 3])]
    # selecting only the second AMD GPU keeps its number 3: NVIDIA's two still count
    backends, notes = open_backends("3,tpu.2")
    assert [(b.name, b.chosen) for b in backends] == [("amd", [3]), ("tpu", [2])]
    assert notes == ["nvidia: no nvidia device selected", "ascend: no ascend device selected"]


def test_one_failing_backend_never_hides_the_others(fake_registry):
    fake_registry.update(nvidia=_vendor("nvidia", "gpu", 2, failure=KeyError("libamd_smi.so")),
                         amd=_vendor("amd", "gpu", 1),
                         ascend=_vendor("ascend", "npu", 0, failure=NoDevices("no /dev/davinci")),
                         tpu=_vendor("tpu", "tpu", 1, failure=OSError("segfault-ish")))
    backends, notes = open_backends()
    assert [b.name for b in backends] == ["amd"]
    # the crashed library is reported; the absent vendor is not (NoDevices is silent)
    assert notes == ["nvidia: failed to open: KeyError: 'libamd_smi.so'",
                     "tpu: failed to open: OSError: segfault-ish"]
    # a vendor whose library failed found nothing: the next GPUs start at 0
    assert backends[0].first == 0


def test_unmatched_selectors_become_one_note_each(fake_registry):
    fake_registry.update(nvidia=_vendor("nvidia", "gpu", 1), amd=_vendor("amd", "gpu", 0),
                         ascend=_vendor("ascend", "npu", 0), tpu=_vendor("tpu", "tpu", 0))
    backends, notes = open_backends(["0", "GPU-nope"])
    assert [b.name for b in backends] == ["nvidia"]
    assert "selection: 'GPU-nope' matches no single accelerator" in notes


def test_devices_view_orders_kinds_and_reads_old_facts():
    info = {
        "tpu": {"vendor": "google", "kind": "tpu", "devices": [
            {"index": 0, "kind": "tpu", "vendor": "google", "state": "idle"}]},
        "amd": {"vendor": "amd", "kind": "gpu", "driver_version": "6.8.5", "devices": [
            {"index": 2, "kind": "gpu", "vendor": "amd", "name": "AMD Instinct MI300X"}]},
        "nvidia": {"vendor": "nvidia", "kind": "gpu", "driver_version": "580.159.04",
                   "devices": [{"index": 1, "name": "NVIDIA H200"},
                               {"index": 0, "name": "NVIDIA H200"}]},
        "cpu": {"devices": [{"index": 9}]},  # not an accelerator backend
    }
    found = [(d["kind"], d["index"], d["vendor"]) for d in devices_in(info)]
    assert found == [("gpu", 0, "nvidia"), ("gpu", 1, "nvidia"), ("gpu", 2, "amd"),
                     ("tpu", 0, "google")]
    assert drivers_in(info)["amd"] == {"vendor": "amd", "kind": "gpu", "driver_version": "6.8.5"}
    # a store written before the vendor backends: NVIDIA's facts under "gpu"
    legacy = {"gpu": {"driver_version": "580", "devices": [{"index": 0, "name": "H200"}]}}
    assert [(d["kind"], d["vendor"]) for d in devices_in(legacy)] == [("gpu", "nvidia")]


# -- what the surfaces derive -----------------------------------------------------------

def test_throttle_masks_are_decoded_per_vendor():
    # AMD's SMU bits: PPT0 (0), TDC_GFX (16), TEMP_HOTSPOT (33), FIT (57)
    assert fold_amd_throttle(0) == 0
    assert fold_amd_throttle(1 << 0) == 0x1
    assert fold_amd_throttle(1 << 16) == 0x2
    assert fold_amd_throttle((1 << 33) | (1 << 57)) == 0x4 | 0x8
    assert describe_throttle(0x1, "amd") == ["power limit"]
    assert describe_throttle(0x1, "nvidia") == []  # NVIDIA's 0x1 is "idle"
    assert describe_throttle(0x4, "nvidia") == ["software power cap"]


def test_events_follow_every_vendor_and_kind():
    watcher = HardwareWatcher()
    watcher.set_info({"amd": {"vendor": "amd", "kind": "gpu", "devices": [
        {"index": 2, "kind": "gpu", "vendor": "amd", "temp_slowdown_c": 100}]},
        "ascend": {"vendor": "huawei", "kind": "npu", "devices": [
            {"index": 0, "kind": "npu", "vendor": "huawei"}]}})
    assert watcher.check({"gpu.2.throttle_reasons": 0, "gpu.2.temp_c": 60,
                          "npu.0.health": 0, "npu.0.ecc_uncorrected_errors": 0}) == []
    events = watcher.check({"gpu.2.throttle_reasons": 0x4, "gpu.2.temp_c": 101,
                            "npu.0.health": 1, "npu.0.ecc_uncorrected_errors": 0})
    by_kind = {e["kind"]: e for e in events}
    assert set(by_kind) == {"throttle_start", "temp_high", "health_changed"}
    assert by_kind["throttle_start"]["message"] == "GPU 2 throttling: temperature limit"
    assert by_kind["throttle_start"]["data"]["gpu"] == 2
    assert by_kind["health_changed"]["message"] == "NPU 0 health: warning (was ok)"
    assert by_kind["health_changed"]["data"] | {"npu": 0, "device": "npu.0"} == \
        by_kind["health_changed"]["data"]


def test_cell_line_process_trees_and_monitor_gpu_cover_npus_and_tpus():
    samples = [Sample(t, "n", {"gpu.0.util_pct": u, "gpu.0.proc.41.mem_used_bytes": 2 * 1024 ** 3,
                               "npu.1.util_pct": 40.0,
                               "npu.1.proc.42.mem_used_bytes": 1024 ** 3 * m,
                               "tpu.0.util_pct": 10.0})
               for t, u, m in ((1.0, 90.0, 3), (2.0, 100.0, 5))]
    tally = DeviceTally("n")
    tally.add(samples, {41, 42})
    figures = tally.figures()
    assert list(figures) == ["gpu.0", "npu.1", "tpu.0"]
    assert figures["npu.1"]["mem_peak_bytes"] == 5 * 1024 ** 3
    line = format_line({"wall_s": 1.0, "cpu_s": 0.5, "gpus": figures})
    assert "GPU0 2.0 GiB peak, util 95 %" in line and "NPU1 5.0 GiB peak, util 40 %" in line
    assert "host: TPU0 util 10 %" in line
    metrics = {"gpu.0.proc.41.mem_used_bytes": 100.0, "npu.1.proc.41.mem_used_bytes": 50.0,
               "npu.1.proc.42.mem_used_bytes": 7.0, "npu.1.mem_used_bytes": 1e9,
               "tpu.0.util_pct": 3.0, "cpu.util_pct": 9.0}
    assert gpu_memory_by_pid(metrics) == {41: 150.0, 42: 7.0}
    # monitor_gpu(run).log_gpu_metrics() logs every kind's values, no per-process ones
    assert device_readings(metrics) == {"npu.1.mem_used_bytes": 1e9, "tpu.0.util_pct": 3.0}


def test_prometheus_labels_name_the_device_and_its_vendor():
    info = {"ascend": {"vendor": "huawei", "kind": "npu", "driver": "24.1.rc2", "devices": [
        {"index": 0, "kind": "npu", "vendor": "huawei", "uuid": "npu-uuid-0",
         "name": "Ascend 910B3"}]}}
    node = NodeView("box", True, 1.0, {"npu.0.util_pct": 42.0, "tpu.3.mem_used_bytes": 1.0},
                    {}, info, local=True)
    text = render(ScrapeView([node]))[0].decode()
    assert ('tracklab_npu_utilization_ratio{node="box",npu="0",uuid="npu-uuid-0",'
            'vendor="huawei"} 0.42') in text
    assert 'tracklab_tpu_memory_used_bytes{node="box",tpu="3",uuid="",vendor=""} 1.0' in text
    assert ('tracklab_npu_info{driver="24.1.rc2",name="Ascend 910B3",node="box",npu="0",'
            'uuid="npu-uuid-0",vendor="huawei"} 1.0') in text


# -- a mixed machine: every backend against its fake at once ------------------------------
# Two replayed H200s (NVML), two MI250s (amdsmi), eight Ascend 910B3 chips (the compiled
# fake libdcmi.so) and four TPU v6e chips (PCI tree + a real gRPC runtime), all on one host
# root. No such machine exists; the code must not care.

TPU_RECORDING = "v6e-4-static"


@pytest.fixture
def mixed_host(fake_nvml_factory, fake_amdsmi_factory, tpu_host, tpu_runtime,
               fake_dcmi_factory):
    fakes = {"nvml": fake_nvml_factory(gpus=2), "amd": fake_amdsmi_factory(gpus=2)}
    tpu_host(chips=4, generation="v6e")  # adds the PCI tree to the AMD sysfs host root
    fakes["tpu"] = tpu_runtime(TPU_RECORDING)
    fakes["dcmi"] = fake_dcmi_factory("910b3-x8")  # adds /dev/davinci0-7 to the same root
    return fakes


def _sample(config=None):
    from tracklab_jupyter.sampler.factory import SamplerConfig, build_sampler

    config = config or SamplerConfig()
    sampler = build_sampler(config)
    try:
        for collector in sampler.collectors:
            if collector.slow_interval:
                sampler.read_slow(collector)
        sampler.sample_once()
        return sampler.sample_once(), sampler.info, config.notes
    finally:
        sampler.close()


def _devices(metrics):
    return sorted({tuple(name.split(".")[:2]) for name in metrics
                   if name.startswith(("gpu.", "npu.", "tpu."))})


def test_a_mixed_machine_shows_every_device_once_with_its_vendor(mixed_host):
    from fake_tpu_runtime import MEMORY_USAGE, recorded_values

    sample, info, notes = _sample()
    assert notes == []
    devices = devices_in(info)
    assert [(d["kind"], d["index"], d["vendor"]) for d in devices] == (
        [("gpu", 0, "nvidia"), ("gpu", 1, "nvidia"), ("gpu", 2, "amd"), ("gpu", 3, "amd")]
        + [("npu", i, "huawei") for i in range(8)] + [("tpu", i, "google") for i in range(4)])
    assert {d["state"] for d in devices} == {"ok"}
    m = sample.metrics
    assert _devices(m) == sorted([("gpu", str(i)) for i in range(4)]
                                 + [("npu", str(i)) for i in range(8)]
                                 + [("tpu", str(i)) for i in range(4)])
    assert m["gpu.0.power_w"] == pytest.approx(686.452)  # the recorded busy H200
    assert m["gpu.2.power_w"] == 91.0  # the recorded MI250's average package power
    assert m["tpu.0.mem_used_bytes"] == recorded_values(TPU_RECORDING, MEMORY_USAGE)[0]
    assert m["npu.0.mem_total_bytes"] == 65536 * 2 ** 20  # 910B3: 65536 MB of HBM
    # one query language over all of them
    assert {name for name in m if name.endswith(".util_pct") and name.count(".") == 2} >= {
        "gpu.0.util_pct", "gpu.2.util_pct", "npu.7.util_pct", "tpu.3.util_pct"}


def test_one_broken_vendor_leaves_the_others(mixed_host, fake_nvml_factory, monkeypatch):
    from tracklab_jupyter.accelerators.amd import AmdBackend
    from tracklab_jupyter.accelerators.tpu import TpuBackend

    # no NVIDIA driver, the TPU backend's open crashing, AMD's reads crashing later
    fake_nvml_factory(library_missing=True)

    def crash(message):
        def fail(*_args, **_kwargs):
            raise RuntimeError(message)
        return fail

    monkeypatch.setattr(TpuBackend, "open", classmethod(crash("libtpu exploded")))
    monkeypatch.setattr(AmdBackend, "read", crash("amdsmi hung up"))
    sample, info, notes = _sample()
    assert [d["vendor"] for d in devices_in(info)] == ["amd"] * 2 + ["huawei"] * 8
    # NVML's absence is silent (no NVIDIA GPU on this host's PCI bus); the crash is noted
    assert notes == ["tpu: failed to open: RuntimeError: libtpu exploded"]
    # the AMD GPUs are numbered from 0 now; their fast reads fail (only the slow thread's
    # energy reading is left), and the NPUs go on
    m = sample.metrics
    assert {k for k in m if k.startswith("gpu.")} == {"gpu.0.energy_j", "gpu.1.energy_j"}
    assert all(f"npu.{i}.util_pct" in m for i in range(8))


def test_the_selection_spans_vendors(mixed_host):
    from tracklab_jupyter.sampler.factory import SamplerConfig

    uuid = mixed_host["nvml"].uuid(1)
    _, info, notes = _sample(SamplerConfig(gpus=f"{uuid},3,npu.5,tpu.0"))
    assert [(d["kind"], d["index"]) for d in devices_in(info)] == [
        ("gpu", 1), ("gpu", 3), ("npu", 5), ("tpu", 0)]
    assert notes == []


async def test_the_server_lists_every_vendor(mixed_host, jp_fetch, jp_ws_fetch,
                                             tracklab_server):
    import asyncio
    import json

    from test_server_ws import check, receive

    for _ in range(100):
        body = json.loads((await jp_fetch("tracklab", "api", "hardware", "accelerators")).body)
        if len(body["accelerators"]) == 16 and all(d["metrics"] for d in body["accelerators"]):
            break
        await asyncio.sleep(0.1)
    by_key = {(d["kind"], d["index"]): d for d in body["accelerators"]}
    assert by_key["gpu", 3]["vendor"] == "amd" and by_key["gpu", 3]["metrics"]["util_pct"] >= 0
    assert by_key["tpu", 2]["vendor"] == "google" and "mem_used_bytes" in by_key["tpu", 2][
        "metrics"]
    assert by_key["npu", 7]["name"].startswith("Ascend") and by_key["npu", 7]["state"] == "ok"
    assert set(body["drivers"]) == {"nvidia", "amd", "ascend", "tpu"}
    info = json.loads((await jp_fetch("tracklab", "api", "system", "info")).body)
    assert len(info["accelerators"]) == 16 and info["amd"]["vendor"] == "amd"
    text = (await jp_fetch("tracklab", "metrics")).body.decode()
    assert 'tracklab_npu_utilization_ratio{node=' in text and 'vendor="huawei"' in text
    assert 'tracklab_gpu_utilization_ratio{' in text and 'gpu="3"' in text
    assert 'vendor="amd"' in text
    ws = await jp_ws_fetch("tracklab", "ws")
    update = await receive(ws, "hardware_update")
    check(update, "WsHardwareUpdate")
    assert len(update["data"]["state"]["accelerators"]) == 16
    ws.close()


def test_snapshot_table_names_each_device_with_vendor_and_kind():
    from tracklab_jupyter.snapshot_table import render

    info = {
        "amd": {"vendor": "amd", "kind": "gpu", "devices": [
            {"index": 2, "kind": "gpu", "vendor": "amd", "name": "AMD Instinct MI300X",
             "state": "ok"},
            {"index": 3, "kind": "gpu", "vendor": "amd", "name": "AMD Instinct MI300X",
             "state": "lost"}]},
        "ascend": {"vendor": "huawei", "kind": "npu", "devices": [
            {"index": 0, "kind": "npu", "vendor": "huawei", "name": "Ascend 910B3",
             "state": "ok"}]},
        "tpu": {"vendor": "google", "kind": "tpu", "devices": [
            {"index": 0, "kind": "tpu", "vendor": "google", "name": "TPU v6e",
             "state": "idle", "idle_reason": "no TPU program running"}]},
    }
    metrics = {"gpu.2.util_pct": 50.0, "gpu.2.throttle_reasons": 0x1 | 0x4,
               "gpu.2.sm_clock_mhz": 2100.0, "npu.0.util_pct": 12.0,
               "npu.0.mem_used_bytes": 3 * 2 ** 30, "npu.0.mem_total_bytes": 64 * 2 ** 30,
               "npu.0.health": 1.0, "npu.0.proc.77.mem_used_bytes": 2 ** 30}
    text = render({"time": 0.0, "node": "box", "metrics": metrics, "info": info})
    lines = text.splitlines()
    assert any(ln.startswith("GPU 2") and "50.0%" in ln for ln in lines)
    assert ("         AMD Instinct MI300X · AMD GPU · clock 2100 MHz · "
            "throttled: power limit, temperature limit") in lines
    assert "GPU 3    AMD Instinct MI300X · AMD GPU: lost (no longer answers)" in lines
    assert any(ln.startswith("NPU 0") and "mem 3.0 GiB / 64.0 GiB" in ln for ln in lines)
    assert ("         Ascend 910B3 · Huawei NPU · health warning · procs 77 (1.0 GiB)"
            in lines)
    assert "TPU 0    TPU v6e · Google TPU: idle, no TPU program running" in lines
