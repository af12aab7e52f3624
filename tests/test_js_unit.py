"""The widget's JavaScript: node unit tests (`npm test --prefix js`) and the built bundle
rendered in headless chromium through js/tests/harness.html (a fake anywidget model that
replays the recorded H200 trace; no Jupyter involved).

Both skip when their tools are missing (node/npm and js/node_modules; playwright and
chromium), except under CI=true, where a missing tool is a failure."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import unavailable as _unavailable

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "js"


def test_js_unit():
    npm = shutil.which("npm")
    if not (npm and shutil.which("node")):
        _unavailable("node/npm not on PATH")
    if not (JS / "node_modules" / "esbuild").is_dir():
        _unavailable("js/node_modules missing: run `npm ci --prefix js`")
    r = subprocess.run([npm, "test", "--prefix", str(JS)], capture_output=True, text=True,
                       timeout=240, cwd=ROOT)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert re.search(r"\bfail 0\b", out), out[-3000:]


# ---------------------------------------------------------------------------
# The built bundle in a real browser


@pytest.fixture(scope="module")
def http_root():
    """Serves the repository root (harness, bundle and trace) on a free port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          functools.partial(Quiet, directory=str(ROOT)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    t.join(5)


def _open(browser, http_root, query: str, width: int = 1160):
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: m.type in ("error", "warning") and errors.append(
        f"{m.type}: {m.text}"))
    page.goto(f"{http_root}/js/tests/harness.html?{query}")
    page.wait_for_selector(".tl-root[data-state=live]", timeout=10_000)
    return page, errors


def _text(page, metric: str) -> str:
    return page.locator(f'[data-metric="{metric}"]').first.inner_text()


def _painted(page, selector: str) -> int:
    """Non-transparent pixels in the series canvas of the first chart matching selector."""
    return page.evaluate("""(sel) => {
        const c = document.querySelector(sel + ' canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
    }""", selector)


def test_widget_bundle_in_browser(browser, http_root, tmp_path):
    if not (ROOT / "tracklab_jupyter" / "static" / "widget.js").exists():
        _unavailable("tracklab_jupyter/static/widget.js not built")
    # 240 rows (60 s at 4 Hz) of backfill end inside the compute phase (throttle reason 4 =
    # SW power cap); the trace's next row is idle. Without live rows the badge stays, so it
    # is checked on a page with no replay (with replay it would race the first idle row).
    still, still_errors = _open(browser, http_root, "backfill=240&window=120&every=0")
    badge = still.locator(".tl-root .tl-gpu .tl-badge-throttle")
    assert badge.is_visible() and badge.inner_text() == "throttled · power cap"
    assert not still_errors, still_errors
    still.close()
    # Then the same backfill with one row every 100 ms.
    page, errors = _open(browser, http_root, "backfill=240&window=120&every=100")
    root = page.locator(".tl-root")

    assert page.evaluate("__tl.model.sent[0]") == {"type": "ready"}
    assert root.locator(".tl-node").inner_text() == "h200-node-01"
    assert "live" in root.locator(".tl-status").inner_text()

    # Headlines carry the formatted current value.
    assert re.fullmatch(r"\d+(\.\d)? %", _text(page, "gpu.0.util_pct"))
    assert re.fullmatch(r"\d+\.\d / 140 GiB", _text(page, "gpu.0.mem_used_bytes"))
    assert re.fullmatch(r"\d+ / 700 W", _text(page, "gpu.0.power_w"))
    assert re.fullmatch(r"\d+ °C", _text(page, "gpu.0.temp_c"))
    assert re.fullmatch(r"[\d.]+ / 126 GiB", _text(page, "mem.used_bytes"))
    assert re.fullmatch(r"\d+(\.\d)? %", _text(page, "cpu.util_pct"))
    assert re.fullmatch(r"[\d.]+ [kMG]?B/s", _text(page, "disk.read_bytes_per_s"))
    assert root.locator(".tl-cores-canvas").get_attribute("data-values").count(",") == 15

    # Charts are drawn, and the data keeps coming.
    assert _painted(page, ".tl-gpu .tl-chart") > 500
    assert _painted(page, ".tl-cpu .tl-chart") > 200
    points = int(root.get_attribute("data-points"))
    assert points >= 240 * 30  # rows × metrics
    page.wait_for_function(f"+document.querySelector('.tl-root').dataset.points > {points}",
                           timeout=5_000)
    page.screenshot(path=str(tmp_path / "widget.png"), full_page=True)

    # Traits apply live.
    page.evaluate("__tl.model.set('height', 200)")
    page.wait_for_function("document.querySelector('.tl-plot').style.height === '200px'")
    page.evaluate("__tl.model.set('status', 'error: recorder stopped')")
    assert "tl-status-error" in root.locator(".tl-status").get_attribute("class")
    page.evaluate("__tl.model.set('metrics', ['gpu.*'])")
    assert not root.locator(".tl-cpu").is_visible()
    assert root.locator(".tl-gpu").is_visible()

    # A new init resets the view; closing the view leaves nothing behind.
    page.evaluate("__tl.model.onReady()")
    page.wait_for_function("document.querySelectorAll('.tl-panel').length === 5")
    page.evaluate("__tl.cleanup()")
    assert page.locator(".tl-root").count() == 0
    assert page.evaluate("__tl.model.listeners('msg:custom')") == 0
    assert page.evaluate("__tl.model.listeners('change:height')") == 0
    # Many more views (each gets an init and a backfill), each closed after a frame.
    left = page.evaluate("""async () => {
        for (let i = 0; i < 50; i++) {
            const close = __tl.widget.render({model: __tl.model, el: __tl.el});
            await new Promise((r) => setTimeout(r, 0));
            await new Promise((r) => requestAnimationFrame(r));
            close();
        }
        return {nodes: __tl.el.childElementCount,
                canvases: document.querySelectorAll('canvas').length,
                listeners: ['msg:custom', 'change:height', 'change:window_s', 'change:metrics',
                            'change:status'].map((e) => __tl.model.listeners(e))};
    }""")
    assert left == {"nodes": 0, "canvases": 0, "listeners": [0, 0, 0, 0, 0]}
    time.sleep(0.3)
    assert errors == []


def test_widget_placeholder_and_bad_messages(browser, http_root):
    page = browser.new_page()
    page.goto(f"{http_root}/js/tests/harness.html?noinit=1")
    page.wait_for_selector(".tl-placeholder")
    assert page.locator(".tl-placeholder").inner_text() == "waiting for the kernel…"
    assert page.locator(".tl-root").get_attribute("data-state") == "waiting"
    # Data before init and malformed data are dropped without breaking the view.
    page.evaluate("""() => {
        const [m, b] = __tl.toMessage(__tl.rows.slice(0, 4), true);
        __tl.emit(m, b);
        __tl.model.onReady();
        __tl.emit({...m, n: 99}, b);
        __tl.emit(m, b.slice(0, 1));
        __tl.emit({type: 'event', event: {time: 1795819260, kind: 'gpu.throttle',
                                          message: 'GPU 0 throttled: power cap'}});
    }""")
    page.wait_for_selector(".tl-root[data-state=live]")
    assert page.locator(".tl-event").inner_text().endswith("GPU 0 throttled: power cap")
    assert int(page.locator(".tl-root").get_attribute("data-points")) > 0


# ---------------------------------------------------------------------------
# The cluster view's bundle (tracklab.widget(cluster=True)) in a real browser

CLUSTER_INFO = {
    "provider": "dask", "address": "tcp://10.0.0.5:8786",
    "totals": {"nodes": 3, "up": 3, "cores": 48, "memory_bytes": 3 * 64 * 2**30,
               "gpus": 2},
    "used": {"cpu_cores": 12.5, "memory_bytes": 40 * 2**30, "gpu_memory_bytes": 0,
             "gpu_util_pct": 55.0},
    "nodes": [
        {"node": "head", "role": "local", "status": "up", "address": "",
         "last_seen": 1795819260.0, "error": None,
         "resources": {"cores": 16, "memory_bytes": 64 * 2**30, "gpus": 0},
         "latest": {"mem.used_bytes": 8 * 2**30, "mem.limit_bytes": 64 * 2**30}},
        {"node": "gpu-1", "role": "worker", "status": "up", "address": "tcp://10.0.0.6:1",
         "last_seen": 1795819260.0, "error": None,
         "resources": {"cores": 16, "memory_bytes": 64 * 2**30, "gpus": 2},
         "latest": {"mem.used_bytes": 32 * 2**30, "mem.limit_bytes": 64 * 2**30,
                    "gpu.mem_used_bytes": 70 * 2**30, "gpu.mem_total_bytes": 280 * 2**30}},
        {"node": "cpu-2", "role": "worker", "status": "up", "address": "tcp://10.0.0.7:1",
         "last_seen": 1795819260.0, "error": None,
         "resources": {"cores": 16, "memory_bytes": 64 * 2**30, "gpus": 0}, "latest": {}},
    ],
}


def test_cluster_bundle_in_browser(browser, http_root):
    if not (ROOT / "tracklab_jupyter" / "static" / "cluster.js").exists():
        _unavailable("tracklab_jupyter/static/cluster.js not built")
    page = browser.new_page(viewport={"width": 1160, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: m.type in ("error", "warning") and errors.append(
        f"{m.type}: {m.text}"))
    page.goto(f"{http_root}/js/tests/cluster_harness.html")
    page.wait_for_selector(".tlc-placeholder")
    assert page.evaluate("__tlc.model.sent") == [{"type": "ready"}]
    # data before init is dropped; then init, a backfill of 30 rows per node, live rows
    page.evaluate("""(cluster) => {
        const t0 = 1795819200;
        const rows = (k, gpu) => Array.from({length: 30}, (_, i) =>
            [t0 + 2 * i, 10 + k + i, 20 + k, gpu ? 50 + i : NaN]);
        __tlc.emit(...__tlc.data({head: rows(0, false)}, true));
        __tlc.emit({type: 'init', local: 'head', interval_s: 1, window_s: 60, cluster,
                    hint: null});
        __tlc.emit(...__tlc.data({head: rows(0, false), 'gpu-1': rows(1, true),
                                  'cpu-2': rows(2, false)}, true));
    }""", CLUSTER_INFO)
    page.wait_for_selector(".tlc-root[data-state=live]")
    rows = page.locator(".tlc-node")
    assert rows.evaluate_all("rs => rs.map((r) => r.dataset.node)") == ["head", "gpu-1", "cpu-2"]
    assert page.locator(".tlc-where").inner_text() == "dask · tcp://10.0.0.5:8786"
    totals = page.locator(".tlc-totals").inner_text()
    assert "3/3 up" in totals and "48 cores" in totals and "GPU 55 %" in totals
    assert not page.locator(".tlc-hint").is_visible()

    def spark(node: str, kind: str) -> int:
        return int(page.locator(f'.tlc-node[data-node="{node}"] [data-spark="{kind}"]')
                   .get_attribute("data-points"))

    page.wait_for_function("document.querySelector('[data-spark=cpu]').dataset.points > 0")
    assert spark("gpu-1", "cpu") == 30 and spark("gpu-1", "gpu") == 30
    assert spark("cpu-2", "gpu") == 0
    values = page.locator('.tlc-node[data-node="gpu-1"] .tlc-value').all_inner_texts()
    assert values == ["40 %", "21 %", "79 %"]
    assert page.locator('.tlc-node[data-node="cpu-2"] .tlc-value').all_inner_texts()[2] == "–"
    # the first row is the detail's node until one is chosen
    detail = page.locator(".tlc-detail")
    assert detail.get_attribute("data-node") == "head"
    assert detail.locator('[data-key="cores"] .tlc-v').inner_text() == "16"
    assert detail.locator('[data-key="memory"] .tlc-v').inner_text() == "8.0 / 64.0 GiB"

    # live rows: the window slides (60 s), older points drop out
    page.evaluate("""() => __tlc.emit(...__tlc.data({'gpu-1': Array.from({length: 10},
        (_, i) => [1795819260 + 2 * i, 90, 30, 99])}, false))""")
    page.wait_for_function(
        "document.querySelector('[data-node=\"gpu-1\"] [data-spark=cpu]').dataset.points == 31")
    assert page.locator(".tlc-root").get_attribute("data-points") == "100"

    # a click on a row selects its node (the `node` trait) and shows its detail
    rows.nth(1).click()
    assert page.evaluate("__tlc.model.get('node')") == "gpu-1"
    assert page.evaluate("__tlc.model.saved") == 1
    page.wait_for_function("document.querySelector('.tlc-detail').dataset.node === 'gpu-1'")
    assert detail.locator('[data-key="GPUs"] .tlc-v').inner_text() == "2 · 70.0 / 280 GiB"
    assert page.locator(".tlc-node.tlc-selected").get_attribute("data-node") == "gpu-1"
    assert page.locator(".tlc-select").input_value() == "gpu-1"
    assert detail.locator(".tlc-chart path").count() == 3
    # the <select> does the same
    page.locator(".tlc-select").select_option("cpu-2")
    page.wait_for_function("document.querySelector('.tlc-detail').dataset.node === 'cpu-2'")

    # a node goes down: dimmed, badge, reason as tooltip; a new node gets a row
    page.evaluate("""() => {
        __tlc.emit({type: 'node', node: {node: 'cpu-2', status: 'down', role: 'worker',
                    reason: 'no answer for 10 s'}});
        __tlc.emit(...__tlc.data({'new-3': [[1795819270, 5, 5, NaN]]}, false));
    }""")
    off = page.locator('.tlc-node[data-node="cpu-2"]')
    page.wait_for_function(
        "document.querySelector('[data-node=\"cpu-2\"]').dataset.status === 'down'")
    assert "tlc-down" in off.get_attribute("class")
    assert off.get_attribute("title") == "cpu-2 is down: no answer for 10 s"
    assert float(off.evaluate("e => getComputedStyle(e).opacity")) < 0.6
    assert off.locator(".tlc-badge").inner_text() == "down"
    assert detail.locator('[data-key="reason"] .tlc-v').inner_text() == "no answer for 10 s"
    assert rows.count() == 4 and page.locator(".tlc-select option").count() == 4

    # an info without a cluster shows the hint; a new init resets the view
    page.evaluate("""(c) => __tlc.emit({type: 'info', cluster: c,
                        hint: 'connect a cluster with tracklab.connect_cluster(client)'})""",
                  {**CLUSTER_INFO, "provider": "local", "address": "",
                   "nodes": CLUSTER_INFO["nodes"][:1]})
    assert "tracklab.connect_cluster(client)" in page.locator(".tlc-hint").inner_text()
    page.evaluate("""(c) => __tlc.emit({type: 'init', local: 'head', interval_s: 1,
                        window_s: 60, cluster: c, hint: null})""",
                  {**CLUSTER_INFO, "nodes": CLUSTER_INFO["nodes"][:1]})
    assert rows.count() == 1 and page.locator(".tlc-select option").count() == 1

    # closing the view leaves nothing behind
    page.evaluate("__tlc.close()")
    assert page.locator(".tlc-root").count() == 0
    assert page.evaluate("['msg:custom', 'change:status', 'change:node', 'change:window_s']"
                         ".map((e) => __tlc.model.listeners(e))") == [0, 0, 0, 0]
    assert errors == []
