"""Check NvidiaBackend against the REAL NVML on a GPU machine; write what it saw as JSON.

    PYTHONPATH=. python3 tests/gpu_check/real_nvml_check.py out.json

Needs nvidia-ml-py (``import pynvml``); psutil is optional. Prints a summary and writes:
versions, open() time, info(), two read()s one second apart, one read_slow() and its time,
which NVML functions read() and read_slow() called (to prove the slow ones stay off the tick
path), metric names missing from the catalogue, and the median µs of 200 read() calls for
1..N GPUs. Every step catches and records its own exception, so one failure never loses the
rest of the report.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
import traceback
import types
from collections import Counter
from collections.abc import Callable
from importlib import metadata
from typing import Any

SLOW_FUNCTIONS = ("nvmlDeviceGetPcieThroughput", "nvmlDeviceGetTotalEnergyConsumption",
                  "nvmlDeviceGetMaxClockInfo", "nvmlDeviceGetMigMode", "nvmlDeviceGetCount")
READS_PER_TIMING = 200
# A bf16 matrix-multiply loop, as in the recording, when torch with CUDA is there.
LOAD = """
import sys, time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
print("ready", flush=True)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    a @ a
    torch.cuda.synchronize()
"""


class CountingNvml(types.ModuleType):
    """The real pynvml with a call counter on every ``nvml*`` function."""

    def __init__(self, real: types.ModuleType) -> None:
        super().__init__("pynvml")
        self._real = real
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._real, name)
        if name.startswith("nvml") and callable(value) and not isinstance(value, type):
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return value(*args, **kwargs)
            return counted
        return value


def step(report: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
    """Run one step; store its result (or its exception) under ``name``."""
    t0 = time.perf_counter()
    try:
        result = fn()
        report[name] = result
        return result
    except BaseException as exc:  # the report must survive anything
        report[name] = {"error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc()}
        return None
    finally:
        report.setdefault("step_ms", {})[name] = round((time.perf_counter() - t0) * 1e3, 3)


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": sys.version, "platform": platform.platform()}
    for dist in ("nvidia-ml-py", "pynvml", "psutil"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return out


def reading(r: Any) -> dict[str, Any]:
    return {"gauges": r.gauges, "counters": r.counters, "events": r.events}


def timed_reads(backend: Any, n: int) -> dict[str, float]:
    backend.read()  # first read probes unsupported fields; not what a tick costs
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        backend.read()
        times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    return {"median_us": round(statistics.median(times), 2), "min_us": round(times[0], 2),
            "p90_us": round(times[int(n * 0.9)], 2), "n": n}


def busy_read(backend_cls: Any, nvml: Any) -> dict[str, Any]:
    """One read() while a torch load runs (skipped without torch/CUDA)."""
    import subprocess

    try:
        import torch
        if not torch.cuda.is_available():
            return {"skipped": "torch has no CUDA"}
    except ImportError:
        return {"skipped": "no torch"}
    load = subprocess.Popen([sys.executable, "-c", LOAD, "10"], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert load.stdout is not None
        load.stdout.readline()  # "ready": memory allocated, kernels about to run
        time.sleep(3.0)
        b = backend_cls.open(["0"], nvml=nvml)
        try:
            return {"load_pid": load.pid, "read": reading(b.read()),
                    "read_slow": reading(b.read_slow()), "timing": timed_reads(b, 200)}
        finally:
            b.close()
    finally:
        load.kill()
        load.wait()


def main(out_path: str) -> int:
    import pynvml

    from tracklab_jupyter.accelerators.nvidia import NvidiaBackend
    from tracklab_jupyter.metrics.catalogue import is_known

    report: dict[str, Any] = {"versions": versions()}
    counting = CountingNvml(pynvml)

    def open_counted() -> dict[str, Any]:
        t0 = time.perf_counter()
        backend = NvidiaBackend.open(nvml=counting)
        report["_backend_open_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
        report["_backend"] = backend
        return {"open_ms": report["_backend_open_ms"], "calls": dict(counting.calls)}

    step(report, "open", open_counted)
    backend = report.pop("_backend", None)
    report.pop("_backend_open_ms", None)
    if backend is not None:
        step(report, "info", backend.info)
        counting.calls.clear()
        step(report, "read_1", lambda: reading(backend.read()))
        report["read_1_calls"] = dict(counting.calls)
        time.sleep(1.0)
        counting.calls.clear()
        step(report, "read_2", lambda: reading(backend.read()))
        report["read_2_calls"] = dict(counting.calls)
        report["slow_calls_in_read"] = {
            name: report["read_2_calls"].get(name, 0) for name in SLOW_FUNCTIONS}
        counting.calls.clear()
        step(report, "read_slow", lambda: reading(backend.read_slow()))
        report["read_slow_calls"] = dict(counting.calls)
        names = set()
        for key in ("read_1", "read_2", "read_slow"):
            names |= set((report.get(key) or {}).get("gauges", {}))
        report["names_not_in_catalogue"] = sorted(n for n in names if not is_known(n))
        step(report, "info_after_reads", backend.info)
        step(report, "close", lambda: backend.close() or "closed")

    def timings() -> dict[str, Any]:
        # Plain pynvml (no counter in the way): what the sampler really pays per tick.
        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
        out: dict[str, Any] = {}
        for k in range(1, count + 1):
            b = NvidiaBackend.open([str(i) for i in range(k)], nvml=pynvml)
            try:
                out[f"read_{k}_gpus"] = timed_reads(b, READS_PER_TIMING)
                t0 = time.perf_counter()
                b.read_slow()
                out[f"read_slow_{k}_gpus_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
            finally:
                b.close()
        return out

    step(report, "timing", timings)
    step(report, "busy", lambda: busy_read(NvidiaBackend, pynvml))
    with open(out_path, "w") as fh:
        json.dump(report, fh, indent=2, default=str)
    summary = {k: report.get(k) for k in ("open", "timing", "slow_calls_in_read",
                                          "names_not_in_catalogue")}
    print(json.dumps(summary, indent=2, default=str))
    print("read_2 gauges:", json.dumps((report.get("read_2") or {}).get("gauges"), indent=1))
    errors = [k for k, v in report.items() if isinstance(v, dict) and "error" in v]
    print("steps with errors:", errors or "none")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT.json")
    sys.exit(main(sys.argv[1]))
