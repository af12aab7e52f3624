"""``tracklab.monitor_gpu(run_id).log_gpu_metrics()``: the original feature list's way to put
the accelerators' current readings (GPUs of every vendor, NPUs, TPUs) into a run's metrics."""

from __future__ import annotations

import time
import warnings

from tracklab_jupyter.runs.run import Run, attach

WAIT_FOR_SAMPLE_S = 5.0


class GpuLogger:
    """Logs this host's latest ``gpu.*``, ``npu.*`` and ``tpu.*`` readings into a running
    run: once per :meth:`log_gpu_metrics` call; nothing runs in the background."""

    def __init__(self, run_id: str) -> None:
        if not isinstance(run_id, str):
            raise TypeError(f"monitor_gpu takes a run or a run id, got {run_id!r}")
        self.run: Run = attach(run_id)

    def log_gpu_metrics(self, step: int | None = None) -> dict[str, float]:
        """Log and return the accelerators' current values (``gpu.0.util_pct``,
        ``npu.0.mem_used_bytes``, ...; per-process memory excluded). With no accelerator on
        this host, warns and logs nothing."""
        from tracklab_jupyter.process_monitor import process_monitor

        monitor = process_monitor(self.run.data_dir)
        monitor.wait_started(15.0)
        deadline = time.monotonic() + WAIT_FOR_SAMPLE_S
        while monitor.latest is None and time.monotonic() < deadline:
            time.sleep(0.05)
        sample = monitor.latest
        values = device_readings(sample.metrics if sample else {})
        if not values:
            notes = "; ".join(monitor.notes) or "no sample yet"
            warnings.warn(f"no accelerator readings on this host to log ({notes})",
                          stacklevel=2)
            return {}
        self.run.log(values, step=step)
        return values


def device_readings(metrics: dict[str, float]) -> dict[str, float]:
    """A sample's accelerator values of every kind (``gpu.*``, ``npu.*``, ``tpu.*``), without
    the per-process ones (a run's metrics are its own; pids come and go)."""
    return {k: v for k, v in metrics.items()
            if k.startswith(("gpu.", "npu.", "tpu.")) and ".proc." not in k}
