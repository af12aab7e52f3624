"""The doctor's checks for ``api/health?full=1``: one run at a time per process, its
answer shared for a few seconds, so a burst of requests (a user clicking Diagnose in
several tabs) costs one run."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from tracklab_jupyter.doctor import diagnose_running
from tracklab_jupyter.monitor import Monitor

#: An answer younger than this is given again instead of checking anew.
REUSE_S = 5.0
_lock = threading.Lock()
_last: dict[int, tuple[float, dict[str, Any]]] = {}


def _in_jupyter() -> bool:
    """Whether this process is a Jupyter server (the standalone server never makes one)."""
    serverapp = sys.modules.get("jupyter_server.serverapp")
    return serverapp is not None and serverapp.ServerApp.initialized()


def running_diagnosis(monitor: Monitor) -> dict[str, Any]:
    """The doctor's report on ``monitor``'s process, as JSON (blocking: a thread's job)."""
    with _lock:  # the others wait for this run and take its answer
        hit = _last.get(id(monitor))
        if hit is not None and time.monotonic() - hit[0] < REUSE_S:
            return hit[1]
        health = monitor.health()
        sampler = monitor.sampler
        report = diagnose_running(
            data_dir=monitor.data_dir, gpus=monitor.config.sampler.gpus or None,
            max_bytes=monitor.config.store.max_bytes, writer=health.get("store"),
            sampler=health.get("sampler"),
            collectors=sampler.collectors if sampler is not None else (),
            in_jupyter=_in_jupyter())
        answer = report.to_json()
        _last.clear()  # one monitor per process in practice; never grows
        _last[id(monitor)] = (time.monotonic(), answer)
        return answer
