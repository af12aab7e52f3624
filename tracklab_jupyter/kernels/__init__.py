"""Per-kernel resources: which notebook uses what, and why a kernel died (docs/KERNELS.md).

:func:`attach_kernels` connects a Jupyter server's kernel and session managers
(:mod:`.server_glue`, on the event loop) to a :class:`~.tracker.KernelTracker` (its own
thread: process trees from /proc, ``api/kernels``, the hub topic ``kernels``, stored
``kernel.{id}.*`` series and ``kernel_*`` events).
"""

from __future__ import annotations

import logging
from typing import Any

from tracklab_jupyter.settings import BY_NAME

log = logging.getLogger("tracklab_jupyter.kernels")

# The kinds of the events kernels leave in the store (docs/KERNELS.md).
KERNEL_STARTED = "kernel_started"
KERNEL_STOPPED = "kernel_stopped"
KERNEL_DIED = "kernel_died"
KERNEL_EVENTS = (KERNEL_STARTED, KERNEL_STOPPED, KERNEL_DIED)


def check_kernel_interval(value: float, source: str = "kernel_interval") -> float:
    """``value``, or ValueError naming ``source`` when it is out of the setting's bounds
    (``tracklab_jupyter.settings``: 0.5 to 3600 seconds)."""
    return float(BY_NAME["kernel_interval"].check(value, source))


def attach_kernels(app: Any, monitor: Any, interval: float = 5.0) -> None:
    """Track the Jupyter server ``app``'s kernels on ``monitor`` (``monitor.kernels``).

    ``app`` is the extension app (its ``serverapp`` holds the kernel and session managers)
    or the ServerApp itself. Call on the event loop's thread; nothing here blocks. A server
    without a kernel manager leaves ``monitor.kernels`` unset (``api/kernels`` says so)."""
    serverapp = getattr(app, "serverapp", None) or app
    if getattr(serverapp, "kernel_manager", None) is None:
        log.info("tracklab: this server has no kernel manager; kernels are not tracked")
        return
    from tracklab_jupyter.kernels.server_glue import ServerGlue
    from tracklab_jupyter.kernels.tracker import KernelTracker

    if monitor.kernels is not None:  # attached before: replace, never run two
        monitor.kernels.stop()
    tracker = KernelTracker(monitor, check_kernel_interval(interval))
    glue = ServerGlue(serverapp, tracker, tracker.interval)
    monitor.kernels = tracker
    tracker.start(glue)
    glue.start()
