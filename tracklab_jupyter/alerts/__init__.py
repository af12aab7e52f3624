"""Alerts: rules over samples and events, with hysteresis and de-duplication, stored as
``alert`` / ``alert_resolved`` events, served at ``api/alerts`` and sent as WebSocket
``alert`` frames. docs/ALERTS.md lists the rules and their settings."""

from __future__ import annotations

import logging
from typing import Any

from tracklab_jupyter.alerts.settings import (
    RULES,
    AlertSettings,
    parse_alert_settings,
    settings_from_env,
)

__all__ = ["RULES", "AlertSettings", "parse_alert_settings", "settings_from_env",
           "start_alerts"]

log = logging.getLogger("tracklab_jupyter.alerts")


def start_alerts(monitor: Any, settings: Any = None) -> Any:
    """Start an :class:`~tracklab_jupyter.alerts.engine.AlertEngine` on ``monitor`` (after
    ``monitor.start()``), set ``monitor.alerts`` to it and return it. ``settings``: from
    :func:`parse_alert_settings` (None: every rule with its defaults). A monitor that has
    an engine keeps it; ``monitor.stop()`` stops it."""
    from tracklab_jupyter.alerts.engine import AlertEngine

    if getattr(monitor, "alerts", None) is not None:
        return monitor.alerts
    engine = AlertEngine(monitor, parse_alert_settings(settings))
    monitor.alerts = engine
    engine.start()
    stopped = getattr(monitor, "_stop", None)
    if stopped is not None and stopped.is_set():
        engine.stop()  # the monitor stopped while this started: it will not stop us again
    return engine
