"""The one list of metric names: pattern, unit, kind and meaning.

Every surface (sample dicts, SQLite series, WebSocket frames, REST JSON, DataFrame columns,
Prometheus) uses these names. ``docs/METRICS.md`` is generated from this list
(``python -m tracklab_jupyter docs``) and a test fails when it is stale.

Patterns hold placeholders in braces: ``{gpu}`` (GPU index), ``{core}`` (logical CPU),
``{mount}`` (mount point, e.g. ``/home``), ``{pid}`` (host process id), ``{mig}`` (MIG device
index). ``kind`` is ``gauge`` (a level) or ``rate`` (per second; ``counter=True`` means the
sampler derives it from a cumulative counter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

_PLACEHOLDER_RE = {
    "gpu": r"\d+",
    "core": r"\d+",
    "mig": r"\d+",
    "pid": r"\d+",
    "mount": r"/.*?",
}


@dataclass(frozen=True)
class MetricSpec:
    """One metric name pattern and what it means."""

    pattern: str
    unit: str
    kind: str  # "gauge" or "rate"
    description: str
    group: str
    counter: bool = False

    @property
    def regex(self) -> re.Pattern[str]:
        return _compile(self.pattern)


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    for part in re.split(r"(\{\w+\})", pattern):
        if part.startswith("{") and part.endswith("}"):
            key = part[1:-1]
            out.append(f"(?P<{key}>{_PLACEHOLDER_RE[key]})")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out) + r"\Z")


def _m(pattern: str, unit: str, kind: str, description: str, counter: bool = False) -> MetricSpec:
    group = pattern.split(".", 1)[0]
    return MetricSpec(pattern, unit, kind, description, group, counter)


CATALOGUE: tuple[MetricSpec, ...] = (
    # CPU
    _m("cpu.util_pct", "%", "gauge", "CPU utilisation over all logical cores"),
    _m("cpu.core.{core}.util_pct", "%", "gauge", "Utilisation of one logical core"),
    _m("cpu.user_pct", "%", "gauge", "Share of CPU time in user space"),
    _m("cpu.system_pct", "%", "gauge", "Share of CPU time in the kernel"),
    _m("cpu.iowait_pct", "%", "gauge", "Share of CPU time waiting for I/O (Linux)"),
    _m("cpu.freq_mhz", "MHz", "gauge", "Current CPU frequency (mean over cores)"),
    _m("cpu.temp_c", "°C", "gauge", "Hottest CPU temperature sensor, where sensors exist"),
    _m("cpu.load1", "", "gauge", "Load average over 1 minute"),
    _m("cpu.load5", "", "gauge", "Load average over 5 minutes"),
    _m("cpu.load15", "", "gauge", "Load average over 15 minutes"),
    _m("cpu.cgroup.util_pct", "%", "gauge",
       "CPU used by this container against its cgroup quota (cpu.max)"),
    _m("proc.count", "", "gauge", "Number of processes (slow cadence)"),
    _m("proc.threads", "", "gauge", "Number of threads over all processes (slow cadence)"),
    # Memory
    _m("mem.used_bytes", "B", "gauge",
       "Memory in use; inside a container, the cgroup's usage less inactive file cache"),
    _m("mem.available_bytes", "B", "gauge", "Memory available to new allocations"),
    _m("mem.limit_bytes", "B", "gauge",
       "Memory limit that applies: the cgroup limit inside a container, else host total"),
    _m("mem.util_pct", "%", "gauge", "mem.used_bytes against mem.limit_bytes"),
    _m("swap.used_bytes", "B", "gauge", "Swap in use"),
    _m("swap.util_pct", "%", "gauge", "Swap in use against swap total"),
    # Disk
    _m("disk.{mount}.used_bytes", "B", "gauge", "Space used on one mounted filesystem"),
    _m("disk.{mount}.total_bytes", "B", "gauge", "Size of one mounted filesystem"),
    _m("disk.{mount}.util_pct", "%", "gauge", "Space used on one mounted filesystem, percent"),
    _m("disk.read_bytes_per_s", "B/s", "rate", "Bytes read from block devices", counter=True),
    _m("disk.write_bytes_per_s", "B/s", "rate", "Bytes written to block devices", counter=True),
    _m("disk.iops", "1/s", "rate", "Read and write operations per second", counter=True),
    # Network
    _m("net.recv_bytes_per_s", "B/s", "rate", "Bytes received, all interfaces", counter=True),
    _m("net.sent_bytes_per_s", "B/s", "rate", "Bytes sent, all interfaces", counter=True),
    _m("net.recv_packets_per_s", "1/s", "rate", "Packets received", counter=True),
    _m("net.sent_packets_per_s", "1/s", "rate", "Packets sent", counter=True),
    _m("net.errors_per_s", "1/s", "rate", "Receive and send errors", counter=True),
    _m("net.drops_per_s", "1/s", "rate", "Dropped incoming and outgoing packets", counter=True),
    _m("net.connections", "", "gauge", "Open inet connections (slow cadence)"),
    # NVIDIA GPUs
    _m("gpu.{gpu}.util_pct", "%", "gauge", "Share of time a kernel ran on the GPU"),
    _m("gpu.{gpu}.mem_util_pct", "%", "gauge", "Share of time device memory was read or written"),
    _m("gpu.{gpu}.mem_used_bytes", "B", "gauge",
       "Device memory allocated by processes (driver-reserved memory excluded where NVML "
       "reports it apart)"),
    _m("gpu.{gpu}.mem_reserved_bytes", "B", "gauge", "Device memory reserved by the driver"),
    _m("gpu.{gpu}.mem_total_bytes", "B", "gauge", "Device memory size"),
    _m("gpu.{gpu}.mem_pct", "%", "gauge", "mem_used_bytes against mem_total_bytes"),
    _m("gpu.{gpu}.temp_c", "°C", "gauge", "GPU core temperature"),
    _m("gpu.{gpu}.power_w", "W", "gauge", "Power draw"),
    _m("gpu.{gpu}.power_limit_w", "W", "gauge", "Enforced power limit"),
    _m("gpu.{gpu}.sm_clock_mhz", "MHz", "gauge", "SM clock"),
    _m("gpu.{gpu}.mem_clock_mhz", "MHz", "gauge", "Memory clock"),
    _m("gpu.{gpu}.pstate", "", "gauge", "Performance state (0 fastest, 15 slowest)"),
    _m("gpu.{gpu}.throttle_reasons", "", "gauge",
       "Clock event (throttle) reasons bitmask; 0x1 is idle, 0x4 the software power cap"),
    _m("gpu.{gpu}.fan_pct", "%", "gauge", "Fan speed, where the card has a fan NVML controls"),
    _m("gpu.{gpu}.enc_util_pct", "%", "gauge", "Video encoder utilisation"),
    _m("gpu.{gpu}.dec_util_pct", "%", "gauge", "Video decoder utilisation"),
    _m("gpu.{gpu}.ecc_corrected_errors", "", "gauge", "Corrected ECC errors since driver load"),
    _m("gpu.{gpu}.ecc_uncorrected_errors", "", "gauge",
       "Uncorrected ECC errors since driver load"),
    _m("gpu.{gpu}.energy_j", "J", "gauge",
       "Energy used since the driver loaded (slow cadence)"),
    _m("gpu.{gpu}.pcie_tx_bytes_per_s", "B/s", "rate", "PCIe transmit throughput (slow cadence)"),
    _m("gpu.{gpu}.pcie_rx_bytes_per_s", "B/s", "rate", "PCIe receive throughput (slow cadence)"),
    _m("gpu.{gpu}.procs", "", "gauge", "Compute processes on the GPU"),
    _m("gpu.{gpu}.proc.{pid}.mem_used_bytes", "B", "gauge",
       "Device memory used by one process (host pid)"),
    _m("gpu.{gpu}.mig.{mig}.mem_used_bytes", "B", "gauge", "Memory used on one MIG device"),
    _m("gpu.{gpu}.mig.{mig}.mem_total_bytes", "B", "gauge", "Memory size of one MIG device"),
    # A run's process tree: run metrics (docs/RUNS.md), not system samples
    _m("tree.procs", "", "gauge", "Processes in a run's tree (its script and the children)"),
    _m("tree.cpu_pct", "%", "gauge",
       "CPU used by a run's process tree, in percent of one core (summed)"),
    _m("tree.rss_bytes", "B", "gauge", "Resident memory of a run's process tree"),
    _m("tree.threads", "", "gauge", "Threads in a run's process tree"),
    _m("tree.gpu_mem_bytes", "B", "gauge",
       "GPU memory used by a run's process tree (matched by pid; absent in a container "
       "with its own pid namespace)"),
    # The sampler itself
    _m("tracklab.sample_ms", "ms", "gauge", "Wall time of the last sample"),
    _m("tracklab.sample_cpu_ms", "ms", "gauge", "CPU time the sampler spent on the last sample"),
)

GROUPS: dict[str, str] = {
    "cpu": "CPU",
    "proc": "Processes",
    "mem": "Memory",
    "swap": "Memory",
    "disk": "Disk",
    "net": "Network",
    "gpu": "NVIDIA GPUs",
    "tree": "A run's process tree (run metrics)",
    "tracklab": "The sampler",
}


def spec_for(name: str) -> MetricSpec | None:
    """The catalogue entry a concrete metric name belongs to, or None."""
    return _spec_for(name)


@cache
def _spec_for(name: str) -> MetricSpec | None:
    for spec in CATALOGUE:
        if spec.regex.match(name):
            return spec
    return None


def is_known(name: str) -> bool:
    return _spec_for(name) is not None


def unit_of(name: str) -> str:
    spec = _spec_for(name)
    return spec.unit if spec else ""


def render_markdown() -> str:
    """The body of docs/METRICS.md."""
    lines = [
        "# Metrics",
        "",
        "Generated from `tracklab_jupyter/metrics/catalogue.py` by "
        "`python -m tracklab_jupyter docs`; do not edit by hand.",
        "",
        "Names are dotted, lower case, unit last. Placeholders: `{gpu}` GPU index, `{core}` "
        "logical CPU, `{mount}` mount point, `{pid}` host process id, `{mig}` MIG device index. "
        "A metric the machine cannot report is absent, not zero. `rate` metrics marked "
        "*counter* are computed by the sampler from cumulative counters over the real elapsed "
        "time. In Prometheus output dots become underscores.",
        "",
    ]
    seen: list[str] = []
    for spec in CATALOGUE:
        title = GROUPS[spec.group]
        if title not in seen:
            seen.append(title)
            lines += ["", f"## {title}", "", "| name | unit | kind | description |",
                      "|---|---|---|---|"]
        kind = spec.kind + (" (counter)" if spec.counter else "")
        unit = spec.unit or "–"
        lines.append(f"| `{spec.pattern}` | {unit} | {kind} | {spec.description} |")
    return "\n".join(lines) + "\n"
