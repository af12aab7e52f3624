#!/usr/bin/env bash
# The prepared device check after the accelerator refactor (issue 12): on a machine with an
# NVIDIA GPU, from the repo root, with OUT set to a folder for the results. Runs the real
# NVML backend check, the registry on a real NVIDIA box (the AMD, Ascend and TPU backends
# must find nothing and say nothing), selection across the registry by index, kind.index
# and UUID, then the earlier end-to-end check (snapshot idle/busy, record, history, bench).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
DEST=${OUT:-/tmp}
python3 tests/gpu_check/real_nvml_check.py "$DEST/h200_backend_check.json" \
  > "$DEST/real_nvml_check.txt" 2>&1
python3 - > "$DEST/registry_check.txt" 2>&1 <<'PY'
import json, os, time
from tracklab_jupyter.accelerators.registry import devices_in, open_backends

def opened(selection=None):
    t0 = time.perf_counter()
    backends, notes = open_backends(selection)
    ms = (time.perf_counter() - t0) * 1e3
    info = {b.name: b.info() for b in backends}
    out = {"selection": selection, "open_ms": round(ms, 2), "backends": [b.name for b in backends],
           "devices": [(d["kind"], d["index"], d["vendor"], d["name"], d["uuid"])
                       for d in devices_in(info)], "notes": notes}
    for b in backends:
        b.close()
    return out

first = opened()
print(json.dumps(first))
uuid = first["devices"][0][4] if first["devices"] else ""
for sel in (["0"], ["gpu.0"], [uuid[:12]], ["npu.0"], ["7"]):
    print(json.dumps(opened(sel)))
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
print(json.dumps(opened()))
PY
bash tests/gpu_check/run_on_gpu.sh > "$DEST/run_on_gpu.txt" 2>&1
ls -la "$DEST"
