"""JupyterLab in headless chromium: a notebook cell starts a Dask ``LocalCluster`` with two
worker processes, attaches it (``tracklab.connect_cluster(client, per_worker=True)``) and
shows ``tracklab.widget(cluster=True)``: three rows come up (this kernel's host first,
then the two workers), their sparklines grow, and a click on a row shows that node's detail.

With TRACKLAB_UPDATE_DOC_IMAGES=1 the picture is copied to docs/images/widget-cluster.png."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import nbformat
import pytest
from jupyterlab_process import dismiss_news, jupyterlab, run_first_cell

pytestmark = pytest.mark.usefixtures("distributed_installed")

ROOT = Path(__file__).parent.parent
TOKEN = "browser-cluster-token"

CELL = """\
import json, os
import distributed, tracklab
cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", worker_dashboard_address=None)
client = distributed.Client(cluster)
pids = [w.process.pid for w in cluster.workers.values()] + list(client.run(os.getpid).values())
open("pids.json", "w").write(json.dumps(pids))
tracklab.connect_cluster(client, per_worker=True, node_timeout=3)
tracklab.widget(cluster=True, window="1m")"""

CLOSE = "client.close(); cluster.close(); print('closed')"


def _kill_leftovers(path: Path) -> None:
    """The cluster's processes, should the kernel have gone without closing them."""
    if not path.exists():
        return
    for pid in json.loads(path.read_text()):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_cluster_widget_in_jupyterlab(tmp_path, browser):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL), nbformat.v4.new_code_cell(CLOSE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "cluster.ipynb")
    try:
        with jupyterlab(tmp_path, TOKEN) as base:
            _check_in_browser(base.rstrip("/"), tmp_path, browser)
    finally:
        _kill_leftovers(tmp_path / "pids.json")


def _spark(page, node: str, kind: str) -> int:
    return int(page.locator(f'.tlc-node[data-node="{node}"] [data-spark="{kind}"]')
               .get_attribute("data-points") or 0)


def _check_in_browser(base: str, tmp_path: Path, browser) -> None:
    page, errors = run_first_cell(browser, f"{base}/lab/tree/cluster.ipynb?token={TOKEN}",
                                  1300, 900)
    root = page.locator(".tlc-root")
    try:
        page.locator(".tlc-root[data-state=live]").wait_for(timeout=40_000)
        page.wait_for_function("""() => {
            const rows = [...document.querySelectorAll('.tlc-node')];
            return rows.length === 3 && rows.every((r) => r.dataset.status === 'up'
                && +r.querySelector('[data-spark=cpu]').dataset.points >= 2);
        }""", timeout=20_000)
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
        raise AssertionError("the cluster view never showed three nodes up; cell output:\n"
                             + page.locator(".jp-OutputArea").first.inner_text()) from None

    nodes = root.locator(".tlc-node").evaluate_all("rs => rs.map((r) => r.dataset.node)")
    local = nodes[0]
    assert nodes[1:] == [f"{local}-w0", f"{local}-w1"], nodes  # this host first
    roles = root.locator(".tlc-node .tlc-role").all_inner_texts()
    assert roles == ["local", "worker", "worker"]
    assert root.locator(".tlc-where").inner_text().startswith("dask · tcp://127.0.0.1:")
    assert root.locator(".tlc-totals").inner_text().startswith("3/3 up")
    assert not root.locator(".tlc-hint").is_visible()
    assert "live · dask" in root.locator(".tlc-status").inner_text()
    # every row has values; the fake NVML gives each node two GPUs
    for node in nodes:
        values = root.locator(f'.tlc-node[data-node="{node}"] .tlc-value').all_inner_texts()
        assert all(v.endswith("%") for v in values), (node, values)

    # the sparklines grow, for the workers as for this host
    before = {n: _spark(page, n, "cpu") for n in nodes}
    time.sleep(2.5)  # about 5 samples at 0.5 s
    after = {n: _spark(page, n, "cpu") for n in nodes}
    assert all(after[n] > before[n] for n in nodes), (before, after)
    assert _spark(page, nodes[1], "gpu") > 0 and _spark(page, nodes[1], "mem") > 0

    # a click on a worker's row shows its detail
    detail = root.locator(".tlc-detail")
    assert detail.get_attribute("data-node") == local
    root.locator(f'.tlc-node[data-node="{nodes[2]}"]').click()
    page.wait_for_function(
        f"document.querySelector('.tlc-detail').dataset.node === {json.dumps(nodes[2])}")
    assert root.locator(".tlc-node.tlc-selected").get_attribute("data-node") == nodes[2]
    assert root.locator(".tlc-select").input_value() == nodes[2]
    assert detail.locator('[data-key="cores"] .tlc-v').inner_text() == str(os.cpu_count())
    assert " / " in detail.locator('[data-key="memory"] .tlc-v').inner_text()
    assert detail.locator('[data-key="GPUs"] .tlc-v').inner_text().startswith("2 · ")
    assert detail.locator(".tlc-detail-title").inner_text().startswith("worker · tcp://")
    page.wait_for_function("""() => [...document.querySelectorAll('.tlc-chart path')]
                                     .every((p) => (p.getAttribute('d') || '').length > 20)""",
                           timeout=5_000)

    if os.environ.get("TRACKLAB_UPDATE_DOC_IMAGES"):
        time.sleep(8)  # longer lines for the picture
    dismiss_news(page)
    cell = page.locator(".jp-Cell").first
    cell.screenshot(path=str(tmp_path / "widget-cluster.png"))
    assert (tmp_path / "widget-cluster.png").stat().st_size > 5_000
    if os.environ.get("TRACKLAB_UPDATE_DOC_IMAGES"):
        shutil.copy(tmp_path / "widget-cluster.png", ROOT / "docs" / "images")

    # close the cluster from the notebook (its worker processes end with it)
    page.locator(".jp-Cell .jp-InputArea-editor").nth(1).click()
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-Cell").nth(1).get_by_text("closed").wait_for(timeout=20_000)
    assert not errors, errors
