"""The prepared GPU check for runs (issue 7): on a machine with an NVIDIA GPU, from the repo
root, ``python3 tests/gpu_check/runs_on_gpu.py OUT_DIR``. A training-like script in this
process becomes the recorder, loads the GPU with torch (bf16 matmuls) while logging a loss,
starts a child process, logs the GPUs' readings with monitor_gpu, finishes, and writes what
the store holds about the run to ``OUT_DIR/runs_gpu_check.json``: the process tree's GPU
memory matched by pid against NVML, and the logged GPU metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import tracklab
from tracklab_jupyter.runs.store import RunStore


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    data = Path(tempfile.mkdtemp()) / "data"
    os.environ["TRACKLAB_INTERVAL"] = "0.5"
    started = time.time()
    run = tracklab.init(project="gpu-check", config={"dtype": "bf16"}, data_dir=data)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    report: dict = {"run": run.id, "pid": os.getpid(), "child": child.pid}
    try:
        import torch

        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        step = 0
        while time.time() - started < 15:
            for _ in range(10):
                c = a @ b
            torch.cuda.synchronize()
            run.log({"loss": float(c[0, 0].float().abs().log1p()), "step_time": time.time()})
            step += 1
        report["torch_allocated_bytes"] = torch.cuda.memory_allocated()
        report["torch_reserved_bytes"] = torch.cuda.memory_reserved()
    except Exception as exc:  # no torch: the check still reports the idle readings
        report["torch_error"] = f"{type(exc).__name__}: {exc}"
        time.sleep(5)
    report["gpu_logged"] = tracklab.monitor_gpu(run.id).log_gpu_metrics()
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        report["nvml_processes"] = [
            {"pid": p.pid, "used": p.usedGpuMemory}
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)]
    except Exception as exc:
        report["nvml_error"] = str(exc)
    run.finish()
    child.kill()
    with RunStore(data) as store:
        record = store.get_run(run.id)
        process = store.process_metrics(run.id)
        logged = store.metrics(run.id)
    gpu_mem = [v for v in process["metrics"].get("tree.gpu_mem_bytes", []) if v is not None]
    report.update({
        "state": record["state"], "processes": record["processes"],
        "tree_metrics": sorted(process["metrics"]),
        "tree_procs_max": max(v or 0 for v in process["metrics"].get("tree.procs", [0])),
        "tree_gpu_mem_bytes": {"n": len(gpu_mem), "max": max(gpu_mem, default=None)},
        "steps": len(logged["step"]), "run_metrics": sorted(logged["metrics"]),
    })
    history = run.history().to_pandas()
    report["history_columns"] = len(history.columns)
    report["history_rows"] = len(history)
    report["history_gpu_util_matched"] = int(
        history.get("system:gpu.0.util_pct", history.get("gpu.0.util_pct")).notna().sum()
        if "gpu.0.util_pct" in history else 0)
    (out_dir / "runs_gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps({k: report[k] for k in ("state", "tree_gpu_mem_bytes", "nvml_processes",
                                             "steps", "tree_procs_max")
                      if k in report}, default=str))


if __name__ == "__main__":
    main()
