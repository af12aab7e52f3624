"""The Jupyter server extension: configuration, start-up and shutdown of the monitor.

Settings come, highest first, from the command line (``--TrackLab.interval=2``), a config
file (``c.TrackLab.interval = 2`` in ``jupyter_server_config.py``), environment variables
(``TRACKLAB_DATA_DIR``, ``TRACKLAB_INTERVAL``, ``TRACKLAB_GPUS``, ``TRACKLAB_LOG_LEVEL``),
then the defaults below.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Int, List, Unicode, default
from traitlets.config import Configurable

from tracklab_jupyter.monitor import Monitor, MonitorConfig
from tracklab_jupyter.server.handlers import build_handlers
from tracklab_jupyter.server.limits import LIMITS_KEY, Limits
from tracklab_jupyter.server.serving import DISABLED_KEY, MONITOR_KEY
from tracklab_jupyter.threads import name_os_thread


def _env_float(name: str, fallback: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return fallback
    try:
        return float(value)
    except ValueError:
        # Keep the bad text visible: validation later disables the extension with a message.
        return float("nan")


# One traitlet per limit (``c.TrackLab.max_body_bytes = ...``), made from Limits itself so
# the two cannot drift.
LimitSettings = type("LimitSettings", (Configurable,), {
    name: Int(getattr(Limits, name), help=Limits.doc(name)).tag(config=True)
    for name in Limits.names()})


class TrackLab(ExtensionApp, LimitSettings):
    """Samples this machine in the background and serves it under ``{base_url}tracklab/``."""

    name = "tracklab"
    load_other_extensions = True

    interval = Float(help="Seconds between samples (0.1 to 3600). Env: TRACKLAB_INTERVAL."
                     ).tag(config=True)
    data_dir = Unicode(help="Where metrics.db lives. Env: TRACKLAB_DATA_DIR; default "
                            "~/.tracklab.").tag(config=True)
    retention_days = Float(30.0, help="Days the 1-minute tier is kept (the longest tier, "
                                      "1 hour, keeps 365).").tag(config=True)
    enable_cpu = Bool(True, help="Sample CPU metrics.").tag(config=True)
    enable_memory = Bool(True, help="Sample memory metrics.").tag(config=True)
    enable_disk = Bool(True, help="Sample disk metrics.").tag(config=True)
    enable_network = Bool(True, help="Sample network metrics.").tag(config=True)
    enable_gpu = Bool(True, help="Sample accelerators: NVIDIA and AMD GPUs, Ascend NPUs, "
                                 "TPUs.").tag(config=True)
    gpus = List(Unicode(), help="Accelerators to monitor: GPU indices (host-wide, all "
                                "vendors), npu.N / tpu.N, or UUIDs; empty means all (each "
                                "vendor's CUDA_/HIP_/ASCEND_RT_VISIBLE_DEVICES applies). Env: "
                                "TRACKLAB_GPUS (comma separated).").tag(config=True)
    batch_size = Int(100, help="Samples per write to SQLite.").tag(config=True)
    flush_interval = Float(1.0, help="Longest wait before samples are written; other "
                                     "processes see new samples this late.").tag(config=True)
    cache_size = Int(1000, help="Samples kept in memory for live readers while the store "
                                "cannot be written.").tag(config=True)
    log_level_name = Unicode(help="Log level of tracklab's own loggers. Env: "
                                  "TRACKLAB_LOG_LEVEL.").tag(config=True)
    cluster = Unicode("local", help="Nodes to monitor besides this host: 'local' (this host "
                                    "alone), 'dask://HOST:PORT' (a Dask scheduler), 'ray:auto' "
                                    "or 'ray://HOST:PORT'. Env: TRACKLAB_CLUSTER."
                      ).tag(config=True)
    cluster_node_timeout = Float(10.0, help="Seconds without an answer before a cluster node "
                                            "is offline.").tag(config=True)
    cluster_per_worker = Bool(False, help="Monitor each Dask worker or Ray node as its own "
                                          "node even when several share a host (tests, "
                                          "demos).").tag(config=True)

    kernel_interval = Float(5.0, help="Seconds between reads of every kernel's process tree "
                                      "(CPU, memory, threads, accelerator memory), 0.5 to "
                                      "3600.").tag(config=True)
    alerts = Dict(help="Alert rules, by name, each a dict of its settings; "
                       "{'memory': {'enabled': False}} turns one off. See docs/ALERTS.md. "
                       "Env: TRACKLAB_ALERTS (JSON).").tag(config=True)

    @default("cluster")
    def _default_cluster(self) -> str:
        return os.environ.get("TRACKLAB_CLUSTER", "") or "local"

    @default("interval")
    def _default_interval(self) -> float:
        return _env_float("TRACKLAB_INTERVAL", 1.0)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.environ.get("TRACKLAB_DATA_DIR", "")

    @default("gpus")
    def _default_gpus(self) -> list[str]:
        value = os.environ.get("TRACKLAB_GPUS", "")
        return [v.strip() for v in value.split(",") if v.strip()]

    @default("log_level_name")
    def _default_log_level_name(self) -> str:
        return os.environ.get("TRACKLAB_LOG_LEVEL", "")

    monitor: Monitor | None = None
    _alert_settings: Any = None

    def monitor_config(self) -> MonitorConfig:
        """The monitor settings; raises ValueError naming the bad setting."""
        return MonitorConfig.from_settings(
            interval=self.interval, data_dir=self.data_dir or None,
            retention_days=self.retention_days, enable_cpu=self.enable_cpu,
            enable_memory=self.enable_memory, enable_disk=self.enable_disk,
            enable_network=self.enable_network, enable_gpu=self.enable_gpu,
            gpus=list(self.gpus) or None, batch_size=self.batch_size,
            flush_interval=self.flush_interval,
            cache_size=self.cache_size, source="c.TrackLab")

    def initialize_settings(self) -> None:
        if self.log_level_name:
            level = logging.getLevelName(self.log_level_name.upper())
            if isinstance(level, int):
                logging.getLogger("tracklab_jupyter").setLevel(level)
            else:
                self.log.warning("tracklab: ignoring unknown log level %r", self.log_level_name)
        from tracklab_jupyter.alerts import parse_alert_settings, settings_from_env
        from tracklab_jupyter.kernels import check_kernel_interval

        try:
            config = self.monitor_config()
            self.settings[LIMITS_KEY] = Limits.from_settings(
                **{name: getattr(self, name) for name in Limits.names()})
            self._alert_settings = (
                parse_alert_settings(self.alerts, source="c.TrackLab.alerts") if self.alerts
                else settings_from_env(os.environ))
            check_kernel_interval(self.kernel_interval, source="c.TrackLab.kernel_interval")
        except ValueError as exc:
            reason = f"invalid configuration: {exc}"
            self.log.error("tracklab disabled, %s. The Jupyter server goes on without it.",
                           reason)
            self.settings[MONITOR_KEY] = None
            self.settings[DISABLED_KEY] = reason
            return
        self.monitor = Monitor(config)
        self.settings[MONITOR_KEY] = self.monitor
        from tracklab_jupyter.kernels import attach_kernels

        # The kernel manager and sessions are read on the event loop (cheap, at the kernel
        # interval); process trees are read on the tracker's own thread.
        attach_kernels(self, self.monitor, interval=self.kernel_interval)
        # Collectors open NVML (14 ms) and prime psutil: do it on a thread, not the loop.
        threading.Thread(target=self._start_monitor, name="tracklab-start", daemon=True).start()

    def _start_monitor(self) -> None:
        name_os_thread()
        assert self.monitor is not None
        try:
            # First: runs created while the sampler starts up are announced too.
            self.monitor.watch_runs()
            self.monitor.start()
            self._attach_cluster()
            from tracklab_jupyter.alerts import start_alerts

            start_alerts(self.monitor, self._alert_settings)
            self.log.info("tracklab: %s for %s every %gs (data in %s)", self.monitor.role,
                          self.monitor.node, self.monitor.interval, self.monitor.data_dir)
        except Exception as exc:
            self.log.error("tracklab: monitor failed to start: %s", exc)

    def _attach_cluster(self) -> None:
        """Start the cluster monitor (the local one when no engine is configured). A
        cluster that cannot be reached is logged; this host is monitored all the same."""
        assert self.monitor is not None
        try:
            self.monitor.attach_cluster(self.cluster, per_worker=self.cluster_per_worker,
                                        node_timeout=self.cluster_node_timeout)
        except (ValueError, RuntimeError, TypeError, OSError) as exc:
            self.log.error("tracklab: c.TrackLab.cluster = %r: %s; monitoring this host "
                           "alone", self.cluster, exc)
            self.monitor.attach_cluster("local")

    def initialize_handlers(self) -> None:
        self.handlers.extend(build_handlers("/"))

    async def stop_extension(self) -> None:
        if self.monitor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.monitor.stop)

    def current_activity(self) -> Any:
        return None
