"""The Jupyter server extension: configuration, start-up and shutdown of the monitor.

Settings come, highest first, from the command line (``--TrackLab.interval=2``), a config
file (``c.TrackLab.interval = 2`` in ``jupyter_server_config.py``), environment variables
(``TRACKLAB_INTERVAL``, ...), then the defaults: all declared once in
``tracklab_jupyter/settings.py``.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Int
from traitlets.config import Configurable

from tracklab_jupyter import settings, startup
from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.server.handlers import build_handlers
from tracklab_jupyter.server.limits import LIMITS_KEY, Limits
from tracklab_jupyter.server.serving import DISABLED_KEY, MONITOR_KEY
from tracklab_jupyter.threads import name_os_thread

# One traitlet per limit (``c.TrackLab.max_body_bytes = ...``), made from Limits itself so
# the two cannot drift.
LimitSettings = type("LimitSettings", (Configurable,), {
    name: Int(getattr(Limits, name), help=Limits.doc(name)).tag(config=True)
    for name in Limits.names()})


# One traitlet per setting (``c.TrackLab.interval = 2``), made from the settings spec, each
# defaulting to its environment variable. First among the bases: JupyterApp has a data_dir of
# its own (Jupyter's), which ours must override.
MonitorSettings = type("MonitorSettings", (Configurable,), settings.traits())


class TrackLab(MonitorSettings, LimitSettings, ExtensionApp):
    """Samples this machine in the background and serves it under ``{base_url}tracklab/``."""

    name = "tracklab"
    load_other_extensions = True

    monitor: Monitor | None = None
    _alert_settings: Any = None
    _env_errors: list[str]

    def resolved_settings(self) -> settings.Resolved:
        """The settings with where each came from (config or command line, the
        environment, the default), each checked; ValueError names a bad one."""
        configured = self.config.get("TrackLab", {})
        values, origins = {}, {}
        for setting in settings.SETTINGS:
            if settings.JUPYTER not in setting.where:
                continue
            values[setting.name] = getattr(self, setting.name)
            env_set = bool(setting.env and os.environ.get(setting.env, "").strip())
            origins[setting.name] = ("c.TrackLab" if setting.name in configured
                                     else setting.env if env_set else "default")
        errors = getattr(self, "_env_errors", [])
        if errors:
            raise ValueError(errors[0])
        resolved = settings.Resolved(values, origins)
        for name, value in values.items():
            values[name] = settings.BY_NAME[name].check(value, resolved.origin(name))
        return resolved

    def initialize_settings(self) -> None:
        if self.log_level_name:
            level = logging.getLevelName(self.log_level_name.upper())
            if isinstance(level, int):
                logging.getLogger("tracklab_jupyter").setLevel(level)
            else:
                self.log.warning("tracklab: ignoring unknown log level %r", self.log_level_name)
        try:
            prepared = startup.prepare(self.resolved_settings(), "c.TrackLab", serving=True)
            self.settings[LIMITS_KEY] = Limits.from_settings(
                **{name: getattr(self, name) for name in Limits.names()})
        except ValueError as exc:
            reason = f"invalid configuration: {exc}"
            self.log.error("tracklab disabled, %s. The Jupyter server goes on without it.",
                           reason)
            self.settings[MONITOR_KEY] = None
            self.settings[DISABLED_KEY] = reason
            return
        self.monitor = prepared.monitor
        self._alert_settings = prepared.alerts
        self.settings[MONITOR_KEY] = self.monitor
        from tracklab_jupyter.kernels import attach_kernels

        # The kernel manager and sessions are read on the event loop (cheap, at the kernel
        # interval); process trees are read on the tracker's own thread.
        attach_kernels(self, self.monitor, interval=self.kernel_interval)
        # Collectors open NVML (14 ms) and prime psutil: do it on a thread, not the loop.
        self._start_thread = threading.Thread(target=self._start_monitor, args=(prepared,),
                                              name="tracklab-start", daemon=True)
        self._start_thread.start()
        # Ctrl+C to a server without a terminal ends it by KeyboardInterrupt, past the
        # extensions' stop: the last unflushed samples are still written on the way out.
        atexit.register(self._stop_at_exit)

    def _start_monitor(self, prepared: startup.Prepared) -> None:
        name_os_thread()
        try:
            startup.start(prepared, self.log)
        except Exception as exc:
            self.log.error("tracklab: monitor failed to start: %s", exc)

    def initialize_handlers(self) -> None:
        self.handlers.extend(build_handlers("/"))

    def _stop_monitor(self) -> None:
        """Stop the monitor (flushing the store). Blocking; idempotent."""
        monitor = self.monitor
        if monitor is None:
            return
        # A server stopped right after it started: let the start finish, then undo it
        # (else the monitor would start after the stop and sample on, unowned).
        start = getattr(self, "_start_thread", None)
        if start is not None:
            start.join(30)
        monitor.stop()

    def _stop_at_exit(self) -> None:
        try:
            self._stop_monitor()
        except Exception as exc:  # at exit there is no one left to raise to
            self.log.warning("tracklab: stopping at exit failed: %s", exc)

    async def stop_extension(self) -> None:
        atexit.unregister(self._stop_at_exit)
        await asyncio.get_running_loop().run_in_executor(None, self._stop_monitor)

    def current_activity(self) -> Any:
        return None
