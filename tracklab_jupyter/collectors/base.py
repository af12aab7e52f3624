"""The contract every collector fulfils.

A collector reads one source (psutil's CPU counters, NVML, cgroup files, ...). It reports
static facts once through :meth:`Collector.info` and cheap values on every tick through
:meth:`Collector.read`. Calls that cost milliseconds go in :meth:`Collector.read_slow`, which
the sampler runs on its own thread at ``slow_interval``, never on the 1 Hz path.

Values are floats keyed by catalogue names (``tracklab_jupyter.metrics.catalogue``).
Cumulative counters (bytes, packets, operations) are returned in ``Reading.counters`` under
the name of the *rate* they become (``disk.read_bytes_per_s``); the sampler divides by the
real elapsed time. A metric the machine cannot report is left out, never set to zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger("tracklab_jupyter.collectors")

T = TypeVar("T")


@dataclass
class Reading:
    """What one call of a collector returned."""

    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Raw cumulative counters per device, kept as read for exporters (never rated or
    #: stored): ``{"net": {"eth0": NetIO(...)}}``; fields in ``procfs.DEVICE_COUNTER_FIELDS``.
    device_counters: dict[str, dict[str, Sequence[float]]] = field(default_factory=dict)

    def merge(self, other: Reading) -> None:
        self.gauges.update(other.gauges)
        self.counters.update(other.counters)
        self.events.extend(other.events)
        self.device_counters.update(other.device_counters)

    def add_device_counters(self, group: str, each: Mapping[str, Sequence[float]] | None,
                            total_of: Callable[[Mapping[str, Sequence[float]]], Any],
                            values: Callable[[Any], dict[str, float]]) -> None:
        """Keep per-device rows ``each`` under ``group`` and their sum (``total_of``) as
        the counters ``values`` names; nothing when there is no device."""
        total = total_of(each) if each else None
        if total is not None:
            self.counters.update(values(total))
            self.device_counters[group] = each  # type: ignore[assignment]


class Collector:
    """Base class for one source of metrics. Subclasses override what they support."""

    #: Short name used in configuration (``enable_<name>``) and in logs.
    name: str = "collector"
    #: Seconds between :meth:`read_slow` calls; 0 means the collector has no slow part.
    slow_interval: float = 0.0

    def info(self) -> dict[str, Any]:
        """Static facts (model, totals, limits). Called at start and after a change event."""
        return {}

    def read(self) -> Reading:
        """Cheap values, called on every tick (budget: well under a millisecond)."""
        return Reading()

    def read_slow(self) -> Reading:
        """Expensive values, called every ``slow_interval`` seconds off the tick path."""
        return Reading()

    def close(self) -> None:
        """Release handles (NVML, files). Idempotent."""


class FieldGuard:
    """Remembers which fields raised 'unsupported' so they are not asked for again.

    One unsupported field must never hide the others: each field is read through
    :meth:`call`, and an error listed as permanent marks that field off for good.
    """

    def __init__(self, owner: str, permanent: Callable[[BaseException], bool]) -> None:
        self._owner = owner
        self._permanent = permanent
        self.unsupported: dict[str, str] = {}

    def get(self, key: str, fn: Callable[..., T], *args: Any) -> T | None:
        """Like :meth:`call`, but any other failure skips only this reading of the field."""
        try:
            return self.call(key, fn, *args)
        except Exception as exc:
            log.debug("%s: %s failed this time: %s", self._owner, key, exc)
            return None

    def call(self, key: str, fn: Callable[..., T], *args: Any) -> T | None:
        if key in self.unsupported:
            return None
        try:
            return fn(*args)
        except Exception as exc:
            if self._permanent(exc):
                self.unsupported[key] = f"{type(exc).__name__}: {exc}"
                log.debug("%s: %s unsupported (%s); not asking again", self._owner, key, exc)
                return None
            raise


def host_permanent(exc: BaseException) -> bool:
    """Errors of psutil and /proc reads that will not go away by asking again."""
    import psutil

    return isinstance(exc, (NotImplementedError, AttributeError, psutil.AccessDenied,
                            PermissionError, FileNotFoundError))
