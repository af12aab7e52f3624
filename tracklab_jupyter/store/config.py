"""Tunables of the store: retention per tier, size cap, batching; the tiers and the
aggregates a read may ask for."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tracklab_jupyter.store.timespec import parse_duration

#: Tier names, finest first, with their resolution in seconds (raw has no fixed one).
TIERS: tuple[str, ...] = ("raw", "1min", "1h")
TIER_SECONDS: dict[str, int] = {"raw": 0, "1min": 60, "1h": 3600}

#: How values within a time bin combine, for every reader of the store (history(), the
#: REST history endpoints, the command line): declared once here, checked by check_agg.
AGGREGATES: tuple[str, ...] = ("mean", "min", "max", "last")

DAY = 86400.0


def check_agg(agg: str) -> str:
    """``agg`` itself when it is one of :data:`AGGREGATES`, else ValueError."""
    if agg not in AGGREGATES:
        raise ValueError(f"agg must be one of {', '.join(AGGREGATES)}; got {agg!r}")
    return agg


@dataclass
class StoreConfig:
    """How much history is kept and how it is written.

    Durations accept seconds or strings such as ``"48h"`` / ``"30d"``.
    """

    #: Raw samples are kept this long (dropped in whole hour blocks).
    raw_retention: float | str = 48 * 3600.0
    #: 1-minute rollups are kept this long.
    minute_retention: float | str = 30 * DAY
    #: 1-hour rollups are kept this long.
    hour_retention: float | str = 365 * DAY
    #: Size cap of the database in bytes; past it the oldest data goes first.
    max_bytes: int = 1 << 30
    #: Flush when this many samples are waiting ...
    batch_size: int = 100
    #: ... or when this many seconds passed since the last flush (readers see data this late).
    flush_interval: float | str = 1.0
    #: Samples waiting for the writer thread; past this, new samples are dropped (counted).
    max_queue: int = 10_000
    #: While the database cannot be written (full disk), keep at most this many minutes of
    #: samples per node in memory (the newest) and retry.
    max_pending_minutes: int = 60
    #: Longest wait between retries of a failing write.
    max_retry_interval: float | str = 30.0
    #: Seconds between background cleanups (compaction, retention, size cap).
    maintenance_interval: float | str = 60.0
    #: A hard page limit on the database (PRAGMA max_page_count); None for none. A real way
    #: to make the database "full" without filling a disk.
    max_page_count: int | None = None

    def __post_init__(self) -> None:
        for name in ("raw_retention", "minute_retention", "hour_retention", "flush_interval",
                     "max_retry_interval", "maintenance_interval"):
            setattr(self, name, parse_duration(getattr(self, name)))
        for name in ("max_bytes", "batch_size", "max_queue", "max_pending_minutes"):
            value = int(getattr(self, name))
            if value < 1:
                raise ValueError(f"StoreConfig.{name} must be at least 1, got {value}")
            setattr(self, name, value)

    def retention(self, tier: str) -> float:
        """Retention in seconds of ``tier`` (``raw``, ``1min`` or ``1h``)."""
        return {"raw": self.raw_retention, "1min": self.minute_retention,
                "1h": self.hour_retention}[tier]  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
