"""Network throughput, packets, errors and drops; open connections at slow cadence.

Fast path (every tick): the counters of every interface of this network namespace
(loopback included on Linux), as ``psutil.net_io_counters(pernic=True)`` gives them. On Linux
they come from /proc/net/dev kept open (:mod:`~tracklab_jupyter.collectors.procfs`: at 1 Hz
opening the file cost more than reading it), elsewhere from psutil. Their sum goes in
``Reading.counters`` (the sampler turns it into rates); the per-interface rows are kept as
they are in ``Reading.device_counters["net"]`` for the Prometheus counters. Both paths hide
per-interface counter wraps and resets as psutil's ``nowrap`` does.

Slow path (every :attr:`NetworkCollector.slow_interval` s): the open inet sockets (TCP and
UDP over IPv4 and IPv6). On Linux they are the ``inuse`` counts of /proc/net/sockstat and
sockstat6, which the kernel keeps as counters: 0.03 ms, where ``psutil.net_connections``
spends 8 ms (it reads /proc/net/tcp, whose cost grows with the hash table, 3 ms on the
2-core machine, and walks every process's file descriptors); it also counted TIME_WAIT
entries, which sockstat does not. Elsewhere ``net_connections("inet")``, which where it needs
privileges (macOS without root) raises AccessDenied once and is never asked again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import psutil

from tracklab_jupyter.collectors import procfs
from tracklab_jupyter.collectors.base import Collector, FieldGuard, Reading, host_permanent

log = logging.getLogger("tracklab_jupyter.collectors.network")


def _psutil_io() -> dict[str, Any]:
    # pernic=True costs what pernic=False does (psutil sums the same per-NIC table).
    return psutil.net_io_counters(pernic=True)


def _counter_values(io: Any) -> dict[str, float]:
    """The ``net.*`` counters from psutil's snetio or :class:`procfs.NetIO` (same fields)."""
    return {
        "net.recv_bytes_per_s": float(io.bytes_recv),
        "net.sent_bytes_per_s": float(io.bytes_sent),
        "net.recv_packets_per_s": float(io.packets_recv),
        "net.sent_packets_per_s": float(io.packets_sent),
        "net.errors_per_s": float(io.errin + io.errout),
        "net.drops_per_s": float(io.dropin + io.dropout),
    }


def _connections() -> float:
    return float(len(psutil.net_connections("inet")))


_SOCKSTAT_KINDS = (b"TCP:", b"UDP:", b"TCP6:", b"UDP6:")


def parse_sockstat(data: bytes) -> int:
    """Inet sockets in use from /proc/net/sockstat(6) text (lines like ``TCP: inuse 5 ...``)."""
    total = 0
    for line in data.splitlines():
        fields = line.split()
        if fields and fields[0] in _SOCKSTAT_KINDS and fields[1:2] == [b"inuse"]:
            total += int(fields[2])
    return total


def _sockstat_reader() -> Callable[[], float] | None:
    """Counting from /proc/net/sockstat and sockstat6 (None where they are missing)."""
    base = f"{procfs.procfs_path()}/net"
    paths = [p for p in (f"{base}/sockstat", f"{base}/sockstat6") if os.path.exists(p)]
    if not paths:
        return None

    def count() -> float:
        data = b""
        for path in paths:
            with open(path, "rb") as fh:
                data += fh.read() + b"\n"
        return float(parse_sockstat(data))

    return count


class NetworkCollector(Collector):
    """``net.*`` counters (turned into rates by the sampler) and ``net.connections``."""

    name = "network"
    # A count that changes slowly; where sockstat is missing, net_connections walks every
    # socket of every process (4-10 ms): twice a minute is plenty.
    slow_interval = 30.0

    def __init__(self) -> None:
        self._guard = FieldGuard(self.name, host_permanent)
        self._procfs = procfs.NetDevReader.open()
        self._io_each: Callable[[], dict[str, Any]] = (
            self._procfs.read_each if self._procfs is not None else _psutil_io)
        self._connections: Callable[[], float] = _sockstat_reader() or _connections

    def info(self) -> dict[str, Any]:
        """Interfaces with their state, speed (Mbit/s, 0 if unknown) and MTU."""
        stats = self._guard.get("if_stats", psutil.net_if_stats) or {}
        return {"interfaces": [
            {"name": name, "up": st.isup, "speed_mbps": st.speed, "mtu": st.mtu}
            for name, st in sorted(stats.items())
        ]}

    def read(self) -> Reading:
        """Cumulative bytes, packets, errors and drops over all interfaces."""
        out = Reading()
        out.add_device_counters("net", self._guard.get("io", self._io_each),
                                partial(procfs.sum_counters, cls=procfs.NetIO), _counter_values)
        return out

    def read_slow(self) -> Reading:
        """Open inet connections, where this process may list them."""
        out = Reading()
        count = self._guard.get("connections", self._connections)
        if count is not None:
            out.gauges["net.connections"] = count
        return out

    def close(self) -> None:
        """Close /proc/net/dev where it is kept open."""
        if self._procfs is not None:
            self._procfs.close()
