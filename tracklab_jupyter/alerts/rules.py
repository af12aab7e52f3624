"""The alert rules. Each keeps the little state it needs and tells the :class:`AlertBook`
when its condition starts or stops holding; the book makes sure each alert is told once.

A rule is fed by the engine: ``on_sample`` at every sample (a few dict lookups: nothing here
reads files or SQLite), ``on_event`` for the event kinds in ``events``, ``on_kernels`` for
each kernel pass of the server's tracker, ``on_node`` for cluster node changes and
``on_timer`` every few seconds. After alerts left active by an earlier process are loaded,
``reconcile`` gets the first sample, so that one whose condition went away meanwhile is
resolved rather than left active for ever.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tracklab_jupyter.accelerators.registry import devices_in
from tracklab_jupyter.accelerators.throttle import (
    REASONS,
    describe_throttle,
    throttling_bits,
)
from tracklab_jupyter.alerts.book import CRITICAL, WARNING, Alert, AlertBook
from tracklab_jupyter.cluster.status import DOWN, UP
from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.metrics.units import format_bytes
from tracklab_jupyter.settings import DEFAULT_INTERVAL

#: Kernels named by a memory alert.
TOP_KERNELS = 3
#: Seconds after start within which a cluster node left down by an earlier process may
#: still show up (discovery takes a while); after that an unknown one is resolved.
NODE_VERIFY_S = 120.0
#: How often the disk and thermal rules look again for mounts and devices that came or went
#: (the disk rule also when the sample's set of metrics changes size).
REFRESH_S = 60.0


@dataclass
class Context:
    """What rules share: the book, the monitor, and the newest kernel pass."""

    book: AlertBook
    monitor: Any
    started: float = field(default_factory=time.time)
    #: The newest ``KERNELS`` payload (the ``api/kernels`` body), if any.
    kernels: Mapping[str, Any] | None = None
    #: Ids of kernels this server's tracker has listed.
    known_kernels: set[str] = field(default_factory=set)

    def kernel_list(self) -> list[Mapping[str, Any]]:
        """The kernels of the newest pass, or of the tracker's snapshot before one came."""
        payload = self.kernels
        tracker = getattr(self.monitor, "kernels", None)
        if payload is None and tracker is not None:
            try:
                payload = tracker.snapshot()
            except Exception:  # a tracker that is shutting down: name no kernels
                payload = None
        return list((payload or {}).get("kernels") or [])

    def owns_kernel(self, kernel_id: Any) -> bool:
        """Whether a kernel event is this process's to tell: a recorder's hub only carries
        its own events; a reader's also carries other servers' through the store."""
        if getattr(self.monitor, "role", None) == "recorder":
            return True
        if kernel_id in self.known_kernels:
            return True
        return any(k.get("id") == kernel_id for k in self.kernel_list())


class Rule:
    """Base class: every hook does nothing."""

    name: ClassVar[str] = ""
    #: Event kinds ``on_event`` wants.
    events: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: Mapping[str, Any], ctx: Context) -> None:
        self.settings = settings
        self.ctx = ctx
        self.book = ctx.book

    def on_sample(self, sample: Sample) -> None:
        pass

    def on_event(self, event: Event) -> None:
        pass

    def on_kernels(self, payload: Mapping[str, Any]) -> None:
        pass

    def on_node(self, status: Mapping[str, Any]) -> None:
        pass

    def on_timer(self, now: float) -> None:
        pass

    def loaded(self, alerts: Iterable[Alert]) -> None:
        """Alerts of this rule left active by an earlier process were taken over."""

    def reconcile(self, sample: Sample) -> None:
        """The first sample after alerts were loaded: resolve those that no longer hold."""


# -- host rules ------------------------------------------------------------------------------

class MemoryRule(Rule):
    """Memory of the machine, or of the container when a cgroup limit applies (mem.util_pct
    is already read against it), over ``threshold_pct`` for ``for_s``: "OOM risk"."""

    name = "memory"
    KEY = "memory:host"

    def __init__(self, settings: Mapping[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        self._above_since: float | None = None

    def on_sample(self, sample: Sample) -> None:
        value = sample.metrics.get("mem.util_pct")
        if value is None:
            return
        s = self.settings
        active = self.book.get(self.KEY)
        if active is not None:
            if value < s["clear_pct"]:
                self._above_since = None
                self.book.resolve(self.KEY, sample.time, f"resolved: memory back to "
                                  f"{value:.0f} % of {self._limit_name()}")
            elif value >= s["critical_pct"] and active.severity != CRITICAL:
                self.book.fire(self._alert(sample, value, active.since))
            return
        if value < s["threshold_pct"]:
            self._above_since = None
            return
        if self._above_since is None:
            self._above_since = sample.time
        if sample.time - self._above_since >= s["for_s"]:
            self.book.fire(self._alert(sample, value, self._above_since))

    def _limit_name(self) -> str:
        memory = (getattr(self.ctx.monitor, "info", None) or {}).get("memory") or {}
        return ("the container's limit" if memory.get("effective_limit_bytes")
                else "the machine's memory")

    def _alert(self, sample: Sample, value: float, since: float) -> Alert:
        m = sample.metrics
        used, limit = m.get("mem.used_bytes"), m.get("mem.limit_bytes")
        message = f"Memory at {value:.0f} % of {self._limit_name()}"
        if used is not None and limit is not None:
            message += f" ({format_bytes(used)} of {format_bytes(limit)})"
        kernels = top_kernels(self.ctx.kernel_list())
        if kernels:
            message += "; most held by " + kernel_names(kernels)
        severity = CRITICAL if value >= self.settings["critical_pct"] else WARNING
        return Alert(key=self.KEY, rule=self.name, severity=severity, title="OOM risk",
                     message=message, subject="host", since=since, value=value,
                     threshold=float(self.settings["threshold_pct"]), kernels=kernels)


class DiskRule(Rule):
    """A mounted filesystem over ``threshold_pct`` full (``disk.{mount}.util_pct``)."""

    name = "disk"

    def __init__(self, settings: Mapping[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        self._names: list[tuple[str, str]] = []  # (metric, mount)
        self._count = -1
        self._refreshed = -math.inf
        self._above_since: dict[str, float] = {}

    def on_sample(self, sample: Sample) -> None:
        m = sample.metrics
        # The mount list is found by a scan of the sample's names: only when their number
        # changes or once a minute, not at every sample.
        if len(m) != self._count or sample.time - self._refreshed > REFRESH_S:
            self._refresh(sample)
        for name, mount in self._names:
            value = m.get(name)
            if value is not None:
                self._check(mount, value, sample)

    def _refresh(self, sample: Sample) -> None:
        m = sample.metrics
        self._count, self._refreshed = len(m), sample.time
        self._names = [(k, k[len("disk."):-len(".util_pct")]) for k in m
                       if k.startswith("disk.") and k.endswith(".util_pct")]
        mounts = {mount for _, mount in self._names}
        for key in self.book.active_keys(self.name):
            mount = key.split(":", 1)[1]
            if mount not in mounts:
                self._above_since.pop(mount, None)
                self.book.resolve(key, sample.time, f"resolved: {mount} is no longer mounted")

    def _check(self, mount: str, value: float, sample: Sample) -> None:
        s, key = self.settings, f"disk:{mount}"
        active = self.book.get(key)
        if active is not None:
            if value < s["clear_pct"]:
                self._above_since.pop(mount, None)
                self.book.resolve(key, sample.time,
                                  f"resolved: {mount} is {value:.0f} % full")
            return
        if value < s["threshold_pct"]:
            self._above_since.pop(mount, None)
            return
        since = self._above_since.setdefault(mount, sample.time)
        if sample.time - since < s["for_s"]:
            return
        used = sample.metrics.get(f"disk.{mount}.used_bytes")
        total = sample.metrics.get(f"disk.{mount}.total_bytes")
        message = f"Disk {mount} is {value:.0f} % full"
        if used is not None and total is not None:
            message += f" ({format_bytes(used)} of {format_bytes(total)})"
        self.book.fire(Alert(key=key, rule=self.name, severity=WARNING, title="disk full",
                             message=message, subject=mount, since=since, value=value,
                             threshold=float(s["threshold_pct"])))


class ThermalRule(Rule):
    """A device at or over its slowdown temperature, or throttled for a thermal reason;
    resolved once neither has held for ``clear_s``.

    Read from the samples (two lookups per device), not from the HardwareWatcher's
    ``throttle_start`` events: those only mark the change from no throttling to some, and a
    loaded GPU is often power-capped already (the recorded H200 is), so thermal slowdown
    starting on top of the power cap would never be told."""

    name = "thermal"

    def __init__(self, settings: Mapping[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        self._devices: list[_Thermal] = []
        self._listed = -math.inf

    def on_sample(self, sample: Sample) -> None:
        if sample.time - self._listed > REFRESH_S:
            self._list_devices(sample.time)
        m = sample.metrics
        for dev in self._devices:
            temp, mask = m.get(dev.temp), m.get(dev.mask)
            hot = temp is not None and dev.slowdown is not None and temp >= dev.slowdown
            throttled = (mask is not None and dev.thermal_bits
                         and throttling_bits(mask, dev.vendor) & dev.thermal_bits)
            if hot or throttled:
                dev.cool_since = None
                self._fire(dev, sample, temp, mask, bool(hot))
                continue
            if self.book.get(dev.key) is None:
                continue
            if dev.cool_since is None:
                dev.cool_since = sample.time
            if sample.time - dev.cool_since >= self.settings["clear_s"]:
                dev.cool_since = None
                where = f" ({temp:.0f} °C)" if temp is not None else ""
                self.book.resolve(dev.key, sample.time,
                                  f"resolved: {dev.label} is out of thermal slowdown{where}")

    def _fire(self, dev: _Thermal, sample: Sample, temp: float | None, mask: float | None,
              hot: bool) -> None:
        if self.book.get(dev.key) is not None:
            return  # active already: nothing to build
        if hot:
            message = (f"{dev.label} at {temp:.0f} °C reached its slowdown temperature "
                       f"({dev.slowdown:.0f} °C)")
        else:
            reasons = [r for r in describe_throttle(mask or 0, dev.vendor) if _thermal_word(r)]
            message = f"{dev.label} throttled: {', '.join(reasons)}"
        self.book.fire(Alert(key=dev.key, rule=self.name, severity=WARNING,
                             title="thermal slowdown", message=message, subject=dev.device,
                             since=sample.time, value=temp, threshold=dev.slowdown))

    def _list_devices(self, now: float) -> None:
        self._listed = now
        old = {d.device: d for d in self._devices}
        devices = []
        for facts in devices_in(getattr(self.ctx.monitor, "info", None) or {}):
            device = f"{facts['kind']}.{facts['index']}"
            vendor = str(facts.get("vendor") or "")
            slowdown = _number(facts.get("temp_slowdown_c"))
            dev = old.get(device) or _Thermal(device, vendor, slowdown)
            dev.vendor, dev.slowdown = vendor, slowdown
            dev.thermal_bits = THERMAL_BITS.get(vendor, 0)
            devices.append(dev)
        self._devices = devices
        # an alert left active by an earlier process, for a device no longer listed
        listed = {d.device for d in devices}
        for key in self.book.active_keys(self.name):
            device = key.split(":", 1)[1]
            if device not in listed:
                self.book.resolve(key, now, f"resolved: {device_label(device)} is no "
                                            "longer monitored")


@dataclass
class _Thermal:
    """One device the thermal rule watches."""

    device: str
    vendor: str
    slowdown: float | None
    thermal_bits: int = 0
    cool_since: float | None = None

    def __post_init__(self) -> None:
        self.key = f"thermal:{self.device}"
        self.label = device_label(self.device)
        self.temp = f"{self.device}.temp_c"
        self.mask = f"{self.device}.throttle_reasons"


def _thermal_word(reason: str) -> bool:
    return "thermal" in reason or "temperature" in reason


#: Per vendor, the throttle-reason bits that mean a thermal slowdown.
THERMAL_BITS: dict[str, int] = {
    vendor: sum(bit for bit, reason in reasons.items() if _thermal_word(reason))
    for vendor, reasons in REASONS.items()}


class EccRule(Rule):
    """New uncorrected ECC errors: told at once, nothing to resolve."""

    name = "ecc"
    events = frozenset({"ecc_errors"})

    def on_event(self, event: Event) -> None:
        device = device_of(event.data)
        if event.data.get("type") != "uncorrected" or device is None:
            return
        self.book.instant(Alert(key=f"ecc:{device}", rule=self.name, severity=CRITICAL,
                                title="uncorrected ECC errors", message=event.message,
                                subject=device, since=event.time,
                                value=_number(event.data.get("total"))))


class DeviceLostRule(Rule):
    """A device stopped answering (``gpu_lost``, any kind); resolved when it appears
    again."""

    name = "device_lost"
    events = frozenset({"gpu_lost", "gpu_appeared"})

    def __init__(self, settings: Mapping[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        self._unsure: set[str] = set()

    def on_event(self, event: Event) -> None:
        device = device_of(event.data)
        if device is None:
            return
        key = f"device_lost:{device}"
        self._unsure.discard(device)
        if event.kind == "gpu_lost":
            self.book.fire(Alert(key=key, rule=self.name, severity=CRITICAL,
                                 title="device lost", message=event.message, subject=device,
                                 since=event.time))
        else:
            self.book.resolve(key, event.time,
                              f"resolved: {device_label(device)} appeared again")

    def loaded(self, alerts: Iterable[Alert]) -> None:
        self._unsure.update(a.subject for a in alerts)

    def reconcile(self, sample: Sample) -> None:
        if not self._unsure:
            return
        answering = {name.split(".", 2)[0] + "." + name.split(".", 2)[1]
                     for name in sample.metrics if name.count(".") >= 2}
        for device in list(self._unsure):
            self._unsure.discard(device)
            if device in answering:
                self.book.resolve(f"device_lost:{device}", sample.time,
                                  f"resolved: {device_label(device)} answers again")


class NodeOfflineRule(Rule):
    """A cluster node ``down`` (no answer for the node timeout); resolved when it is ``up``
    again or leaves the cluster. The rule keeps its name ``node_offline`` (a setting users
    write); the status words are docs/CLUSTER.md's."""

    name = "node_offline"

    def __init__(self, settings: Mapping[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        self._unsure: set[str] = set()

    def on_node(self, status: Mapping[str, Any]) -> None:
        node = status.get("node")
        if not isinstance(node, str):
            return
        self._unsure.discard(node)
        key, now = f"node_offline:{node}", time.time()
        reason = str(status.get("reason") or "")
        if status.get("status") == UP:
            self.book.resolve(key, now, f"resolved: {node} is up again")
        elif reason.startswith("left"):
            self.book.resolve(key, now, f"resolved: {node} left the cluster")
        elif status.get("status") == DOWN:
            self.book.fire(Alert(key=key, rule=self.name, severity=WARNING,
                                 title="node down",
                                 message=f"Cluster node {node} is down: {reason}",
                                 subject=node, since=now))

    def loaded(self, alerts: Iterable[Alert]) -> None:
        self._unsure.update(a.subject for a in alerts)

    def on_timer(self, now: float) -> None:
        if not self._unsure:
            return
        cluster = getattr(self.ctx.monitor, "cluster", None)
        statuses = {n.name: n.status for n in cluster.node_states()} \
            if cluster is not None else {}
        for node in list(self._unsure):
            status = statuses.get(node)
            if status == DOWN:
                self._unsure.discard(node)  # still down: the next change resolves it
            elif status == UP:
                self._unsure.discard(node)
                self.book.resolve(f"node_offline:{node}", now,
                                  f"resolved: {node} is up again")
            elif now - self.ctx.started > NODE_VERIFY_S:
                self._unsure.discard(node)
                self.book.resolve(f"node_offline:{node}", now,
                                  f"resolved: {node} is no longer monitored")


class RecorderStaleRule(Rule):
    """No new sample for ``stale_s`` (at least 5 intervals) while the recorder runs."""

    name = "recorder_stale"
    KEY = "recorder_stale:host"

    def limit(self) -> float:
        return max(float(self.settings["stale_s"]),
                   5 * float(getattr(self.ctx.monitor, "interval", DEFAULT_INTERVAL)))

    def on_sample(self, sample: Sample) -> None:
        if self.book.get(self.KEY) is not None:
            self.book.resolve(self.KEY, sample.time, "resolved: samples are recorded again")

    def reconcile(self, sample: Sample) -> None:
        self.on_sample(sample)

    def on_timer(self, now: float) -> None:
        latest = getattr(self.ctx.monitor, "latest", None)
        last = latest.time if latest is not None else self.ctx.started
        age, limit = now - last, self.limit()
        if age <= limit:
            self.book.resolve(self.KEY, now, "resolved: samples are recorded again")
            return
        node = getattr(self.ctx.monitor, "node", "this host")
        self.book.fire(Alert(key=self.KEY, rule=self.name, severity=CRITICAL,
                             title="recorder stale",
                             message=f"No new sample of {node} for {age:.0f} s: the "
                                     "recorder stopped sampling (see api/health)",
                             subject="host", since=last, value=age, threshold=limit))


# -- kernel rules ----------------------------------------------------------------------------

@dataclass
class _Held:
    """A kernel seen holding accelerator memory."""

    since: float
    busy_at: float = -math.inf
    devices: frozenset[str] = frozenset()
    #: Devices where the kernel's own use (``proc_util_pct``) is reported: the device's
    #: figure, which another job may drive, does not count for it there.
    own_devices: frozenset[str] = frozenset()
    label: str = ""


class IdleGpuRule(Rule):
    """A kernel holding accelerator memory while it stayed at most ``idle_util_pct`` busy on
    the devices it holds memory on for ``idle_minutes``: "idle GPU". Its own use
    (``proc_util_pct``, where the driver reports utilisation per process) is preferred; else
    the devices' use stands for it."""

    name = "idle_gpu"

    def __init__(self, settings: Mapping[str, Any], ctx: Context) -> None:
        super().__init__(settings, ctx)
        self._held: dict[str, _Held] = {}
        self._watch: tuple[tuple[str, str], ...] = ()  # (device, its util metric)
        self._busy_at: dict[str, float] = {}
        self._util_known: set[str] = set()

    def on_sample(self, sample: Sample) -> None:
        idle = self.settings["idle_util_pct"]
        for device, name in self._watch:
            util = sample.metrics.get(name)
            if util is None:
                continue
            self._util_known.add(device)
            if util > idle:
                self._busy_at[device] = sample.time
                self._resolve_users(device, sample.time)

    def _resolve_users(self, device: str, now: float) -> None:
        for kernel_id, held in self._held.items():
            if device in held.devices and device not in held.own_devices:
                self.book.resolve(f"idle_gpu:{kernel_id}", now,
                                  f"resolved: {held.label} uses {device_label(device)} again")

    def on_kernels(self, payload: Mapping[str, Any]) -> None:
        now = _number(payload.get("time")) or time.time()
        idle, wait = self.settings["idle_util_pct"], 60.0 * self.settings["idle_minutes"]
        seen: set[str] = set()
        for entry in payload.get("kernels") or ():
            kernel_id = entry.get("id")
            if not isinstance(kernel_id, str):
                continue
            seen.add(kernel_id)
            key = f"idle_gpu:{kernel_id}"
            devices = {d: g for d, g in (entry.get("gpus") or {}).items()
                       if isinstance(g, dict) and (_number(g.get("mem_used_bytes")) or 0) > 0}
            memory = _number(entry.get("gpu_mem_bytes")) or 0.0
            label = kernel_label(entry)
            if memory <= 0 or not devices:
                if self._held.pop(kernel_id, None) is not None or self.book.get(key):
                    self.book.resolve(key, now, f"resolved: {label} freed its GPU memory")
                continue
            active = self.book.get(key)
            held = self._held.get(kernel_id)
            if held is None:
                held = self._held[kernel_id] = _Held(since=active.since if active else now)
            # A kernel holding memory on a GPU that another job keeps busy is idle itself:
            # where its own figure is reported, the device's does not stand for it.
            mine = {d: _number(g.get("proc_util_pct")) for d, g in devices.items()}
            own_devices = frozenset(d for d, u in mine.items() if u is not None)
            held.devices, held.own_devices, held.label = frozenset(devices), own_devices, label
            use = {d: mine[d] if d in own_devices else _number(g.get("util_pct"))
                   for d, g in devices.items()}
            own = [u for u in use.values() if u is not None]
            busy = sorted(d for d, u in use.items() if u is not None and u > idle)
            if busy:
                held.busy_at = now
                names = ", ".join(device_label(d) for d in busy)
                self.book.resolve(key, now, f"resolved: {label} uses {names} again")
                continue
            if active is not None:
                continue
            # Only a kernel whose idleness can be told: its own use, or its devices'.
            if not own and not all(d in self._util_known for d in devices):
                continue
            idle_from = max(held.since, held.busy_at,
                            *(self._busy_at.get(d, -math.inf) for d in devices
                              if d not in own_devices))
            if now - idle_from >= wait:
                names = ", ".join(device_label(d) for d in sorted(devices))
                self.book.fire(Alert(
                    key=key, rule=self.name, severity=WARNING, title="idle GPU",
                    message=f"{label} holds {format_bytes(memory)} on {names} and has not "
                            f"used it for {_minutes(now - idle_from)}",
                    subject=kernel_id, since=idle_from, value=memory,
                    threshold=float(idle),
                    kernels=({"id": kernel_id, "notebook": entry.get("notebook"),
                              "rss_bytes": _number(entry.get("rss_bytes"))},)))
        for kernel_id in [k for k in self._held if k not in seen]:
            label = self._held.pop(kernel_id).label
            self.book.resolve(f"idle_gpu:{kernel_id}", now, f"resolved: {label} ended")
        for key in self.book.active_keys(self.name):  # loaded ones of kernels now gone
            if key.split(":", 1)[1] not in seen:
                self.book.resolve(key, now, "resolved: the kernel ended")
        watched = sorted({d for held in self._held.values() for d in held.devices})
        self._watch = tuple((d, f"{d}.util_pct") for d in watched)


class KernelDeathRule(Rule):
    """A kernel died (``kernel_died``, with why where the machine says): told at once,
    critical when the out-of-memory killer did it."""

    name = "kernel_death"
    events = frozenset({"kernel_died"})

    def on_event(self, event: Event) -> None:
        data = event.data
        kernel_id = data.get("kernel_id")
        if not isinstance(kernel_id, str) or not self.ctx.owns_kernel(kernel_id):
            return
        oom = data.get("reason") == "oom_kill"
        notebook = data.get("notebook")
        self.book.instant(Alert(
            key=f"kernel_death:{kernel_id}", rule=self.name,
            severity=CRITICAL if oom else WARNING,
            title="kernel killed: out of memory" if oom else "kernel died",
            message=event.message, subject=notebook or kernel_id, since=event.time,
            value=_number(data.get("rss_bytes")), threshold=_number(data.get("mem_limit_bytes")),
            kernels=({"id": kernel_id, "notebook": notebook,
                      "rss_bytes": _number(data.get("rss_bytes"))},)))


RULE_CLASSES: dict[str, type[Rule]] = {cls.name: cls for cls in (
    MemoryRule, IdleGpuRule, DiskRule, ThermalRule, EccRule, DeviceLostRule, NodeOfflineRule,
    RecorderStaleRule, KernelDeathRule)}


# -- helpers ---------------------------------------------------------------------------------

def top_kernels(kernels: Iterable[Mapping[str, Any]], n: int = TOP_KERNELS
                ) -> tuple[dict[str, Any], ...]:
    """The ``n`` kernels holding most memory, as alerts name them."""
    sized = [k for k in kernels if (_number(k.get("rss_bytes")) or 0) > 0]
    sized.sort(key=lambda k: -float(k["rss_bytes"]))
    return tuple({"id": k.get("id"), "notebook": k.get("notebook"),
                  "rss_bytes": float(k["rss_bytes"])} for k in sized[:n])


def kernel_names(kernels: Iterable[Mapping[str, Any]]) -> str:
    """``train.ipynb (12.1 GiB), eval.ipynb (3.2 GiB)``."""
    return ", ".join(f"{kernel_label(k)} ({format_bytes(k['rss_bytes'])})" for k in kernels)


def kernel_label(entry: Mapping[str, Any]) -> str:
    """How a message names a kernel: its notebook's file name, else its id's start."""
    notebook = entry.get("notebook")
    if isinstance(notebook, str) and notebook:
        return f"`{notebook.rsplit('/', 1)[-1]}`"
    return f"kernel {str(entry.get('id', '?'))[:8]}"


def device_of(data: Mapping[str, Any]) -> str | None:
    """``gpu.0`` from an event's data (``device``, else ``gpu``/``npu``/``tpu`` index)."""
    device = data.get("device")
    if isinstance(device, str) and device:
        return device
    for kind in ("gpu", "npu", "tpu"):
        index = data.get(kind)
        if isinstance(index, int) and not isinstance(index, bool):
            return f"{kind}.{index}"
    return None


def device_label(device: str) -> str:
    kind, _, index = device.partition(".")
    return f"{kind.upper()} {index}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    if minutes >= 90:
        return f"{minutes / 60:.1f} h"
    return f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"
