"""The one way a monitor is made and started, for the three processes that run one: the
Jupyter server extension, the standalone server (``tracklab-jupyter serve``) and a kernel or
script (``process_monitor``).

:func:`prepare` turns resolved settings (``tracklab_jupyter.settings``) into a monitor and
the alert settings, raising ValueError that names a bad setting before anything starts;
:func:`start` runs the start-up sequence (blocking: NVML opens, a cluster engine connects),
so callers run it off the event loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tracklab_jupyter.monitor import MONITOR_SETTINGS, Monitor, MonitorConfig
from tracklab_jupyter.settings import Resolved

log = logging.getLogger("tracklab_jupyter.startup")


@dataclass
class Prepared:
    """A monitor, not started, with what its start-up needs."""

    monitor: Monitor
    #: Parsed alert settings; None: alerts off.
    alerts: Any
    cluster: str
    cluster_per_worker: bool
    cluster_node_timeout: float
    #: A server (extension or standalone): it watches runs for its clients and monitors the
    #: cluster; a kernel's monitor does neither.
    serving: bool


def prepare(resolved: Resolved, source: str, *, serving: bool,
            bad_alerts: str = "raise") -> Prepared:
    """The monitor and start-up settings from ``resolved``; ValueError names a bad one.
    ``bad_alerts="warn"`` (a kernel) logs bad alert rules and leaves alerts off instead."""
    from tracklab_jupyter.alerts import parse_alert_settings

    values = resolved.values
    config = MonitorConfig.from_settings(
        source=source, **{name: values[name] for name in MONITOR_SETTINGS if name in values})
    try:
        # Errors in the rules name where they came from: c.TrackLab.alerts, TRACKLAB_ALERTS.
        alerts = parse_alert_settings(values.get("alerts") or None,
                                      source=resolved.origin("alerts"))
    except ValueError as exc:
        if bad_alerts != "warn":
            raise
        log.warning("tracklab: alerts off in this kernel: %s", exc)
        alerts = None
    if serving:
        from tracklab_jupyter.cluster.providers import parse_cluster

        try:  # a bad spec is refused before anything starts
            parse_cluster(values["cluster"])
        except ValueError as exc:
            raise ValueError(f"{resolved.origin('cluster')}: {exc}") from None
    return Prepared(Monitor(config), alerts, values.get("cluster", "local"),
                    bool(values.get("cluster_per_worker", False)),
                    float(values.get("cluster_node_timeout", 10.0)), serving)


def start(prepared: Prepared, logger: Any = None) -> Monitor:
    """Start the monitor: runs watched first (a server's clients hear of runs that begin
    while it starts), sampling or reading, the cluster (an unreachable one is logged and
    this host is monitored alone), then the alert rules. Blocking. ``logger``: where the
    start is told (the Jupyter server's log; default this module's)."""
    logger = logger or log
    monitor = prepared.monitor
    if prepared.serving:
        monitor.watch_runs()
    monitor.start()
    if prepared.serving:
        _attach_cluster(prepared, logger)
    if prepared.alerts is not None:
        from tracklab_jupyter.alerts import start_alerts

        start_alerts(monitor, prepared.alerts)
    logger.info("tracklab: %s for %s every %gs (data in %s)", monitor.role, monitor.node,
                monitor.interval, monitor.data_dir)
    return monitor


def _attach_cluster(prepared: Prepared, logger: Any) -> None:
    monitor = prepared.monitor
    try:
        monitor.attach_cluster(prepared.cluster, per_worker=prepared.cluster_per_worker,
                               node_timeout=prepared.cluster_node_timeout)
    except (ValueError, RuntimeError, TypeError, OSError) as exc:
        logger.error("tracklab: cluster %r: %s; monitoring this host alone",
                     prepared.cluster, exc)
        monitor.attach_cluster("local")
