"""JupyterLab in headless chromium: a notebook cell shows one run (tracklab.widget(run=...))
while another process logs to it. The run's chart draws and grows; the state badge turns to
finished when the script ends."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest
from jupyterlab_process import SHIM, jupyterlab, run_first_cell

TOKEN = "browser-run-token"

SCRIPT = textwrap.dedent("""
    import math, sys, time
    import tracklab
    run = tracklab.init(project="browser", name="sine", system_monitor=True)
    print(run.id, flush=True)
    step = 0
    while True:  # until the test writes a line to stdin (checked between steps)
        run.log({"loss": 1.0 + math.sin(step / 5.0), "lr": 1e-3})
        step += 1
        time.sleep(0.1)
        import select
        if select.select([sys.stdin], [], [], 0)[0]:
            break
    run.finish()
""")


@pytest.fixture
def lab_with_run(tmp_path):
    with jupyterlab(tmp_path, TOKEN) as base:
        env = {**os.environ, "TRACKLAB_DATA_DIR": str(tmp_path / "data"),
               "TRACKLAB_INTERVAL": "0.5", "TRACKLAB_FAKE_NVML_GPUS": "2",
               "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")])}
        script = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            run_id = script.stdout.readline().strip()
            assert run_id, "the script printed no run id"
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell(
                f"import tracklab\ntracklab.widget(run={run_id!r})")]
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                         "language": "python"}
            nbformat.write(nb, tmp_path / "run.ipynb")
            yield base.rstrip("/"), tmp_path, script
        finally:
            if script.poll() is None:
                script.kill()
            script.wait(10)


def _painted(page, selector: str) -> int:
    """Non-transparent pixels in the first canvas under selector."""
    return page.evaluate("""(sel) => {
        const c = document.querySelector(sel + ' canvas');
        if (!c || !c.width) return 0;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
    }""", selector)


def test_run_widget_follows_a_logging_script_in_jupyterlab(lab_with_run, browser):
    base, tmp_path, script = lab_with_run
    page, errors = run_first_cell(browser, f"{base}/lab/tree/run.ipynb?token={TOKEN}")
    root = page.locator(".tl-root[data-run-state=running]")
    try:
        root.wait_for(timeout=30_000)
        loss = root.locator(".tl-metric", has=page.locator(".tl-panel-title", has_text="loss"))
        loss.wait_for(timeout=10_000)
        page.wait_for_function(
            "+document.querySelector('.tl-root').dataset.runPoints > 10", timeout=10_000)
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
        raise AssertionError("the run view never showed the run's metrics; cell output:\n"
                             + page.locator(".jp-OutputArea").first.inner_text()) from None
    assert root.locator(".tl-run-name").inner_text() == "sine"
    assert root.locator(".tl-run-project").inner_text() == "browser"
    assert root.locator(".tl-run-state").inner_text() == "running"
    assert root.locator(".tl-run-duration").inner_text().startswith("00:00:")
    assert root.locator(".tl-metric .tl-panel-title").all_text_contents() == ["loss", "lr"]
    assert root.locator('.tl-metric [data-metric="lr"]').inner_text() == "0.001"

    points = int(root.get_attribute("data-run-points"))
    time.sleep(1.5)  # about 15 more steps
    assert int(root.get_attribute("data-run-points")) > points
    assert _painted(page, ".tl-metric .tl-plot") > 300  # the loss line
    assert root.locator(".tl-proc").is_visible()  # the script's process tree
    page.wait_for_function("""() => [...document.querySelectorAll('.tl-proc .tl-legend-value')]
                                     .every((e) => e.textContent !== '–')""", timeout=10_000)
    assert root.locator(".tl-cpu").is_visible()  # the host panels, from the run's start
    assert root.locator(".tl-gpu").count() == 2
    page.screenshot(path=str(tmp_path / "run-widget.png"), full_page=True)

    script.stdin.write("finish\n")
    script.stdin.flush()
    assert script.wait(20) == 0
    page.locator(".tl-root[data-run-state=finished]").wait_for(timeout=10_000)
    assert page.locator(".tl-run-state").inner_text() == "finished"
    duration = page.locator(".tl-run-duration").inner_text()
    time.sleep(1.2)
    assert page.locator(".tl-run-duration").inner_text() == duration  # stopped counting
    assert not errors, errors
