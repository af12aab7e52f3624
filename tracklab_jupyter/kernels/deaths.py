"""Why a kernel died, in the words a notebook user reads.

The Jupyter server notices a dead kernel (its restarter polls the process) and tells us the
process's exit status: a negative Popen return code is the signal that killed it. The
out-of-memory killer also kills with SIGKILL, so a SIGKILL alone does not say "out of
memory": the kernel's cgroup counts each OOM kill in ``memory.events`` (``oom_kill``), and a
count that rose since the tracker's last pass, while the kernel was still alive, does.
"""

from __future__ import annotations

import posixpath
import signal
import time
from dataclasses import dataclass
from typing import Any

from tracklab_jupyter.metrics.units import format_bytes

OOM_KILL = "oom_kill"
SIGNAL = "signal"
EXIT = "exit"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Death:
    """What the server saw when a kernel's process ended (read on the event loop, cheap)."""

    kernel_id: str
    pid: int | None
    #: The process's return code (Popen: negative = killed by that signal), None unknown.
    returncode: int | None
    #: The server restarts the kernel (its restarter's "restart" event), or gave up ("dead").
    restarted: bool
    time: float


def signal_name(number: int) -> str | None:
    """``9`` -> ``"SIGKILL"``; None for a number that names no signal here."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def kernel_label(kernel_id: str, kernel_name: str | None, notebook: str | None) -> str:
    """``the kernel of `train.ipynb``` or, without a notebook, ``the python3 kernel 1a2b3c4d``."""
    if notebook:
        return f"the kernel of `{posixpath.basename(notebook) or notebook}`"
    name = f"{kernel_name} " if kernel_name else ""
    return f"the {name}kernel {kernel_id[:8]}"


def explain(death: Death, *, kernel_name: str | None, notebook: str | None,
            rss_bytes: float | None, mem_limit_bytes: float | None,
            oom_kills_before: int | None, oom_kills_now: int | None) -> tuple[str, dict[str, Any]]:
    """The ``kernel_died`` event's message and data.

    ``oom_kills_before`` is the kernel's cgroup ``oom_kill`` count at the tracker's last pass
    that saw the kernel alive, ``oom_kills_now`` the count read after the death; a rise
    means the out-of-memory killer ended it (whatever the signal says)."""
    code = death.returncode
    number = -code if code is not None and code < 0 else None
    sig_name = signal_name(number) if number is not None else None
    if (oom_kills_before is not None and oom_kills_now is not None
            and oom_kills_now > oom_kills_before):
        reason = OOM_KILL
        how = "was killed by the out-of-memory killer"
    elif number is not None:
        reason = SIGNAL
        how = f"was killed by {sig_name or f'signal {number}'}"
    elif code is not None:
        reason = EXIT
        how = f"exited with code {code}"
    else:
        reason = UNKNOWN
        how = "died"
    figures = []
    if rss_bytes is not None:
        figures.append(f"RSS {format_bytes(rss_bytes)}")
    if mem_limit_bytes is not None:
        figures.append(f"limit {format_bytes(mem_limit_bytes)}")
    clock = time.strftime("%H:%M:%S", time.localtime(death.time))
    message = f"{kernel_label(death.kernel_id, kernel_name, notebook)} {how} at {clock}"
    if figures:
        message += f" ({', '.join(figures)})"
    message += "; the server restarted it" if death.restarted else ""
    data = {"kernel_id": death.kernel_id, "kernel_name": kernel_name, "notebook": notebook,
            "pid": death.pid, "reason": reason, "signal": number, "signal_name": sig_name,
            "exit_code": code if code is not None and code >= 0 else None,
            "oom_kills": oom_kills_now, "rss_bytes": rss_bytes,
            "mem_limit_bytes": mem_limit_bytes, "restarted": death.restarted}
    return message, data
