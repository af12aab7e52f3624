"""Host collectors (cpu, memory, disk, network) and static system info, on the real machine.

psutil is real throughout; the only stand-ins are for facts this machine cannot show
(a CPU temperature sensor, AccessDenied from net_connections as root) and cgroup trees,
which come from tests/fixtures/cgroup/.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import IN_CI, loopback_transfer

from tracklab_jupyter.collectors import cgroup, disk, network, procfs, system_info
from tracklab_jupyter.collectors.base import Reading
from tracklab_jupyter.collectors.cpu import CpuCollector, cpu_temperature, cpu_util
from tracklab_jupyter.collectors.disk import DiskCollector, Mount, keep_mount, select_mounts
from tracklab_jupyter.collectors.memory import MemoryCollector, memory_gauges
from tracklab_jupyter.collectors.network import NetworkCollector
from tracklab_jupyter.collectors.system_info import CpuDetails, collect_system_info, parse_cpuinfo
from tracklab_jupyter.metrics.catalogue import is_known, spec_for
from tracklab_jupyter.sampler.rates import RateTracker

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup"
MB = 1024 * 1024
LINUX = psutil.LINUX


def host_lacks(what: str) -> None:
    """Skip: this host lacks ``what``. Every CI machine (a Debian VM: Linux, 2 cores, more
    than 1 GiB of RAM, a virtual disk) has it, so under CI=true it is a failure."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: every CI machine has this)")
    pytest.skip(what)


def cgroup_copy(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A writable copy of one cgroup fixture: (root, proc_self_cgroup)."""
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst)
    return dst / "root", dst / "proc_self_cgroup"


def all_names(reading: Reading) -> list[str]:
    return [*reading.gauges, *reading.counters]


# --- catalogue --------------------------------------------------------------------------------


def test_every_emitted_name_is_in_the_catalogue() -> None:
    collectors = [CpuCollector(), MemoryCollector(), DiskCollector(), NetworkCollector()]
    time.sleep(0.05)
    for c in collectors:
        fast, slow = c.read(), c.read_slow()
        for name in all_names(fast) + all_names(slow):
            assert is_known(name), f"{c.name}: {name} is not in the catalogue"
        for name in fast.counters:
            spec = spec_for(name)
            assert spec is not None and spec.counter, f"{name} is returned as a counter"
        for name in fast.gauges:
            spec = spec_for(name)
            assert spec is not None and not spec.counter, f"{name} is a counter, not a gauge"
        for value in [*fast.gauges.values(), *fast.counters.values(), *slow.gauges.values()]:
            assert isinstance(value, float)
        c.close()


# --- CPU --------------------------------------------------------------------------------------


def test_cpu_first_read_is_meaningful_even_from_another_thread() -> None:
    collector = CpuCollector()  # primes in this thread
    time.sleep(0.15)
    results: list[Reading] = []
    worker = threading.Thread(target=lambda: results.append(collector.read()))
    worker.start()
    worker.join()
    gauges = results[0].gauges
    assert 0.0 <= gauges["cpu.util_pct"] <= 100.0
    cores = [k for k in gauges if k.startswith("cpu.core.")]
    assert len(cores) == psutil.cpu_count()
    for key in ("cpu.user_pct", "cpu.system_pct"):
        assert 0.0 <= gauges[key] <= 100.0
    if LINUX:
        assert 0.0 <= gauges["cpu.iowait_pct"] <= 100.0
        assert gauges["cpu.load1"] >= 0 and "cpu.load15" in gauges


def test_cpu_busy_loop_raises_util() -> None:
    collector = CpuCollector()
    time.sleep(0.05)
    collector.read()
    end = time.perf_counter() + 0.5
    x = 0
    while time.perf_counter() < end:
        x += 1
    gauges = collector.read().gauges
    ncores = psutil.cpu_count()
    # One thread spinning is one core's worth (100 / ncores of the whole); other processes
    # only add to it, so a lower bound is safe.
    assert gauges["cpu.util_pct"] * ncores >= 60.0
    assert gauges["cpu.util_pct"] <= 100.0
    assert gauges["cpu.user_pct"] * ncores >= 50.0
    per_core = [v for k, v in gauges.items() if k.startswith("cpu.core.")]
    assert sum(per_core) / len(per_core) == pytest.approx(gauges["cpu.util_pct"])


def _times(**values: float) -> Any:
    cls = type(psutil.cpu_times())
    return cls(**{f: float(values.get(f, 0.0)) for f in cls._fields})


def test_cpu_util_arithmetic() -> None:
    fields = type(psutil.cpu_times())._fields
    prev = [_times(), _times()]
    step = {"user": 2, "idle": 6}
    if "nice" in fields:
        step["nice"] = 1
    if "iowait" in fields:
        step["iowait"] = 1
    cur = [_times(**step), _times(idle=10)]
    util = cpu_util(prev, cur)
    assert util is not None
    core0_total = sum(step.values())
    busy0 = core0_total - step["idle"] - step.get("iowait", 0)
    assert util.cores[0] == pytest.approx(100 * busy0 / core0_total)
    assert util.cores[1] == pytest.approx(0.0)
    assert util.overall == pytest.approx(util.cores[0] / 2)
    all_total = core0_total + 10
    assert util.user == pytest.approx(100 * (2 + step.get("nice", 0)) / all_total)
    if "iowait" in fields:
        assert util.iowait == pytest.approx(100 / all_total)  # iowait is not busy
    # No clock tick since the baseline, or a core came or went: nothing to say.
    assert cpu_util(cur, cur) is None
    assert cpu_util(prev, cur[:1]) is None


def test_cpu_slow_path_counts_processes() -> None:
    collector = CpuCollector()
    gauges = collector.read_slow().gauges
    assert gauges["proc.count"] >= 1
    assert gauges["proc.threads"] >= gauges["proc.count"]
    if "cpu.freq_mhz" in gauges:
        assert 100 < gauges["cpu.freq_mhz"] < 10_000
    if not psutil.sensors_temperatures():
        assert "cpu.temp_c" not in gauges
        assert "temp" in collector._guard.unsupported  # not asked again


def test_cpu_temperature_picks_hottest_cpu_sensor() -> None:
    temp = namedtuple("temp", "label current high critical")
    sensors = {
        "nvme": [temp("Composite", 71.0, 80.0, 90.0)],  # not the CPU
        "coretemp": [temp("Package id 0", 55.0, 80.0, 100.0), temp("Core 0", 58.0, 80, 100)],
        "acpitz": [temp("", 90.0, None, None)],  # a board sensor
    }
    assert cpu_temperature(sensors) == 58.0
    assert cpu_temperature({"k10temp": [temp("Tctl", 0.0, None, None)]}) is None
    assert cpu_temperature({}) is None


def test_cpu_cgroup_util_against_quota(tmp_path: Path) -> None:
    root, proc = cgroup_copy(tmp_path, "v2-limited")
    stat = root / "kubepods" / "pod1" / "ctr" / "cpu.stat"
    now = [100.0]
    collector = CpuCollector(root, proc, clock=lambda: now[0])
    assert collector.info()["cgroup_cpu_quota_cores"] == pytest.approx(1.5)

    def usage(usec: int) -> None:
        stat.write_text(f"usage_usec {usec}\nuser_usec 0\nsystem_usec 0\n")

    usage(10_000_000)
    assert "cpu.cgroup.util_pct" not in collector.read().gauges  # first reading: no delta
    usage(10_750_000)  # 0.75 CPU-seconds in 1 s against 1.5 cores
    now[0] += 1.0
    assert collector.read().gauges["cpu.cgroup.util_pct"] == pytest.approx(50.0)
    usage(13_750_000)  # 3 CPU-seconds in 2 s: the whole quota
    now[0] += 2.0
    assert collector.read().gauges["cpu.cgroup.util_pct"] == pytest.approx(100.0)
    usage(1_000)  # group re-created: counter reset
    now[0] += 1.0
    assert "cpu.cgroup.util_pct" not in collector.read().gauges
    usage(151_000)
    now[0] += 1.0
    assert collector.read().gauges["cpu.cgroup.util_pct"] == pytest.approx(10.0)


def test_cpu_cgroup_util_absent_without_quota(tmp_path: Path) -> None:
    root, proc = cgroup_copy(tmp_path, "v2-unlimited")
    collector = CpuCollector(root, proc)
    for _ in range(2):
        assert "cpu.cgroup.util_pct" not in collector.read().gauges
        time.sleep(0.01)


def test_cpu_quota_change_is_picked_up_by_read_slow(tmp_path: Path) -> None:
    root, proc = cgroup_copy(tmp_path, "v2-unlimited")
    collector = CpuCollector(root, proc)
    assert collector.info()["cgroup_cpu_quota_cores"] is None
    (root / "cpu.max").write_text("200000 100000\n")  # docker update --cpus 2
    collector.read_slow()
    assert collector.info()["cgroup_cpu_quota_cores"] == pytest.approx(2.0)


# --- memory -----------------------------------------------------------------------------------


def test_memory_host_values_are_consistent() -> None:
    collector = MemoryCollector()
    g = collector.read().gauges
    vm = psutil.virtual_memory()
    assert 0 < g["mem.used_bytes"] <= g["mem.limit_bytes"]
    assert 0 <= g["mem.available_bytes"] <= g["mem.limit_bytes"]
    assert g["mem.util_pct"] == pytest.approx(100 * g["mem.used_bytes"] / g["mem.limit_bytes"])
    assert 0 < g["mem.util_pct"] < 100
    if collector.info()["effective_limit_bytes"] is None:
        assert g["mem.limit_bytes"] == vm.total
        # used = total - available: within 5 % of total of a fresh psutil reading.
        assert g["mem.used_bytes"] == pytest.approx(vm.total - vm.available, abs=vm.total * 0.05)
    swap = psutil.swap_memory()
    if swap.total > 0:
        assert 0 <= g["swap.util_pct"] <= 100 and g["swap.used_bytes"] >= 0
    else:
        assert "swap.used_bytes" not in g and "swap.util_pct" not in g


def test_memory_in_limited_container_uses_cgroup(tmp_path: Path) -> None:
    root, proc = cgroup_copy(tmp_path, "v2-limited")
    host = psutil.virtual_memory()
    if host.total <= 1073741824:
        host_lacks(f"host RAM is {host.total} bytes: the test needs more than the fixture's "
                   "1 GiB cgroup limit")
    collector = MemoryCollector(root, proc)
    g = collector.read().gauges
    used = 524288000 - 104857600
    assert g["mem.limit_bytes"] == 1073741824
    assert g["mem.used_bytes"] == used
    assert g["mem.available_bytes"] <= 1073741824 - used
    assert g["mem.util_pct"] == pytest.approx(100 * used / 1073741824)
    info = collector.info()
    assert info["cgroup_version"] == 2
    assert info["cgroup_memory_limit_bytes"] == 1073741824
    assert info["cgroup_cpu_quota_cores"] == pytest.approx(1.5)
    assert info["total_bytes"] == host.total


def test_memory_limit_above_host_total_reports_host(tmp_path: Path) -> None:
    root, proc = cgroup_copy(tmp_path, "v2-limited")
    leaf = root / "kubepods" / "pod1" / "ctr"
    (leaf / "memory.max").write_text(str(1 << 50))  # 1 PiB: more than any host
    (leaf.parent / "memory.max").write_text("max\n")
    collector = MemoryCollector(root, proc)
    assert collector.read().gauges["mem.limit_bytes"] == psutil.virtual_memory().total
    # `docker update --memory 1g` is seen at the next slow read.
    (leaf / "memory.max").write_text("1073741824\n")
    collector.read_slow()
    if psutil.virtual_memory().total > 1073741824:
        assert collector.read().gauges["mem.limit_bytes"] == 1073741824


def test_memory_gauges_cap_available_by_host() -> None:
    g = memory_gauges(total=16_000, available=100, cg_limit=1_000, cg_used=400)
    assert g["mem.available_bytes"] == 100  # the host has less free than the cgroup allows
    assert g["mem.limit_bytes"] == 1_000 and g["mem.util_pct"] == pytest.approx(40.0)
    g = memory_gauges(total=16_000, available=12_000, cg_limit=None, cg_used=None)
    assert g["mem.used_bytes"] == 4_000 and g["mem.util_pct"] == pytest.approx(25.0)
    g = memory_gauges(total=16_000, available=12_000, cg_limit=1_000, cg_used=1_200)
    assert g["mem.available_bytes"] == 0  # over the limit (reclaim pending): never negative


# --- disk -------------------------------------------------------------------------------------


def _part(device: str, mountpoint: str, fstype: str, opts: str = "rw") -> Any:
    cls = type(psutil.disk_partitions(all=True)[0])
    return cls(**{"device": device, "mountpoint": mountpoint, "fstype": fstype, "opts": opts,
                  **{f: 0 for f in cls._fields if f not in ("device", "mountpoint", "fstype",
                                                            "opts")}})


def test_disk_mount_selection_rules() -> None:
    parts = [
        _part("overlay", "/", "overlay"),
        _part("overlay", "/var/lib/docker/overlay2/x/merged", "overlay"),
        _part("proc", "/proc", "proc"),
        _part("tmpfs", "/dev/shm", "tmpfs"),
        _part("tmpfs", "/run", "tmpfs"),
        _part("cgroup2", "/sys/fs/cgroup", "cgroup2"),
        _part("/dev/loop3", "/snap/core22/1380", "squashfs", "ro,nodev"),
        _part("/dev/loop4", "/mnt/image", "ext4", "ro"),
        _part("/dev/sr0", "/media/cdrom", "iso9660", "ro"),
        _part("/dev/sda1", "/home/jovyan/work", "ext4"),
        _part("/dev/sda1", "/home/jovyan/work/bind", "ext4"),  # bind mount of the same fs
        _part("/dev/nvme0n1p2", "/data", "xfs"),
        _part("/dev/nvme0n1p1", "/boot/efi", "vfat"),
        _part("server:/export/home", "/home", "nfs4"),
        _part("sshfs#me@host:", "/mnt/remote", "fuse.sshfs"),
        _part("lxcfs", "/var/lib/lxcfs", "fuse.lxcfs"),
        _part("weird", "/mnt/weird", "weirdfs"),  # unknown and "nodev": a kernel interface
    ]
    mounts = select_mounts(parts, nodev_types=frozenset({"weirdfs", "nfs4", "fuse"}))
    by_point = {m.mountpoint: m for m in mounts}
    assert set(by_point) == {"/", "/home", "/data", "/boot/efi", "/home/jovyan/work",
                             "/mnt/remote"}
    assert by_point["/home"].remote and by_point["/mnt/remote"].remote
    assert not by_point["/"].remote and not by_point["/data"].remote
    assert len(select_mounts(parts, limit=3)) == 3
    assert keep_mount("/dev/sdb1", "/run/media/me/USB", "exfat", "rw")  # removable media


def test_disk_real_mounts_skip_pseudo_filesystems() -> None:
    collector = DiskCollector()
    points = {m.mountpoint for m in collector.mounts}
    fstypes = {m.fstype for m in collector.mounts}
    assert not any(p == "/proc" or p.startswith(("/proc/", "/sys/", "/dev/")) for p in points)
    assert not fstypes & {"tmpfs", "proc", "sysfs", "devtmpfs", "cgroup", "cgroup2", "squashfs"}
    assert len({m.device for m in collector.mounts}) == len(collector.mounts)  # no duplicates
    root = next((p for p in psutil.disk_partitions(all=True) if p.mountpoint == "/"), None)
    if root is not None and keep_mount(root.device, "/", root.fstype, root.opts):
        assert "/" in points
    # Space is read at slow cadence (the sampler merges it into every sample); the tick
    # carries only the I/O counters.
    assert not any(k.endswith("_bytes") for k in collector.read().gauges)
    g = collector.read_slow().gauges
    for m in collector.mounts:
        if m.remote:
            continue  # a hung server would stall the test; the same code reads it
        used, total = g[f"disk.{m.mountpoint}.used_bytes"], g[f"disk.{m.mountpoint}.total_bytes"]
        assert 0 <= used <= total
        assert 0 <= g[f"disk.{m.mountpoint}.util_pct"] <= 100
        assert total == psutil.disk_usage(m.mountpoint).total  # bytes, not KiB
    assert collector.info()["mounts"][0]["mountpoint"] in points


def test_disk_vanished_mount_is_skipped(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    collector = DiskCollector()
    real = collector.mounts
    gone = Mount(str(tmp_path / "gone"), "/dev/x", "ext4", False)
    monkeypatch.setattr(disk, "_list_mounts", lambda: [*real, gone])  # unmounted since listed
    g = collector.read_slow().gauges
    assert not any("gone" in k for k in g)
    for m in real:  # the others are still reported
        assert f"disk.{m.mountpoint}.total_bytes" in g


def _disk_backed_dir(tmp_path: Path) -> Path:
    """tmp_path, unless it lives on tmpfs (then I/O never reaches a block device)."""
    best = max((p for p in psutil.disk_partitions(all=True)
                if str(tmp_path).startswith(p.mountpoint)),
               key=lambda p: len(p.mountpoint), default=None)
    if best is None or best.fstype not in ("tmpfs", "ramfs"):
        return tmp_path
    return Path(__file__).parent  # the checkout is on a real disk


def test_disk_write_raises_write_rate(tmp_path: Path) -> None:
    collector = DiskCollector()
    first = collector.read().counters
    if "disk.write_bytes_per_s" not in first:
        host_lacks("no block device with I/O counters (no whole disk of /sys/block in "
                   "/proc/diskstats, nor in psutil.disk_io_counters)")
    rates = RateTracker()
    rates.update(first, time.monotonic())
    target = _disk_backed_dir(tmp_path) / f".tracklab-io-test-{os.getpid()}"
    chunk = os.urandom(MB)  # random: no filesystem compression can shrink it
    try:
        with open(target, "wb") as f:
            for _ in range(20):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        t0 = time.monotonic()
        second = collector.read().counters
        r = rates.update(second, t0)
    finally:
        target.unlink(missing_ok=True)
    written = second["disk.write_bytes_per_s"] - first["disk.write_bytes_per_s"]
    assert written >= 18 * MB
    assert r["disk.write_bytes_per_s"] > 0
    assert r["disk.iops"] > 0
    assert r["disk.read_bytes_per_s"] >= 0


def test_counter_reset_gives_no_negative_rate() -> None:
    collector = NetworkCollector()
    rates = RateTracker()
    first = collector.read().counters
    assert rates.update(first, 1.0) == {}
    reset = {name: 0.0 for name in first}  # interface re-created: counters start again
    after_reset = rates.update(reset, 2.0)
    assert all(value >= 0 for value in after_reset.values())
    dropped = {name for name, value in first.items() if value > 0}
    assert dropped and not dropped & set(after_reset)  # bytes went down: no rate that tick
    later = {name: 500.0 for name in first}
    assert rates.update(later, 3.0) == {name: 500.0 for name in first}


# --- network ----------------------------------------------------------------------------------


def test_loopback_transfer_raises_net_rates() -> None:
    collector = NetworkCollector()
    rates = RateTracker()
    first = collector.read().counters
    rates.update(first, time.monotonic())
    assert loopback_transfer(20 * MB) == 20 * MB
    second = collector.read().counters
    r = rates.update(second, time.monotonic())
    # Loopback counts each byte once as sent and once as received (plus TCP/IP headers).
    for name in ("net.recv_bytes_per_s", "net.sent_bytes_per_s"):
        assert second[name] - first[name] >= 20 * MB
        assert r[name] > 0
    assert second["net.recv_packets_per_s"] > first["net.recv_packets_per_s"]
    assert r["net.errors_per_s"] >= 0 and r["net.drops_per_s"] >= 0


@pytest.mark.parametrize("through", ["procfs", "psutil"])
def test_device_counters_are_the_rows_the_totals_are_summed_from(
        through: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if through == "psutil":  # the path off Linux: psutil's per-NIC and per-disk tables
        monkeypatch.setattr(procfs.NetDevReader, "open", classmethod(lambda cls: None))
        monkeypatch.setattr(procfs.DiskStatsReader, "open", classmethod(lambda cls: None))
    for collector, group, fields in (
            (NetworkCollector(), "net", {"net.recv_bytes_per_s": "bytes_recv",
                                         "net.sent_packets_per_s": "packets_sent"}),
            (DiskCollector(), "disk", {"disk.read_bytes_per_s": "read_bytes",
                                       "disk.write_bytes_per_s": "write_bytes"})):
        reading = collector.read()
        collector.close()
        rows = reading.device_counters.get(group)
        if group == "disk" and not reading.counters:
            continue  # a machine without block devices (some containers)
        assert rows, f"no per-device {group} counters"
        names = procfs.DEVICE_COUNTER_FIELDS[group]
        for rate_name, field_name in fields.items():
            index = names.index(field_name)
            assert reading.counters[rate_name] == sum(row[index] for row in rows.values())
    assert "lo" in NetworkCollector().read().device_counters["net"]


def test_net_connections_counts_a_listening_socket() -> None:
    collector = NetworkCollector()
    before = collector.read_slow().gauges.get("net.connections")
    with socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0)):
        gauges = collector.read_slow().gauges
    if LINUX:  # from /proc/net/sockstat: two more sockets in use than just before
        assert before is not None and gauges["net.connections"] - before >= 2
    elif "net.connections" in gauges:
        assert gauges["net.connections"] >= 1
    names = [i["name"] for i in collector.info()["interfaces"]]
    if LINUX:
        assert "lo" in names


def test_sockstat_counts_tcp_and_udp_over_both_families() -> None:
    """The kernel's format (the 2-core machine's file, with counts changed so each line
    matters): RAW/FRAG lines and the ``sockets: used`` total of every family do not count."""
    data = (b"sockets: used 9\nTCP: inuse 2 orphan 0 tw 3 alloc 2 mem 412\nUDP: inuse 1 mem 0\n"
            b"UDPLITE: inuse 0\nRAW: inuse 4\nFRAG: inuse 0 memory 0\n"
            b"TCP6: inuse 1\nUDP6: inuse 0\nUDPLITE6: inuse 0\nRAW6: inuse 0\n")
    assert network.parse_sockstat(data) == 4


def test_net_connections_access_denied_is_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS without root raises AccessDenied; as root here it cannot happen for real."""
    calls = [0]

    def denied(kind: str = "inet") -> list[Any]:
        calls[0] += 1
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "net_connections", denied)
    monkeypatch.setattr(network, "_sockstat_reader", lambda: None)  # as on macOS
    collector = NetworkCollector()
    for _ in range(3):
        reading = collector.read_slow()
        assert "net.connections" not in reading.gauges
    assert calls[0] == 1
    assert "net.recv_bytes_per_s" in collector.read().counters  # the rest still works


# --- system info ------------------------------------------------------------------------------


def test_collect_system_info_facts() -> None:
    info = collect_system_info()
    assert info["hostname"] == socket.gethostname()
    assert info["cpu_logical_cores"] == psutil.cpu_count()
    assert info["memory_total_bytes"] == psutil.virtual_memory().total
    assert info["boot_time"] == pytest.approx(psutil.boot_time())
    assert info["python_version"].count(".") == 2
    limits = cgroup.limits(cgroup.detect())
    assert info["cgroup_version"] == limits["cgroup_version"]
    assert info["container_memory_limit_bytes"] == limits["memory_limit_bytes"]
    assert info["container_cpu_quota_cores"] == limits["cpu_quota_cores"]
    if LINUX:
        assert info["os"] == "Linux" and info["kernel"] == os.uname().release
        if info["architecture"] == "x86_64":
            assert info["cpu_model"] and info["cpu_vendor"] in ("Intel", "AMD", "Hygon")
            assert "sse2" in info["cpu_flags"]


def test_collect_system_info_reports_container_limits() -> None:
    info = collect_system_info(FIXTURES / "v1-limited" / "root",
                               FIXTURES / "v1-limited" / "proc_self_cgroup")
    if not LINUX:
        host_lacks("not Linux: cgroups (/proc/self/cgroup, /sys/fs/cgroup) are Linux only")
    assert info["cgroup_version"] == 1
    assert info["container_memory_limit_bytes"] == 2147483648
    assert info["container_cpu_quota_cores"] == pytest.approx(1.5)


def test_parse_cpuinfo_arm() -> None:
    text = (
        "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd08\n\n"
        "processor\t: 1\nFeatures\t: fp asimd\n\n"
        "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    )
    parsed = parse_cpuinfo(text)
    assert parsed["vendor"] == "ARM"
    assert parsed["flags"] == ["fp", "asimd", "evtstrm", "crc32", "cpuid"]
    assert parsed["model"] == "Raspberry Pi 4 Model B Rev 1.4"
    x86 = parse_cpuinfo("vendor_id\t: AuthenticAMD\nmodel\t\t: 1\n"
                        "model name\t: AMD EPYC 9654\nflags\t\t: fpu sse2\n")
    assert x86 == {"model": "AMD EPYC 9654", "vendor": "AMD", "flags": ["fpu", "sse2"]}


def test_boot_key_is_stable() -> None:
    assert system_info.boot_key() == system_info.boot_key()
    if system_info.BOOT_ID_PATH.exists():
        assert system_info.boot_key() == system_info.BOOT_ID_PATH.read_text().strip()


def test_cpu_details_never_blocks_and_caches(tmp_path: Path) -> None:
    gate = threading.Event()
    calls = [0]
    ready: list[dict[str, Any]] = []

    def slow_loader() -> dict[str, Any]:
        calls[0] += 1
        gate.wait(10)
        return {"brand_raw": "Test CPU", "l2_cache_size": 1048576, "hz_actual": [2300, 0]}

    details = CpuDetails(tmp_path, on_ready=ready.append, loader=slow_loader, key="boot-1")
    assert details.result() is None and not details.done()  # returned while loading
    gate.set()
    assert details.wait(10) == {"brand_raw": "Test CPU", "l2_cache_size": 1048576,
                                "hz_actual": [2300, 0]}
    assert ready == [details.result()]
    assert details.cache_path is not None and details.cache_path.is_file()

    def must_not_run() -> dict[str, Any]:
        raise AssertionError("the cache should have answered")

    late: list[dict[str, Any]] = []
    again = CpuDetails(tmp_path, on_ready=late.append, loader=must_not_run, key="boot-1")
    assert again.done() and again.result() == details.result()
    assert late == [details.result()]  # already there: called at once
    again.add_callback(late.append)
    assert len(late) == 2

    other_boot = CpuDetails(tmp_path, loader=lambda: {"brand_raw": "New"}, key="boot-2")
    assert other_boot.wait(10) == {"brand_raw": "New"}
    assert calls[0] == 1


def test_cpu_details_failure_and_corrupt_cache(tmp_path: Path) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("no cpuid")

    ready: list[dict[str, Any]] = []
    details = CpuDetails(tmp_path, on_ready=ready.append, loader=broken, key="k")
    assert details.wait(10) is None
    assert details.done() and "no cpuid" in (details.error or "")
    assert ready == [] and not list(tmp_path.glob("cpuinfo-*.json"))

    (tmp_path / "cpuinfo-k.json").write_text("{not json")
    fixed = CpuDetails(tmp_path, loader=lambda: {"arch": "X86_64"}, key="k")
    assert fixed.wait(10) == {"arch": "X86_64"}

    no_cache = CpuDetails(None, loader=lambda: {"arch": "ARM_8"}, key="k")
    assert no_cache.wait(10) == {"arch": "ARM_8"} and no_cache.cache_path is None


def test_cpu_details_real_py_cpuinfo(tmp_path: Path) -> None:
    details = CpuDetails(tmp_path)
    result = details.wait(60)
    assert result is not None, details.error
    assert result.get("arch") and result.get("count") == os.cpu_count()
    assert CpuDetails(tmp_path).result() == result  # cached for this boot
