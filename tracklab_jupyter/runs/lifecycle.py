"""Noticing runs whose process died without finishing them (SIGKILL, the OOM killer).

A running run's process writes a heartbeat every :data:`HEARTBEAT_S` seconds. A run on this
host is crashed when its pid is gone (or is a zombie, or is another process reusing the
pid) and its heartbeat has stopped; a run on another host when its heartbeat is older than
:data:`REMOTE_TIMEOUT_S`. Requiring the stopped heartbeat too keeps a run alive when its
process lives in another pid namespace under the same host name (a container with host
networking); and a run wrongly marked crashed comes back to running with its next heartbeat.
"""

from __future__ import annotations

import time

import psutil

from tracklab_jupyter.runs.store import RunStore

HEARTBEAT_S = 2.0
LOCAL_GRACE_S = HEARTBEAT_S + 1.0
REMOTE_TIMEOUT_S = 60.0


def process_alive(pid: int, pid_start: float | None) -> bool:
    """Whether ``pid`` is still the process that started at ``pid_start`` (epoch s)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return pid_start is None or abs(proc.create_time() - pid_start) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def find_crashed(store: RunStore, node: str, now: float | None = None) -> list[tuple[str, str]]:
    """``(run id, reason)`` for every running run that has crashed, as far as this host
    can tell."""
    now = time.time() if now is None else now
    out = []
    for run_id, run_node, pid, pid_start, heartbeat in store.running():
        silent = now - heartbeat
        if run_node == node and pid is not None:
            if silent > LOCAL_GRACE_S and not process_alive(pid, pid_start):
                out.append((run_id, f"process {pid} on {node} ended without finishing the run "
                                    "(killed, out of memory, or crashed)"))
        elif silent > REMOTE_TIMEOUT_S:
            out.append((run_id, f"no heartbeat from {run_node} for {silent:.0f} s"))
    return out


def reap_crashed(store: RunStore, node: str) -> list[str]:
    """Mark crashed runs (see :func:`find_crashed`); returns their ids. ``store`` must be
    writable."""
    return [run_id for run_id, reason in find_crashed(store, node)
            if store.mark_crashed(run_id, reason)]
