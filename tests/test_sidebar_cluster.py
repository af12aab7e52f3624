"""The JupyterLab sidebar's cluster section (docs/CLUSTER.md), end to end: a real Dask
``LocalCluster`` with three worker processes, monitored by a real JupyterLab configured with
``--TrackLab.cluster=dask://...`` in test mode (each worker its own node), shown in headless
chromium: four nodes up with growing sparklines and values, a row click shows that
node in the charts, a worker killed with SIGKILL turns down (and back up once its
nanny restarted it), a worker stopped with SIGSTOP stays down until SIGCONT, and with
the WebSocket broken by a proxy the rows still follow by REST polling."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
from conftest import optional_import
from jupyterlab_process import (
    break_websocket,
    jupyterlab,
    new_page,
    record_requests,
    screenshot_on_failure,
    widen_sidebar,
)

distributed = optional_import("distributed")
pytestmark = pytest.mark.usefixtures("distributed_installed")

ROOT = Path(__file__).parent.parent
TOKEN = "sidebar-cluster-token"
SIDE = "#tracklab-monitor"
SECTION = f"{SIDE} .tl-cluster"
WORKERS = 3


def api(base: str, path: str):
    req = urllib.request.Request(f"{base}tracklab/api/{path}",
                                 headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def row(node: str) -> str:
    return f'{SECTION} .tl-node[data-node="{node}"]'


def points(page, node: str, kind: str) -> int:
    return int(page.locator(f'{row(node)} [data-spark="{kind}"]').get_attribute("data-points")
               or 0)


def open_sidebar(page, base: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{base}lab?token={TOKEN}")
    tab = page.locator(f'.jp-SideBar.jp-mod-left [data-id="{SIDE[1:]}"]')
    tab.wait_for(timeout=60_000)
    # the restored layout may open it a moment later: a click then would close it again
    for _ in range(4):
        try:
            page.locator(SIDE).wait_for(state="visible", timeout=3_000)
            return
        except PlaywrightTimeout:
            tab.click()
    page.locator(SIDE).wait_for(state="visible", timeout=3_000)



def test_cluster_nodes_in_the_sidebar_live(tmp_path, browser):
    with ExitStack() as stack:
        cluster = stack.enter_context(distributed.LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None,
            worker_dashboard_address=None))
        client = stack.enter_context(distributed.Client(cluster))
        address = cluster.scheduler_address.removeprefix("tcp://")
        base = stack.enter_context(jupyterlab(tmp_path, TOKEN, extra_args=[
            f"--TrackLab.cluster=dask://{address}", "--TrackLab.cluster_per_worker=True",
            "--TrackLab.cluster_node_timeout=3"]))

        # the server's own view first: who the nodes are, which pid each worker has
        deadline = time.monotonic() + 30
        while True:
            info = api(base, "cluster/info")
            if info["totals"]["up"] == WORKERS + 1:
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.3)
        local = next(n["node"] for n in info["nodes"] if n["role"] == "local")
        workers = {n["address"]: n["node"] for n in info["nodes"] if n["role"] == "worker"}
        assert len(workers) == WORKERS
        pids = client.run(os.getpid)
        victim_address, shown_address, hung_address = sorted(workers)
        victim, shown, hung = (workers[a] for a in (victim_address, shown_address, hung_address))

        def busy(seconds: float) -> int:  # some load for the sparklines to show
            end, n = time.monotonic() + seconds, 0
            while time.monotonic() < end:
                n += 1
            return n

        load = client.submit(busy, 6, workers=[shown_address], pure=False)

        errors: list[str] = []
        page = new_page(browser, errors, height=1100)
        requests = record_requests(page, "/tracklab/api/")
        sent: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda f: sent.append(str(f))))
        open_sidebar(page, base)
        with screenshot_on_failure(page, tmp_path / "failed.png"):
            page.locator(f'{SECTION}[data-mode="cluster"][data-nodes="4"]').wait_for(
                timeout=60_000)
            page.locator(f'{SIDE} .tl-sideroot[data-transport="websocket"]').wait_for(
                timeout=30_000)

        # header: provider and address, totals and use
        section = page.locator(SECTION)
        assert section.locator("[data-field=cluster-where]").inner_text() == \
            f"dask · tcp://{address}"
        totals = section.locator("[data-field=cluster-totals]").inner_text()
        assert totals.startswith("4 / 4 nodes up"), totals
        assert "cores" in totals and "GPUs" in totals, totals  # this host's two fake H200s
        use = section.locator("[data-field=cluster-use]").inner_text()
        assert re.search(r"CPU [\d.]+ of \d+ cores", use) and "GPU" in use, use

        # one row per node, this host first, all up; the selector lists every node
        names = [e.get_attribute("data-node") for e in page.locator(f"{SECTION} .tl-node").all()]
        assert names[0] == local and sorted(names[1:]) == sorted(workers.values()), names
        for name in names:
            assert page.locator(row(name)).get_attribute("data-status") == "up"
            assert page.locator(f"{row(name)} [data-field=status]").inner_text() == "up"
        assert page.locator(f"{row(local)} [data-field=role]").inner_text() == "this host"
        options = page.locator(f"{SIDE} .tl-node-select option").all_inner_texts()
        assert sorted(options) == sorted(names), options

        # sparklines: backfilled, then growing with every cluster_metrics frame
        page.wait_for_function(
            f"() => [...document.querySelectorAll('{SECTION} .tl-node')].every(r => "
            "r.querySelector('[data-spark=cpu] [data-field=value]').textContent.endsWith('%'))",
            timeout=15_000)
        before = {n: points(page, n, "cpu") for n in names}
        gpu_before = points(page, local, "gpu")
        time.sleep(2)
        for n in names:
            assert points(page, n, "cpu") > before[n] > 0, (n, before)
            assert points(page, n, "mem") > 0
            for kind in ("cpu", "mem"):
                value = page.locator(f'{row(n)} [data-spark="{kind}"] [data-field=value]')
                assert re.fullmatch(r"[\d.]+ %", value.inner_text()), value.inner_text()
            assert page.locator(f'{row(n)} [data-spark="cpu"] path').get_attribute("d")
        # GPUs: this host's mean utilisation; workers without GPUs keep the column empty
        assert points(page, local, "gpu") > gpu_before > 0
        assert "tl-node-spark-none" in (page.locator(
            f'{row(shown)} [data-spark="gpu"]').get_attribute("class") or "")

        # a row click shows that node in the selector and the charts
        page.locator(f"{row(shown)} .tl-node-name").click()
        page.locator(f'{row(shown)}.tl-node-selected').wait_for(timeout=5_000)
        assert page.locator(f"{SIDE} .tl-node-select").input_value() == shown
        page.locator(f'{SIDE} .tl-status:text-is("live · {shown}")').wait_for(timeout=15_000)
        assert shown in page.locator(f'{SIDE} dd[data-fact="host"]').inner_text()
        cpu = page.locator(f'{SIDE} .tl-body [data-metric="cpu.util_pct"]')
        page.wait_for_function(
            f"() => document.querySelector('{SIDE} .tl-body [data-metric=\"cpu.util_pct\"]')"
            "?.textContent.endsWith('%')", timeout=15_000)
        root = page.locator(f"{SIDE} .tl-sideroot")
        charted = int(root.get_attribute("data-points") or 0)
        time.sleep(1.5)
        assert int(root.get_attribute("data-points") or 0) > charted > 0
        assert cpu.inner_text().endswith("%")
        assert page.locator(f"{SIDE} .tl-gpu").count() == 0  # a worker without GPUs
        page.locator(f"{row(local)} .tl-node-name").click()
        page.locator(f'{SIDE} .tl-status:text-is("live · {local}")').wait_for(timeout=15_000)
        page.locator(f"{SIDE} .tl-gpu").first.wait_for(timeout=10_000)

        # SIGKILL one worker and SIGSTOP another. The killed one turns down, then its
        # nanny restarts it under the same name (up again, often within a second or
        # two: every status its row takes is recorded). The stopped one hangs: down after
        # the node timeout, dimmed, with the reason, until SIGCONT.
        page.evaluate("""list => {
            window.__tlStates = [];
            new MutationObserver(ms => ms.forEach(m => window.__tlStates.push(
                [m.target.dataset.node, m.target.dataset.status, performance.now()])))
              .observe(document.querySelector(list), {subtree: true, attributes: true,
                                                      attributeFilter: ["data-status"]});
        }""", f"{SECTION} .tl-node-list")
        t_kill = page.evaluate("performance.now()")
        os.kill(pids[victim_address], signal.SIGKILL)
        os.kill(pids[hung_address], signal.SIGSTOP)
        stack.callback(os.kill, pids[hung_address], signal.SIGCONT)
        with screenshot_on_failure(page, tmp_path / "failed.png"):
            page.wait_for_function(
                f"() => window.__tlStates.some(([n, s]) => n === '{victim}' && s === 'down')",
                timeout=10_000)
            page.locator(f'{row(hung)}[data-status="down"]').wait_for(state="attached",
                                                                       timeout=10_000)
            page.locator(f'{row(victim)}[data-status="up"]').wait_for(state="attached",
                                                                      timeout=15_000)
        states = page.evaluate("window.__tlStates")
        down_s = next(t for n, s, t in states if n == victim and s == "down") - t_kill
        assert down_s / 1000 < 10, states
        hung_row = page.locator(row(hung))
        assert hung_row.locator("[data-field=status]").inner_text() == "down"
        assert re.match(r"down: no answer for \d+ s", hung_row.get_attribute("title") or ""), \
            hung_row.get_attribute("title")
        assert hung_row.locator('[data-spark="cpu"] [data-field=value]').inner_text() == "–"
        assert float(hung_row.locator(".tl-node-name").evaluate(
            "e => getComputedStyle(e).opacity")) < 1
        page.wait_for_function(  # totals follow (node_status re-reads cluster/info)
            f"() => document.querySelector('{SECTION} [data-field=cluster-totals]')"
            ".textContent.startsWith('3 / 4 nodes up')", timeout=5_000)
        option = page.locator(f'{SIDE} .tl-node-select option[value="{hung}"]')
        assert option.inner_text() == f"{hung} (down)"
        assert all(page.locator(row(n)).get_attribute("data-status") == "up"
                   for n in names if n != hung)

        widen_sidebar(page, 160)
        time.sleep(0.6)
        section.scroll_into_view_if_needed()
        section.screenshot(path=str(tmp_path / "sidebar-cluster.png"))
        page.screenshot(path=str(tmp_path / "sidebar-cluster-page.png"))
        assert (tmp_path / "sidebar-cluster.png").stat().st_size > 5_000
        if os.environ.get("TRACKLAB_UPDATE_DOC_IMAGES"):
            shutil.copy(tmp_path / "sidebar-cluster.png", ROOT / "docs" / "images")

        # the hung worker resumes: up again with its next answer
        os.kill(pids[hung_address], signal.SIGCONT)
        hung_row.and_(page.locator('[data-status="up"]')).wait_for(state="attached",
                                                                   timeout=10_000)

        # the requests are the contract's: one history query per kind, over every node
        history = [u for u in requests if "/tracklab/api/history?" in u]
        assert any("metrics=cpu.util_pct%2Cmem.util_pct&start=-300s" in u for u in history), \
            history
        assert any("metrics=gpu.*.util_pct" in u or "metrics=gpu.%2A.util_pct" in u
                   for u in history), history
        assert any(u.endswith("/tracklab/api/cluster/info") for u in requests)
        subs = [json.loads(s) for s in sent if '"subscribe"' in s]
        assert subs and {"system_metrics", "hardware_update", "run_update", "metric_update",
                         "cluster_metrics", "node_status"} <= set(subs[-1]["topics"]), subs
        assert load.result(timeout=30) > 0

        # a proxy that breaks WebSockets: hidden and shown again, the panel reconnects, is
        # refused, and the rows follow api/cluster/metrics polls
        break_websocket(page)
        polled = record_requests(page, "/tracklab/api/cluster/metrics")
        tab = page.locator(f'.jp-SideBar.jp-mod-left [data-id="{SIDE[1:]}"]')
        tab.click()
        page.locator(f'{SIDE} .tl-sideroot[data-state="paused"]').wait_for(state="attached",
                                                                          timeout=10_000)
        tab.click()
        page.locator(f'{SIDE} .tl-sideroot[data-transport="polling"]').wait_for(timeout=30_000)
        before = points(page, shown, "cpu")
        time.sleep(2)
        assert points(page, shown, "cpu") > before
        assert polled and all("metrics=cpu.util_pct%2Cmem.util_pct%2Cgpu.*.util_pct" in u
                              for u in polled), polled
        assert page.locator(row(hung)).get_attribute("data-status") == "up"
        assert not errors, errors
        page.close()
        print(f"killed worker's row down {down_s / 1000:.1f} s after SIGKILL")
