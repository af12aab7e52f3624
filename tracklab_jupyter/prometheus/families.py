"""The metric families of one scrape.

:func:`build_families` gathers the series of a
:class:`~tracklab_jupyter.prometheus.view.ScrapeView` by family (each family once, holding
every node's series); :class:`ScrapeCollector` is the custom prometheus_client collector
(``collect()`` yields metric families) whose output prometheus_client's own encoders write
as text or OpenMetrics.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from prometheus_client.metrics_core import Metric

from tracklab_jupyter.accelerators.base import KINDS
from tracklab_jupyter.accelerators.registry import devices_in, drivers_in
from tracklab_jupyter.collectors.disk import metric_mount
from tracklab_jupyter.collectors.procfs import DEVICE_COUNTER_FIELDS
from tracklab_jupyter.metrics.catalogue import spec_for
from tracklab_jupyter.prometheus.names import (
    EXTRA_FAMILIES,
    MAPPINGS,
    PLACEHOLDER_LABELS,
    Family,
    mapping_for,
)
from tracklab_jupyter.prometheus.view import NodeView, ScrapeView

_EXTRA_HELP = {name: help_ for name, _type, _labels, help_ in EXTRA_FAMILIES}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass
class FamilySeries:
    """One family's series, gathered before any prometheus_client object is made: the
    labels (dicts shared between families) and values in two lists. Its :class:`Metric`
    and samples are made by :meth:`metric` when it is encoded, and dropped after, so a
    large scrape never holds thousands of live sample tuples at once: those would be
    promoted through the garbage collector's generations and bring on full collections of
    the server's whole heap (pauses of 100+ ms in a Jupyter server)."""

    name: str  # as served in the text format
    base_name: str
    type: str
    help: str
    unit: str
    labels: list[dict[str, str]] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def metric(self) -> Metric:
        """The prometheus_client family, made now."""
        metric = Metric(self.base_name, self.help, self.type, self.unit)
        name = self.name
        for labels, value in zip(self.labels, self.values, strict=True):
            metric.add_sample(name, labels, value)
        return metric


class _Families:
    """Families by name, with their series, in the order they first came."""

    def __init__(self) -> None:
        self.by_name: dict[str, FamilySeries] = {}
        self.count = 0

    def add(self, family: Family, labels: dict[str, str], value: float) -> None:
        series = self.by_name.get(family.name)
        if series is None:
            series = self.by_name[family.name] = FamilySeries(
                family.name, family.base_name, family.type, family.help, family.unit)
        series.labels.append(labels)
        series.values.append(value)
        self.count += 1

    def add_extra(self, name: str, type_: str, labels: dict[str, str],
                  value: float = 1.0) -> None:
        series = self.by_name.get(name)
        if series is None:
            base = name.removesuffix("_info") if type_ == "info" else name
            base = base.removesuffix("_total") if type_ == "counter" else base
            unit = "seconds" if base.endswith("_seconds") else ""
            series = self.by_name[name] = FamilySeries(name, base, type_, _EXTRA_HELP[name],
                                                       unit)
        series.labels.append(labels)
        series.values.append(value)
        self.count += 1


#: Metric names whose families are remembered: names come and go with pids and kernels.
NAME_CACHE = 16384


@lru_cache(maxsize=NAME_CACHE)
def _families_of(name: str) -> tuple[tuple[Family, ...], tuple[str, ...], str]:
    """For a concrete metric name: its families that read the sample's value, the label
    names of its placeholders (in order), and its catalogue group; ((), (), "") when it is
    not exported or not catalogued."""
    spec = spec_for(name)
    if spec is None:
        return (), (), ""
    mapping = mapping_for(spec.pattern)
    if mapping is None:
        return (), (), ""
    families = tuple(f for f in mapping.families if not f.counter_key)
    keys = tuple(_PLACEHOLDER.findall(spec.pattern))
    return families, keys, spec.group


@lru_cache(maxsize=NAME_CACHE)
def _placeholder_values(name: str) -> tuple[str, ...]:
    spec = spec_for(name)
    assert spec is not None
    match = spec.regex.match(name)
    assert match is not None
    return tuple(match.groups())


#: Families that read per-device raw counters: (family, group, field index).
_COUNTER_FAMILIES: tuple[tuple[Family, str, int], ...] = tuple(
    (f, f.counter_key.split(".", 1)[0],
     DEVICE_COUNTER_FIELDS[f.counter_key.split(".", 1)[0]].index(f.counter_key.split(".", 1)[1]))
    for m in MAPPINGS for f in m.families if f.counter_key)


def _device_labels(info: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, str]]:
    """``(kind, index) -> {"uuid", "vendor"}`` for the accelerators in ``info``."""
    out = {}
    for dev in devices_in(dict(info)):
        out[(str(dev["kind"]), str(dev.get("index", 0)))] = {
            "uuid": str(dev.get("uuid") or ""), "vendor": str(dev.get("vendor") or "")}
    return out


def _mount_labels(info: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``mount -> {"device", "fstype"}`` for the filesystems in ``info``."""
    mounts = (info.get("disk") or {}).get("mounts") or []
    return {metric_mount(str(m["mountpoint"])): {"device": str(m.get("device") or ""),
                                                 "fstype": str(m.get("fstype") or "")}
            for m in mounts if isinstance(m, dict) and "mountpoint" in m}


def _add_values(out: _Families, node: str, metrics: Mapping[str, float],
                info: Mapping[str, Any], skip_kernels: bool) -> None:
    devices = _device_labels(info)
    mounts = _mount_labels(info)
    # One label dict per device (or per process, kernel, mount), shared by all its series:
    # prometheus_client only reads them, and a scrape of a large cluster otherwise makes
    # thousands of dicts, whose churn brings on full garbage collections of the server.
    shared: dict[tuple[str, tuple[str, ...], tuple[str, ...]], dict[str, str]] = {}
    for name, value in metrics.items():
        if skip_kernels and name.startswith("kernel."):
            continue
        families, keys, group = _families_of(name)
        if not families:
            continue
        parts = _placeholder_values(name) if keys else ()
        labels = shared.get((group, keys, parts))
        if labels is None:
            labels = {"node": node}
            for key, part in zip(keys, parts, strict=True):
                labels[PLACEHOLDER_LABELS[key]] = part
            if group in KINDS:
                labels.update(devices.get((group, labels[group]), {"uuid": "", "vendor": ""}))
            elif group == "disk" and "mountpoint" in labels:
                labels.update(mounts.get(labels["mountpoint"], {"device": "", "fstype": ""}))
            shared[(group, keys, parts)] = labels
        for family in families:
            out.add(family, labels, value * family.scale if family.scale != 1.0 else value)


def _add_counters(out: _Families, node: NodeView) -> None:
    shared: dict[tuple[str, str], dict[str, str]] = {}  # as in _add_values
    for family, group, index in _COUNTER_FAMILIES:
        rows = node.device_counters.get(group)
        if not rows:
            continue
        label = family.counter_label
        for device, row in rows.items():
            labels = shared.get((label, device))
            if labels is None:
                labels = shared[(label, device)] = {"node": node.node, label: device}
            out.add(family, labels, float(row[index]))


def _add_facts(out: _Families, node: NodeView) -> None:
    system = node.info.get("system") or {}
    out.add_extra("tracklab_node_info", "info", {
        "node": node.node, "hostname": str(system.get("hostname") or ""),
        "os": str(system.get("os") or ""), "architecture": str(system.get("architecture") or ""),
        "cpu_model": str(system.get("cpu_model") or "")})
    out.add_extra("tracklab_node_up", "gauge", {"node": node.node}, 1.0 if node.up else 0.0)
    if node.time is not None:
        out.add_extra("tracklab_node_last_sample_timestamp_seconds", "gauge",
                      {"node": node.node}, node.time)
    drivers = drivers_in(dict(node.info))
    for dev in devices_in(dict(node.info)):
        kind = str(dev["kind"])
        vendor = str(dev.get("vendor") or "")
        driver = next((str(d.get("driver") or d.get("driver_version") or "")
                       for name, d in drivers.items() if d.get("vendor", name) == vendor), "")
        out.add_extra(f"tracklab_{kind}_info", "info", {
            "node": node.node, kind: str(dev.get("index", 0)),
            "uuid": str(dev.get("uuid") or ""), "name": str(dev.get("name") or ""),
            "vendor": vendor, "driver": driver})


def _add_kernels(out: _Families, view: ScrapeView, node: str) -> None:
    for entry in view.kernels:
        out.add_extra("tracklab_kernel_info", "info", {
            "node": node, "kernel": str(entry.get("id") or ""),
            "notebook": str(entry.get("notebook") or ""),
            "kernel_name": str(entry.get("name") or "")})
    _add_values(out, node, view.kernel_series, {}, skip_kernels=False)


def build_families(view: ScrapeView) -> tuple[list[FamilySeries], int]:
    """Every family of ``view`` with at least one series, and the number of series."""
    out = _Families()
    out.add_extra("tracklab_build_info", "info", {"version": view.version})
    for node in view.nodes:
        # About 1 ms of pure Python per node: let the event loop's thread have the GIL
        # between nodes (a cluster of many would otherwise hold it for tens of ms).
        time.sleep(0)
        _add_facts(out, node)
        if not node.up:
            continue
        # This server's kernels come from the tracker (all of them, every pass), not from
        # the sample, which holds them only on the tick after a pass.
        _add_values(out, node.node, node.metrics, node.info, skip_kernels=node.local)
        _add_counters(out, node)
        if node.local:
            _add_kernels(out, view, node.node)
            if view.sampler is not None:
                out.add_extra("tracklab_sampler_samples_total", "counter",
                              {"node": node.node}, view.sampler["samples"])
                out.add_extra("tracklab_sampler_cpu_seconds_total", "counter",
                              {"node": node.node}, view.sampler["cpu_s"])
    return list(out.by_name.values()), out.count


class ScrapeCollector:
    """A prometheus_client collector over families gathered beforehand (so the series count
    can be checked against its limit before anything is encoded); each family's metric
    object is made as the encoder comes to it."""

    def __init__(self, families: list[FamilySeries]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.metric()
