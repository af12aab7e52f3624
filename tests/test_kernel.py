"""The notebook surfaces in a real IPython kernel (jupyter_client), with two replayed
H200s: %load_ext cost, the widget's comm messages, %tracklab forms, per-cell costs,
%unload_ext."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for
from jupyter_client.manager import KernelManager

from tracklab_jupyter.store.reader import StoreReader

SHIM = Path(__file__).parent / "shim"
#: Kernel code that waits (up to 30 s, a failing test) for the process monitor's first sample.
WAIT_FOR_A_SAMPLE = (
    "import time\n"
    "from tracklab_jupyter.process_monitor import process_monitor\n"
    "for _ in range(300):\n"
    "    if process_monitor().latest is not None: break\n"
    "    time.sleep(0.1)\n")


class Kernel:
    """An IPython kernel with two replayed H200s, storing under ``data_dir``; ``extra_env``
    goes over its environment, ``connection_file`` names its connection file."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None,
                 connection_file: Path | None = None) -> None:
        env = {**os.environ, "TRACKLAB_DATA_DIR": str(data_dir), "TRACKLAB_INTERVAL": "0.2",
               "TRACKLAB_FAKE_NVML_GPUS": "2", "PYTHONPATH": os.pathsep.join(
                   [str(SHIM), os.environ.get("PYTHONPATH", "")]), **(extra_env or {})}
        self.km = KernelManager(kernel_name="python3")
        if connection_file is not None:
            self.km.connection_file = str(connection_file)
        self.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f",
                              "{connection_file}"]
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60) -> list[dict]:
        """Execute ``code``; return the iopub messages of that execution."""
        msg_id = self.kc.execute(code)
        out = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            out.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return out

    def text(self, code: str) -> str:
        messages = self.run(code)
        errors = [m["content"] for m in messages if m["msg_type"] == "error"]
        assert not errors, errors[0]["traceback"]
        parts = [m["content"].get("text", "") for m in messages if m["msg_type"] == "stream"]
        parts += [m["content"]["data"].get("text/plain", "") for m in messages
                  if m["msg_type"] in ("execute_result", "display_data")]
        return "".join(parts)

    def custom_messages(self, enough: Callable[[list[dict]], bool],
                        timeout: float = 60) -> list[dict]:
        """comm_msg 'custom' messages (from any parent), until ``enough`` of them came; a
        generous ``timeout`` only bounds a failing test."""
        found: list[dict] = []
        deadline = time.monotonic() + timeout
        while not enough(found):
            assert time.monotonic() < deadline, f"timed out with {len(found)} messages"
            try:
                msg = self.kc.get_iopub_msg(timeout=0.1)
            except Exception:
                continue
            if (msg["msg_type"] == "comm_msg"
                    and msg["content"]["data"].get("method") == "custom"):
                found.append(msg)
        return found

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path):
    k = Kernel(tmp_path / "data")
    yield k
    k.stop()


def test_load_ext_imports_nothing_heavy(kernel):
    # How long %load_ext takes is measured in bench/load_ext.py; here: what it imports.
    out = kernel.text(
        "import sys\n"
        "get_ipython().run_line_magic('load_ext', 'tracklab')\n"
        "print(__import__('json').dumps(sorted(m for m in "
        "('pandas', 'numpy', 'anywidget', 'pynvml', 'sqlite3') if m in sys.modules)))")
    heavy = json.loads(out.strip().splitlines()[-1])
    assert "pandas" not in heavy and "anywidget" not in heavy, heavy
    assert "tracklab" in kernel.text("%tracklab help")


def test_widget_speaks_the_protocol_over_a_real_comm(kernel):
    created = kernel.run("import tracklab\nw = tracklab.widget(window='1m')")
    opened = kernel.run("w")
    display = [m for m in opened if m["msg_type"] == "execute_result"]
    assert display, opened
    model_id = display[0]["content"]["data"]["application/vnd.jupyter.widget-view+json"][
        "model_id"]
    # the widget's model was opened over a comm, under the id the view names
    comm_open = [m["content"] for m in created + opened if m["msg_type"] == "comm_open"
                 and m["content"]["comm_id"] == model_id]
    assert len(comm_open) == 1, [m["msg_type"] for m in created + opened]
    assert comm_open[0]["target_name"] == "jupyter.widget"
    # what a front end does once it has rendered the view
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_msg", {
        "comm_id": model_id, "data": {"method": "custom", "content": {"type": "ready"}}}))

    def kinds_of(messages: list[dict]) -> list[str]:
        return [m["content"]["data"]["content"]["type"] for m in messages]
    messages = kernel.custom_messages(lambda found: kinds_of(found).count("data") >= 3)
    kinds = kinds_of(messages)
    # init, then the active alerts (none here), then data frames
    assert kinds[0] == "init" and kinds.count("data") >= 3, kinds
    assert [m["content"]["data"]["content"].get("alerts") for m in messages
            if m["content"]["data"]["content"]["type"] == "alerts"] == [[]], kinds
    data_messages = [m for m, kind in zip(messages, kinds, strict=True) if kind == "data"]
    init = messages[0]["content"]["data"]["content"]
    devices = init["info"]["accelerators"]
    assert [(d["name"], d["kind"], d["vendor"]) for d in devices] == [
        ("NVIDIA H200", "gpu", "nvidia")] * 2
    data = data_messages[1]["content"]["data"]["content"]
    times, values = (np.frombuffer(b, dtype=np.float64) for b in data_messages[1]["buffers"])
    assert len(times) == data["n"] and len(values) == data["n"] * len(data["names"])
    series = dict(zip(data["names"], values.reshape(len(data["names"]), data["n"]), strict=True))
    assert series["gpu.0.power_w"][-1] == pytest.approx(686.452)
    assert "live" in kernel.text("print(w.status)")


def test_magics_cells_history_and_unload(kernel, tmp_path):
    kernel.text("%load_ext tracklab")
    kernel.text(WAIT_FOR_A_SAMPLE)
    status = kernel.text("%tracklab status")
    assert "recorder" in status and "devices    2" in status and "NVIDIA H200" in status
    assert "per-cell costs on" in kernel.text("%tracklab cells on")
    cost = kernel.text("import time\nx = sum(range(3_000_000)); time.sleep(0.6)")
    # the kernel's own figures first; GPU 0's recorded load is not this kernel's process,
    # so the GPU shows only in the host note
    assert "⏱ tracklab:" in cost and "s wall" in cost and "RAM " in cost and " peak (" in cost
    assert "host: RAM" in cost and "GPU0 util 97 %" in cost.split("host:")[1]
    frame = kernel.text("for _ in range(300):  # until the writer's first flush\n"
                        "    df = %tracklab history -5min cpu.util_pct gpu.*.power_w\n"
                        "    if 'gpu.0.power_w' in df.columns: break\n"
                        "    time.sleep(0.1)\n"
                        "print(type(df).__name__, sorted(df.columns)[:2])")
    assert "DataFrame ['cpu.util_pct', 'gpu.0.power_w']" in frame
    kernel.text("%tracklab cells off")
    reader = StoreReader(tmp_path / "data")
    cells = wait_for(lambda: reader.events(kinds=["cell"]), 30, "the cell event stored")
    reader.close()
    assert cells and cells[0].data["wall_s"] >= 0.6 and cells[0].data["rss_peak_bytes"] > 0
    bad = kernel.run("%tracklab nonsense")  # IPython prints a UsageError, no traceback
    shown = "".join(m["content"].get("text", "") + m["content"].get("evalue", "")
                    for m in bad if m["msg_type"] in ("stream", "error"))
    assert "unknown form: %tracklab nonsense" in shown and "%tracklab status" in shown
    left = kernel.text("%unload_ext tracklab\nimport threading, time\n"
                       "def ours(): return sorted(t.name for t in threading.enumerate() "
                       "if t.name.startswith('tracklab'))\n"
                       "for _ in range(300):  # threads end within 30 s (a failing test)\n"
                       "    if not ours(): break\n"
                       "    time.sleep(0.1)\n"
                       "print(ours())")
    assert left.strip().endswith("[]"), left
    gone = kernel.run("%tracklab status")
    assert any("`%tracklab` not found" in m["content"].get("text", "")
               + m["content"].get("evalue", "")
               for m in gone if m["msg_type"] in ("stream", "error"))
    kernel.text("%reload_ext tracklab")
    assert "recorder" in kernel.text("%tracklab status")
