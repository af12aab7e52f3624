"""Alerts as the store holds them: ``alert`` / ``alert_resolved`` events folded into the
alerts still active, and merged with what an engine emitted but the store may not hold yet.
Used by the engine at start (to pick up where a previous process left off) and by
``api/alerts``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from tracklab_jupyter.alerts.book import ALERT, KINDS, RESOLVED, Alert
from tracklab_jupyter.metrics.sample import Event

log = logging.getLogger("tracklab_jupyter.alerts")

#: How far back the engine looks for alerts a previous process left active.
LOAD_WINDOW = "-24h"
#: At most this many alert events are read at start.
LOAD_LIMIT = 10_000


def event_id(event: Event) -> tuple[str, str, float]:
    """What tells two copies of one event apart from two events (the store keeps the
    time exactly)."""
    return (event.kind, str(event.data.get("key", "")), event.time)


def merge(stored: Iterable[Event], emitted: Iterable[Event]) -> list[Event]:
    """Both lists as one, each event once, oldest first."""
    seen: dict[tuple[str, str, float], Event] = {}
    for event in (*stored, *emitted):
        if event.kind in KINDS:
            seen.setdefault(event_id(event), event)
    return sorted(seen.values(), key=lambda e: e.time)


def fold_active(events: Iterable[Event]) -> dict[str, Alert]:
    """The alerts still active after ``events`` (oldest first): each key's last event is
    an ``alert`` that is not instant."""
    active: dict[str, Alert] = {}
    for event in events:
        key = event.data.get("key")
        if not isinstance(key, str):
            continue
        if event.kind == RESOLVED:
            active.pop(key, None)
        elif event.kind == ALERT and not event.data.get("instant"):
            try:
                active[key] = Alert.from_event(event)
            except (KeyError, TypeError, ValueError):
                log.debug("tracklab: ignoring a malformed alert event %r", event)
    return active


def stored_alert_events(monitor: Any, start: Any = LOAD_WINDOW,
                        limit: int = LOAD_LIMIT) -> list[Event]:
    """This node's alert events since ``start``, oldest first (blocking: reads SQLite).
    Raises like :meth:`Monitor.events`."""
    rows = monitor.events(start=start, kinds=list(KINDS), node=monitor.node, limit=limit)
    return [Event(r["time"], r["node"], r["kind"], r["message"], r["data"]) for r in rows]


def alert_dict(alert: Alert) -> dict[str, Any]:
    """An active alert as ``api/alerts`` lists it: the event data and its ``time``."""
    return {**alert.data(), "time": alert.time}


def with_kernels(data: dict[str, Any], monitor: Any) -> dict[str, Any]:
    """A memory alert stored by a recorder that knows no kernels (a standalone server, a
    ``record`` command), seen by the server that owns them: the kernels holding most memory
    named here, from the tracker's in-memory snapshot. Other data is returned as it is."""
    tracker = getattr(monitor, "kernels", None)
    if (tracker is None or data.get("rule") != "memory" or data.get("kernels")
            or "severity" not in data):
        return data
    from tracklab_jupyter.alerts.rules import kernel_names, top_kernels

    try:
        kernels = top_kernels((tracker.snapshot() or {}).get("kernels") or [])
    except Exception:  # a tracker shutting down: leave the alert as stored
        return data
    if not kernels:
        return data
    message = f"{data.get('message', '')}; most held by {kernel_names(kernels)}"
    return {**data, "kernels": list(kernels), "message": message}
