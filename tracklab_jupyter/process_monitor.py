"""The one monitor of a kernel (or script) process, shared by widgets, magics, cell timing
and runs.

Started in the background on first use: it records when no other process does (VS Code,
a plain kernel, a training script) and reads the store's live tail when the Jupyter server
records. It is stopped at exit, so a recording script flushes its last samples.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from pathlib import Path

from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.settings import BY_NAME, KERNEL, resolve
from tracklab_jupyter.startup import Prepared, prepare, start
from tracklab_jupyter.store.paths import resolve_data_dir
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.kernel")
ALERTS_ENV = BY_NAME["alerts"].env

_lock = threading.Lock()
_monitor: Monitor | None = None
_exit_hook = False


def process_monitor(data_dir: str | os.PathLike[str] | None = None) -> Monitor:
    """This process's monitor, created and started (in a thread) on first call.

    ``data_dir`` defaults to ``$TRACKLAB_DATA_DIR``; a process monitors one data dir, so
    asking for another one once started raises ValueError.
    """
    global _monitor, _exit_hook
    with _lock:
        wanted: Path | None = resolve_data_dir(data_dir) if data_dir is not None else None
        if _monitor is None:
            given = {"data_dir": str(wanted)} if wanted else {}
            environ = dict(os.environ)
            alerts_off = False
            try:
                resolved = resolve(given, environ, KERNEL, "data_dir argument")
            except ValueError as exc:
                if not str(exc).startswith(ALERTS_ENV):
                    raise
                # Alert rules that do not parse leave alerts off here, as rules with bad
                # values do (startup.prepare): a kernel's monitoring must not fail on them.
                log.warning("tracklab: alerts off in this kernel: %s", exc)
                environ.pop(ALERTS_ENV)
                alerts_off = True
                resolved = resolve(given, environ, KERNEL, "data_dir argument")
            prepared = prepare(resolved, "TRACKLAB_* environment", serving=False,
                               bad_alerts="warn")
            if alerts_off:
                prepared.alerts = None
            _monitor = prepared.monitor
            threading.Thread(target=_start, args=(prepared,), name="tracklab-kernel-start",
                             daemon=True).start()
            if not _exit_hook:
                _exit_hook = True
                atexit.register(stop_process_monitor)
        elif wanted is not None and wanted != _monitor.data_dir:
            raise ValueError(f"this process already monitors {_monitor.data_dir}; it cannot "
                             f"also monitor {wanted} (use one data dir per process)")
        return _monitor


def _start(prepared: Prepared) -> None:
    # Monitor.start also runs on callers' own threads: name only this one. Alerts run on
    # this host where the kernel records it itself (VS Code, a plain kernel): the host rules
    # run only while this process is the recorder, so the widget can show a banner with no
    # server. Their settings: $TRACKLAB_ALERTS (JSON, docs/ALERTS.md).
    name_os_thread()
    start(prepared)


def stop_process_monitor() -> None:
    """Stop and forget the monitor (``%unload_ext tracklab``)."""
    global _monitor
    with _lock:
        monitor, _monitor = _monitor, None
    if monitor is not None:
        monitor.stop()
