"""The accelerator checks: per vendor, its library, driver and devices, the permission to
open the device files, a visibility variable hiding devices, MIG, and a pid namespace that
hides the driver's process numbers.

Each backend is opened the way the sampler opens it (the same selection and the same
errors), so what the doctor says is what the monitor will see. A vendor whose hardware is
absent is "not applicable", never a problem.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tracklab_jupyter.accelerators.base import AcceleratorUnavailable, Selection, host_path
from tracklab_jupyter.accelerators.registry import BACKENDS, backend_class
from tracklab_jupyter.doctor.report import Finding, ok, problem, skipped, warning

SECTION = "accelerators"


@dataclass(frozen=True)
class Vendor:
    """What the doctor knows of one backend beyond the backend itself."""

    name: str
    title: str
    #: Whether this machine has the vendor's hardware, asked without its library.
    present: Callable[[], bool | None]
    #: Device files the library opens (globs under /dev).
    device_files: tuple[str, ...]
    #: Variables that hide devices from a process, in the order the runtime reads them.
    visibility: tuple[str, ...]
    #: How to get a working library and driver.
    install: str


def _nvidia_present() -> bool | None:
    from tracklab_jupyter.accelerators.nvidia import nvidia_hardware

    return nvidia_hardware()


def _amd_present() -> bool:
    from tracklab_jupyter.accelerators.amd import amdgpu_loaded

    return amdgpu_loaded()


def _ascend_present() -> bool:
    from tracklab_jupyter.accelerators.ascend import davinci_devices

    return bool(davinci_devices())


def _tpu_present() -> bool:
    from tracklab_jupyter.accelerators.tpu import find_chips

    return bool(find_chips())


VENDORS: dict[str, Vendor] = {v.name: v for v in (
    Vendor("nvidia", "NVIDIA", _nvidia_present, ("nvidiactl", "nvidia[0-9]*"),
           ("CUDA_VISIBLE_DEVICES",),
           "pip install nvidia-ml-py; check the driver with `nvidia-smi` (after a driver "
           "upgrade, reboot or reload the nvidia kernel modules)"),
    Vendor("amd", "AMD", _amd_present, ("kfd", "dri/renderD*"),
           ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"),
           "pip install 'tracklab-jupyter[amd]' and ROCm's amd-smi-lib (without them the "
           "amdgpu sysfs files give fewer metrics)"),
    Vendor("ascend", "Huawei Ascend", _ascend_present, ("davinci[0-9]*", "davinci_manager"),
           ("ASCEND_RT_VISIBLE_DEVICES",),
           "install the Ascend driver (npu-smi, libdcmi.so) and source "
           "/usr/local/Ascend/ascend-toolkit/set_env.sh"),
    Vendor("tpu", "Google TPU", _tpu_present, ("accel[0-9]*", "vfio/[0-9]*"),
           ("TPU_VISIBLE_CHIPS",),
           "pip install 'tracklab-jupyter[tpu]'; the TPU runtime (libtpu, in your JAX or "
           "PyTorch/XLA job) serves the metrics"),
)}


def accelerator_checks(gpus: Sequence[str] | None = None) -> list[Finding]:
    """Every vendor's findings, in numbering order. ``gpus`` is the monitor's selection."""
    findings: list[Finding] = []
    selection = Selection.parse(list(gpus) if gpus else None)
    any_open = False
    for name, _kind, _module, _cls in BACKENDS:
        vendor = VENDORS[name]
        opened = _vendor_checks(vendor, selection, findings)
        any_open = any_open or opened
    if any_open:
        findings.append(_pid_namespace())
    if not any(f.status != "skipped" for f in findings):
        findings.append(ok(SECTION, "devices", "no accelerators on this machine; CPU, "
                           "memory, disk and network are monitored"))
    return findings


def _vendor_checks(vendor: Vendor, selection: Selection, out: list[Finding]) -> bool:
    """Append ``vendor``'s findings to ``out``; True when its backend opened."""
    present = vendor.present()
    check = f"{vendor.name}"
    try:
        backend = backend_class(vendor.name).open(selection)
    except AcceleratorUnavailable as exc:
        if present is False and exc.found == 0:
            out.append(skipped(SECTION, check, f"no {vendor.title} hardware found"))
            return False
        if exc.found:  # devices are there; the selection or a variable left none
            out.append(warning(SECTION, check, f"{exc} ({exc.found} found)",
                               _selection_fix(vendor)))
        else:
            out.append(problem(SECTION, check, str(exc), vendor.install))
        out.extend(_device_file_access(vendor))
        return False
    except Exception as exc:
        out.append(problem(SECTION, check, f"failed to open: {type(exc).__name__}: {exc}",
                           vendor.install))
        return False
    try:
        info = backend.info()
        devices = list(info.get("devices", []))
        out.append(ok(SECTION, check, _summary(vendor, info, devices), devices=len(devices),
                      on_host=backend.found))
        out.extend(_device_file_access(vendor))
        hidden = _hidden(vendor, backend.found, len(devices), selection)
        if hidden is not None:
            out.append(hidden)
        out.extend(_mig(devices))
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    return True


def _summary(vendor: Vendor, info: dict[str, Any], devices: list[dict[str, Any]]) -> str:
    names = sorted({str(d.get("name", "unknown")) for d in devices})
    driver = info.get("driver_version") or info.get("driver") or "unknown"
    extra = f", CUDA {info['cuda_driver_version']}" if info.get("cuda_driver_version") else ""
    return (f"{len(devices)} {vendor.title} device{'s' if len(devices) != 1 else ''} "
            f"({', '.join(names) or 'unnamed'}), driver {driver}{extra}")


def _selection_fix(vendor: Vendor) -> str:
    variables = " / ".join(vendor.visibility)
    return (f"check {variables} in the server's environment and the gpus setting "
            "(--gpus, c.TrackLab.gpus, TRACKLAB_GPUS)")


def _hidden(vendor: Vendor, found: int, opened: int, selection: Selection) -> Finding | None:
    """A visibility variable that hides some devices (an explicit selection is the user's
    own choice and said nothing about)."""
    if not selection.everything or opened >= found:
        return None
    set_vars = [f"{v}={os.environ[v]!r}" for v in vendor.visibility if v in os.environ]
    if not set_vars:
        return None
    return warning(SECTION, f"{vendor.name} visibility",
                   f"{', '.join(set_vars)} hides {found - opened} of {found} "
                   f"{vendor.title} devices from tracklab",
                   f"unset {' and '.join(v.split('=')[0] for v in set_vars)} where the "
                   "Jupyter server starts (kernels keep their own), or pick devices with "
                   "--gpus / c.TrackLab.gpus")


def _device_file_access(vendor: Vendor) -> list[Finding]:
    """Whether this user may open the vendor's device files (read and write, as the
    libraries open them); a missing group membership is the usual cause."""
    dev = host_path("/dev")
    files = sorted({p for pattern in vendor.device_files for p in dev.glob(pattern)})
    if not files:
        return []
    denied = [p for p in files if not os.access(p, os.R_OK | os.W_OK)]
    check = f"{vendor.name} device files"
    if not denied:
        return [ok(SECTION, check, f"{len(files)} device files readable and writable")]
    groups = sorted({_group_of(p) for p in denied} - {""})
    user = _user()
    shown = ", ".join(str(p) for p in denied[:4]) + (" ..." if len(denied) > 4 else "")
    fix = (f"sudo usermod -aG {','.join(groups)} {user} and log in again"
           if groups else f"ask an administrator to give {user} access to {shown}")
    return [problem(SECTION, check, f"{user} may not open {shown}"
                    + (f" (group {', '.join(groups)}, which {user} is not in)" if groups
                       else ""), fix)]


def _group_of(path: os.PathLike[str]) -> str:
    try:
        gid = os.stat(path).st_gid
        return grp.getgrgid(gid).gr_name
    except (OSError, KeyError):
        return ""


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _mig(devices: list[dict[str, Any]]) -> list[Finding]:
    out = []
    for dev in devices:
        mode = dev.get("mig_mode") or {}
        if not mode:
            continue
        label = f"{dev.get('kind', 'gpu')} {dev.get('index')}"
        count = len(dev.get("mig_devices") or [])
        if mode.get("current"):
            out.append(ok(SECTION, "MIG", f"{label}: MIG on, {count} instances "
                          "(each monitored as gpu.N.mig.M)"))
        elif mode.get("pending"):
            out.append(warning(SECTION, "MIG", f"{label}: MIG mode enabled but pending",
                               "reset the GPU (`sudo nvidia-smi -i N -r`) or reboot to "
                               "apply the MIG mode"))
    return out


def _pid_namespace() -> Finding:
    from tracklab_jupyter.kernels.procs import pid_namespace_nested

    nested = pid_namespace_nested()
    if nested:
        return warning(SECTION, "pid namespace",
                       "this process runs in a pid namespace of its own (a container): the "
                       "driver reports host pid numbers, so per-process and per-kernel "
                       "accelerator memory cannot be matched",
                       "run the container with --pid=host (Docker) or hostPID: true "
                       "(Kubernetes)")
    if nested is None:
        return skipped(SECTION, "pid namespace", "cannot read /proc/self/ns/pid")
    return ok(SECTION, "pid namespace", "the driver's process numbers are this machine's")
