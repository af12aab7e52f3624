"""JupyterLab in headless chromium: a notebook runs tracklab.widget() and the charts draw
live data (the recorded H200 trace replayed through the fake NVML) that changes."""

from __future__ import annotations

import json
import time
import urllib.request

import nbformat
import pytest
from jupyterlab_process import jupyterlab, run_first_cell

TOKEN = "browser-test-token"


@pytest.fixture
def lab(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import tracklab\ntracklab.widget(window='2m')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "monitor.ipynb")
    with jupyterlab(tmp_path, TOKEN) as base:
        yield base.rstrip("/"), tmp_path


def test_widget_draws_live_data_in_jupyterlab(lab, browser):
    base, tmp_path = lab
    page, errors = run_first_cell(browser, f"{base}/lab/tree/monitor.ipynb?token={TOKEN}")
    root = page.locator(".tl-root[data-state=live]")
    try:
        root.wait_for(timeout=60_000)
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
        raise AssertionError("the widget never went live; cell output:\n"
                             + page.locator(".jp-OutputArea").first.inner_text()) from None
    cpu = page.locator('[data-metric="cpu.util_pct"]').first
    gpu = page.locator('[data-metric="gpu.1.util_pct"]').first
    gpu.wait_for(timeout=30_000)
    points_before = int(root.get_attribute("data-points") or 0)
    last_before = float(root.get_attribute("data-last-time") or 0)
    gpu_values = {gpu.inner_text()}
    for _ in range(16):  # about 8 s of the trace: utilisation moves
        time.sleep(0.5)
        gpu_values.add(gpu.inner_text())
    points_after = int(root.get_attribute("data-points") or 0)
    last_after = float(root.get_attribute("data-last-time") or 0)
    page.screenshot(path=str(tmp_path / "widget-in-jupyterlab.png"), full_page=True)
    assert points_after > points_before > 0
    assert last_after > last_before
    assert cpu.inner_text().strip().endswith("%")
    assert "NVIDIA H200" in page.locator(".tl-root").inner_text()
    assert page.locator(".tl-root canvas").count() >= 4  # the uPlot charts drew
    assert len(gpu_values) >= 2, gpu_values  # the headline follows the trace
    assert not errors, errors
    status = json.loads(urllib_get(f"{base}/tracklab/api/health?token={TOKEN}"))
    assert status["role"] == "recorder"  # the server records; the kernel read its store


def urllib_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()
