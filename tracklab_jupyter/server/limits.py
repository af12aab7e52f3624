"""Every bound on what one client may ask of a server, in one place.

Each limit is a named setting (``c.TrackLab.<name>`` in the Jupyter extension; the
standalone server uses the defaults) and is checked before the work it guards is done, with
an error that names the limit. docs/LIMITS.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

LIMITS_KEY = "tracklab_limits"

#: Characters of a client's input that an error message repeats back (the rest is cut).
ECHO_CHARS = 100


def _limit(default: int, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Limits:
    """The limits of one server. Defaults suit a single user's Jupyter server and a
    dashboard of a few dozen viewers."""

    # The largest valid PATCH (100 000 characters of notes, each escaped as a surrogate
    # pair: 12 bytes) is about 1.25 MB: every valid body fits.
    max_body_bytes: int = _limit(2 << 20,
        "Bytes in one request body (a JSON PATCH); refused from Content-Length, unread.")

    max_history_points: int = _limit(1_000_000,
        "Values (rows x series) in one ``api/history`` or ``runs/{id}/system`` reply: "
        "without ``step`` the finest step that fits is used, with ``step`` it is a 413.")

    max_run_metric_steps: int = _limit(10_000,
        "Steps in one page of ``api/runs/{id}/metrics`` (the page's ``limit`` at most).")

    max_events: int = _limit(10_000,
        "Events in one ``api/events`` reply (its ``limit`` at most).")

    max_patterns: int = _limit(256,
        "Metric names or globs in one request's ``metrics`` or one WebSocket subscription.")

    max_pattern_chars: int = _limit(200,
        "Characters in one metric name or glob.")

    max_prometheus_series: int = _limit(200_000,
        "Series in one ``metrics`` (Prometheus) reply; a larger exposition (a cluster of "
        "hundreds of nodes) is a 413 before it is encoded.")

    max_ws_connections: int = _limit(200,
        "WebSocket connections open at once on one server; more are refused with 503.")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_settings(cls, **values: Any) -> Limits:
        """Limits from settings (missing ones keep their defaults); ValueError names a
        setting that is not a positive integer."""
        for name, value in values.items():
            if name not in cls.names():
                raise ValueError(f"unknown limit {name!r}; limits: {', '.join(cls.names())}")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        return cls(**values)

    @classmethod
    def doc(cls, name: str) -> str:
        """What a limit bounds, in one sentence."""
        return next(f.metadata["doc"] for f in fields(cls) if f.name == name)


def clip(text: str, chars: int = ECHO_CHARS) -> str:
    """A client's input as an error may repeat it: at most ``chars`` characters."""
    return text if len(text) <= chars else text[:chars] + f"... ({len(text)} characters)"
