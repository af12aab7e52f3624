#!/usr/bin/env bash
# The prepared GPU check (issue 2): run on a machine with an NVIDIA GPU, from the repo root,
# with OUT set to a folder for the results. Needs python3 with nvidia-ml-py, psutil,
# py-cpuinfo, numpy and pandas; torch (optional) makes a bf16 load for the busy readings.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
DEST=${OUT:-/tmp}
OUT=$(mktemp -d); mkdir -p "$OUT"
{ nvidia-smi -L; python3 -c "import pynvml, psutil; print('nvidia-ml-py', pynvml.__file__)"; } \
  > "$OUT/env.txt" 2>&1
python3 -m tracklab_jupyter snapshot > "$OUT/snapshot_idle.txt" 2>&1
python3 -m tracklab_jupyter snapshot --json > "$OUT/snapshot_idle.json" 2>"$OUT/snapshot_idle.err"
# A bf16 matrix-product load for about 40 s, as in the recorded fixture.
python3 - > "$OUT/load.txt" 2>&1 <<'PY' &
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
print("load running", flush=True)
end = time.time() + 40
while time.time() < end:
    for _ in range(20):
        c = a @ b
    torch.cuda.synchronize()
PY
LOAD=$!
sleep 8
python3 -m tracklab_jupyter snapshot > "$OUT/snapshot_busy.txt" 2>&1
python3 -m tracklab_jupyter snapshot --json > "$OUT/snapshot_busy.json" 2>"$OUT/snapshot_busy.err"
# Record through the real store for 12 s under load, then read it back.
timeout -s INT 12 python3 -m tracklab_jupyter record --interval 0.5 --data-dir /tmp/tl-data \
  > "$OUT/record.txt" 2>&1
python3 -m tracklab_jupyter history --data-dir /tmp/tl-data --metrics 'gpu.*' --start=-2min \
  --csv "$OUT/history_gpu.csv" > "$OUT/history.txt" 2>&1
python3 bench/sampler.py --samples 300 --seconds 20 --real-gpus > "$OUT/bench_sampler.txt" 2>&1
wait $LOAD
tar czf "$DEST/gpu_check.tar.gz" -C "$OUT" .
echo "results in $DEST/gpu_check.tar.gz"
