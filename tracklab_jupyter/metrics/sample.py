"""The unit of data that flows from the sampler to every reader."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of the whole machine: ``(time, node, {metric_name: float})``.

    ``time`` is epoch seconds (UTC) taken once per tick; every metric in the sample shares it.
    ``device_counters`` are the raw per-device counters read in the same tick (disk, network;
    see ``Reading.device_counters``), kept in memory for the Prometheus counters and never
    stored or sent with the sample.
    """

    time: float
    node: str
    metrics: dict[str, float]
    device_counters: Mapping[str, Mapping[str, Sequence[float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "node": self.node, "metrics": dict(self.metrics)}


@dataclass(frozen=True, slots=True)
class Event:
    """A change worth telling people about: a GPU lost, throttling started, a run began.

    ``kind`` is a short machine name (``gpu_lost``, ``throttle_start``, ...); ``data`` holds
    the details (``gpu`` index, ``reasons`` ...); ``message`` is one readable line.
    """

    time: float
    node: str
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "node": self.node, "kind": self.kind,
                "message": self.message, "data": dict(self.data)}
