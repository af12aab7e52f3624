"""Static facts about the machine: who, what OS, which CPU, how much memory, which limits.

:func:`collect_system_info` is fast (about a millisecond on Linux) and safe on a request or
start-up path: it reads /proc/cpuinfo (first processor only), /etc/os-release, psutil counts
and the cgroup files. It avoids ``platform.platform()`` (5 ms: it scans the Python binary for
its libc version) and py-cpuinfo (1.2 s: it starts a subprocess).

:class:`CpuDetails` runs py-cpuinfo in a daemon thread for the extras (brand string, caches,
advertised clock), caches the answer as JSON per boot, and never blocks its caller.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import re
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import psutil

from tracklab_jupyter.collectors import cgroup
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.collectors.system_info")

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
#: Cache files kept per cache dir: one per boot of each machine sharing the dir (NFS homes).
MAX_CACHE_FILES = 16

#: ARM "CPU implementer" codes (/proc/cpuinfo) to vendor names, as lscpu names them.
ARM_IMPLEMENTERS = {
    "0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu", "0x48": "HiSilicon",
    "0x4e": "NVIDIA", "0x50": "APM", "0x51": "Qualcomm", "0x61": "Apple", "0x6d": "Microsoft",
    "0xc0": "Ampere",
}
_X86_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}


class SystemInfo(TypedDict, total=False):
    """What :func:`collect_system_info` returns (JSON-ready; a missing fact is None)."""

    hostname: str
    os: str  # platform.system(): Linux, Darwin, Windows
    os_release: str | None  # e.g. "Ubuntu 24.04.1 LTS"
    kernel: str
    architecture: str
    platform: str  # "Linux-6.8.0-x86_64"
    python_version: str
    python_implementation: str
    python_executable: str
    boot_time: float  # epoch seconds
    cpu_model: str | None
    cpu_vendor: str | None
    cpu_flags: list[str]
    cpu_physical_cores: int | None
    cpu_logical_cores: int | None
    memory_total_bytes: int
    swap_total_bytes: int | None
    container: str | None  # "docker", "podman", "kubernetes" or None
    cgroup_version: int | None
    container_memory_limit_bytes: int | None
    container_cpu_quota_cores: float | None


def collect_system_info(
    cgroup_root: str | os.PathLike[str] | None = None,
    proc_cgroup: str | os.PathLike[str] = cgroup.PROC_SELF_CGROUP,
) -> SystemInfo:
    """Static facts about this machine, quickly (no py-cpuinfo, no subprocess)."""
    uname = platform.uname()
    cpu = read_cpuinfo() if uname.system == "Linux" else {}
    cg = cgroup.detect(cgroup_root, proc_cgroup) if uname.system == "Linux" else None
    info: SystemInfo = {
        "hostname": socket.gethostname(),
        "os": uname.system,
        "os_release": _os_release(uname.system),
        "kernel": uname.release,
        "architecture": uname.machine,
        "platform": f"{uname.system}-{uname.release}-{uname.machine}",
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "boot_time": psutil.boot_time(),
        "cpu_model": cpu.get("model") or _windows_processor(uname),
        "cpu_vendor": cpu.get("vendor"),
        "cpu_flags": cpu.get("flags", []),
        "cpu_physical_cores": psutil.cpu_count(logical=False),
        "cpu_logical_cores": psutil.cpu_count(logical=True),
        "memory_total_bytes": psutil.virtual_memory().total,
        "swap_total_bytes": _swap_total(),
        "container": _container_kind(),
        "cgroup_version": cg.version if cg else None,
        "container_memory_limit_bytes": cgroup.memory_limit_bytes(cg),
        "container_cpu_quota_cores": cgroup.cpu_quota_cores(cg),
    }
    return info


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Model, vendor and flags from the first processor block of /proc/cpuinfo.

    x86 has ``model name``, ``vendor_id`` and ``flags``; ARM has ``CPU implementer`` and
    ``Features`` (and often no model name: py-cpuinfo's brand string comes later through
    :class:`CpuDetails`).
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: the rest repeat it
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    # Some ARM kernels put "Hardware"/"Model" after the last processor block.
    for key in ("hardware", "model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE | re.IGNORECASE)
        if match and key not in fields:
            fields[key] = match.group(1).strip()
    vendor_id = fields.get("vendor_id")
    implementer = fields.get("cpu implementer", "").lower()
    model = (fields.get("model name") or fields.get("cpu model") or fields.get("processor name")
             or _text_model(fields.get("model")) or fields.get("hardware"))
    return {
        "model": model or None,
        "vendor": _X86_VENDORS.get(vendor_id or "", vendor_id)
        or ARM_IMPLEMENTERS.get(implementer) or None,
        "flags": (fields.get("flags") or fields.get("features") or "").split(),
    }


def read_cpuinfo(path: str | os.PathLike[str] = "/proc/cpuinfo") -> dict[str, Any]:
    """:func:`parse_cpuinfo` of a file; {} when it cannot be read."""
    try:
        return parse_cpuinfo(Path(path).read_text(errors="replace"))
    except OSError:
        return {}


def boot_key() -> str:
    """An id of this boot of this machine: the kernel's boot_id, else hostname + boot time."""
    try:
        value = BOOT_ID_PATH.read_text().strip()
        if value:
            return value
    except OSError:
        pass
    return f"{socket.gethostname()}-{int(psutil.boot_time())}"


def _text_model(value: str | None) -> str | None:
    # x86 "model" is a number (207); on a Raspberry Pi it is the board name.
    return value if value and not value.isdigit() else None


def _os_release(system: str) -> str | None:
    if system == "Linux":
        try:
            release = platform.freedesktop_os_release()
        except OSError:
            return None
        return release.get("PRETTY_NAME") or release.get("NAME")
    if system == "Darwin":
        version = platform.mac_ver()[0]
        return f"macOS {version}" if version else None
    if system == "Windows":
        return " ".join(part for part in platform.win32_ver()[:2] if part) or None
    return None


def _windows_processor(uname: platform.uname_result) -> str | None:
    # uname.processor runs `uname -p` in a subprocess on Linux and macOS (and says little
    # there); on Windows it is read from the registry/environment.
    return (uname.processor or None) if uname.system == "Windows" else None


def _swap_total() -> int | None:
    try:
        return psutil.swap_memory().total
    except Exception:  # some platforms (e.g. restricted sandboxes) refuse it
        return None


def _container_kind() -> str | None:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    return None


def _default_loader() -> dict[str, Any]:
    import cpuinfo  # py-cpuinfo; imported here so a missing package only costs the extras

    return dict(cpuinfo.get_cpu_info())


class CpuDetails:
    """py-cpuinfo's ``get_cpu_info()`` (1.2 s) in a daemon thread, cached per boot.

    ``CpuDetails(cache_dir)`` returns at once. If the cache dir holds an answer for this boot
    (key: :func:`boot_key`), :meth:`result` has it already; otherwise a daemon thread runs the
    loader, writes the cache, and calls the callbacks. :meth:`result` is None until then, and
    stays None if the loader fails (see :attr:`error`).

    Callbacks get the result dict: from the loader thread, or straight away (in the caller's
    thread) when the result is already there.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None,
        on_ready: Callable[[dict[str, Any]], None] | None = None,
        *,
        loader: Callable[[], dict[str, Any]] = _default_loader,
        key: str | None = None,
        start: bool = True,
    ) -> None:
        self._loader = loader
        self._key = key or boot_key()
        self.cache_path: Path | None = (
            Path(cache_dir) / f"cpuinfo-{_safe_name(self._key)}.json" if cache_dir else None
        )
        self.error: str | None = None
        self._result: dict[str, Any] | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[dict[str, Any]], None]] = []
        self._thread: threading.Thread | None = None
        if on_ready is not None:
            self._callbacks.append(on_ready)
        cached = self._read_cache()
        if cached is not None:
            self._finish(cached, None)
        elif start:
            self.start()

    def start(self) -> CpuDetails:
        """Start the loader thread (once); returns self."""
        with self._lock:
            if self._thread is None and not self._done.is_set():
                self._thread = threading.Thread(target=self._run, name="tracklab-cpuinfo",
                                                daemon=True)
                self._thread.start()
        return self

    def result(self) -> dict[str, Any] | None:
        """The py-cpuinfo dict, or None while loading (or after a failure)."""
        return self._result

    def done(self) -> bool:
        """True once loading finished, well or not."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block up to ``timeout`` s for the result (for tests and scripts, not handlers)."""
        self._done.wait(timeout)
        return self._result

    def add_callback(self, fn: Callable[[dict[str, Any]], None]) -> None:
        """Call ``fn(result)`` when ready; now if it is ready already. Not called on failure."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        if self._result is not None:
            _call(fn, self._result)

    def _run(self) -> None:
        name_os_thread()
        try:
            result = self._loader()
            if not result:
                raise RuntimeError("py-cpuinfo returned nothing")
        except Exception as exc:
            log.info("CPU details unavailable: %s", exc)
            self._finish(None, f"{type(exc).__name__}: {exc}")
            return
        self._write_cache(result)
        self._finish(result, None)

    def _finish(self, result: dict[str, Any] | None, error: str | None) -> None:
        with self._lock:
            self._result, self.error = result, error
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        if result is not None:
            for fn in callbacks:
                _call(fn, result)

    def _read_cache(self) -> dict[str, Any] | None:
        if self.cache_path is None:
            return None
        try:
            data = json.loads(self.cache_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != self._key:
            return None
        info = data.get("info")
        return info if isinstance(info, dict) and info else None

    def _write_cache(self, result: dict[str, Any]) -> None:
        if self.cache_path is None:
            return
        folder = self.cache_path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a file, even across processes.
            fd, tmp = tempfile.mkstemp(prefix=".cpuinfo-", suffix=".tmp", dir=folder)
        except OSError as exc:
            log.debug("could not cache CPU details in %s: %s", folder, exc)
            return
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"key": self._key, "info": result}, f)
            os.replace(tmp, self.cache_path)
            _prune(folder)
        except (OSError, TypeError, ValueError) as exc:
            log.debug("could not cache CPU details in %s: %s", folder, exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _prune(folder: Path) -> None:
    """Keep the newest :data:`MAX_CACHE_FILES` cache files (one per boot accumulates)."""
    files = sorted(folder.glob("cpuinfo-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[MAX_CACHE_FILES:]:
        with contextlib.suppress(OSError):
            old.unlink()


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:100]


def _call(fn: Callable[[dict[str, Any]], None], result: dict[str, Any]) -> None:
    try:
        fn(result)
    except Exception:
        log.exception("CPU details callback failed")
