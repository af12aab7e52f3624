"""Container limits and usage from cgroup v2 and v1 files.

Inside a container, psutil reports the *host's* memory and CPUs; what the notebook can really
use is set by its cgroup: ``memory.max`` / ``cpu.max`` (v2) or ``memory.limit_in_bytes`` /
``cpu.cfs_quota_us`` (v1). Everything here is a plain function of files under a root folder
(default ``/sys/fs/cgroup``) and of the process's ``/proc/self/cgroup``, so tests point them
at fixture folders.

Use :func:`detect` once (and again at a slow cadence, since limits can change with
``docker update``): it finds the process's cgroup and, for memory and CPU, the cgroup whose
limit actually applies. The limit can sit on an ancestor (a Kubernetes pod, a systemd slice),
in which case usage is read there too, so usage and limit describe the same group.
The readers (:func:`memory_usage_bytes`, :func:`cpu_usage_seconds`, ...) then read one or two
small files each and are cheap enough for every tick.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
#: Where the cgroup filesystem is mounted when not at /sys/fs/cgroup (a container that
#: mounts the host's elsewhere; tests point it at a fixture folder). Read at each detect.
ROOT_ENV = "TRACKLAB_CGROUP_ROOT"

# v1 writes "no limit" as a huge page-aligned number (0x7FFFFFFFFFFFF000 on x86-64, other
# values on other page sizes); anything from 1 EiB up is treated as no limit.
UNLIMITED_THRESHOLD = 1 << 60


@dataclass(frozen=True)
class Cgroup:
    """Where this process's cgroup files are.

    ``memory`` and ``cpu`` are the cgroup folders whose limits apply (the process's own
    cgroup when no level sets one); ``cpuacct`` holds the CPU usage counter of that same
    group (v2: the same folder as ``cpu``). A folder is None when that controller is not
    mounted.
    """

    version: int
    memory: Path | None
    cpu: Path | None
    cpuacct: Path | None


def cgroup_root() -> Path:
    """``$TRACKLAB_CGROUP_ROOT``, else /sys/fs/cgroup."""
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def detect(
    root: str | os.PathLike[str] | None = None,
    proc_cgroup: str | os.PathLike[str] = PROC_SELF_CGROUP,
) -> Cgroup | None:
    """Find a process's cgroup under ``root`` (default :func:`cgroup_root`), from its
    ``/proc/PID/cgroup`` (default this process's); None when no cgroup fs is mounted there."""
    root = Path(root) if root is not None else cgroup_root()
    memberships = parse_proc_cgroup(_read(Path(proc_cgroup)) or "")
    if (root / "cgroup.controllers").is_file():
        return _detect_v2(root, memberships.get("", "/"))
    if _v1_mount(root, "memory", memberships) or _v1_mount(root, "cpu", memberships):
        return _detect_v1(root, memberships)
    # Hybrid layout with no v1 controllers of interest: the v2 tree sits under unified/.
    if (root / "unified" / "cgroup.controllers").is_file():
        return _detect_v2(root / "unified", memberships.get("", "/"))
    return None


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Map each controller in ``/proc/self/cgroup`` to its path; ``""`` is the v2 entry.

    Lines are ``id:controller,controller:path``; named hierarchies (``name=systemd``) are
    left out.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            out[""] = path
            continue
        for controller in controllers.split(","):
            if controller and not controller.startswith("name="):
                out[controller] = path
                # Keep the co-mount's full name too, e.g. "cpu,cpuacct", to find its folder.
                out.setdefault("@" + controller, controllers)
    return out


# ---------------------------------------------------------------------------------------------
# Readers: cheap, called per tick with a Cgroup from detect().


def memory_limit_bytes(cg: Cgroup | None) -> int | None:
    """The memory limit in bytes, or None when unlimited (v2 ``max``, v1 huge values)."""
    if cg is None or cg.memory is None:
        return None
    return _memory_limit_at(cg.memory, cg.version)


def memory_usage_bytes(cg: Cgroup | None) -> int | None:
    """Memory in use by the group less its inactive file cache (what the OOM killer sees).

    v2: ``memory.current`` minus ``inactive_file`` from ``memory.stat``; v1:
    ``memory.usage_in_bytes`` minus ``total_inactive_file``. Page cache that can be dropped
    would otherwise make every container that reads files look full.
    """
    if cg is None or cg.memory is None:
        return None
    if cg.version == 2:
        current = _read_int(cg.memory / "memory.current")
        keys = ("inactive_file",)
    else:
        current = _read_int(cg.memory / "memory.usage_in_bytes")
        keys = ("total_inactive_file", "inactive_file")
    if current is None:
        return None
    stat = read_flat_keyed(cg.memory / "memory.stat")
    inactive = next((stat[k] for k in keys if k in stat), 0)
    return max(0, current - inactive)


def memory_events(cg: Cgroup | None) -> dict[str, int]:
    """The group's ``memory.events`` counters (v2: ``oom``, ``oom_kill``, ``max``, ...;
    v1 has ``oom_kill`` in ``memory.oom_control``); empty when unknown."""
    if cg is None or cg.memory is None:
        return {}
    if cg.version == 2:
        return read_flat_keyed(cg.memory / "memory.events")
    return {k: v for k, v in read_flat_keyed(cg.memory / "memory.oom_control").items()
            if k == "oom_kill"}


def cpu_quota_cores(cg: Cgroup | None) -> float | None:
    """The CPU quota in cores (``150000 100000`` -> 1.5), or None when there is none."""
    if cg is None or cg.cpu is None:
        return None
    return _cpu_quota_at(cg.cpu, cg.version)


def cpu_usage_seconds(cg: Cgroup | None) -> float | None:
    """CPU time used by the group since it was created, in seconds.

    v2: ``usage_usec`` from ``cpu.stat``; v1: ``cpuacct.usage`` (nanoseconds).
    """
    if cg is None or cg.cpuacct is None:
        return None
    if cg.version == 2:
        usec = read_flat_keyed(cg.cpuacct / "cpu.stat").get("usage_usec")
        return None if usec is None else usec / 1e6
    nsec = _read_int(cg.cpuacct / "cpuacct.usage")
    return None if nsec is None else nsec / 1e9


def limits(cg: Cgroup | None) -> dict[str, float | int | None]:
    """The static facts for ``info()``: version, memory limit, CPU quota."""
    return {
        "cgroup_version": cg.version if cg else None,
        "memory_limit_bytes": memory_limit_bytes(cg),
        "cpu_quota_cores": cpu_quota_cores(cg),
    }


def read_flat_keyed(path: Path) -> dict[str, int]:
    """Parse a ``key value`` per line file (``memory.stat``, ``cpu.stat``); {} if missing."""
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


# ---------------------------------------------------------------------------------------------
# Detection


def _detect_v2(root: Path, path: str) -> Cgroup:
    chain = _chain(root, path)
    memory = _binding(chain, lambda d: _memory_limit_at(d, 2))
    cpu = _binding(chain, lambda d: _cpu_quota_at(d, 2))
    return Cgroup(version=2, memory=memory, cpu=cpu, cpuacct=cpu)


def _detect_v1(root: Path, memberships: dict[str, str]) -> Cgroup:
    memory = cpu = cpuacct = None
    mem_base = _v1_mount(root, "memory", memberships)
    if mem_base is not None:
        chain = _chain(mem_base, memberships.get("memory", "/"))
        memory = _binding(chain, lambda d: _memory_limit_at(d, 1))
    cpu_base = _v1_mount(root, "cpu", memberships)
    if cpu_base is not None:
        chain = _chain(cpu_base, memberships.get("cpu", "/"))
        cpu = _binding(chain, lambda d: _cpu_quota_at(d, 1))
    acct_base = _v1_mount(root, "cpuacct", memberships)
    if acct_base is not None:
        acct_chain = _chain(acct_base, memberships.get("cpuacct", "/"))
        cpuacct = acct_chain[0]
        # Count usage in the group that holds the quota: the same relative folder.
        if cpu is not None and cpu_base is not None:
            same = acct_base / cpu.relative_to(cpu_base)
            if (same / "cpuacct.usage").is_file():
                cpuacct = same
    return Cgroup(version=1, memory=memory, cpu=cpu, cpuacct=cpuacct)


def _v1_mount(root: Path, controller: str, memberships: dict[str, str]) -> Path | None:
    """The v1 hierarchy folder of a controller: ``memory/``, or a co-mount ``cpu,cpuacct/``."""
    names = [controller]
    comount = memberships.get("@" + controller)
    if comount:
        names += [comount, ",".join(sorted(comount.split(",")))]
    for name in names:
        folder = root / name
        if folder.is_dir() and not (folder / "cgroup.controllers").exists():
            return folder
    return None


def _chain(base: Path, path: str) -> list[Path]:
    """The process's cgroup folder and each ancestor up to the mount root, leaf first.

    Without a cgroup namespace (older Docker), /proc/self/cgroup names the host path
    (``/docker/<id>``) while the mount shows only the container's own group: when the
    named folder does not exist, the mount root is the process's cgroup.
    """
    rel = path.strip("/")
    # A path outside our namespace's view ("/../other") cannot be walked: use the mount root.
    if ".." in rel.split("/"):
        return [base]
    leaf = base / rel if rel else base
    if not leaf.is_dir():
        return [base]
    chain = [leaf]
    while chain[-1] != base and base in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _binding(chain: list[Path], limit_of: Callable[[Path], float | None]) -> Path:
    """The folder in ``chain`` with the smallest limit, or the leaf when none sets one."""
    best: tuple[float, Path] | None = None
    for folder in chain:
        value = limit_of(folder)
        if value is not None and (best is None or value < best[0]):
            best = (value, folder)
    return best[1] if best else chain[0]


def _memory_limit_at(folder: Path, version: int) -> int | None:
    name = "memory.max" if version == 2 else "memory.limit_in_bytes"
    value = _read_int(folder / name)  # "max" parses to None
    if value is None or value <= 0 or value >= UNLIMITED_THRESHOLD:
        return None
    return value


def _cpu_quota_at(folder: Path, version: int) -> float | None:
    if version == 2:
        fields = (_read(folder / "cpu.max") or "").split()
        if len(fields) != 2 or fields[0] == "max":
            return None
        quota, period = _to_int(fields[0]), _to_int(fields[1])
    else:
        quota = _read_int(folder / "cpu.cfs_quota_us")
        period = _read_int(folder / "cpu.cfs_period_us")
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None  # v1 writes -1 for "no quota"
    return quota / period



def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    return None if text is None else _to_int(text.strip())


def _to_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
