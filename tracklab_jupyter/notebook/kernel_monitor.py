"""The one monitor of a kernel process, shared by widgets, magics and cell timing.

Started in the background on first use: it records when no other process does (VS Code,
a plain kernel) and reads the store's live tail when the Jupyter server records.
"""

from __future__ import annotations

import os
import threading

from tracklab_jupyter.monitor import Monitor, MonitorConfig

_lock = threading.Lock()
_monitor: Monitor | None = None


def kernel_monitor() -> Monitor:
    """This process's monitor, created and started (in a thread) on first call."""
    global _monitor
    with _lock:
        if _monitor is None:
            config = MonitorConfig.from_settings(
                interval=float(os.environ.get("TRACKLAB_INTERVAL", "1") or 1),
                data_dir=os.environ.get("TRACKLAB_DATA_DIR") or None,
                source="TRACKLAB_* environment")
            _monitor = Monitor(config)
            threading.Thread(target=_monitor.start, name="tracklab-kernel-start",
                             daemon=True).start()
        return _monitor


def stop_kernel_monitor() -> None:
    """Stop and forget the monitor (``%unload_ext tracklab``)."""
    global _monitor
    with _lock:
        monitor, _monitor = _monitor, None
    if monitor is not None:
        monitor.stop()
