"""Alerts: rules over samples and events, with hysteresis (placeholder, filled in by the
alerts work)."""

from __future__ import annotations

from typing import Any


def parse_alert_settings(value: dict[str, Any] | None, source: str = "alerts") -> Any:
    """Validate alert settings; raise ValueError naming ``source`` and the bad key."""
    return dict(value or {})


def start_alerts(monitor: Any, settings: Any = None) -> None:
    """Start the alert engine on ``monitor`` (``monitor.alerts``)."""
