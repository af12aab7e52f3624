"""Per-cell figures of the kernel itself (``%tracklab cells on``, ``tracklab.cells()``):
the probe of the kernel's process tree, the line, the stored ``cell`` event and the
DataFrame, in a real IPython kernel (jupyter_client) with two replayed H200s whose recorded
load is reported as the kernel's own pid."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_kernel import Kernel
from wakeups import wake_ups_over

from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.metrics.units import format_bytes
from tracklab_jupyter.notebook import cells_table
from tracklab_jupyter.notebook.cell_probe import CellProbe, _cpu_delta, check_period
from tracklab_jupyter.notebook.cells import DeviceTally, first_line, format_line
from tracklab_jupyter.notebook.cells_table import cells_frame
from tracklab_jupyter.store.config import StoreConfig
from tracklab_jupyter.store.writer import StoreWriter

MB = 1_000_000
MIB = 2 ** 20
# Allocate and touch every page, so the memory is resident, not only reserved.
ALLOC = "{name} = bytearray({mib} * 2**20); {name}[::4096] = b'x' * len({name}[::4096])"


# -- the line, from hand-made figures ---------------------------------------------------------
def summary(**over):
    base = {"wall_s": 2.31, "cpu_s": 1.95, "rss_start_bytes": 1.5 * 2 ** 30,
            "rss_end_bytes": 1.5 * 2 ** 30 + 412 * MIB, "rss_peak_bytes": 1.9 * 2 ** 30,
            "rss_change_bytes": 412 * MIB, "host_mem_peak_bytes": 23.1 * 2 ** 30,
            "gpus": {"gpu.0": {"mem_peak_bytes": 12.3 * 2 ** 30, "util_mean_pct": 97.2},
                     "gpu.1": {"mem_peak_bytes": 0.0, "util_mean_pct": 95.0},
                     "gpu.2": {"mem_peak_bytes": 0.0, "util_mean_pct": 0.0}},
            "gpus_unmatched": None}
    return {**base, **over}


def test_line_puts_the_kernels_figures_first_and_the_host_as_a_note():
    assert format_line(summary()) == (
        "⏱ tracklab: 2.31 s wall · CPU 1.95 s (84 %) · RAM 1.9 GiB peak (+412.0 MiB) · "
        "GPU0 12.3 GiB peak, util 97 % · host: RAM 23.1 GiB peak, GPU1 util 95 %")


def test_line_for_short_long_shrinking_and_unattributed_cells():
    short = format_line(summary(wall_s=0.004, cpu_s=0.003, rss_change_bytes=0.0, gpus={},
                                host_mem_peak_bytes=None))
    assert short == "⏱ tracklab: 4 ms wall · CPU 3 ms · RAM 1.9 GiB peak (±0 B)"
    long = format_line(summary(wall_s=3725.0, cpu_s=250.0, rss_change_bytes=-3 * MIB))
    assert "1 h 02 min wall · CPU 4 min 10 s (7 %)" in long and "(-3.0 MiB)" in long
    npu = format_line(summary(gpus={"npu.1": {"mem_peak_bytes": 5 * 2 ** 30,
                                              "util_mean_pct": 40.0},
                                    "tpu.0": {"mem_peak_bytes": 0.0, "util_mean_pct": 10.0}}))
    assert "NPU1 5.0 GiB peak, util 40 %" in npu and "host: RAM 23.1 GiB peak, TPU0 util 10 %" \
        in npu
    hidden = format_line(summary(gpus={"gpu.0": {"mem_peak_bytes": 0.0, "util_mean_pct": 97.0}},
                                 gpus_unmatched="container pid namespace"))
    assert "GPU memory not attributable (container pid namespace)" in hidden


def test_first_line_of_a_cell():
    assert first_line("\n\n   %%time\nx = 1") == "%%time"
    assert first_line("x" * 200) == "x" * 79 + "…"
    assert first_line("") is None and first_line(None) is None


# -- accelerator figures from the host's samples ------------------------------------------
def test_device_tally_counts_only_the_trees_processes_on_every_kind_of_device():
    def sample(t, node="n", **extra):
        return Sample(t, node, {"mem.used_bytes": 8e9 + t, "gpu.0.util_pct": 90.0 + t,
                                "gpu.0.proc.41.mem_used_bytes": 2e9 * t,
                                "gpu.0.proc.42.mem_used_bytes": 1e9,
                                "gpu.0.proc.99.mem_used_bytes": 7e9,  # someone else's job
                                "npu.1.util_pct": 40.0, "npu.1.proc.43.mem_used_bytes": 5e9,
                                "tpu.0.util_pct": 10.0, "gpu.0.mem_used_bytes": 1e11,
                                **extra})

    tally = DeviceTally("n")
    tally.add([sample(1.0), sample(2.0), sample(9.0), sample(2.0, node="other")],
              {41, 42, 43}, start=0.5, end=5.0)
    assert tally.samples == 2 and tally.host_mem_peak == 8e9 + 2
    figures = tally.figures()
    assert list(figures) == ["gpu.0", "npu.1", "tpu.0"]
    assert figures["gpu.0"] == {"mem_peak_bytes": 5e9, "util_mean_pct": 91.5}
    assert figures["npu.1"] == {"mem_peak_bytes": 5e9, "util_mean_pct": 40.0}
    assert figures["tpu.0"] == {"mem_peak_bytes": 0.0, "util_mean_pct": 10.0}
    assert not tally.unmatched()
    foreign = DeviceTally("n")
    foreign.add([sample(1.0)], {12345})
    assert foreign.unmatched() and foreign.figures()["gpu.0"]["mem_peak_bytes"] == 0.0


# -- the probe --------------------------------------------------------------------------------
def test_probe_catches_a_child_that_peaks_and_exits_within_the_cell():
    probe = CellProbe(period=0.01, relist_s=0.05)
    try:
        probe.begin()
        child = subprocess.run(
            [sys.executable, "-c", "import os, time\n" + ALLOC.format(name="b", mib=300)
             + "\ntime.sleep(0.4)\nprint(os.getpid())"],
            capture_output=True, text=True, check=True)
        result = probe.end()
    finally:
        probe.stop()
    assert result.rss_peak_bytes - result.rss_start_bytes >= 300 * MB, result
    assert abs(result.rss_end_bytes - result.rss_start_bytes) < 50 * MB, result
    assert int(child.stdout) in result.pids and result.procs >= 2
    assert result.reads > 10


def test_probe_thread_sleeps_between_cells_and_a_short_cell_has_figures():
    probe = CellProbe(period=0.01)
    try:
        probe.begin()
        result = probe.end()  # shorter than one period
        assert result.reads >= 2 and result.rss_start_bytes > 0 and result.rss_end_bytes > 0
        assert result.rss_peak_bytes >= max(result.rss_start_bytes, result.rss_end_bytes)
        thread = probe.thread
        assert thread is not None and thread.name == "tracklab-cell-probe"
        time.sleep(0.1)  # let it finish its last tick
        assert wake_ups_over(thread.native_id, 0.5) == 0
        probe.begin()
        busy = wake_ups_over(thread.native_id, 0.3)
        probe.end()
        assert busy >= 5  # the count does see the thread's wake-ups while a cell runs
        with open(f"/proc/self/task/{thread.native_id}/comm") as fh:
            assert fh.read().strip() == "tl-cell-probe"
    finally:
        probe.stop()
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="stopped"):
        probe.begin()


def test_tree_cpu_counts_a_reaped_worker_once():
    # the kernel (1) waited for worker 2 during the cell: its figure grew by 2's whole time
    assert _cpu_delta({1: 10.0, 2: 4.0, 3: 1.0}, {1: 16.0, 3: 1.5, 4: 0.25}) == \
        pytest.approx(6.0 - 4.0 + 0.5 + 0.25)


def test_probe_period_limits():
    assert check_period(0.02) == 0.02
    for bad in (0.001, 2.0, True, "20ms"):
        with pytest.raises(ValueError, match="5 ms to 1 s"):
            check_period(bad)


# -- tracklab.cells() over a real store ------------------------------------------------------
def write_cells(data_dir: Path, rows: list[tuple[float, str, dict]]) -> None:
    writer = StoreWriter(data_dir, StoreConfig(flush_interval=0.1), maintenance=False)
    for t, kernel, extra in rows:
        writer.write_event(Event(t, "n1", "cell", "cell", {
            "start": t, "end": t + 1, "wall_s": 1.0, "cpu_s": 0.5, "kernel_id": kernel,
            "rss_peak_bytes": 3e8, "rss_change_bytes": 1e6, "source": f"cell at {t}",
            **extra}))
    writer.write_event(Event(rows[0][0], "n1", "gpu_lost", "GPU 0 lost", {"gpu": 0}))
    writer.close()


def test_cells_frame_one_row_per_cell_sorted_flat_and_bounded(tmp_path, monkeypatch):
    now = time.time()
    write_cells(tmp_path / "d", [
        (now - 30, "k2", {"gpus": {"gpu.1": {"mem_peak_bytes": 2e9, "util_mean_pct": 50.0}}}),
        (now - 50, "k1", {"gpus": {"gpu.0": {"mem_peak_bytes": 1e9, "util_mean_pct": 90.0},
                                   "npu.0": {"mem_peak_bytes": 0.0, "util_mean_pct": 5.0}}}),
        *[(now - 20 + i, "k1", {}) for i in range(7)],
        (now - 7200, "k1", {}),  # before the default range
    ])
    frame = cells_frame(data_dir=tmp_path / "d", start="-1h")
    assert len(frame) == 9 and list(frame["source"])[:2] == [f"cell at {now - 50}",
                                                             f"cell at {now - 30}"]
    assert frame["start"].is_monotonic_increasing and str(frame["start"].dt.tz) == "UTC"
    assert list(frame.columns[-6:]) == [
        "gpu.0.mem_peak_bytes", "gpu.0.util_mean_pct", "gpu.1.mem_peak_bytes",
        "gpu.1.util_mean_pct", "npu.0.mem_peak_bytes", "npu.0.util_mean_pct"]
    assert frame.loc[0, "gpu.0.mem_peak_bytes"] == 1e9 and frame.loc[1, "gpu.1.util_mean_pct"] \
        == 50.0
    assert len(cells_frame(data_dir=tmp_path / "d", start="-3h")) == 10
    newest = cells_frame(data_dir=tmp_path / "d", limit=3)
    assert list(newest["source"]) == [f"cell at {now - 20 + i}" for i in (4, 5, 6)]
    # a kernel's cells, read page by page
    monkeypatch.setattr(cells_table, "PAGE", 2)
    assert set(cells_frame(data_dir=tmp_path / "d", kernel="k2")["kernel_id"]) == {"k2"}
    mine = cells_frame(data_dir=tmp_path / "d", kernel="k1", start="-3h", limit=8)
    assert len(mine) == 8 and mine["source"].iloc[0] == f"cell at {now - 50}"
    for bad in (0, cells_table.MAX_LIMIT + 1, True, "5"):
        with pytest.raises(ValueError, match="limit must be a whole number from 1 to 100000"):
            cells_frame(data_dir=tmp_path / "d", limit=bad)
    with pytest.raises(ValueError, match="inside a Jupyter kernel only"):
        cells_frame(data_dir=tmp_path / "d", kernel="this")
    with pytest.raises(ValueError, match="must be after start"):
        cells_frame(data_dir=tmp_path / "d", start="-1h", end="-2h")


# -- a real kernel ------------------------------------------------------------------------
class CellKernel(Kernel):
    """A kernel started the way jupyter_server starts one: connection file
    ``kernel-<id>.json`` and the session's notebook path in ``JPY_SESSION_NAME``."""

    def __init__(self, tmp_path: Path) -> None:
        self.kernel_id = str(uuid.uuid4())
        self.data_dir = tmp_path / "data"
        super().__init__(self.data_dir, extra_env={"JPY_SESSION_NAME": "work/train.ipynb"},
                         connection_file=tmp_path / f"kernel-{self.kernel_id}.json")

    def last(self) -> dict:
        """The figures of the cell run before this call."""
        out = self.text("print(json.dumps(_tl['timer'].last))")
        return json.loads(out.splitlines()[0])

    def measure(self, code: str) -> tuple[str, dict]:
        line = self.text(code).strip().splitlines()[-1]
        assert line.startswith("⏱ tracklab: "), line
        return line, self.last()


@pytest.fixture
def kernel(tmp_path):
    k = CellKernel(tmp_path)
    # The recorded GPU load is this kernel's process (set before the fake NVML loads).
    k.text("import json, os, time\nos.environ['TRACKLAB_FAKE_NVML_LOAD_PID'] = str(os.getpid())\n"
           "%load_ext tracklab\n%tracklab status\n"
           "from tracklab_jupyter.notebook.magics import _state as _tl")
    # The monitor's start runs py-cpuinfo in a subprocess: let it end before measuring.
    k.text("from tracklab_jupyter.notebook.cell_probe import TreeReader\n"
           "for _ in range(200):\n"
           "    if len(TreeReader().tree(os.getpid())) == 1: break\n"
           "    time.sleep(0.05)")
    assert "per-cell costs on" in k.text("%tracklab cells on")
    yield k
    k.stop()


def test_a_cell_reports_the_kernels_own_rss_peak_and_change(kernel):
    line, freed = kernel.measure(ALLOC.format(name="b", mib=400) + "\ndel b")
    assert freed["rss_peak_bytes"] - freed["rss_start_bytes"] >= 400 * MB, freed
    assert abs(freed["rss_change_bytes"]) < 100 * MB, freed
    assert f"RAM {format_bytes(freed['rss_peak_bytes'])} peak (" in line
    assert "host: RAM " in line  # the machine's figure, as a note only
    line, idle = kernel.measure("x = 1")  # allocates nothing, shorter than one probe period
    assert idle["probe_reads"] >= 2 and idle["rss_start_bytes"] > 0
    assert idle["rss_peak_bytes"] >= max(idle["rss_start_bytes"], idle["rss_end_bytes"])
    assert idle["rss_peak_bytes"] - idle["rss_start_bytes"] < 50 * MB, idle
    # no host sample within a few ms: the nearest one stands in for the host's figures
    assert idle["samples"] >= 1 and idle["host_mem_peak_bytes"] > idle["rss_peak_bytes"]
    # 500 MiB made and freed inside one C call that holds the GIL: the probe thread cannot
    # run; the kernel's high-water mark, raised by this cell, still shows the peak.
    _, held = kernel.measure("n = len(b'x' * (500 * 2**20))")
    assert held["rss_peak_bytes"] - held["rss_start_bytes"] >= 500 * MIB - 20 * MB, held
    # From here on the high-water mark stays above every cell's peak: only the probe's
    # readings can find this one (Python runs between making and freeing it).
    _, again = kernel.measure(ALLOC.format(name="b", mib=400) + "\ntime.sleep(0.2)\ndel b")
    assert again["rss_peak_bytes"] - again["rss_start_bytes"] >= 400 * MB, again
    _, kept = kernel.measure(ALLOC.format(name="keep", mib=300))
    assert abs(kept["rss_change_bytes"] - 300 * MIB) < 30 * MB, kept
    _, child = kernel.measure(
        "import subprocess, sys\n_ = subprocess.run([sys.executable, '-c', "
        + repr(ALLOC.format(name="b", mib=300) + "\nimport time; time.sleep(1.5)") + "])")
    assert child["rss_peak_bytes"] - child["rss_start_bytes"] >= 300 * MB, child
    assert child["procs"] >= 2 and abs(child["rss_change_bytes"]) < 50 * MB
    assert child["cpu_s"] >= 0.05  # the child's CPU counts in the kernel's tree


def test_gpu_memory_of_the_kernels_processes_and_the_stored_cells(kernel):
    line, cell = kernel.measure("time.sleep(0.5)  # on the GPU")
    pid, sample = json.loads(kernel.text(
        "print(json.dumps([os.getpid(), _tl['timer'].monitor.latest.metrics]))"
    ).splitlines()[0])
    ours = sample[f"gpu.0.proc.{pid}.mem_used_bytes"]
    assert ours > 0 and cell["gpus"]["gpu.0"]["mem_peak_bytes"] == ours
    assert cell["gpus"]["gpu.1"]["mem_peak_bytes"] == 0.0  # GPU 1's load is another pid
    assert cell["gpus"]["gpu.0"]["util_mean_pct"] == pytest.approx(97.0, abs=3)
    assert f"GPU0 {format_bytes(ours)} peak, util 97 %" in line
    assert "host: RAM" in line and "GPU1 util 97 %" in line.split("host:")[1]
    assert cell["kernel_id"] == kernel.kernel_id and cell["notebook"] == "work/train.ipynb"
    assert cell["source"] == "time.sleep(0.5)  # on the GPU" and cell["success"] is True
    kernel.measure(ALLOC.format(name="keep", mib=100))
    frame_json = kernel.text(
        "time.sleep(1.2)  # the writer flushes every second\nimport tracklab\n"
        "df = tracklab.cells(kernel='this')\n"
        "print(df.drop(columns=['start', 'end']).to_json(orient='records'))").splitlines()[0]
    rows = json.loads(frame_json)
    # every cell since `cells on`: the two measured, the pid reading, the DataFrame's own
    # cell is still running
    assert [r["source"] for r in rows] == [
        "time.sleep(0.5)  # on the GPU", "print(json.dumps(_tl['timer'].last))",
        'print(json.dumps([os.getpid(), _tl[\'timer\'].monitor.latest.metrics]))',
        "keep = bytearray(100 * 2**20); keep[::4096] = b'x' * len(keep[::4096])",
        "print(json.dumps(_tl['timer'].last))"]
    assert rows[0]["gpu.0.mem_peak_bytes"] == ours and rows[0]["kernel_id"] == kernel.kernel_id
    assert abs(rows[3]["rss_change_bytes"] - 100 * MIB) < 20 * MB
    assert rows[0]["rss_peak_bytes"] == cell["rss_peak_bytes"]


def test_the_probe_thread_does_not_wake_between_cells(kernel):
    kernel.measure("time.sleep(0.3)")
    pid = int(kernel.text("print(os.getpid())").splitlines()[0])
    tids = [p.parent.name for p in Path(f"/proc/{pid}/task").glob("*/comm")
            if p.read_text().strip() == "tl-cell-probe"]
    assert len(tids) == 1, tids
    time.sleep(0.2)

    def switches() -> int:  # tests/wakeups.py's count, for another process
        status = Path(f"/proc/{pid}/task/{tids[0]}/status").read_text()
        return int(status.split("voluntary_ctxt_switches:")[1].split()[0])

    before = switches()
    time.sleep(1.0)
    assert switches() == before
    kernel.text("time.sleep(0.3)")  # while a cell runs it reads every 20 ms
    assert switches() - before >= 5


def test_cells_magic_takes_a_probe_period_within_limits(kernel):
    assert "kernel memory read every 5 ms" in kernel.text("%tracklab cells on 5ms")
    _, cell = kernel.measure("time.sleep(0.2)")
    assert cell["probe_period_s"] == 0.005 and cell["probe_reads"] >= 20
    bad = kernel.run("%tracklab cells on 1ms")
    shown = "".join(m["content"].get("text", "") + m["content"].get("evalue", "")
                    for m in bad if m["msg_type"] in ("stream", "error"))
    assert "must be 5 ms to 1 s" in shown
    assert "EVERY" in kernel.text("%tracklab help")
    # Host samples are folded as they arrive (about once a second), not only at the end:
    # a long cell keeps more samples than the hub queues for it.
    kernel.text("import tracklab_jupyter.notebook.cells as _c; _c.SAMPLE_DEPTH = 8")
    _, long = kernel.measure("time.sleep(3.0)")
    assert long["samples"] >= 11, long  # 15 at one per 0.2 s
    kernel.text("%tracklab cells off")
    assert "⏱" not in kernel.text("x = 2")


def test_cells_run_while_the_monitor_starts_are_stored_once_it_has(tmp_path):
    kernel = CellKernel(tmp_path)
    try:
        # `cells on` as the first thing: the monitor opens its store in the background
        kernel.text("%load_ext tracklab\n%tracklab cells on")
        kernel.text("x = 1  # first")
        kernel.text("import time; time.sleep(1.5)  # second")
        time.sleep(1.5)  # the writer flushes every second
    finally:
        kernel.stop()
    frame = cells_frame(data_dir=kernel.data_dir)
    assert list(frame["source"]) == ["x = 1  # first", "import time; time.sleep(1.5)  # second"]
