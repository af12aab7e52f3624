"""OS-level names for tracklab's threads.

Python 3.11 does not pass a thread's name to the OS, so ``top -H``, ``ps -L`` and
``/proc/PID/task/TID/comm`` show "python3" for every thread. :func:`name_os_thread` sets the
calling thread's Linux name (``prctl(PR_SET_NAME)``); Linux keeps at most 15 bytes, so the
"tracklab-" prefix becomes "tl-". :func:`python_name` maps such a name back for reports.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from typing import Any

__all__ = ["name_os_thread", "os_thread_name", "python_name"]

PR_SET_NAME = 15
MAX_BYTES = 15  # TASK_COMM_LEN (16) less the terminating NUL
LONG_PREFIX = "tracklab-"
SHORT_PREFIX = "tl-"

_UNLOADED: Any = object()
_prctl: Any = _UNLOADED  # libc's prctl, None where there is none; looked up once


def _load_prctl() -> Any:
    global _prctl
    if _prctl is _UNLOADED:
        prctl = None
        if sys.platform.startswith("linux"):
            try:
                # The symbols already loaded into this process (libc's among them):
                # find_library("c") would run ldconfig in a subprocess to find a file.
                prctl = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):  # no libc (static builds) or no prctl in it
                prctl = None
        _prctl = prctl
    return _prctl


def os_thread_name(name: str) -> bytes:
    """``name`` as the kernel will keep it: "tracklab-" shortened to "tl-", at most 15
    bytes (cut on a UTF-8 character boundary)."""
    if name.startswith(LONG_PREFIX):
        name = SHORT_PREFIX + name[len(LONG_PREFIX):]
    return name.encode("utf-8")[:MAX_BYTES].decode("utf-8", "ignore").encode("utf-8")


def python_name(os_name: str) -> str:
    """Reverse the prefix mapping of :func:`os_thread_name` ("tl-store-writer" gives
    "tracklab-store-writer"); what was cut beyond 15 bytes stays cut."""
    if os_name.startswith(SHORT_PREFIX):
        return LONG_PREFIX + os_name[len(SHORT_PREFIX):]
    return os_name


def name_os_thread(name: str | None = None) -> None:
    """Give the calling thread an OS name from ``name`` or its Python name.

    A no-op, without error, off Linux or where libc has no ``prctl``.
    """
    prctl = _load_prctl()
    if prctl is None:
        return
    raw = os_thread_name(name if name is not None else threading.current_thread().name)
    # Naming is cosmetic: never fail a thread for it.
    with contextlib.suppress(OSError, ctypes.ArgumentError):
        prctl(PR_SET_NAME, ctypes.c_char_p(raw))
