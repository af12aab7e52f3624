"""The latest sample in the Prometheus text exposition format.

Catalogue placeholders become labels and the rest of the name, dots as underscores, becomes
the metric name: ``gpu.0.util_pct`` -> ``tracklab_gpu_util_pct{node="h",gpu="0",uuid="GPU-…"}``.
"""

from __future__ import annotations

import re
from typing import Any

from tracklab_jupyter.accelerators.base import KINDS
from tracklab_jupyter.accelerators.registry import devices_in
from tracklab_jupyter.metrics.catalogue import spec_for
from tracklab_jupyter.sampler.sample import Sample

_PLACEHOLDER = re.compile(r"\.?\{\w+\}")


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def prometheus_name(pattern: str) -> str:
    """``gpu.{gpu}.util_pct`` -> ``tracklab_gpu_util_pct``."""
    base = _PLACEHOLDER.sub("", pattern)
    return "tracklab_" + re.sub(r"[^a-zA-Z0-9_]", "_", base)


def render_prometheus(sample: Sample, info: dict[str, Any]) -> str:
    devices = {(d["kind"], str(d["index"])): d for d in devices_in(info)}
    families: dict[str, tuple[Any, list[str]]] = {}
    for name, value in sorted(sample.metrics.items()):
        spec = spec_for(name)
        if spec is None:
            continue
        labels = {"node": sample.node, **spec.regex.match(name).groupdict()}  # type: ignore[union-attr]
        kind = spec.group if spec.group in KINDS else None
        dev = devices.get((kind, labels[kind])) if kind in labels else None
        if dev is not None:
            if dev.get("uuid"):
                labels["uuid"] = dev["uuid"]
            labels["vendor"] = dev.get("vendor", "")
        label_text = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
        metric = prometheus_name(spec.pattern)
        families.setdefault(metric, (spec, []))[1].append(f"{metric}{{{label_text}}} {value!r}")
    lines: list[str] = []
    for metric, (spec, rows) in families.items():
        unit = f" ({spec.unit})" if spec.unit else ""
        lines.append(f"# HELP {metric} {spec.description}{unit}")
        lines.append(f"# TYPE {metric} gauge")
        lines.extend(rows)
    return "\n".join(lines) + "\n" if lines else ""
