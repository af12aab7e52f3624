"""The alert rules and engine: each rule fed real-shaped samples and events (a real sample
of this machine with the fake NVML replaying the recorded H200, events from the real
HardwareWatcher and sampler), hysteresis, de-duplication, the hold before firing,
disabled rules, settings errors, and taking over alerts a previous process left active
(real Monitor, real SQLite)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tracklab_jupyter.alerts import parse_alert_settings, start_alerts
from tracklab_jupyter.alerts.engine import AlertEngine
from tracklab_jupyter.alerts.settings import RULES, defaults, settings_from_env
from tracklab_jupyter.collectors.disk import DiskCollector
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.monitor import Monitor, MonitorConfig
from tracklab_jupyter.sampler.factory import SamplerConfig, build_sampler
from tracklab_jupyter.sampler.hardware_events import HardwareWatcher
from tracklab_jupyter.sampler.hub import EVENT, KERNELS, NODE, SAMPLE, Hub

GiB = float(1 << 30)


class Host:
    """The part of a Monitor the engine uses, in memory: events it records are kept and
    published like a recorder's."""

    def __init__(self, info: dict[str, Any] | None = None, role: str = "recorder") -> None:
        self.hub = Hub()
        self.node = "n1"
        self.role = role
        self.interval = 1.0
        self.latest: Sample | None = None
        self.info = info or {}
        self.kernels: Any = None
        self.cluster: Any = None
        self.recorded: list[Event] = []

    def record_event(self, event: Event) -> None:
        self.recorded.append(event)
        self.hub.publish(EVENT, event)

    def events(self, **query: Any) -> list[dict[str, Any]]:
        raise FileNotFoundError("nothing recorded yet")

    def told(self) -> list[tuple[str, str]]:
        return [(e.kind, e.data["key"]) for e in self.recorded]


class Tracker:
    """A stand-in for the server's kernel tracker: ``snapshot()`` is its api/kernels body."""

    def __init__(self, kernels: list[dict[str, Any]]) -> None:
        self.body = {"time": time.time(), "node": "n1", "interval_s": 5.0,
                     "mem_limit_bytes": None, "mem_limit_source": "host", "notes": [],
                     "kernels": kernels}

    def snapshot(self) -> dict[str, Any]:
        return self.body


def kernel(kernel_id: str, notebook: str | None, rss: float, gpus: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """A kernel entry of the api/kernels contract."""
    gpus = gpus or {}
    gpu_mem = sum(g["mem_used_bytes"] for g in gpus.values()) if gpus else None
    return {"id": kernel_id, "name": "python3", "notebook": notebook, "execution_state": "idle",
            "last_activity": time.time(), "connections": 1, "sampled": True,
            "not_sampled": None, "pid": 4242, "procs": 1, "threads": 8, "cpu_pct": 0.0,
            "rss_bytes": rss, "pss_bytes": None, "uss_bytes": None, "mem_limit_bytes": None,
            "mem_limit_source": "host", "gpu_mem_bytes": gpu_mem, "gpus": gpus,
            "pid_namespace": None, "processes": []}


@dataclass
class Machine:
    """One real sample of this machine with the recorded H200, and the sampler's info."""

    metrics: dict[str, float]
    info: dict[str, Any]

    def sample(self, t: float, **changes: float) -> Sample:
        """The sample at time ``t`` with some values changed (dots written as ``__``:
        ``mem__util_pct=93`` sets ``mem.util_pct``)."""
        metrics = dict(self.metrics)
        for name, value in changes.items():
            metrics[name.replace("__", ".")] = value
        return Sample(t, "n1", metrics)


@pytest.fixture
def machine(fake_nvml) -> Machine:
    sampler = build_sampler(SamplerConfig(enable_network=False))
    try:
        metrics = dict(sampler.sample_once().metrics)
        disk = DiskCollector()
        metrics.update(disk.read_slow().gauges)  # disk.{mount}.* come from the slow path
        return Machine(metrics, sampler.info)
    finally:
        sampler.close()


def engine_for(host: Host, **settings: Any) -> AlertEngine:
    return AlertEngine(host, parse_alert_settings(settings, "test"))


def feed(engine: AlertEngine, machine: Machine, metric: str, values: list[float],
         t0: float = 1000.0, step: float = 1.0) -> float:
    """One sample per value of ``metric``, ``step`` seconds apart; returns the last time."""
    t = t0
    for i, value in enumerate(values):
        t = t0 + i * step
        engine.handle(SAMPLE, Sample(t, "n1", {**machine.metrics, metric: value}))
    return t


# -- settings ------------------------------------------------------------------------------

def test_defaults_cover_every_rule() -> None:
    rules = defaults().as_dict()
    assert tuple(rules) == RULES
    assert all(r["enabled"] for r in rules.values())
    assert rules["memory"] == {"enabled": True, "threshold_pct": 90.0, "clear_pct": 85.0,
                               "critical_pct": 97.0, "for_s": 5.0}
    assert rules["idle_gpu"]["idle_minutes"] == 30.0
    assert rules["disk"]["threshold_pct"] == 95.0 and rules["disk"]["clear_pct"] == 92.0
    assert rules["recorder_stale"]["stale_s"] == 30.0
    custom = parse_alert_settings({"memory": {"threshold_pct": 80, "clear_pct": 70},
                                   "disk": False, "idle_gpu": {"idle_minutes": 0.01}})
    assert custom["memory"]["threshold_pct"] == 80.0 and not custom.enabled("disk")
    assert custom["idle_gpu"]["idle_minutes"] == 0.01


@pytest.mark.parametrize(("value", "message"), [
    ({"memory": {"threshold_pct": 150}},
     "c.TrackLab.alerts.memory.threshold_pct: must be between 1 and 100, got 150"),
    ({"memroy": {}}, "c.TrackLab.alerts: unknown rule 'memroy'; rules: memory, idle_gpu, "
                     "disk, thermal, ecc, device_lost, node_offline, recorder_stale, "
                     "kernel_death"),
    ({"disk": {"treshold_pct": 90}}, "c.TrackLab.alerts.disk: unknown setting "
                                     "'treshold_pct'; settings of disk: enabled, "
                                     "threshold_pct, clear_pct, for_s"),
    ({"memory": {"enabled": "no"}}, "c.TrackLab.alerts.memory.enabled: must be True or False"),
    ({"memory": {"for_s": "5"}}, "c.TrackLab.alerts.memory.for_s: must be a number, got '5'"),
    ({"memory": {"for_s": True}}, "c.TrackLab.alerts.memory.for_s: must be a number"),
    ({"idle_gpu": {"idle_minutes": 0}}, "idle_gpu.idle_minutes: must be between 0.01 and"),
    ({"memory": {"clear_pct": 95}}, "memory.clear_pct: must be below threshold_pct (90)"),
    ({"memory": {"threshold_pct": 99}}, "memory.critical_pct: must be at least threshold_pct"),
    ({"thermal": 3}, "c.TrackLab.alerts.thermal: must be a dict of settings"),
    ([1], "c.TrackLab.alerts: must be a dict of rule name to settings"),
])
def test_bad_settings_name_the_setting(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_alert_settings(value, source="c.TrackLab.alerts")
    assert message in str(info.value)


def test_settings_from_the_environment() -> None:
    assert settings_from_env({}).as_dict() == defaults().as_dict()
    assert not settings_from_env({"TRACKLAB_ALERTS": '{"ecc": false}'}).enabled("ecc")
    with pytest.raises(ValueError, match="TRACKLAB_ALERTS: not JSON"):
        settings_from_env({"TRACKLAB_ALERTS": "{memory"})


# -- memory --------------------------------------------------------------------------------

def test_memory_holds_for_s_fires_once_and_resolves_below_clear(machine: Machine) -> None:
    host = Host(machine.info)
    engine = engine_for(host, memory={"for_s": 3})
    # 92 % for 2 s only: shorter than the hold, nothing
    t = feed(engine, machine, "mem.util_pct", [50, 92, 92, 50])
    assert host.told() == []
    # over the threshold for 3 s, then oscillating between clear and threshold: one alert
    feed(engine, machine, "mem.util_pct",
         [91, 93, 92, 94, 89, 91, 86, 90.5, 88, 91, 86], t0=t + 1)
    assert host.told() == [("alert", "memory:host")]
    alert = host.recorded[0]
    assert alert.data["severity"] == "warning" and alert.data["title"] == "OOM risk"
    assert alert.data["since"] == t + 1 and alert.data["threshold"] == 90.0
    assert alert.data["value"] == 94 and not alert.data["instant"]
    assert "of the machine's memory" in alert.message and "GiB" in alert.message
    # below clear: one resolve, however long it stays there
    feed(engine, machine, "mem.util_pct", [84, 80, 70, 84.9], t0=t + 20)
    assert host.told() == [("alert", "memory:host"), ("alert_resolved", "memory:host")]
    resolved = host.recorded[1]
    assert resolved.message == "resolved: memory back to 84 % of the machine's memory"
    assert resolved.data == {"key": "memory:host", "rule": "memory", "subject": "host",
                             "since": t + 1, "resolved": t + 20, "title": "OOM risk"}
    assert engine.book.active() == []


def test_memory_rising_to_critical_is_told_once_more(machine: Machine) -> None:
    host = Host(machine.info)
    engine = engine_for(host, memory={"for_s": 0})
    feed(engine, machine, "mem.util_pct", [91, 95, 98, 99, 97.5, 98, 60])
    assert [e.data.get("severity") for e in host.recorded] == ["warning", "critical", None]
    assert host.recorded[1].data["since"] == host.recorded[0].data["since"]


def test_memory_names_the_kernels_holding_most(machine: Machine) -> None:
    host = Host({**machine.info, "memory": {"effective_limit_bytes": 24 * GiB}})
    host.kernels = Tracker([kernel("a1", "work/train.ipynb", 12.5 * GiB),
                            kernel("b2", "eval.ipynb", 3 * GiB),
                            kernel("c3", None, 1 * GiB), kernel("d4", "tiny.ipynb", 0.1 * GiB)])
    engine = engine_for(host, memory={"for_s": 0})
    feed(engine, machine, "mem.util_pct", [96])
    data = host.recorded[0].data
    assert [k["id"] for k in data["kernels"]] == ["a1", "b2", "c3"]
    assert data["kernels"][0] == {"id": "a1", "notebook": "work/train.ipynb",
                                  "rss_bytes": 12.5 * GiB}
    assert "of the container's limit" in data["message"]
    assert ("most held by `train.ipynb` (12.5 GiB), `eval.ipynb` (3.0 GiB), kernel c3 "
            "(1.0 GiB)") in data["message"]


# -- disk ----------------------------------------------------------------------------------

def test_disk_per_mount_with_hysteresis(machine: Machine) -> None:
    name = next(k for k in machine.metrics if k.startswith("disk.") and k.endswith(".util_pct"))
    mount = name[len("disk."):-len(".util_pct")]
    host = Host(machine.info)
    engine = engine_for(host)
    feed(engine, machine, name, [50, 96, 94, 95.5, 93, 97, 91.9, 96])
    key = f"disk:{mount}"
    assert host.told() == [("alert", key), ("alert_resolved", key), ("alert", key)]
    assert host.recorded[0].message.startswith(f"Disk {mount} is 96 % full (")
    # the mount goes away: its alert is resolved
    engine.handle(SAMPLE, Sample(2000.0, "n1", {k: v for k, v in machine.metrics.items()
                                                if not k.startswith(f"disk.{mount}.")}))
    assert host.told()[-1] == ("alert_resolved", key)
    assert host.recorded[-1].message == f"resolved: {mount} is no longer mounted"


# -- hardware events -------------------------------------------------------------------------

def watcher_events(machine: Machine, *changes: dict[str, float]) -> list[Event]:
    """What the real HardwareWatcher says about the H200 sample followed by ``changes``."""
    watcher = HardwareWatcher()
    watcher.set_info(machine.info)
    out: list[Event] = []
    for i, change in enumerate(({}, *changes)):
        for raw in watcher.check({**machine.metrics, **change}):
            out.append(Event(100.0 + i, "n1", raw["kind"], raw["message"], raw["data"]))
    return out


def test_thermal_slowdown_on_top_of_the_power_cap(machine: Machine) -> None:
    """The busy H200 is power-capped (reason 0x4) all along: thermal slowdown (0x40)
    starting on top of it is no throttle_start event, so the rule reads the samples."""
    assert machine.metrics["gpu.0.throttle_reasons"] == 0x4
    assert [e.kind for e in watcher_events(machine, {"gpu.0.throttle_reasons": 0x44})] == [
        "throttle_start"]  # the power cap seen first; nothing when thermal joins it
    host = Host(machine.info)
    engine = engine_for(host, thermal={"clear_s": 3})
    steps = [(58, 0x4), (60, 0x44), (70, 0x44), (91, 0x4), (80, 0x4), (80, 0x4),
             (80, 0x44),  # flickers back before clear_s: stays active
             (80, 0x4), (79, 0x4), (78, 0x4), (77, 0x4), (76, 0x4)]
    for i, (temp, mask) in enumerate(steps):
        engine.handle(SAMPLE, machine.sample(100.0 + i, gpu__0__temp_c=temp,
                                             gpu__0__throttle_reasons=mask))
    assert host.told() == [("alert", "thermal:gpu.0"), ("alert_resolved", "thermal:gpu.0")]
    alert, resolved = host.recorded
    assert alert.message == "GPU 0 throttled: hardware thermal slowdown"
    assert alert.data["subject"] == "gpu.0" and alert.data["threshold"] == 89
    assert resolved.data["resolved"] == 110.0  # 3 s after the last thermal sample
    assert resolved.message == "resolved: GPU 0 is out of thermal slowdown (77 °C)"
    # at the slowdown temperature without throttling
    engine.handle(SAMPLE, machine.sample(120.0, gpu__0__temp_c=89))
    assert host.recorded[-1].message == ("GPU 0 at 89 °C reached its slowdown temperature "
                                         "(89 °C)")


def test_uncorrected_ecc_errors_are_told_at_once(machine: Machine) -> None:
    base = machine.metrics["gpu.0.ecc_uncorrected_errors"]
    corrected = machine.metrics["gpu.0.ecc_corrected_errors"]
    events = watcher_events(machine, {"gpu.0.ecc_corrected_errors": corrected + 3},
                            {"gpu.0.ecc_uncorrected_errors": base + 2},
                            {"gpu.0.ecc_uncorrected_errors": base + 3})
    host = Host(machine.info)
    engine = engine_for(host)
    for event in events:
        engine.handle(EVENT, event)
    assert host.told() == [("alert", "ecc:gpu.0")] * 2
    assert all(e.data["instant"] and e.data["severity"] == "critical" for e in host.recorded)
    assert host.recorded[0].message == "GPU 0: 2 new uncorrected ECC error(s)"
    assert engine.book.active() == []  # nothing stays active: nothing to resolve


def test_a_lost_gpu_from_the_sampler_until_it_appears_again(fake_nvml) -> None:
    hub = Hub()
    sampler = build_sampler(SamplerConfig(enable_cpu=False, enable_memory=False,
                                          enable_disk=False, enable_network=False), hub=hub)
    host = Host(sampler.info)
    host.hub = hub
    engine = engine_for(host)
    seen = hub.subscribe([EVENT])
    try:
        sampler.sample_once()
        fake_nvml.lose(0)
        sampler.sample_once()
        sampler.sample_once()
    finally:
        sampler.close()
    lost = [e for _, e in seen.drain() if e.kind == "gpu_lost"]
    assert len(lost) == 1
    for event in lost * 2:  # the same loss told twice: still one alert
        engine.handle(EVENT, event)
    assert host.told() == [("alert", "device_lost:gpu.0")]
    assert host.recorded[0].data["severity"] == "critical"
    assert "was lost" in host.recorded[0].message
    # the NVIDIA backend's gpu_appeared names the index only
    engine.handle(EVENT, Event(200.0, "n1", "gpu_appeared", "GPU 0 (NVIDIA H200) appeared",
                               {"gpu": 0, "uuid": "GPU-5f1c", "monitored": True}))
    assert host.told()[-1] == ("alert_resolved", "device_lost:gpu.0")


def test_node_offline_and_back_or_gone(machine: Machine) -> None:
    host = Host(machine.info)
    engine = engine_for(host)

    def status(node: str, status: str, reason: str) -> dict[str, Any]:
        # as ClusterMonitor publishes it: NodeState.to_dict() and the reason
        return {"node": node, "address": "tcp://10.0.0.2:40000", "role": "worker",
                "status": status,
                "last_seen": 1.0, "resources": {"cores": 8, "memory_bytes": 1e10, "gpus": 0},
                "error": None if status == "up" else reason, "reason": reason}

    for item in (status("w1", "down", "no answer for 12 s"),
                 status("w1", "down", "no answer for 20 s"),
                 status("w2", "down", "no answer for 11 s"),
                 status("w1", "up", "answering"),
                 status("w2", "down", "left the cluster")):
        engine.handle(NODE, item)
    assert host.told() == [("alert", "node_offline:w1"), ("alert", "node_offline:w2"),
                           ("alert_resolved", "node_offline:w1"),
                           ("alert_resolved", "node_offline:w2")]
    assert host.recorded[0].message == "Cluster node w1 is down: no answer for 12 s"
    assert host.recorded[-1].message == "resolved: w2 left the cluster"


def test_recorder_stale_on_the_timer_and_resolved_by_the_next_sample(machine: Machine
                                                                      ) -> None:
    host = Host(machine.info)
    engine = engine_for(host, recorder_stale={"stale_s": 10})
    host.latest = Sample(1000.0, "n1", machine.metrics)
    engine.tick(1009.0)
    assert host.told() == []
    engine.tick(1011.0)
    engine.tick(1016.0)
    assert host.told() == [("alert", "recorder_stale:host")]
    assert host.recorded[0].data["severity"] == "critical"
    assert host.recorded[0].data["since"] == 1000.0
    engine.handle(SAMPLE, Sample(1020.0, "n1", machine.metrics))
    assert host.told()[-1] == ("alert_resolved", "recorder_stale:host")
    # five intervals count when longer than stale_s
    host.interval = 4.0
    assert engine.rules["recorder_stale"].limit() == 20.0


# -- kernel rules --------------------------------------------------------------------------

def test_idle_gpu_with_a_short_idle_time(machine: Machine) -> None:
    host = Host(machine.info)
    engine = engine_for(host, idle_gpu={"idle_minutes": 0.05})  # 3 s
    gpu = {"gpu.0": {"mem_used_bytes": 30 * GiB, "util_pct": None}}

    def tick(t: float, util: float, kernels: list[dict[str, Any]]) -> None:
        engine.handle(SAMPLE, machine.sample(t, gpu__0__util_pct=util))
        engine.handle(KERNELS, {**Tracker(kernels).body, "time": t})

    idle = kernel("k1", "work/train.ipynb", 4 * GiB, gpu)
    small = kernel("k2", "plot.ipynb", 1 * GiB)  # no GPU memory: never idle-GPU
    for t in range(100, 103):
        tick(t, 0.0, [idle, small])
    assert host.told() == []
    tick(103, 2.0, [idle, small])  # 3 s at most 5 % busy
    tick(104, 0.0, [idle, small])
    assert host.told() == [("alert", "idle_gpu:k1")]
    alert = host.recorded[0]
    assert alert.data["title"] == "idle GPU" and alert.data["since"] == 100
    assert alert.data["value"] == 30 * GiB and alert.data["kernels"][0]["id"] == "k1"
    assert alert.message == ("`train.ipynb` holds 30.0 GiB on GPU 0 and has not used it "
                             "for 3 s")
    # the GPU gets busy: resolved at that sample, and the idle time starts again
    engine.handle(SAMPLE, machine.sample(105, gpu__0__util_pct=80.0))
    assert host.told()[-1] == ("alert_resolved", "idle_gpu:k1")
    for t in range(106, 108):
        tick(t, 0.0, [idle])
    assert len(host.recorded) == 2
    tick(108, 0.0, [idle])
    assert host.told()[-1] == ("alert", "idle_gpu:k1")
    assert host.recorded[-1].data["since"] == 105
    # freeing the memory resolves it; so does a kernel that ends
    tick(110, 0.0, [kernel("k1", "work/train.ipynb", 4 * GiB)])
    assert host.recorded[-1].message == "resolved: `train.ipynb` freed its GPU memory"
    for t in range(111, 116):
        tick(t, 0.0, [idle])
    tick(116, 0.0, [])
    assert host.told()[-2:] == [("alert", "idle_gpu:k1"), ("alert_resolved", "idle_gpu:k1")]
    assert host.recorded[-1].message == "resolved: `train.ipynb` ended"


def test_idle_gpu_needs_to_know_the_devices_use(machine: Machine) -> None:
    host = Host(machine.info)
    engine = engine_for(host, idle_gpu={"idle_minutes": 0.01})
    quiet = kernel("k1", "a.ipynb", GiB, {"gpu.0": {"mem_used_bytes": GiB, "util_pct": None}})
    metrics = {k: v for k, v in machine.metrics.items() if k != "gpu.0.util_pct"}
    for t in range(100, 110):
        engine.handle(SAMPLE, Sample(float(t), "n1", metrics))
        engine.handle(KERNELS, {**Tracker([quiet]).body, "time": float(t)})
    assert host.told() == []  # no utilisation known: cannot tell it is idle
    # the kernel's own utilisation, where the driver reports it, is enough
    own = kernel("k1", "a.ipynb", GiB, {"gpu.0": {"mem_used_bytes": GiB, "util_pct": 0.0}})
    for t in range(110, 112):
        engine.handle(KERNELS, {**Tracker([own]).body, "time": float(t)})
    assert host.told() == [("alert", "idle_gpu:k1")]


def test_idle_gpu_prefers_the_kernels_own_use(machine: Machine) -> None:
    """A kernel holding memory on a GPU that another job keeps busy is idle itself: where
    its own use (proc_util_pct) is reported, the device's does not stand for it."""
    host = Host(machine.info)
    engine = engine_for(host, idle_gpu={"idle_minutes": 0.05})  # 3 s

    def tick(t: float, own: float | None) -> None:
        engine.handle(SAMPLE, machine.sample(t, gpu__0__util_pct=90.0))  # another job's
        gpus = {"gpu.0": {"mem_used_bytes": 30 * GiB, "util_pct": 90.0, "proc_util_pct": own}}
        engine.handle(KERNELS, {**Tracker([kernel("k1", "work/train.ipynb", 4 * GiB, gpus)])
                                .body, "time": t})

    for t in range(100, 103):
        tick(t, 0.0)
    assert host.told() == []
    tick(103, 0.0)
    assert host.told() == [("alert", "idle_gpu:k1")]
    assert host.recorded[0].data["since"] == 100
    # the busy device's samples do not resolve it; the kernel's own use does
    engine.handle(SAMPLE, machine.sample(104, gpu__0__util_pct=95.0))
    assert len(host.recorded) == 1
    tick(105, 40.0)
    assert host.told()[-1] == ("alert_resolved", "idle_gpu:k1")
    # without a figure of its own (other vendors, MIG), the busy device stands for it
    for t in range(106, 112):
        tick(t, None)
    assert host.told()[-1] == ("alert_resolved", "idle_gpu:k1") and len(host.recorded) == 2


def test_kernel_death_is_told_at_once_and_only_by_its_server() -> None:
    message = ("the kernel of `train.ipynb` was killed by the out-of-memory killer at "
               "14:02:11 (RSS 22.8 GiB, limit 23.5 GiB)")
    data = {"kernel_id": "k-1", "kernel_name": "python3", "notebook": "work/train.ipynb",
            "pid": 4242, "reason": "oom_kill", "signal": 9, "signal_name": "SIGKILL",
            "exit_code": None, "oom_kills": 1, "rss_bytes": 22.8 * GiB,
            "mem_limit_bytes": 23.5 * GiB, "restarted": False}
    host = Host()
    engine = engine_for(host)
    engine.handle(EVENT, Event(50.0, "n1", "kernel_died", message, data))
    engine.handle(EVENT, Event(60.0, "n1", "kernel_died", "the kernel of `b.ipynb` exited "
                               "with code 1", {**data, "kernel_id": "k-2",
                                               "notebook": "b.ipynb", "reason": "exit"}))
    assert host.told() == [("alert", "kernel_death:k-1"), ("alert", "kernel_death:k-2")]
    oom, other = (e.data for e in host.recorded)
    assert host.recorded[0].message == message and oom["message"] == message
    assert oom["severity"] == "critical" and oom["instant"] and oom["subject"] == \
        "work/train.ipynb"
    assert oom["value"] == 22.8 * GiB and oom["threshold"] == 23.5 * GiB
    assert other["severity"] == "warning" and other["title"] == "kernel died"
    # a reader server sees other servers' kernel events through the store: not its own
    reader = Host(role="reader")
    reader.kernels = Tracker([kernel("mine", "m.ipynb", GiB)])
    engine = engine_for(reader)
    engine.handle(EVENT, Event(70.0, "n1", "kernel_died", "x", data))
    engine.handle(EVENT, Event(71.0, "n1", "kernel_died", "y", {**data, "kernel_id": "mine"}))
    assert reader.told() == [("alert", "kernel_death:mine")]


# -- scopes and switches ---------------------------------------------------------------------

def test_host_rules_run_only_in_the_recorder(machine: Machine) -> None:
    host = Host(machine.info, role="reader")
    engine = engine_for(host, memory={"for_s": 0})
    feed(engine, machine, "mem.util_pct", [99, 99])
    engine.handle(SAMPLE, machine.sample(1e3, gpu__0__temp_c=95))
    base = machine.metrics["gpu.0.ecc_uncorrected_errors"]
    engine.handle(EVENT, watcher_events(machine, {"gpu.0.ecc_uncorrected_errors": base + 1})[-1])
    engine.tick(1e12)
    assert host.told() == []
    host.role = "recorder"  # the other process stopped: this one records now
    feed(engine, machine, "mem.util_pct", [99])
    assert host.told() == [("alert", "memory:host")]


def test_a_disabled_rule_says_nothing(machine: Machine) -> None:
    host = Host(machine.info)
    engine = engine_for(host, memory={"enabled": False, "for_s": 0}, ecc=False)
    assert "memory" not in engine.rules and "ecc" not in engine.rules
    feed(engine, machine, "mem.util_pct", [99, 99, 99])
    base = machine.metrics["gpu.0.ecc_uncorrected_errors"]
    for event in watcher_events(machine, {"gpu.0.ecc_uncorrected_errors": base + 1}):
        engine.handle(EVENT, event)
    assert host.told() == []
    assert engine.settings.as_dict()["memory"]["enabled"] is False


# -- the engine's thread and the store -------------------------------------------------------

def test_the_thread_wakes_on_hub_items_and_stops(machine: Machine) -> None:
    host = Host(machine.info)
    engine = start_alerts(host, parse_alert_settings({"memory": {"for_s": 0}}))
    assert host.alerts is engine  # type: ignore[attr-defined]
    assert start_alerts(host) is engine  # started once
    host.hub.publish(SAMPLE, machine.sample(time.time(), mem__util_pct=99.0))
    deadline = time.monotonic() + 10
    while not host.recorded and time.monotonic() < deadline:
        time.sleep(0.02)
    assert host.told() == [("alert", "memory:host")]
    assert "tracklab-alerts" in [t.name for t in threading.enumerate()]
    engine.stop()
    assert not engine._thread.is_alive()  # type: ignore[union-attr]
    assert host.hub.subscriber_count == 0


def test_a_restarted_recorder_resolves_an_alert_left_active(tmp_path) -> None:
    """A memory alert stored by a process that ended while it was active: the next
    recorder takes it over and, memory being low now, resolves it (real store)."""
    config = MonitorConfig.from_settings(interval=0.2, data_dir=str(tmp_path / "d"),
                                         enable_gpu=False, enable_disk=False,
                                         enable_network=False, flush_interval=0.1)
    first = Monitor(config)
    first.start()
    try:
        stale = {"key": "memory:host", "rule": "memory", "severity": "warning",
                 "title": "OOM risk", "message": "Memory at 93 %", "subject": "host",
                 "since": time.time() - 60, "value": 93.0, "threshold": 90.0, "kernels": [],
                 "instant": False}
        first.record_event(Event(time.time() - 50, first.node, "alert", "Memory at 93 %",
                                 stale))
        # a resolved one and an instant one are not taken over
        first.record_event(Event(time.time() - 40, first.node, "alert", "hot",
                                 {**stale, "key": "thermal:gpu.0", "rule": "thermal"}))
        first.record_event(Event(time.time() - 30, first.node, "alert_resolved", "cool",
                                 {"key": "thermal:gpu.0", "rule": "thermal"}))
    finally:
        first.stop()
    second = Monitor(config)
    second.start()
    try:
        assert second.role == "recorder"
        # real memory use stays below a 99.9 % clear level
        start_alerts(second, parse_alert_settings({"memory": {"threshold_pct": 100,
                                                              "clear_pct": 99.9,
                                                              "critical_pct": 100}}))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            resolved = second.events(start="-1h", kinds=["alert_resolved"])
            if len(resolved) == 2:
                break
            time.sleep(0.1)
        assert [e["data"]["key"] for e in resolved] == ["thermal:gpu.0", "memory:host"]
        assert resolved[-1]["message"].startswith("resolved: memory back to")
        assert resolved[-1]["data"]["since"] == stale["since"]
        assert second.alerts.book.active() == []
    finally:
        second.stop()


def test_a_kernel_that_records_itself_alerts_on_its_host(tmp_path, monkeypatch, caplog
                                                          ) -> None:
    """VS Code, a plain kernel: no server, so the kernel's own monitor runs the host rules
    (here a disk rule every real disk crosses) for the widget's banner."""
    from tracklab_jupyter.process_monitor import process_monitor, stop_process_monitor

    monkeypatch.setenv("TRACKLAB_ALERTS", '{"disk": {"threshold_pct": 1, "clear_pct": 0.5}}')
    monkeypatch.setenv("TRACKLAB_INTERVAL", "0.2")
    monitor = process_monitor(tmp_path / "kernel-data")
    try:
        events = monitor.hub.subscribe([EVENT])
        deadline = time.monotonic() + 20
        told: list[Event] = []
        while not told:
            assert time.monotonic() < deadline, "no disk alert from the kernel's monitor"
            told = [e for _, e in events.get(timeout=0.5) if e.kind == "alert"]
        assert monitor.role == "recorder" and told[0].data["rule"] == "disk"
        assert monitor.alerts.settings["disk"]["threshold_pct"] == 1
    finally:
        stop_process_monitor()
    # settings that do not parse leave alerts off, with a warning, and the monitor running
    monkeypatch.setenv("TRACKLAB_ALERTS", '{"disk": {"threshold_pct": 150}}')
    monitor = process_monitor(tmp_path / "kernel-data-2")
    try:
        deadline = time.monotonic() + 20
        while "alerts off in this kernel" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
        assert "TRACKLAB_ALERTS.disk.threshold_pct: must be between 1 and 100" in caplog.text
        assert monitor.alerts is None
    finally:
        stop_process_monitor()
