"""cgroup v1/v2 parsing on fixture trees (tests/fixtures/cgroup/, see its README)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from conftest import IN_CI

from tracklab_jupyter.collectors import cgroup

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup"


def detect(name: str) -> cgroup.Cgroup | None:
    return cgroup.detect(FIXTURES / name / "root", FIXTURES / name / "proc_self_cgroup")


@pytest.fixture
def v2_copy(tmp_path: Path) -> Path:
    """A writable copy of the v2-limited fixture, for tests that change files."""
    dst = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2-limited", dst)
    return dst


def test_parse_proc_cgroup_v1_and_v2_lines() -> None:
    text = (FIXTURES / "v1-limited" / "proc_self_cgroup").read_text()
    parsed = cgroup.parse_proc_cgroup(text)
    assert parsed["memory"] == "/docker/abc123"
    assert parsed["cpu"] == parsed["cpuacct"] == "/docker/abc123"
    assert parsed[""] == "/system.slice/containerd.service"
    assert not any(key.startswith("name=") for key in parsed)
    assert cgroup.parse_proc_cgroup("garbage\n\n") == {}


# --- v2 ---------------------------------------------------------------------------------------


def test_v2_limits_on_own_cgroup() -> None:
    cg = detect("v2-limited")
    assert cg is not None and cg.version == 2
    leaf = FIXTURES / "v2-limited" / "root" / "kubepods" / "pod1" / "ctr"
    # The container's 1 GiB is tighter than the pod's 2 GiB; 1.5 cores tighter than 4.
    assert cg.memory == leaf and cg.cpu == leaf and cg.cpuacct == leaf
    assert cgroup.memory_limit_bytes(cg) == 1073741824
    assert cgroup.cpu_quota_cores(cg) == pytest.approx(1.5)  # "150000 100000"
    # memory.current 524288000 minus inactive_file 104857600.
    assert cgroup.memory_usage_bytes(cg) == 524288000 - 104857600
    assert cgroup.cpu_usage_seconds(cg) == pytest.approx(123.456789)  # usage_usec


def test_v2_limit_on_parent_reads_usage_there() -> None:
    cg = detect("v2-parent-limit")
    assert cg is not None
    parent = FIXTURES / "v2-parent-limit" / "root" / "user.slice"
    assert cg.memory == parent and cg.cpu == parent
    assert cgroup.memory_limit_bytes(cg) == 536870912
    assert cgroup.memory_usage_bytes(cg) == 300000000 - 50000000
    assert cgroup.cpu_quota_cores(cg) == pytest.approx(0.5)
    assert cgroup.cpu_usage_seconds(cg) == pytest.approx(7.0)


def test_v2_unlimited_max_means_none() -> None:
    cg = detect("v2-unlimited")
    assert cg is not None and cg.version == 2
    assert cgroup.memory_limit_bytes(cg) is None  # memory.max "max"
    assert cgroup.cpu_quota_cores(cg) is None  # cpu.max "max 100000"
    assert cgroup.memory_usage_bytes(cg) == 268435456 - 30000000
    assert cgroup.cpu_usage_seconds(cg) == pytest.approx(42.0)
    assert cgroup.limits(cg) == {"cgroup_version": 2, "memory_limit_bytes": None,
                                 "cpu_quota_cores": None}


@pytest.mark.parametrize(("content", "cores"), [
    ("max 100000\n", None),
    ("150000 100000\n", 1.5),
    ("50000 100000\n", 0.5),
    ("200000 50000\n", 4.0),
    ("0 100000\n", None),
    ("garbage\n", None),
    ("", None),
])
def test_v2_cpu_max_forms(v2_copy: Path, content: str, cores: float | None) -> None:
    leaf = v2_copy / "root" / "kubepods" / "pod1" / "ctr"
    (leaf / "cpu.max").write_text(content)
    (leaf.parent / "cpu.max").write_text("max 100000\n")
    cg = cgroup.detect(v2_copy / "root", v2_copy / "proc_self_cgroup")
    assert cgroup.cpu_quota_cores(cg) == (pytest.approx(cores) if cores else None)


def test_v2_usage_never_negative(v2_copy: Path) -> None:
    leaf = v2_copy / "root" / "kubepods" / "pod1" / "ctr"
    (leaf / "memory.current").write_text("1000\n")
    (leaf / "memory.stat").write_text("inactive_file 5000\n")
    cg = cgroup.detect(v2_copy / "root", v2_copy / "proc_self_cgroup")
    assert cgroup.memory_usage_bytes(cg) == 0


def test_v2_missing_stat_counts_no_inactive(v2_copy: Path) -> None:
    leaf = v2_copy / "root" / "kubepods" / "pod1" / "ctr"
    (leaf / "memory.stat").unlink()
    cg = cgroup.detect(v2_copy / "root", v2_copy / "proc_self_cgroup")
    assert cgroup.memory_usage_bytes(cg) == 524288000


def test_v2_path_outside_namespace_uses_mount_root(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "v2-unlimited", tmp_path / "c")
    (tmp_path / "c" / "proc_self_cgroup").write_text("0::/../../elsewhere\n")
    cg = cgroup.detect(tmp_path / "c" / "root", tmp_path / "c" / "proc_self_cgroup")
    assert cg is not None and cg.memory == tmp_path / "c" / "root"


def test_v2_hybrid_unified_only(tmp_path: Path) -> None:
    """Hybrid layout with no v1 memory/cpu controllers: the v2 tree under unified/."""
    shutil.copytree(FIXTURES / "v2-unlimited" / "root", tmp_path / "root" / "unified")
    (tmp_path / "pcg").write_text("0::/\n")
    cg = cgroup.detect(tmp_path / "root", tmp_path / "pcg")
    assert cg is not None and cg.version == 2
    assert cgroup.cpu_usage_seconds(cg) == pytest.approx(42.0)


# --- v1 ---------------------------------------------------------------------------------------


def test_v1_limits_with_comounted_cpu_cpuacct() -> None:
    cg = detect("v1-limited")
    assert cg is not None and cg.version == 1
    root = FIXTURES / "v1-limited" / "root"
    assert cg.memory == root / "memory" / "docker" / "abc123"
    assert cg.cpu == cg.cpuacct == root / "cpu,cpuacct" / "docker" / "abc123"
    assert cgroup.memory_limit_bytes(cg) == 2147483648
    # usage_in_bytes minus total_inactive_file (not the group's own inactive_file).
    assert cgroup.memory_usage_bytes(cg) == 1073741824 - 268435456
    assert cgroup.cpu_quota_cores(cg) == pytest.approx(1.5)  # 150000 / 100000
    assert cgroup.cpu_usage_seconds(cg) == pytest.approx(2.5)  # cpuacct.usage in ns


def test_v1_unlimited_huge_values_and_minus_one() -> None:
    """No cgroup namespace: /proc/self/cgroup names /docker/<id>, the mount root is ours."""
    cg = detect("v1-unlimited")
    assert cg is not None and cg.version == 1
    root = FIXTURES / "v1-unlimited" / "root"
    assert cg.memory == root / "memory" and cg.cpu == root / "cpu"
    assert cg.cpuacct == root / "cpuacct"
    assert cgroup.memory_limit_bytes(cg) is None  # 9223372036854771712
    assert cgroup.cpu_quota_cores(cg) is None  # cfs_quota_us -1
    assert cgroup.memory_usage_bytes(cg) == 734003200 - 209715200
    assert cgroup.cpu_usage_seconds(cg) == pytest.approx(85.774085538)


def test_no_cgroup_filesystem(tmp_path: Path) -> None:
    assert cgroup.detect(tmp_path, tmp_path / "missing") is None
    assert cgroup.memory_limit_bytes(None) is None
    assert cgroup.memory_usage_bytes(None) is None
    assert cgroup.cpu_quota_cores(None) is None
    assert cgroup.cpu_usage_seconds(None) is None


def test_this_machine_does_not_raise() -> None:
    cg = cgroup.detect()
    limits = cgroup.limits(cg)
    assert set(limits) == {"cgroup_version", "memory_limit_bytes", "cpu_quota_cores"}
    if cg is None:  # no cgroup filesystem here (not Linux, or none mounted)
        assert not IN_CI or not sys.platform.startswith("linux"), "CI is Linux: cgroups exist"
        assert cgroup.memory_usage_bytes(cg) is None and cgroup.cpu_usage_seconds(cg) is None
        return
    assert limits["cgroup_version"] == cg.version in (1, 2)
    # Against the kernel's own files (CPU time read around the call: it only grows).
    current = (cg.memory / ("memory.current" if cg.version == 2 else "memory.usage_in_bytes")
               if cg.memory is not None else None)
    if current is not None and current.is_file():
        usage = cgroup.memory_usage_bytes(cg)
        # This process's memory is in its group (inactive file cache is left out).
        assert usage is not None and usage > 0
    else:
        assert cgroup.memory_usage_bytes(cg) is None
    if cg.cpuacct is not None and cg.version == 1 and (cg.cpuacct / "cpuacct.usage").is_file():
        before = int((cg.cpuacct / "cpuacct.usage").read_text()) / 1e9
        seconds = cgroup.cpu_usage_seconds(cg)
        after = int((cg.cpuacct / "cpuacct.usage").read_text()) / 1e9
        assert seconds is not None and 0 < before <= seconds <= after
    elif cg.cpuacct is not None and cg.version == 2 and (cg.cpuacct / "cpu.stat").is_file():
        seconds = cgroup.cpu_usage_seconds(cg)
        assert seconds is not None and seconds > 0
    else:
        assert cgroup.cpu_usage_seconds(cg) is None
