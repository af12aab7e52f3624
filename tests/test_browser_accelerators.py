"""Every vendor in the browser: JupyterLab in headless chromium on a host with one NVIDIA
H200 (fake NVML, the recorded busy readings), one AMD Radeon AI PRO R9700 (fake amdsmi
replaying its amd-smi recording) and one TPU v6e chip (the recorded PCI tree, and a real
gRPC runtime in this process replaying tpu-info's output). The notebook widget and the
sidebar draw the same accelerator card for each, with the vendor, the device's live values,
and nothing the device does not report (no power on the TPU, no temperature on the R9700).

With TRACKLAB_UPDATE_DOC_IMAGES=1 the picture is copied to docs/images/accelerators.png."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from jupyterlab_process import dismiss_news, jupyterlab, run_first_cell, widen_sidebar

ROOT = Path(__file__).parent.parent
TOKEN = "accelerators-test-token"
SIDE = "#tracklab-monitor"
# gpu.0 is NVIDIA's (NVML comes first), gpu.1 the AMD GPU, tpu.0 the TPU chip.
CARDS = {"gpu.0": ("nvidia", "NVIDIA"), "gpu.1": ("amd", "AMD"), "tpu.0": ("google", "Google")}


@pytest.fixture
def mixed_lab(tmp_path):
    from fake_amdsmi import shim_env
    from fake_tpu_runtime import FakeTpuRuntime, write_pci_tree

    host = tmp_path / "host"
    shutil.copytree(ROOT / "tests" / "fixtures" / "amdgpu-sysfs", host)
    write_pci_tree(host, chips=1, generation="v6e")
    runtime = FakeTpuRuntime("v6e-4-static").start()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import tracklab\ntracklab.widget(window='2m')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "devices.ipynb")
    env = {**shim_env(gpus=1, mode="r9700"), "TRACKLAB_HOST_ROOT": str(host),
           "TRACKLAB_FAKE_NVML_GPUS": "1", "TRACKLAB_FAKE_NVML_MODE": "busy",
           "TRACKLAB_TPU_METRICS_ADDR": runtime.address}
    try:
        with jupyterlab(tmp_path, TOKEN, extra_env=env) as base:
            yield base.rstrip("/"), tmp_path
    finally:
        runtime.stop()


def card(scope: str, device: str) -> str:
    return f'{scope} .tl-accel[data-device="{device}"]'


def check_cards(page, scope: str) -> dict[str, str]:
    """Each device's card, vendor tag and live headline; returns the cards' texts."""
    texts = {}
    for device, (vendor, label) in CARDS.items():
        sel = card(scope, device)
        page.locator(f'{sel}[data-vendor="{vendor}"]').wait_for(timeout=30_000)
        assert page.locator(f"{sel} .tl-vendor").inner_text() == label
        util = page.locator(f'{sel} [data-metric="{device}.util_pct"]')
        page.wait_for_function(
            "(s) => document.querySelector(s)?.textContent.endsWith('%')",
            arg=f'{sel} [data-metric="{device}.util_pct"]', timeout=30_000)
        assert re.fullmatch(r"\d+(\.\d+)? %", util.inner_text().strip()), util.inner_text()
        texts[device] = page.locator(sel).inner_text()
    # what each device reports, and nothing else
    amd, tpu = card(scope, "gpu.1"), card(scope, "tpu.0")
    assert "AMD Radeon AI PRO R9700" in texts["gpu.1"]
    assert page.locator(f'{amd} [data-metric="gpu.1.mem_used_bytes"]').inner_text().endswith(
        "GiB")
    assert page.locator(f'{amd} [data-metric="gpu.1.temp_c"]').is_hidden()  # not recorded
    assert "TPU v6e" in texts["tpu.0"] and "duty cycle" in texts["tpu.0"]
    assert page.locator(f'{tpu} [data-metric="tpu.0.mem_used_bytes"]').inner_text().endswith(
        "GiB")
    assert page.locator(f'{tpu} [data-metric="tpu.0.power_w"]').is_hidden()  # no such metric
    assert page.locator(f"{tpu} .tl-chart").count() == 2
    assert "NVIDIA H200" in texts["gpu.0"]
    return texts


def test_widget_and_sidebar_draw_every_vendor(mixed_lab, browser):
    base, tmp_path = mixed_lab
    page, errors = run_first_cell(browser, f"{base}/lab/tree/devices.ipynb?token={TOKEN}",
                                  width=1600, height=1100)
    widget = ".tl-root"
    try:
        page.locator(f"{widget}[data-state=live]").wait_for(timeout=60_000)
        check_cards(page, widget)
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
        raise
    points = int(page.locator(widget).get_attribute("data-points") or 0)

    page.locator(f'.jp-SideBar.jp-mod-left [data-id="{SIDE[1:]}"]').click()
    side = f"{SIDE} .tl-sideroot"
    try:
        page.locator(f'{side}[data-state=live]').wait_for(timeout=60_000)
        check_cards(page, side)
    except Exception:
        page.screenshot(path=str(tmp_path / "failed-sidebar.png"), full_page=True)
        raise
    facts = page.locator(f'{SIDE} [data-fact="accelerators"]').inner_text()
    assert facts == "1 × NVIDIA H200, 1 × AMD Radeon AI PRO R9700, 1 × TPU v6e", facts
    # both stay live: the widget's points keep growing while the sidebar streams too
    time.sleep(3)
    assert int(page.locator(widget).get_attribute("data-points") or 0) > points
    assert page.locator(f"{SIDE} .tl-accel canvas").count() >= 4
    assert not errors, errors

    widen_sidebar(page, 200)
    if os.environ.get("TRACKLAB_UPDATE_DOC_IMAGES"):
        time.sleep(8)  # longer lines for the picture
    dismiss_news(page)
    page.screenshot(path=str(tmp_path / "accelerators.png"))
    assert (tmp_path / "accelerators.png").stat().st_size > 20_000
    if os.environ.get("TRACKLAB_UPDATE_DOC_IMAGES"):
        shutil.copy(tmp_path / "accelerators.png", ROOT / "docs" / "images")
