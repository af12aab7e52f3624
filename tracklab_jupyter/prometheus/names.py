"""The one table from catalogue names to Prometheus families.

Every catalogue pattern has an entry here (a test fails when one is missing), and
docs/METRICS.md shows the family beside each metric. The names follow Prometheus' naming
conventions and the exporters users already know (node_exporter, dcgm-exporter):

- one ``tracklab_`` prefix; base units spelled out as the last word (``_bytes``,
  ``_seconds``, ``_hertz``, ``_celsius``, ``_watts``, ``_joules``);
- utilisation and other shares are ``_ratio``, from 0 to 1, everywhere (the catalogue's
  ``_pct`` values are divided by 100);
- cumulative counts are counters ending in ``_total`` so ``rate()`` works: disk and network
  bytes, operations, packets, errors and drops per device or interface come from the raw
  counters the sampler read (``Sample.device_counters``), never a second reading; GPU
  energy and ECC error counts are cumulative in the sample already;
- catalogue placeholders become labels (:data:`PLACEHOLDER_LABELS`), beside ``node`` on
  every series and ``uuid``/``vendor`` on accelerator series.

NVML reports PCIe traffic only as a throughput sampled over 20 ms (no byte counter in the
API we read), so it stays a gauge in bytes per second.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracklab_jupyter.metrics.catalogue import CATALOGUE, MetricSpec

PREFIX = "tracklab_"

#: Catalogue placeholder -> label name (node_exporter's ``cpu`` and ``mountpoint``).
PLACEHOLDER_LABELS: dict[str, str] = {
    "gpu": "gpu", "npu": "npu", "tpu": "tpu", "core": "cpu", "mount": "mountpoint",
    "pid": "pid", "mig": "mig", "kernel": "kernel",
}

#: Base units a family name may end in (before ``_total``), the OpenMetrics ``UNIT``.
UNITS = ("bytes", "seconds", "hertz", "celsius", "watts", "joules", "ratio")


@dataclass(frozen=True)
class Family:
    """One Prometheus metric family fed by a catalogue metric.

    ``name`` is the name served in the text format (counters end in ``_total``);
    ``scale`` converts the catalogue's unit to the base unit; ``counter_key``
    (``group.field``, fields of ``procfs.DEVICE_COUNTER_FIELDS``) names the per-device raw
    counter (``Sample.device_counters``) a family reads instead of the sample's value, with
    the device in label ``counter_label``.
    """

    name: str
    type: str  # "gauge" or "counter"
    help: str
    scale: float = 1.0
    counter_key: str = ""
    counter_label: str = ""

    @property
    def base_name(self) -> str:
        """The family's name without ``_total`` (OpenMetrics' and prometheus_client's)."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name

    @property
    def unit(self) -> str:
        """The base unit its name ends in, or ''."""
        last = self.base_name.rsplit("_", 1)[-1]
        return last if last in UNITS else ""


@dataclass(frozen=True)
class Mapping:
    """What one catalogue pattern becomes: families, or none and why."""

    pattern: str
    families: tuple[Family, ...]
    not_exported: str = ""


_SPECS: dict[str, MetricSpec] = {s.pattern: s for s in CATALOGUE}
_RATIO_NOTE = "; a ratio from 0 to 1"


def _help(pattern: str, note: str) -> str:
    return _SPECS[pattern].description + note


def gauge(pattern: str, name: str, *, scale: float = 1.0, note: str = "") -> Mapping:
    """The sample's value as a gauge (``scale`` to the base unit)."""
    if name.endswith("_ratio") and not note and scale == 0.01:
        note = _RATIO_NOTE
    return Mapping(pattern, (Family(PREFIX + name, "gauge", _help(pattern, note), scale),))


def counter(pattern: str, name: str, *, note: str = "") -> Mapping:
    """The sample's value, cumulative already (energy, ECC counts), as a counter."""
    return Mapping(pattern, (Family(PREFIX + name, "counter", _help(pattern, note)),))


def device_counters(pattern: str, *families: tuple[str, str, str, str]) -> Mapping:
    """Counters per device or interface from the raw counters behind a catalogue rate:
    ``(name, counter_key, label, help)`` each."""
    return Mapping(pattern, tuple(Family(PREFIX + name, "counter", help_, 1.0, key, label)
                                  for name, key, label, help_ in families))


def not_exported(pattern: str, reason: str) -> Mapping:
    return Mapping(pattern, (), reason)


_MHZ = 1e6
_MS = 1e-3
_PCT = 0.01
_SINCE_BOOT = " since boot (or since the device appeared)"
_RUN_METRIC = ("a run's metric (logged with the run, not part of a system sample): read it "
               "with tracklab.history or api/runs")

MAPPINGS: tuple[Mapping, ...] = (
    # CPU
    gauge("cpu.util_pct", "cpu_utilization_ratio", scale=_PCT),
    gauge("cpu.core.{core}.util_pct", "cpu_core_utilization_ratio", scale=_PCT),
    gauge("cpu.user_pct", "cpu_user_ratio", scale=_PCT),
    gauge("cpu.system_pct", "cpu_system_ratio", scale=_PCT),
    gauge("cpu.iowait_pct", "cpu_iowait_ratio", scale=_PCT),
    gauge("cpu.freq_mhz", "cpu_frequency_hertz", scale=_MHZ),
    gauge("cpu.temp_c", "cpu_temperature_celsius"),
    gauge("cpu.load1", "load1"),
    gauge("cpu.load5", "load5"),
    gauge("cpu.load15", "load15"),
    gauge("cpu.cgroup.util_pct", "cgroup_cpu_utilization_ratio", scale=_PCT),
    gauge("proc.count", "processes"),
    gauge("proc.threads", "threads"),
    # Memory
    gauge("mem.used_bytes", "memory_used_bytes"),
    gauge("mem.available_bytes", "memory_available_bytes"),
    gauge("mem.limit_bytes", "memory_limit_bytes"),
    gauge("mem.util_pct", "memory_utilization_ratio", scale=_PCT),
    gauge("swap.used_bytes", "swap_used_bytes"),
    gauge("swap.util_pct", "swap_utilization_ratio", scale=_PCT),
    # Disk: space per filesystem (labels mountpoint, device, fstype), I/O per block device
    gauge("disk.{mount}.used_bytes", "filesystem_used_bytes"),
    gauge("disk.{mount}.total_bytes", "filesystem_size_bytes"),
    gauge("disk.{mount}.util_pct", "filesystem_utilization_ratio", scale=_PCT),
    device_counters("disk.read_bytes_per_s", (
        "disk_read_bytes_total", "disk.read_bytes", "device",
        "Bytes read from one whole block device" + _SINCE_BOOT)),
    device_counters("disk.write_bytes_per_s", (
        "disk_written_bytes_total", "disk.write_bytes", "device",
        "Bytes written to one whole block device" + _SINCE_BOOT)),
    device_counters("disk.iops", (
        "disk_reads_completed_total", "disk.read_count", "device",
        "Read operations completed by one whole block device" + _SINCE_BOOT), (
        "disk_writes_completed_total", "disk.write_count", "device",
        "Write operations completed by one whole block device" + _SINCE_BOOT)),
    # Network, per interface (loopback included)
    device_counters("net.recv_bytes_per_s", (
        "network_receive_bytes_total", "net.bytes_recv", "interface",
        "Bytes received by one network interface" + _SINCE_BOOT)),
    device_counters("net.sent_bytes_per_s", (
        "network_transmit_bytes_total", "net.bytes_sent", "interface",
        "Bytes sent by one network interface" + _SINCE_BOOT)),
    device_counters("net.recv_packets_per_s", (
        "network_receive_packets_total", "net.packets_recv", "interface",
        "Packets received by one network interface" + _SINCE_BOOT)),
    device_counters("net.sent_packets_per_s", (
        "network_transmit_packets_total", "net.packets_sent", "interface",
        "Packets sent by one network interface" + _SINCE_BOOT)),
    device_counters("net.errors_per_s", (
        "network_receive_errors_total", "net.errin", "interface",
        "Receive errors on one network interface" + _SINCE_BOOT), (
        "network_transmit_errors_total", "net.errout", "interface",
        "Transmit errors on one network interface" + _SINCE_BOOT)),
    device_counters("net.drops_per_s", (
        "network_receive_drops_total", "net.dropin", "interface",
        "Incoming packets dropped on one network interface" + _SINCE_BOOT), (
        "network_transmit_drops_total", "net.dropout", "interface",
        "Outgoing packets dropped on one network interface" + _SINCE_BOOT)),
    gauge("net.connections", "network_connections"),
    # GPUs of every vendor (labels gpu, uuid, vendor)
    gauge("gpu.{gpu}.util_pct", "gpu_utilization_ratio", scale=_PCT),
    gauge("gpu.{gpu}.mem_util_pct", "gpu_memory_utilization_ratio", scale=_PCT),
    gauge("gpu.{gpu}.mem_used_bytes", "gpu_memory_used_bytes"),
    gauge("gpu.{gpu}.mem_reserved_bytes", "gpu_memory_reserved_bytes"),
    gauge("gpu.{gpu}.mem_total_bytes", "gpu_memory_total_bytes"),
    gauge("gpu.{gpu}.mem_pct", "gpu_memory_used_ratio", scale=_PCT),
    gauge("gpu.{gpu}.temp_c", "gpu_temperature_celsius"),
    gauge("gpu.{gpu}.junction_temp_c", "gpu_junction_temperature_celsius"),
    gauge("gpu.{gpu}.mem_temp_c", "gpu_memory_temperature_celsius"),
    gauge("gpu.{gpu}.power_w", "gpu_power_watts"),
    gauge("gpu.{gpu}.power_limit_w", "gpu_power_limit_watts"),
    gauge("gpu.{gpu}.sm_clock_mhz", "gpu_sm_clock_hertz", scale=_MHZ),
    gauge("gpu.{gpu}.mem_clock_mhz", "gpu_memory_clock_hertz", scale=_MHZ),
    gauge("gpu.{gpu}.pstate", "gpu_performance_state"),
    gauge("gpu.{gpu}.throttle_reasons", "gpu_throttle_reasons"),
    gauge("gpu.{gpu}.fan_pct", "gpu_fan_speed_ratio", scale=_PCT),
    gauge("gpu.{gpu}.enc_util_pct", "gpu_encoder_utilization_ratio", scale=_PCT),
    gauge("gpu.{gpu}.dec_util_pct", "gpu_decoder_utilization_ratio", scale=_PCT),
    gauge("gpu.{gpu}.mm_util_pct", "gpu_multimedia_utilization_ratio", scale=_PCT),
    counter("gpu.{gpu}.ecc_corrected_errors", "gpu_ecc_corrected_errors_total"),
    counter("gpu.{gpu}.ecc_uncorrected_errors", "gpu_ecc_uncorrected_errors_total"),
    counter("gpu.{gpu}.energy_j", "gpu_energy_joules_total"),
    gauge("gpu.{gpu}.pcie_tx_bytes_per_s", "gpu_pcie_transmit_bytes_per_second",
          note=" (NVML samples it over 20 ms; it has no byte counter)"),
    gauge("gpu.{gpu}.pcie_rx_bytes_per_s", "gpu_pcie_receive_bytes_per_second",
          note=" (NVML samples it over 20 ms; it has no byte counter)"),
    gauge("gpu.{gpu}.pcie_bytes_per_s", "gpu_pcie_bytes_per_second"),
    gauge("gpu.{gpu}.procs", "gpu_processes"),
    gauge("gpu.{gpu}.proc.{pid}.mem_used_bytes", "gpu_process_memory_used_bytes"),
    gauge("gpu.{gpu}.proc.{pid}.util_pct", "gpu_process_utilization_ratio", scale=_PCT),
    gauge("gpu.{gpu}.proc.{pid}.mem_util_pct", "gpu_process_memory_utilization_ratio",
          scale=_PCT),
    gauge("gpu.{gpu}.mig.{mig}.mem_used_bytes", "gpu_mig_memory_used_bytes"),
    gauge("gpu.{gpu}.mig.{mig}.mem_total_bytes", "gpu_mig_memory_total_bytes"),
    # Huawei Ascend NPUs (labels npu, uuid, vendor)
    gauge("npu.{npu}.util_pct", "npu_utilization_ratio", scale=_PCT),
    gauge("npu.{npu}.aicpu_util_pct", "npu_aicpu_utilization_ratio", scale=_PCT),
    gauge("npu.{npu}.mem_used_bytes", "npu_memory_used_bytes"),
    gauge("npu.{npu}.mem_total_bytes", "npu_memory_total_bytes"),
    gauge("npu.{npu}.mem_pct", "npu_memory_used_ratio", scale=_PCT),
    gauge("npu.{npu}.hbm_bw_util_pct", "npu_memory_bandwidth_utilization_ratio", scale=_PCT),
    gauge("npu.{npu}.temp_c", "npu_temperature_celsius"),
    gauge("npu.{npu}.power_w", "npu_power_watts"),
    gauge("npu.{npu}.health", "npu_health"),
    gauge("npu.{npu}.procs", "npu_processes"),
    gauge("npu.{npu}.proc.{pid}.mem_used_bytes", "npu_process_memory_used_bytes"),
    # Google TPUs (labels tpu, uuid, vendor)
    gauge("tpu.{tpu}.util_pct", "tpu_duty_cycle_ratio", scale=_PCT),
    gauge("tpu.{tpu}.mem_used_bytes", "tpu_memory_used_bytes"),
    gauge("tpu.{tpu}.mem_total_bytes", "tpu_memory_total_bytes"),
    gauge("tpu.{tpu}.mem_pct", "tpu_memory_used_ratio", scale=_PCT),
    gauge("tpu.{tpu}.hbm_bw_util_pct", "tpu_memory_bandwidth_utilization_ratio", scale=_PCT),
    # A run's process tree
    not_exported("tree.procs", _RUN_METRIC),
    not_exported("tree.cpu_pct", _RUN_METRIC),
    not_exported("tree.rss_bytes", _RUN_METRIC),
    not_exported("tree.threads", _RUN_METRIC),
    not_exported("tree.gpu_mem_bytes", _RUN_METRIC),
    # Jupyter kernels (label kernel; tracklab_kernel_info names the notebook)
    gauge("kernel.{kernel}.cpu_pct", "kernel_cpu_utilization_ratio", scale=_PCT,
          note="; 1 is one core fully busy, 2 two cores"),
    gauge("kernel.{kernel}.rss_bytes", "kernel_resident_memory_bytes"),
    gauge("kernel.{kernel}.uss_bytes", "kernel_unique_memory_bytes"),
    gauge("kernel.{kernel}.threads", "kernel_threads"),
    gauge("kernel.{kernel}.procs", "kernel_processes"),
    gauge("kernel.{kernel}.gpu_mem_bytes", "kernel_accelerator_memory_bytes"),
    gauge("kernel.{kernel}.gpu.{gpu}.mem_used_bytes", "kernel_gpu_memory_used_bytes"),
    gauge("kernel.{kernel}.npu.{npu}.mem_used_bytes", "kernel_npu_memory_used_bytes"),
    # The sampler
    gauge("tracklab.sample_ms", "sampler_sample_duration_seconds", scale=_MS),
    gauge("tracklab.sample_cpu_ms", "sampler_sample_cpu_seconds", scale=_MS),
)

#: Families that come from facts or the server rather than the catalogue:
#: (name, type, labels, help). Info families end in ``_info`` and are always 1.
EXTRA_FAMILIES: tuple[tuple[str, str, str, str], ...] = (
    ("tracklab_build_info", "info", "version",
     "The tracklab-jupyter version serving this exposition"),
    ("tracklab_node_info", "info", "node, hostname, os, architecture, cpu_model",
     "One per node: what it runs on"),
    ("tracklab_node_up", "gauge", "node",
     "1 when a node's latest sample is current, 0 for a cluster node that stopped answering"),
    ("tracklab_node_last_sample_timestamp_seconds", "gauge", "node",
     "When the node's latest sample was taken (Unix time)"),
    ("tracklab_gpu_info", "info", "node, gpu, uuid, name, vendor, driver",
     "One per GPU (any vendor): its static facts"),
    ("tracklab_npu_info", "info", "node, npu, uuid, name, vendor, driver",
     "One per Ascend NPU: its static facts"),
    ("tracklab_tpu_info", "info", "node, tpu, uuid, name, vendor, driver",
     "One per TPU chip: its static facts"),
    ("tracklab_kernel_info", "info", "node, kernel, notebook, kernel_name",
     "One per Jupyter kernel of this server: the notebook it runs"),
    ("tracklab_sampler_samples_total", "counter", "node",
     "Samples taken by this process's sampler since it started"),
    ("tracklab_sampler_cpu_seconds_total", "counter", "node",
     "CPU time this process's sampler has spent (ticks and slow reads) since it started"),
)

_BY_PATTERN: dict[str, Mapping] = {m.pattern: m for m in MAPPINGS}


def mapping_for(pattern: str) -> Mapping | None:
    """The entry of a catalogue pattern, or None (a gap the tests catch)."""
    return _BY_PATTERN.get(pattern)


def markdown_cell(pattern: str) -> str:
    """What docs/METRICS.md shows in the Prometheus column for ``pattern``."""
    mapping = _BY_PATTERN.get(pattern)
    if mapping is None:
        return "–"
    if not mapping.families:
        return "not exported"
    return "<br>".join(f"`{f.name}`" for f in mapping.families)


def markdown_appendix() -> str:
    """The section of docs/METRICS.md on the Prometheus exposition."""
    lines = [
        "## Prometheus", "",
        f"`/metrics` serves each metric under the family in the *prometheus* column: prefix "
        f"`{PREFIX}`, base units (bytes, seconds, hertz, celsius, watts, joules), shares as "
        "`_ratio` from 0 to 1 (the `_pct` values divided by 100), cumulative counts as "
        "counters ending in `_total` (use `rate()`). Placeholders become labels: "
        + ", ".join(f"`{{{k}}}` → `{v}`" for k, v in PLACEHOLDER_LABELS.items())
        + "; every series has `node`, accelerator series also `uuid` and `vendor`, "
        "filesystem series `device` and `fstype`. Disk and network counters are per "
        "device (`device`) and interface (`interface`); the catalogue's host-wide rates are "
        "`sum by (node) (rate(...))` of them. Metrics marked *not exported* are run "
        "metrics, not system samples. docs/PROMETHEUS.md has scrape configs and a Grafana "
        "dashboard.", "",
        "Families that come from facts and the server itself:", "",
        "| family | type | labels | description |", "|---|---|---|---|",
    ]
    lines += [f"| `{name}` | {type_} | {labels} | {help_} |"
              for name, type_, labels, help_ in EXTRA_FAMILIES]
    return "\n".join(lines) + "\n"
