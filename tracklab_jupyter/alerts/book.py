"""Which alerts are active, and the events that change that: fire once, resolve once.

The :class:`AlertBook` is the rules' only way out. ``fire`` for a key that is already active
does nothing (no flood while a condition holds), except that a rise in severity (memory from
warning to critical) is told once more; ``resolve`` of a key that is not active does
nothing. Each change becomes an ``alert`` or ``alert_resolved`` event (data as in
docs/ALERTS.md), handed to ``emit``, and the newest are kept for ``api/alerts`` until the
store has them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from tracklab_jupyter.metrics.sample import Event

ALERT = "alert"
RESOLVED = "alert_resolved"
KINDS = (ALERT, RESOLVED)
WARNING, CRITICAL = "warning", "critical"
_RANK = {WARNING: 1, CRITICAL: 2}
#: Events the engine emitted that api/alerts merges with the store's (a recorder's writer
#: stores events on its own clock, so the newest may not be readable yet).
RECENT_KEPT = 200


@dataclass(frozen=True)
class Alert:
    """One alert: ``key`` is ``rule:subject`` and unique among active alerts."""

    key: str
    rule: str
    severity: str
    title: str
    message: str
    subject: str
    since: float
    value: float | None = None
    threshold: float | None = None
    kernels: tuple[dict[str, Any], ...] = ()
    instant: bool = False
    #: When the alert (or its rise in severity) was told (wall clock).
    time: float = 0.0

    def data(self) -> dict[str, Any]:
        """The ``alert`` event's data."""
        return {"key": self.key, "rule": self.rule, "severity": self.severity,
                "title": self.title, "message": self.message, "subject": self.subject,
                "since": self.since, "value": self.value, "threshold": self.threshold,
                "kernels": [dict(k) for k in self.kernels], "instant": self.instant}

    @classmethod
    def from_event(cls, event: Event) -> Alert:
        """An ``alert`` event read back (from the store or the hub)."""
        d = event.data
        return cls(key=str(d["key"]), rule=str(d.get("rule", "")),
                   severity=str(d.get("severity", WARNING)), title=str(d.get("title", "")),
                   message=str(d.get("message", event.message)),
                   subject=str(d.get("subject", "")),
                   since=float(d.get("since", event.time)), value=_num(d.get("value")),
                   threshold=_num(d.get("threshold")),
                   kernels=tuple(k for k in d.get("kernels") or () if isinstance(k, dict)),
                   instant=bool(d.get("instant", False)), time=event.time)


class AlertBook:
    """The active alerts of one engine. Rules call it from the engine's thread; readers
    (``api/alerts``) take copies under the lock."""

    def __init__(self, node: str, emit: Callable[[Event], None]) -> None:
        self.node = node
        self._emit = emit
        self._active: dict[str, Alert] = {}
        self._recent: deque[Event] = deque(maxlen=RECENT_KEPT)
        self._lock = threading.Lock()

    # -- what rules do -------------------------------------------------------------------
    def get(self, key: str) -> Alert | None:
        return self._active.get(key)

    def active_keys(self, rule: str) -> list[str]:
        return [key for key, alert in self._active.items() if alert.rule == rule]

    def fire(self, alert: Alert) -> bool:
        """Make ``alert`` active and tell it, unless its key is active already (then only
        a rise in severity is told). True when an event went out."""
        old = self._active.get(alert.key)
        if old is not None:
            if _RANK.get(alert.severity, 0) <= _RANK.get(old.severity, 0):
                return False
            alert = replace(alert, since=old.since)
        told = _told()
        alert = replace(alert, time=told, instant=False)
        with self._lock:
            self._active[alert.key] = alert
        self._send(Event(told, self.node, ALERT, alert.message, alert.data()))
        return True

    def instant(self, alert: Alert) -> None:
        """Tell an alert that has no resolution (a kernel death, new ECC errors)."""
        told = _told()
        alert = replace(alert, time=told, instant=True)
        self._send(Event(told, self.node, ALERT, alert.message, alert.data()))

    def resolve(self, key: str, now: float, message: str) -> bool:
        """End the active alert ``key`` (its condition ended at ``now``, the rules' clock);
        ``message`` says why, e.g. ``resolved: memory back to 71 % of the limit``. True
        when it was active."""
        with self._lock:
            alert = self._active.pop(key, None)
        if alert is None:
            return False
        self._send(Event(_told(), self.node, RESOLVED, message, {
            "key": key, "rule": alert.rule, "subject": alert.subject, "since": alert.since,
            "resolved": now, "title": alert.title}))
        return True

    def load(self, alerts: Iterable[Alert]) -> list[Alert]:
        """Take alerts still active in the store as active, without telling them again
        (after a restart); returns those that were not active here yet."""
        added = []
        with self._lock:
            for alert in alerts:
                if alert.key not in self._active:
                    self._active[alert.key] = alert
                    added.append(alert)
        return added

    # -- what readers see ----------------------------------------------------------------
    def active(self) -> list[Alert]:
        with self._lock:
            return list(self._active.values())

    def recent(self) -> list[Event]:
        """The events this book emitted lately, oldest first."""
        with self._lock:
            return list(self._recent)

    def _send(self, event: Event) -> None:
        with self._lock:
            self._recent.append(event)
        self._emit(event)


def _told() -> float:
    """An alert event's time: when it is told, not when its condition was seen (``since``
    and ``resolved`` keep that). A reader's store tail moves on by event time, so an event
    stamped with an earlier sample's or event's time could be stored behind its cursor and
    never reach that reader's clients."""
    return time.time()


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None
