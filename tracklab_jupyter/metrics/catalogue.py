"""The one list of metric names: pattern, unit, kind and meaning.

Every surface (sample dicts, SQLite series, WebSocket frames, REST JSON, DataFrame columns,
Prometheus) uses these names. ``docs/METRICS.md`` is generated from this list
(``python -m tracklab_jupyter docs``) and a test fails when it is stale.

Patterns hold placeholders in braces: ``{gpu}`` (GPU index, host-wide across vendors),
``{npu}`` / ``{tpu}`` (NPU, TPU chip index), ``{core}`` (logical CPU),
``{mount}`` (mount point, e.g. ``/home``), ``{pid}`` (host process id), ``{mig}`` (MIG device
index), ``{kernel}`` (a Jupyter kernel id: lower-case hex digits and dashes). ``kind`` is
``gauge`` (a level) or ``rate`` (per second; ``counter=True`` means the sampler derives it
from a cumulative counter).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

_PLACEHOLDER_RE = {
    "gpu": r"\d+",
    "npu": r"\d+",
    "tpu": r"\d+",
    "core": r"\d+",
    "mig": r"\d+",
    "pid": r"\d+",
    "mount": r"/.*?",
    "kernel": r"[0-9a-f][0-9a-f-]{0,63}",
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
    #: For accelerator metrics, the vendors whose backends report it.
    vendors: tuple[str, ...] = ()

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


def _m(pattern: str, unit: str, kind: str, description: str, counter: bool = False,
       vendors: tuple[str, ...] = ()) -> MetricSpec:
    group = pattern.split(".", 1)[0]
    return MetricSpec(pattern, unit, kind, description, group, counter, vendors)


NV, AMD, NV_AMD = ("nvidia",), ("amd",), ("nvidia", "amd")


def _g(suffix: str, unit: str, description: str, vendors: tuple[str, ...]) -> MetricSpec:
    """A GPU gauge, any vendor: ``gpu.{gpu}.<suffix>``."""
    return _m(f"gpu.{{gpu}}.{suffix}", unit, "gauge", description, vendors=vendors)


def _n(suffix: str, unit: str, description: str) -> MetricSpec:
    """A Huawei Ascend NPU gauge: ``npu.{npu}.<suffix>``."""
    return _m(f"npu.{{npu}}.{suffix}", unit, "gauge", description, vendors=("huawei",))


def _t(suffix: str, unit: str, description: str) -> MetricSpec:
    """A Google TPU chip gauge: ``tpu.{tpu}.<suffix>``."""
    return _m(f"tpu.{{tpu}}.{suffix}", unit, "gauge", description, vendors=("google",))


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
    _m("net.connections", "", "gauge", "Open inet sockets, TCP and UDP (slow cadence)"),
    # GPUs of every vendor. ``vendors`` says who reports each; a note says where a vendor's
    # number means something else than NVIDIA's.
    _g("util_pct", "%", "Share of time a kernel ran on the GPU. AMD: GFX engine activity "
       "(busy share of the graphics/compute engine), a coarser measure", NV_AMD),
    _g("mem_util_pct", "%", "Share of time device memory was read or written. AMD: memory "
       "controller (UMC) activity", NV_AMD),
    _g("mem_used_bytes", "B", "Device memory allocated by processes (driver-reserved memory "
       "excluded where NVML reports it apart)", NV_AMD),
    _g("mem_reserved_bytes", "B", "Device memory reserved by the driver", NV),
    _g("mem_total_bytes", "B", "Device memory size", NV_AMD),
    _g("mem_pct", "%", "mem_used_bytes against mem_total_bytes", NV_AMD),
    _g("temp_c", "°C", "GPU core temperature. AMD: the edge sensor", NV_AMD),
    _g("junction_temp_c", "°C", "Hottest point of the die (AMD junction/hotspot sensor)", AMD),
    _g("mem_temp_c", "°C", "Device memory (HBM/VRAM) temperature", AMD),
    _g("power_w", "W", "Power draw. AMD: socket power", NV_AMD),
    _g("power_limit_w", "W", "Enforced power limit (AMD: power cap)", NV_AMD),
    _g("sm_clock_mhz", "MHz", "SM clock. AMD: GFX clock (sclk)", NV_AMD),
    _g("mem_clock_mhz", "MHz", "Memory clock (AMD: mclk)", NV_AMD),
    _g("pstate", "", "Performance state (0 fastest, 15 slowest)", NV),
    _g("throttle_reasons", "", "Why clocks are held down, a bitmask whose bits are the "
       "vendor's: NVIDIA's clock-event reasons (0x1 idle, 0x4 software power cap, 0x20/0x40 "
       "thermal); AMD's throttler status folded to 0x1 power, 0x2 current, 0x4 temperature, "
       "0x8 platform or reliability limit", NV_AMD),
    _g("fan_pct", "%", "Fan speed, where the card has a fan the driver controls", NV_AMD),
    _g("enc_util_pct", "%", "Video encoder utilisation", NV),
    _g("dec_util_pct", "%", "Video decoder utilisation", NV),
    _g("mm_util_pct", "%", "Multimedia (video) engine activity", AMD),
    _g("ecc_corrected_errors", "", "Corrected ECC errors (NVIDIA: since driver load)", NV_AMD),
    _g("ecc_uncorrected_errors", "", "Uncorrected ECC errors (NVIDIA: since driver load)",
       NV_AMD),
    _g("energy_j", "J", "Energy used since the driver loaded (slow cadence)", NV_AMD),
    _m("gpu.{gpu}.pcie_tx_bytes_per_s", "B/s", "rate", "PCIe transmit throughput (slow cadence)",
       vendors=NV),
    _m("gpu.{gpu}.pcie_rx_bytes_per_s", "B/s", "rate", "PCIe receive throughput (slow cadence)",
       vendors=NV),
    _m("gpu.{gpu}.pcie_bytes_per_s", "B/s", "rate",
       "PCIe bandwidth in use, both directions together (slow cadence)", vendors=AMD),
    _g("procs", "", "Compute processes on the GPU", NV_AMD),
    _g("proc.{pid}.mem_used_bytes", "B", "Device memory used by one process (host pid)", NV_AMD),
    _g("proc.{pid}.util_pct", "%", "Share of time one process (host pid) ran kernels on the "
       "GPU, the mean of NVML's samples since the previous read; 0 for a compute process "
       "without samples (idle); absent under MIG (slow cadence)", NV),
    _g("proc.{pid}.mem_util_pct", "%", "Share of time device memory was read or written for "
       "one process (host pid), averaged as its util_pct (slow cadence)", NV),
    _g("mig.{mig}.mem_used_bytes", "B", "Memory used on one MIG device", NV),
    _g("mig.{mig}.mem_total_bytes", "B", "Memory size of one MIG device", NV),
    # Huawei Ascend NPUs
    _n("util_pct", "%", "AI Core utilisation: share of time the AI Cores (the matrix units) "
       "were busy"),
    _n("aicpu_util_pct", "%", "AI CPU utilisation (the NPU's own CPU cores for operators the "
       "AI Cores do not run)"),
    _n("mem_used_bytes", "B", "HBM in use"),
    _n("mem_total_bytes", "B", "HBM size"),
    _n("mem_pct", "%", "mem_used_bytes against mem_total_bytes"),
    _n("hbm_bw_util_pct", "%", "HBM bandwidth utilisation"),
    _n("temp_c", "°C", "Chip temperature"),
    _n("power_w", "W", "Power draw"),
    _n("health", "", "Health as the driver reports it: 0 ok, 1 warning, 2 alarm, 3 critical"),
    _n("procs", "", "Processes using the NPU"),
    _n("proc.{pid}.mem_used_bytes", "B", "Device memory used by one process (host pid)"),
    # Google TPUs
    _t("util_pct", "%", "TensorCore duty cycle: share of time the TensorCores ran a program; "
       "unlike NVIDIA's utilisation it is measured over the runtime's own window"),
    _t("mem_used_bytes", "B", "HBM in use by the TPU runtime"),
    _t("mem_total_bytes", "B", "HBM size"),
    _t("mem_pct", "%", "mem_used_bytes against mem_total_bytes"),
    _t("hbm_bw_util_pct", "%", "HBM bandwidth utilisation"),
    # A run's process tree: run metrics (docs/RUNS.md), not system samples
    _m("tree.procs", "", "gauge", "Processes in a run's tree (its script and the children)"),
    _m("tree.cpu_pct", "%", "gauge",
       "CPU used by a run's process tree, in percent of one core (summed)"),
    _m("tree.rss_bytes", "B", "gauge", "Resident memory of a run's process tree"),
    _m("tree.threads", "", "gauge", "Threads in a run's process tree"),
    _m("tree.gpu_mem_bytes", "B", "gauge",
       "Accelerator memory (GPUs of any vendor, NPUs) used by a run's process tree (matched "
       "by pid; absent in a container with its own pid namespace)"),
    # Jupyter kernels: each kernel's process tree (docs/KERNELS.md)
    _m("kernel.{kernel}.cpu_pct", "%", "gauge",
       "CPU used by a kernel's process tree (the kernel and its children), in percent of one "
       "core"),
    _m("kernel.{kernel}.rss_bytes", "B", "gauge", "Resident memory of a kernel's process tree"),
    _m("kernel.{kernel}.uss_bytes", "B", "gauge",
       "Memory only the kernel's processes hold (private pages; read every 30 s)"),
    _m("kernel.{kernel}.threads", "", "gauge", "Threads in a kernel's process tree"),
    _m("kernel.{kernel}.procs", "", "gauge", "Processes in a kernel's process tree"),
    _m("kernel.{kernel}.gpu_mem_bytes", "B", "gauge",
       "Accelerator memory (GPUs of any vendor, NPUs) used by a kernel's process tree "
       "(matched by pid; absent in a container with its own pid namespace)"),
    _m("kernel.{kernel}.gpu.{gpu}.mem_used_bytes", "B", "gauge",
       "Memory of one GPU used by a kernel's process tree"),
    _m("kernel.{kernel}.npu.{npu}.mem_used_bytes", "B", "gauge",
       "Memory of one NPU used by a kernel's process tree"),
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
    "gpu": "GPUs (NVIDIA, AMD)",
    "npu": "NPUs (Huawei Ascend)",
    "tpu": "TPUs (Google)",
    "tree": "A run's process tree (run metrics)",
    "kernel": "Jupyter kernels (per kernel process tree)",
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


def render_markdown(prometheus: Callable[[str], str] | None = None, appendix: str = "") -> str:
    """The body of docs/METRICS.md; ``prometheus(pattern)`` fills a column with the
    Prometheus family of each metric, and ``appendix`` ends the page."""
    lines = [
        "# Metrics",
        "",
        "Generated from `tracklab_jupyter/metrics/catalogue.py` by "
        "`python -m tracklab_jupyter docs`; do not edit by hand.",
        "",
        "Names are dotted, lower case, unit last. Placeholders: `{gpu}` GPU index (host-wide, "
        "across vendors), `{npu}` NPU index, `{tpu}` TPU chip index, `{core}` logical CPU, "
        "`{mount}` mount point, `{pid}` host process id, `{mig}` MIG device index, "
        "`{kernel}` Jupyter kernel id. "
        "A metric the machine cannot report is absent, not zero. `rate` metrics marked "
        "*counter* are computed by the sampler from cumulative counters over the real elapsed "
        "time. For accelerators, *vendors* says whose devices report the metric; `info` "
        "names each device's vendor. The *prometheus* column names the family each metric "
        "is served under at `/metrics` (see the end of this page).",
        "",
    ]
    seen: list[str] = []
    for spec in CATALOGUE:
        title = GROUPS[spec.group]
        with_vendors = spec.group in ("gpu", "npu", "tpu")
        if title not in seen:
            seen.append(title)
            header, rule = "| name | unit | kind | description |", "|---|---|---|---|"
            if with_vendors:
                header, rule = header + " vendors |", rule + "---|"
            if prometheus is not None:
                header, rule = header + " prometheus |", rule + "---|"
            lines += ["", f"## {title}", "", header, rule]
        kind = spec.kind + (" (counter)" if spec.counter else "")
        unit = spec.unit or "–"
        row = f"| `{spec.pattern}` | {unit} | {kind} | {spec.description} |"
        if with_vendors:
            row += f" {', '.join(spec.vendors)} |"
        if prometheus is not None:
            row += f" {prometheus(spec.pattern)} |"
        lines.append(row)
    text = "\n".join(lines) + "\n"
    return text + "\n" + appendix if appendix else text
