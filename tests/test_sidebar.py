"""The JupyterLab sidebar (labextension/, prebuilt into tracklab_jupyter/labextension): the
installed extension is listed enabled and OK, and in headless chromium under a non-root
base_url (as on JupyterHub) its panel shows the host, live values that change, and a card
for each fake H200."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyterlab_process import jupyterlab, open_side_panel

ROOT = Path(__file__).parent.parent
TOKEN = "sidebar-test-token"
BASE_URL = "/user/alice/"
PREBUILT = ROOT / "tracklab_jupyter" / "labextension"


def test_prebuilt_extension_is_in_the_tree():
    pkg = json.loads((PREBUILT / "package.json").read_text())
    assert pkg["name"] == "tracklab-jupyter"
    assert pkg["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert (PREBUILT / pkg["jupyterlab"]["_build"]["load"]).is_file()
    schema = json.loads((PREBUILT / "schemas" / "tracklab-jupyter" / "plugin.json").read_text())
    assert {"refreshInterval", "timeWindow", "metrics"} <= set(schema["properties"])


def test_labextension_list_shows_it_enabled_and_ok():
    r = subprocess.run([sys.executable, "-m", "jupyterlab.labextensions", "list"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "NO_COLOR": "1"})
    out = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)
    line = next((ln for ln in out.splitlines() if "tracklab-jupyter" in ln), None)
    assert line is not None, out
    assert "enabled" in line and "OK" in line, line
    assert "(python, tracklab-jupyter)" in line, line


@pytest.fixture
def lab_under_prefix(tmp_path):
    with jupyterlab(tmp_path, TOKEN, BASE_URL) as base:
        yield base, tmp_path


def test_sidebar_shows_live_data_under_a_base_url(lab_under_prefix, browser):
    base, tmp_path = lab_under_prefix
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/tracklab/" in r.url else None)
    page.goto(f"{base}lab?token={TOKEN}")
    tab = page.locator('.jp-SideBar.jp-mod-left [data-id="tracklab-monitor"]')
    tab.wait_for(timeout=60_000)
    tab.click()
    root = page.locator("#tracklab-monitor .tl-sideroot")
    try:
        page.locator("#tracklab-monitor .tl-sideroot[data-state=live]").wait_for(timeout=60_000)
        page.locator('#tracklab-monitor .tl-sideroot[data-transport="websocket"]').wait_for(
            timeout=30_000)
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise AssertionError("the sidebar never went live: " + root.inner_text()
                             + (tmp_path / "lab.log").read_text()[-2000:]) from None
    cpu = page.locator('#tracklab-monitor [data-metric="cpu.util_pct"]')
    gpu = page.locator('#tracklab-monitor [data-metric="gpu.1.util_pct"]')
    gpu_power = page.locator('#tracklab-monitor [data-metric="gpu.0.power_w"]')
    page.wait_for_function(
        "() => document.querySelector('#tracklab-monitor [data-metric=\"cpu.util_pct\"]')"
        "?.textContent.endsWith('%')", timeout=30_000)
    points_before = int(root.get_attribute("data-points") or 0)
    last_before = float(root.get_attribute("data-last-time") or 0)
    seen = {(gpu.inner_text(), gpu_power.inner_text())}
    for _ in range(12):  # about 6 s of the replayed trace
        time.sleep(0.5)
        seen.add((gpu.inner_text(), gpu_power.inner_text()))
    points_after = int(root.get_attribute("data-points") or 0)
    last_after = float(root.get_attribute("data-last-time") or 0)
    page.screenshot(path=str(tmp_path / "sidebar.png"))
    text = root.inner_text()
    assert points_after > points_before > 0
    assert last_after > last_before
    assert cpu.inner_text().strip().endswith("%")
    assert len(seen) >= 2, seen  # live values change
    cards = page.locator("#tracklab-monitor .tl-gpu")
    assert cards.count() == 2
    assert "NVIDIA H200" in cards.first.inner_text()
    assert page.locator("#tracklab-monitor canvas").count() >= 4
    # The host fact is this machine's name (the word "host" is always on the panel).
    host_fact = page.locator('#tracklab-monitor [data-field="summary"] [data-fact="host"]')
    assert host_fact.count() == 1
    assert host_fact.inner_text().strip() == socket.gethostname()
    assert re.search(r"recorder: ok", text), text
    assert "No runs yet" in text
    # everything went through the prefix: REST and the WebSocket
    assert requests and all(BASE_URL + "tracklab/" in u for u in requests), requests
    assert any("/tracklab/api/history" in u for u in requests)
    assert not errors, errors
    assert (tmp_path / "sidebar.png").stat().st_size > 10_000

    # hidden: paused (no socket, no polling); shown again: backfills the gap and goes live
    tab.click()
    page.locator("#tracklab-monitor .tl-sideroot[data-state=paused]").wait_for(
        state="attached", timeout=10_000)
    time.sleep(1.5)
    tab.click()
    page.locator('#tracklab-monitor .tl-sideroot[data-state=live][data-transport="websocket"]'
                 ).wait_for(timeout=30_000)
    assert sum("/tracklab/api/history" in u for u in requests) >= 2, requests

    # the command palette has both entries
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("TrackLab")
    items = page.locator(".lm-CommandPalette-item")
    items.first.wait_for(timeout=10_000)
    labels = items.all_inner_texts()
    assert any("TrackLab: Open monitor" in x for x in labels), labels
    assert any("TrackLab: Insert monitor cell" in x for x in labels), labels
    page.close()

    # a proxy that breaks WebSockets: the panel falls back to REST polling and stays live
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.route_web_socket(re.compile(r".*/tracklab/ws.*"), lambda ws: ws.close())
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}lab?token={TOKEN}")
    open_side_panel(page, "tracklab-monitor", "#tracklab-monitor .tl-sideroot")
    root = page.locator("#tracklab-monitor .tl-sideroot")
    page.locator('#tracklab-monitor .tl-sideroot[data-transport="polling"]').wait_for(
        timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#tracklab-monitor [data-metric=\"cpu.util_pct\"]')"
        "?.textContent.endsWith('%')", timeout=30_000)
    last_before = float(root.get_attribute("data-last-time") or 0)
    time.sleep(3)
    assert float(root.get_attribute("data-last-time") or 0) > last_before
    assert root.get_attribute("data-transport") == "polling"
    assert "REST polling" in root.inner_text()
    assert not errors, errors


def test_insert_monitor_cell_from_the_command_palette(lab_under_prefix, browser):
    base, tmp_path = lab_under_prefix
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('first')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "insert.ipynb")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{base}lab/tree/insert.ipynb?token={TOKEN}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    # The kernel connecting takes the focus back (and closes an open palette): wait for it.
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
        timeout=60_000)
    palette = page.locator(".lm-CommandPalette-input")
    item = page.locator(".lm-CommandPalette-item", has_text="Insert monitor cell").first
    for attempt in range(5):  # the notebook may still be settling: retry the whole gesture
        page.locator(".jp-Cell .jp-InputArea-editor").first.click()
        page.keyboard.press("Escape")  # command mode, first cell active
        page.keyboard.press("Control+Shift+C")
        try:
            palette.wait_for(state="visible", timeout=2_000)
            palette.fill("Insert monitor cell")
            item.wait_for(timeout=3_000)
            item.click()
            break
        except Exception:
            if attempt == 4:
                raise
            page.keyboard.press("Escape")
    cells = page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor")
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === 2",
        timeout=10_000)
    assert "print('first')" in cells.nth(0).inner_text()
    inserted = cells.nth(1).inner_text()
    assert "import tracklab" in inserted and "tracklab.widget()" in inserted, inserted
    page.close()


def test_diagnose_shows_the_doctors_findings_with_their_fixes(lab_under_prefix, browser):
    """The health line's Diagnose button runs the server's checks (health?full=1) and lists
    them in a dialog: the replayed H200s, the data dir, the running extension, the sampler."""
    base, tmp_path = lab_under_prefix
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "full=1" in r.url else None)
    page.goto(f"{base}lab?token={TOKEN}")
    open_side_panel(page, "tracklab-monitor", "#tracklab-monitor .tl-sideroot[data-state=live]")
    button = page.locator("#tracklab-monitor .tl-health button.tl-diagnose")
    button.click()
    dialog = page.locator(".jp-Dialog .tl-diagnosis")
    try:
        dialog.wait_for(timeout=30_000)
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise
    assert asked and asked[0].startswith(f"{base}tracklab/api/health?")
    sections = dialog.locator(".tl-diagnosis-section").all_inner_texts()
    assert [s.lower() for s in sections] == ["accelerators", "data dir", "jupyter", "sampler"]
    nvidia = dialog.locator('.tl-finding[data-check="nvidia"]')
    assert nvidia.get_attribute("data-status") == "ok"
    assert "2 NVIDIA devices (NVIDIA H200)" in nvidia.inner_text()
    ext = dialog.locator('.tl-finding[data-check="server extension"]')
    assert "running in this server" in ext.inner_text()
    # every warning or problem shows its fix, and its status in words beside the mark
    for item in dialog.locator('.tl-finding[data-status="warning"], '
                               '.tl-finding[data-status="problem"]').all():
        assert item.locator(".tl-finding-fix code").inner_text().strip()
        assert item.locator(".tl-finding-status").inner_text().lower() in ("warning", "problem")
    headline = dialog.locator(".tl-diagnosis-headline").inner_text()
    assert re.search(r"\d+ ok, \d+ warnings, \d+ problems", headline), headline
    page.screenshot(path=str(tmp_path / "diagnose.png"))
    page.locator(".jp-Dialog button", has_text="Close").click()
    dialog.wait_for(state="detached", timeout=10_000)
    assert button.is_enabled() and button.inner_text() == "Diagnose"
