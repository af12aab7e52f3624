"""Counting a thread's wake-ups from /proc, for tests that an idle thread sleeps."""

from __future__ import annotations

import time


def voluntary_switches(tid: int) -> int:
    """How often thread ``tid`` of this process has blocked so far (each sleep ended by a
    timeout or a notification counts once)."""
    with open(f"/proc/self/task/{tid}/status") as fh:
        for line in fh:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc status")


def wake_ups_over(tid: int, seconds: float) -> int:
    """Wake-ups of thread ``tid`` while the caller sleeps ``seconds``."""
    before = voluntary_switches(tid)
    time.sleep(seconds)
    return voluntary_switches(tid) - before
