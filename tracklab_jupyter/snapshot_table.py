"""The one-screen text table of ``tracklab-jupyter snapshot``, in the spirit of gpustat."""

from __future__ import annotations

import re
import time
from typing import Any

from tracklab_jupyter._version import __version__
from tracklab_jupyter.accelerators.registry import device_label, devices_in
from tracklab_jupyter.accelerators.throttle import describe_throttle
from tracklab_jupyter.metrics.units import format_bytes, format_rate
from tracklab_jupyter.sampler.hardware_events import HEALTH_WORDS

_BAR_WIDTH = 20


def bar(pct: float | None, width: int = _BAR_WIDTH) -> str:
    """``[|||||     ]`` for a percentage; blank when unknown."""
    if pct is None:
        return "[" + " " * width + "]"
    filled = round(max(0.0, min(100.0, pct)) / 100 * width)
    return "[" + "|" * filled + " " * (width - filled) + "]"


def _pct(value: float | None) -> str:
    return "   –  " if value is None else f"{value:5.1f}%"


def render(snap: dict[str, Any]) -> str:
    """Format a snapshot dict (see :func:`tracklab_jupyter.snapshot.take_snapshot`)."""
    m: dict[str, float] = snap["metrics"]
    info: dict[str, Any] = snap.get("info", {})
    system = info.get("system", {})
    lines = [_header(snap, system)]
    lines += _cpu(m, system)
    lines += _memory(m)
    lines += _disks(m)
    lines += _network(m)
    lines += _accelerators(m, info)
    for note in snap.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _header(snap: dict[str, Any], system: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap["time"]))
    parts = [p for p in (system.get("os_release") or system.get("os"),
                         system.get("kernel") and f"kernel {system['kernel']}",
                         system.get("python_version") and f"Python {system['python_version']}")
             if p]
    parts.append(f"tracklab-jupyter {__version__}")
    return f"{snap['node']}  {when}  " + " · ".join(parts)


def _cpu(m: dict[str, float], system: dict[str, Any]) -> list[str]:
    if "cpu.util_pct" not in m:
        return []
    cores = sorted((int(k.split(".")[2]), v) for k, v in m.items()
                   if k.startswith("cpu.core."))
    model = system.get("cpu_model") or ""
    count = system.get("cpu_logical_cores") or len(cores)
    extra = []
    if "cpu.load1" in m:
        extra.append(f"load {m['cpu.load1']:.2f} {m['cpu.load5']:.2f} {m['cpu.load15']:.2f}")
    if "cpu.freq_mhz" in m:
        extra.append(f"{m['cpu.freq_mhz']:.0f} MHz")
    if "cpu.temp_c" in m:
        extra.append(f"{m['cpu.temp_c']:.0f} °C")
    if "proc.count" in m:
        extra.append(f"{m['proc.count']:.0f} procs")
    out = [f"CPU      {_pct(m['cpu.util_pct'])} {bar(m['cpu.util_pct'])}  "
           + "  ".join(extra),
           f"         {model} · {count} logical cores".rstrip(" ·")]
    if cores:
        per = " ".join(f"{v:3.0f}" for _, v in cores[:64])
        out.append(f"  cores  {per}{' …' if len(cores) > 64 else ''}")
    if "cpu.cgroup.util_pct" in m:
        out.append(f"  cgroup {_pct(m['cpu.cgroup.util_pct'])} of the container's CPU quota")
    return out


def _memory(m: dict[str, float]) -> list[str]:
    if "mem.used_bytes" not in m:
        return []
    line = (f"Memory   {_pct(m.get('mem.util_pct'))} {bar(m.get('mem.util_pct'))}  "
            f"{format_bytes(m['mem.used_bytes'])} / {format_bytes(m.get('mem.limit_bytes', 0))}")
    if "swap.used_bytes" in m:
        line += f"  swap {format_bytes(m['swap.used_bytes'])}"
    return [line]


def _disks(m: dict[str, float]) -> list[str]:
    out = []
    mounts = sorted({k[5:-len(".used_bytes")] for k in m
                     if k.startswith("disk./") and k.endswith(".used_bytes")})
    for mount in mounts:
        pct = m.get(f"disk.{mount}.util_pct")
        out.append(f"Disk     {_pct(pct)} {bar(pct)}  "
                   f"{format_bytes(m[f'disk.{mount}.used_bytes'])} / "
                   f"{format_bytes(m.get(f'disk.{mount}.total_bytes', 0))}  {mount}")
    if "disk.read_bytes_per_s" in m:
        out.append(f"  I/O    read {format_rate(m['disk.read_bytes_per_s'])}  "
                   f"write {format_rate(m.get('disk.write_bytes_per_s', 0))}  "
                   f"{m.get('disk.iops', 0):.0f} IOPS")
    return out


def _network(m: dict[str, float]) -> list[str]:
    if "net.recv_bytes_per_s" not in m:
        return []
    line = (f"Network  recv {format_rate(m['net.recv_bytes_per_s'])}  "
            f"sent {format_rate(m.get('net.sent_bytes_per_s', 0))}")
    if "net.connections" in m:
        line += f"  {m['net.connections']:.0f} connections"
    return [line]


_VENDORS = {"nvidia": "NVIDIA", "amd": "AMD", "google": "Google", "huawei": "Huawei"}


def _accelerators(m: dict[str, float], info: dict[str, Any]) -> list[str]:
    """Two lines per device of any vendor and kind; one for a lost or idle device."""
    devices = {(d["kind"], int(d["index"])): d for d in devices_in(info)}
    seen = {(x.group(1), int(x.group(2))) for k in m if (x := _DEVICE_RE.match(k))}
    order = {"gpu": 0, "npu": 1, "tpu": 2}
    out = []
    for kind, i in sorted(set(devices) | seen, key=lambda key: (order[key[0]], key[1])):
        dev = devices.get((kind, i), {"kind": kind, "index": i})
        prefix = f"{kind}.{i}."
        g = {k[len(prefix):]: v for k, v in m.items() if k.startswith(prefix)}
        head = f"{device_label(dev):<9}"
        name = dev.get("name", kind.upper())
        vendor = _VENDORS.get(str(dev.get("vendor")), str(dev.get("vendor") or "")).strip()
        what = f"{name} · {vendor} {kind.upper()}".replace(" ·  ", " · ")
        if dev.get("state") == "lost":
            out.append(f"{head}{what}: lost (no longer answers)")
            continue
        if dev.get("state") == "idle" and not g:
            out.append(f"{head}{what}: idle, {dev.get('idle_reason', 'nothing to read now')}")
            continue
        util = g.get("util_pct")
        parts = [f"{head}{_pct(util)} {bar(util)}"]
        if "mem_used_bytes" in g:
            parts.append(f"mem {format_bytes(g['mem_used_bytes'])} / "
                         f"{format_bytes(g.get('mem_total_bytes', 0))}")
        if "temp_c" in g:
            parts.append(f"{g['temp_c']:.0f} °C")
        if "power_w" in g:
            limit = g.get("power_limit_w")
            parts.append(f"{g['power_w']:.0f}" + (f" / {limit:.0f} W" if limit else " W"))
        out.append("  ".join(parts))
        detail = [what]
        if "sm_clock_mhz" in g:
            detail.append(f"{'SM' if dev.get('vendor') == 'nvidia' else 'clock'} "
                          f"{g['sm_clock_mhz']:.0f} MHz")
        if "pstate" in g:
            detail.append(f"P{g['pstate']:.0f}")
        if "health" in g:
            detail.append(f"health {HEALTH_WORDS.get(int(g['health']), g['health'])}")
        reasons = describe_throttle(g.get("throttle_reasons", 0), str(dev.get("vendor")))
        if reasons:
            detail.append("throttled: " + ", ".join(reasons))
        procs = sorted((int(k.split(".")[1]), v) for k, v in g.items() if k.startswith("proc."))
        if procs:
            detail.append("procs " + ", ".join(f"{pid} ({format_bytes(b)})" for pid, b in procs))
        out.append("         " + " · ".join(detail))
    return out


_DEVICE_RE = re.compile(r"(gpu|npu|tpu)\.(\d+)\.")
