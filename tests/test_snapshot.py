"""`python -m tracklab_jupyter snapshot` and `tracklab.snapshot()` as a user runs them:
real psutil for the host, the recorded H200 (fake NVML) in place of GPUs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_nvidia import write_nvidia_pci

import tracklab
from tracklab_jupyter.metrics.catalogue import is_known

SHIM = Path(__file__).parent / "shim"


def run_cli(*args: str, gpus: int | None = 8, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if gpus is not None:
        environ["PYTHONPATH"] = os.pathsep.join([str(SHIM), environ.get("PYTHONPATH", "")])
        environ["TRACKLAB_FAKE_NVML_GPUS"] = str(gpus)
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "tracklab_jupyter", "snapshot", *args],
                          capture_output=True, text=True, env=environ, timeout=60)


def test_json_snapshot_of_host_and_eight_gpus():
    before = time.time()
    proc = run_cli("--json")
    assert proc.returncode == 0, proc.stderr
    snap = json.loads(proc.stdout)
    assert set(snap) >= {"time", "node", "metrics", "info"}
    assert before <= snap["time"] <= time.time()
    assert snap["node"] == socket.gethostname()
    metrics = snap["metrics"]
    assert all(is_known(name) for name in metrics), [n for n in metrics if not is_known(n)]
    assert all(isinstance(v, float) for v in metrics.values())
    # rates need two readings: the snapshot takes them over its window
    for rate in ("net.recv_bytes_per_s", "net.sent_bytes_per_s", "disk.read_bytes_per_s"):
        assert rate in metrics and metrics[rate] >= 0
    assert 0 <= metrics["cpu.util_pct"] <= 100
    # eight replayed H200s, busy: values as recorded on the real card
    devices = snap["info"]["nvidia"]["devices"]
    assert [d["index"] for d in devices] == list(range(8))
    assert len({d["uuid"] for d in devices}) == 8
    assert devices[0]["name"] == "NVIDIA H200"
    for i in range(8):
        assert metrics[f"gpu.{i}.power_w"] == pytest.approx(686.452)
        assert metrics[f"gpu.{i}.mem_used_bytes"] == 1059913728
        assert metrics[f"gpu.{i}.mem_reserved_bytes"] == 644939776
    # PCIe and energy are slow calls, still present in a snapshot
    assert metrics["gpu.0.pcie_rx_bytes_per_s"] == 2813 * 1024
    assert snap["info"]["system"]["hostname"] == socket.gethostname()


def test_table_is_readable_and_fits_a_screen():
    proc = run_cli(gpus=2)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    lines = out.splitlines()
    assert lines[0].startswith(socket.gethostname())
    assert any(line.startswith("CPU") for line in lines)
    assert any(line.startswith("Memory") for line in lines)
    assert any(line.startswith("Disk") and line.rstrip().endswith("/") for line in lines)
    assert any(line.startswith("Network") for line in lines)
    gpu_lines = [line for line in lines if line.startswith("GPU ")]
    assert len(gpu_lines) == 2
    assert "686 / 700 W" in gpu_lines[0] and "58 °C" in gpu_lines[0]
    assert "NVIDIA H200" in out and "throttled: software power cap" in out
    assert len(lines) <= 30


def test_gpu_selection_by_option_and_by_cuda_visible_devices():
    snap = json.loads(run_cli("--json", "--gpus", "1,3").stdout)
    assert sorted({k.split(".")[1] for k in snap["metrics"] if k.startswith("gpu.")}) == [
        "1", "3"]
    snap = json.loads(run_cli("--json", CUDA_VISIBLE_DEVICES="2").stdout)
    assert {k.split(".")[1] for k in snap["metrics"] if k.startswith("gpu.")} == {"2"}


def test_no_nvidia_library_is_one_clear_line_and_nothing_else_breaks(tmp_path):
    # an NVIDIA GPU on the PCI bus, and no driver: worth a note (without one: silence)
    host = write_nvidia_pci(tmp_path / "host")
    proc = run_cli(gpus=1, TRACKLAB_FAKE_NVML_NO_LIBRARY="1", TRACKLAB_HOST_ROOT=str(host))
    assert proc.returncode == 0, proc.stderr
    assert "note: nvidia: NVML library not found" in proc.stdout
    assert "GPU 0" not in proc.stdout and proc.stdout.count("CPU") >= 1
    assert "Traceback" not in proc.stderr


def test_bad_window_is_a_clear_error():
    proc = run_cli("--window", "-1", gpus=None)
    assert proc.returncode == 2
    assert "snapshot window must be between 0 and 60 seconds" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_python_api_returns_the_same_shape(fake_nvml_factory):
    fake_nvml_factory(gpus=1, mode="idle")
    snap = tracklab.snapshot(window=0.2)
    assert set(snap) >= {"time", "node", "metrics", "info"}
    assert snap["metrics"]["gpu.0.power_w"] == pytest.approx(97.237)
    assert snap["metrics"]["gpu.0.throttle_reasons"] == 1
    assert "mem.used_bytes" in snap["metrics"]
