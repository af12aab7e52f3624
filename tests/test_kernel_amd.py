"""Per-kernel GPU memory from the AMD backend (issue 15): the fake amdsmi replaying the two
recorded AMD Radeon AI PRO R9700 (``mode="r9700"``) is read by the real :class:`AmdBackend`,
its values become a sample as the sampler makes one, and :class:`ProcessTrees` matches the
recorded process's VRAM to a real kernel-like process tree by pid.

The NVIDIA path is covered by ``test_server_kernels.py`` (fake NVML, a real kernel).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import backend_opener

from tracklab_jupyter.accelerators.amd import AmdBackend
from tracklab_jupyter.kernels.procs import ProcessTrees
from tracklab_jupyter.sampler.sampler import Sampler

try:
    from .fake_amdsmi import FIXTURE_DIR, FakeAmdSmi
except ImportError:
    from fake_amdsmi import FIXTURE_DIR, FakeAmdSmi

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

Factory = Callable[..., FakeAmdSmi]
R9700_PROCS = json.loads((FIXTURE_DIR / "r9700_amd_smi_process.json").read_text())
# The recorded process with the most VRAM on GPU 0 (amd-smi: memory_usage.vram_mem).
BIG = max((entry["process_info"] for entry in R9700_PROCS[0]["process_list"]),
          key=lambda p: p["memory_usage"]["vram_mem"]["value"])
RECORDED_PID = BIG["pid"]
RECORDED_VRAM = float(BIG["memory_usage"]["vram_mem"]["value"])

backends = backend_opener(AmdBackend)

# The child says who it is and its parent, then waits on the shared stdin; the root waits
# for the child: a kernel with one subprocess.
CHILD = ("import os, sys\n"
         "print('ready', os.getppid(), os.getpid(), flush=True)\n"
         "sys.stdin.readline()\n")
ROOT = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {CHILD!r}]).wait()\n"


@pytest.fixture
def kernel_tree() -> Iterator[tuple[int, int]]:
    """A real root process with one child, in a session of its own; yields (root, child)."""
    proc = subprocess.Popen([sys.executable, "-c", ROOT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        word, parent, child = proc.stdout.readline().split()
        assert word == "ready" and int(parent) == proc.pid
        yield proc.pid, int(child)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the session this fixture started
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def place_processes(fake: FakeAmdSmi, monkeypatch: pytest.MonkeyPatch, ours: int,
                    foreign: int) -> None:
    """The recorded process lists, with the big process of GPU 0 moved to pid ``ours`` and
    every other recorded process (GPU 1's copy of the big one too) to pid ``foreign``; the
    recorded memory figures are kept.

    Foreign processes get a live pid (outside the tree), not the recorded host pids: inside
    a container with its own pid namespace ProcessTrees matches nothing unless every pid the
    driver reports is visible in /proc."""
    for gpu in (0, 1):
        card = fake.card(gpu)  # the cached recording: changed through monkeypatch only
        listed = copy.deepcopy(card.processes)
        assert listed, f"the R9700 recording lost GPU {gpu}'s processes"
        for proc in listed:
            proc["pid"] = ours if (gpu, proc["pid"]) == (0, RECORDED_PID) else foreign
        monkeypatch.setattr(card, "processes", listed)


def sample_metrics(backend: AmdBackend) -> dict[str, float]:
    """One sample as the sampler makes it: the slow read (processes) kept, then a tick."""
    sampler = Sampler([backend], interval=1.0, node="test")
    sampler.read_slow(backend)
    return sampler.sample_once().metrics


@pytest.mark.parametrize("holder", ["child", "root"])
def test_recorded_amd_process_memory_goes_to_its_kernel(
        fake_amdsmi_factory: Factory, backends: Any, monkeypatch: pytest.MonkeyPatch,
        kernel_tree: tuple[int, int], holder: str) -> None:
    root, child = kernel_tree
    ours = child if holder == "child" else root
    foreign = os.getpid()  # this test's process: the kernel's parent, not in its tree
    assert RECORDED_VRAM == 21008920000  # what amd-smi recorded for pid 213952 on GPU 0
    fake = fake_amdsmi_factory(gpus=2, mode="r9700")
    place_processes(fake, monkeypatch, ours, foreign)
    backend = backends()
    assert backend.info()["source"] == "amdsmi"

    # Per-process VRAM is on the slow path only (amdsmi_get_gpu_process_list walks processes).
    assert not any(".proc." in name for name in backend.read().gauges)
    metrics = sample_metrics(backend)
    assert metrics[f"gpu.0.proc.{ours}.mem_used_bytes"] == RECORDED_VRAM
    assert metrics[f"gpu.1.proc.{foreign}.mem_used_bytes"] > 0  # GPU 1's processes, not ours
    assert not any(f".proc.{ours}." in name for name in metrics if name.startswith("gpu.1."))
    assert metrics["gpu.0.procs"] == metrics["gpu.1.procs"] == 4

    reader = ProcessTrees()
    try:
        reading = reader.read({"k": root}, metrics)["k"]
    finally:
        reader.close()
    assert not reading.ended and reading.pids == sorted([root, child])
    assert reading.gpus == {"gpu.0": RECORDED_VRAM}  # nothing of GPU 1
    assert reading.gpu_mem_bytes == RECORDED_VRAM
    rows = {row["pid"]: row["gpu_mem_bytes"] for row in reading.processes}
    assert rows == {pid: RECORDED_VRAM if pid == ours else None for pid in (root, child)}
    assert reader.pid_namespace_note is None
