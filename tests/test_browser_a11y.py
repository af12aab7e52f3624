"""Accessibility of the sidebar and the widget in JupyterLab (headless chromium): axe-core
(js/'s devDependency, injected into the page by this test only; it never ships) finds no
serious or critical violation in the sidebar (#tracklab-monitor, with cluster, kernel and
run rows) nor in the widget's output, in the light and the dark theme; the keyboard
reaches the node selector, a cluster row, a kernel row and a run row, and Enter opens a
run's details as a click does; the CPU and GPU cards have accessible names, and their
charts (canvases) a text alternative that names the values shown.

One JupyterLab for the module, configured with a one-worker Dask cluster (two nodes: the
selector and the cluster rows show) and with one finished run in its data dir."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import unavailable
from jupyterlab_process import (
    jupyterlab,
    open_side_panel,
    run_command,
    run_first_cell,
    screenshot_on_failure,
    write_monitor_notebook,
)

ROOT = Path(__file__).parent.parent
AXE = ROOT / "js" / "node_modules" / "axe-core" / "axe.min.js"
TOKEN = "a11y-test-token"
SIDE = "#tracklab-monitor"
SIDEROOT = f"{SIDE} .tl-sideroot"
WIDGET = ".jp-OutputArea-output .tl-root"
RUN_NAME = "a11y-run"

# A finished run in the lab's data dir (as tests/test_sidebar_runs.py's scripts make them).
TRAIN = """
import sys
import tracklab
run = tracklab.init(project="a11y", name=sys.argv[1], config={"lr": 0.01})
for i in range(5):
    run.log({"loss": 1 / (i + 1)})
print(run.id, flush=True)
run.finish()
"""

# axe-core on one element; the serious and critical violations, each with its nodes.
# JupyterLab's <body> is 0 px high (its shell is positioned absolutely) and hides its
# overflow: axe would take every text in normal flow for clipped and check none of their
# contrasts. The body gets the viewport's height while axe runs.
RUN_AXE = """async (sel) => {
  const height = document.body.style.height;
  document.body.style.height = '100vh';
  let r;
  try {
    r = await axe.run(document.querySelector(sel), {resultTypes: ['violations']});
  } finally {
    document.body.style.height = height;
  }
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 6).map(n => n.target.join(' ') + ' :: '
                                               + n.failureSummary.replace(/\\s+/g, ' '))}));
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    try:
        import distributed
    except ImportError:
        distributed = None
        unavailable("distributed is not installed (pip install -e '.[test]' installs it)")
    if not AXE.exists():
        unavailable(f"{AXE} missing (npm ci --prefix js installs axe-core)")
    tmp_path = tmp_path_factory.mktemp("a11y")
    write_monitor_notebook(tmp_path / "monitor.ipynb")
    env = {**os.environ, "TRACKLAB_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c", TRAIN, RUN_NAME], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = done.stdout.strip()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None,
                                  worker_dashboard_address=None) as cluster:
        address = cluster.scheduler_address.removeprefix("tcp://")
        with jupyterlab(tmp_path, TOKEN, extra_args=[
                "--LabApp.expose_app_in_browser=True", f"--TrackLab.cluster=dask://{address}",
                "--TrackLab.cluster_per_worker=True"]) as base:
            yield base, tmp_path, run_id


def start(browser, base: str):
    """The monitor notebook with its widget live and the sidebar open and live."""
    # tall enough for the whole sidebar: axe checks the contrast of what is on screen
    page, errors = run_first_cell(browser, f"{base}lab/tree/monitor.ipynb?token={TOKEN}",
                                  height=2400)
    page.locator(f"{WIDGET}[data-state=live]").wait_for(timeout=60_000)
    open_side_panel(page, SIDE[1:], f"{SIDEROOT}[data-state=live]")
    page.locator(f"{SIDE} .tl-cluster .tl-node").nth(1).wait_for(timeout=30_000)
    page.locator(f"{SIDE} .tl-kernel[role=button]").first.wait_for(timeout=30_000)
    page.locator(f"{SIDE} .tl-run").first.wait_for(timeout=30_000)
    return page, errors


def axe(page, sel: str) -> list[dict]:
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(RUN_AXE, sel)


def test_axe_finds_no_serious_violation_light_and_dark(lab, browser):
    base, tmp_path, _ = lab
    page, errors = start(browser, base)
    found: dict[str, list[dict]] = {}
    with screenshot_on_failure(page, tmp_path / "axe-failed.png"):
        for theme in ("JupyterLab Light", "JupyterLab Dark"):
            run_command(page, "apputils:change-theme", {"theme": theme})
            page.locator(f'body[data-jp-theme-name="{theme}"]').wait_for(state="attached",
                                                                         timeout=30_000)
            time.sleep(1.5)  # the charts restyled, values drawn again
            for where, sel in (("sidebar", SIDE), ("widget", WIDGET)):
                found[f"{where}, {theme}"] = axe(page, sel)
        run_command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})
    bad = {k: v for k, v in found.items() if v}
    assert not bad, "\n".join(
        f"{k}: {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"])
        for k, vs in bad.items() for v in vs)
    assert not errors, errors


# What has the keyboard focus: which kind of row (or its class), whether the focus outline
# shows, and which run a run row is.
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || !e.closest('#tracklab-monitor')) return {kind: 'outside: ' + (e && e.tagName)};
  const kind = e.matches('.tl-node-select') ? 'selector' : e.matches('.tl-node') ? 'cluster'
    : e.matches('.tl-kernel') ? 'kernel' : e.matches('.tl-run-head') ? 'run'
    : e.tagName + '.' + e.className;
  const s = getComputedStyle(e);
  return {kind, outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0,
          run: e.closest('.tl-run')?.dataset.runId || null};
}"""


def test_keyboard_reaches_the_rows_and_enter_opens_a_run(lab, browser):
    base, tmp_path, run_id = lab
    page, errors = start(browser, base)
    with screenshot_on_failure(page, tmp_path / "keyboard-failed.png"):
        # the node selector takes the focus; Tab goes on through the cluster rows, the
        # kernel rows, to the runs: each row with a visible focus outline
        # (the notebook may still move the focus to its new cell: focused until it stays)
        select = page.locator(f"{SIDE} .tl-node-select")
        for _ in range(20):
            select.focus()
            page.wait_for_timeout(250)
            if page.evaluate(FOCUSED)["kind"] == "selector":
                break
        seen = [page.evaluate(FOCUSED)]
        while seen[-1]["kind"] != "run" and len(seen) < 60:
            page.keyboard.press("Tab")
            seen.append(page.evaluate(FOCUSED))
        kinds = [f["kind"] for f in seen]
        assert kinds[0] == "selector", kinds
        assert not [k for k in kinds if k.startswith("outside")], kinds
        rows = [k for k in kinds if k in ("cluster", "kernel", "run")]
        assert rows and rows[0] == "cluster" and "kernel" in rows and rows[-1] == "run", kinds
        assert rows.index("kernel") > rows.index("cluster"), kinds
        assert all(f["outline"] for f in seen if f["kind"] in ("cluster", "kernel", "run")), seen
        assert seen[-1]["run"] == run_id

        # Enter opens the run's details as a click does, and closes them again
        row = page.locator(f'{SIDE} .tl-run[data-run-id="{run_id}"]')
        head = row.locator(".tl-run-head")
        assert head.get_attribute("aria-expanded") == "false"
        page.keyboard.press("Enter")
        row.locator('dd[data-fact="lr"]').wait_for(timeout=10_000)
        assert row.locator('dd[data-fact="lr"]').inner_text() == "0.01"
        assert head.get_attribute("aria-expanded") == "true"
        page.keyboard.press("Enter")
        row.locator("[data-field=detail]").wait_for(state="hidden", timeout=5_000)
        assert head.get_attribute("aria-expanded") == "false"
        head.click()  # the click opens the same details
        row.locator('dd[data-fact="lr"]').wait_for(timeout=10_000)
    assert not errors, errors


# For 7 s, every 100 ms: a card's headline value and its chart's text alternative.
WATCH = """async ([card, metric]) => {
  const out = [];
  for (let i = 0; i < 70; i++) {
    const c = document.querySelector(card);
    out.push([c.querySelector(`[data-metric="${metric}"]`).textContent,
              c.querySelector('.tl-plot[role=img]').getAttribute('aria-label')]);
    await new Promise(r => setTimeout(r, 100));
  }
  return out;
}"""
LABEL = re.compile(r"^(?P<what>.+), last \d+ (second|minute)s?: now (?P<now>[\d.]+ %), "
                   r"max (?P<max>[\d.]+ %)$")


def follows_headline(page, card: str, metric: str, what: str) -> None:
    """The utilisation chart of ``card`` is labelled ``what`` and names the values its
    headline showed; its label changes every few seconds at most, not every frame."""
    seen = page.evaluate(WATCH, [card, metric])
    # each new label names the value the headline shows as it changes (the same redraw
    # writes both; a poll every 100 ms may see the headline one sample later)
    judged = [(label, {v for v, _ in seen[max(0, i - 1):i + 2]})
              for i, (_, label) in enumerate(seen) if i and label != seen[i - 1][1]]
    # none changed in 7 s: the values held still, the label names one the headline showed
    judged = judged or [(seen[-1][1], {v for v, _ in seen})]
    for label, shown in judged:
        m = LABEL.match(label or "")
        assert m, (label, seen)
        assert m["what"] == what, label
        assert m["now"] in shown, (label, shown, seen)
        assert float(m["max"].split()[0]) >= float(m["now"].split()[0]), label
    changes = sum(1 for a, b in itertools.pairwise(seen) if a[1] != b[1])
    assert changes <= 4, seen  # a sample every 0.5 s: every frame would be about 14


def test_cards_are_named_and_charts_name_their_values(lab, browser):
    base, tmp_path, _ = lab
    page, errors = start(browser, base)
    with screenshot_on_failure(page, tmp_path / "names-failed.png"):
        widget_cpu = f"{WIDGET} .tl-panel.tl-cpu"
        gpu0 = f'{WIDGET} .tl-panel[data-gpu="0"]'
        page.wait_for_function(
            "sel => / now /.test(document.querySelector(sel + ' .tl-plot[role=img]')"
            "?.getAttribute('aria-label'))", arg=gpu0, timeout=20_000)
        cpu = page.locator(widget_cpu)
        assert cpu.get_attribute("role") == "group"
        assert re.fullmatch(r"CPU .+ · \d+ cores", cpu.get_attribute("aria-label") or ""), \
            cpu.get_attribute("aria-label")  # title and subtitle: "CPU AMD EPYC · 2 cores"
        card = page.locator(gpu0)
        assert card.get_attribute("role") == "group"
        assert card.get_attribute("aria-label") == "GPU 0 NVIDIA H200"
        # Playwright's accessibility tree: the card by its name, its charts as images
        assert page.locator(WIDGET).get_by_role("group", name="GPU 0 NVIDIA H200").count() == 1
        follows_headline(page, widget_cpu, "cpu.util_pct", "CPU utilisation")
        follows_headline(page, gpu0, "gpu.0.util_pct", "GPU 0 utilisation")
        # the memory chart: the used memory now and at most, and the total
        mem = card.locator(".tl-plot[role=img]").nth(1).get_attribute("aria-label") or ""
        total = card.locator('.tl-legend-item[data-series="gpu.0.mem_total_bytes"] '
                             ".tl-legend-value").inner_text()
        assert re.fullmatch(r"GPU 0 memory, last \d+ (second|minute)s?: used now [\d.]+ \w+, "
                            rf"max [\d.]+ \w+; total {re.escape(total)}", mem), (mem, total)
        # the sidebar's cards too
        side_cpu = page.locator(SIDE).get_by_role("group", name="CPU", exact=True)
        assert side_cpu.count() == 1  # no subtitle in the sidebar's narrow layout
        assert side_cpu.get_by_role("img").first.get_attribute("aria-label").startswith(
            "CPU utilisation, last ")
    assert not errors, errors
