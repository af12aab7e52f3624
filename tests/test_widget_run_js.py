"""The built widget's run view in headless chromium through js/tests/harness.html (a fake
anywidget model; no Jupyter): the messages of js/PROTOCOL.md's "A run" section, sent by
hand, and what the view makes of them."""

from __future__ import annotations

import time

from test_js_unit import ROOT, _unavailable, http_root  # noqa: F401  (fixture)

RUN = {"id": "r1", "project": "mnist", "name": "baseline", "state": "running", "pid": 4242,
       "system_monitor": True, "summary": {"loss": None}, "config": {"lr": 0.001}}

SEND = """([init, run]) => {
    const rows = __tl.rows;
    const steps = (xs, cols) => xs.map((x, i) => ({t: x, m: Object.fromEntries(
        Object.entries(cols).map(([k, v]) => [k, v[i]]))}));
    const emit = (rows, extra) => {
        const [m, b] = __tl.toMessage(rows, !!extra.backfill);
        __tl.emit({...m, ...extra}, b);
    };
    window.__steps = steps; window.__emit = emit;
    __tl.emit({...init, run: {...run, start: rows[0].t}});
    emit(rows.slice(0, 40), {backfill: true});
    emit(steps([0, 1, 2, 3], {loss: [1, 0.5, 0.25, 0.125]}), {source: 'run', backfill: true});
    emit(rows.slice(0, 40).map((r, i) => ({t: r.t, m: {'tree.cpu_pct': 50 + i,
        'tree.rss_bytes': 2 ** 30}})), {source: 'process', backfill: true});
}"""

INIT = {"type": "init", "node": "h200-node-01", "interval_s": 0.25, "window_s": 604800,
        "info": {"cpu_model": "Xeon", "cpu_count": 16, "gpus": []}}


def test_run_view_header_steps_and_state(browser, http_root):  # noqa: F811
    if not (ROOT / "tracklab_jupyter" / "static" / "widget.js").exists():
        _unavailable("tracklab_jupyter/static/widget.js not built")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: m.type in ("error", "warning") and errors.append(
        f"{m.type}: {m.text}"))
    page.goto(f"{http_root}/js/tests/harness.html?noinit=1&every=0")
    page.wait_for_selector(".tl-placeholder")
    page.evaluate(SEND, [INIT, RUN])
    root = page.locator(".tl-root[data-run-state=running]")
    root.wait_for()
    assert root.locator(".tl-run-name").inner_text() == "baseline"
    assert root.locator(".tl-run-project").inner_text() == "mnist"
    assert root.locator(".tl-run-state").inner_text() == "running"
    # Running: the duration is measured on the kernel's clock (the newest host sample).
    assert root.locator(".tl-run-duration").inner_text() == "00:00:09"
    assert root.locator(".tl-metric .tl-panel-title").all_text_contents() == ["loss"]
    assert root.get_attribute("data-run-points") == "4"
    loss = root.locator('.tl-metric [data-metric="loss"]')
    assert loss.inner_text() == "0.125"
    assert root.locator(".tl-proc").is_visible() and root.locator(".tl-cpu").is_visible()
    page.wait_for_function("""() => [...document.querySelectorAll('.tl-proc .tl-legend-value')]
                              .map((e) => e.textContent).join('|') === '89 %|1.00 GiB'""")

    # Step 3 again with acc logged at it (from: 3), then step 4; a batch of older steps only.
    page.evaluate("""() => {
        __emit(__steps([3, 4], {loss: [0.125, 0.0625], acc: [0.5, null]}),
               {source: 'run', from: 3});
        __emit(__steps([1], {loss: [7]}), {source: 'run'});
    }""")
    page.wait_for_function("document.querySelectorAll('.tl-metric').length === 2")
    assert root.locator(".tl-metric .tl-panel-title").all_text_contents() == ["loss", "acc"]
    page.wait_for_function("""() => document.querySelector('.tl-metric [data-metric="loss"]')
                              .textContent === '0.0625'""")
    assert root.locator('.tl-metric [data-metric="acc"]').inner_text() == "0.5"
    # x is a step: the hover box names the step under the cursor, not a clock time.
    over = root.locator(".tl-metric .u-over").first
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    hover = root.locator(".tl-metric .tl-hover-time").first
    hover.wait_for()
    assert hover.inner_text() == "step 4"
    page.mouse.move(0, 0)

    # A backfill replaces what the view holds (the kernel lost live batches).
    page.evaluate("""() => __emit(__steps([0, 1], {loss: [2, 1]}),
                                  {source: 'run', backfill: true})""")
    page.wait_for_function("document.querySelector('.tl-root').dataset.runPoints === '2'")

    page.evaluate("""() => __tl.emit({type: 'run_update', reason: 'state',
        run: {id: 'r1', project: 'mnist', name: 'baseline', state: 'finished',
              duration_s: 3725}})""")
    page.locator(".tl-root[data-run-state=finished]").wait_for()
    assert page.locator(".tl-run-duration").inner_text() == "01:02:05"
    assert page.locator(".tl-run-name").inner_text() == "baseline"
    page.evaluate("""() => __tl.emit({type: 'run_update', reason: 'deleted',
        run: {id: 'r1', project: 'mnist', state: 'deleted'}})""")
    page.locator(".tl-root[data-run-state=deleted]").wait_for()

    # The metrics globs hide run panels as they hide host panels.
    page.evaluate("__tl.model.set('metrics', ['acc'])")
    view = page.locator(".tl-root")
    assert not view.locator(".tl-cpu").is_visible()
    assert not view.locator(".tl-proc").is_visible()
    assert [e.is_visible() for e in view.locator(".tl-metric").all()] == [False, True]

    # A host view's init drops the run view; closing leaves nothing behind.
    page.evaluate("__tl.model.set('metrics', [])")
    page.evaluate("([init]) => __tl.emit(init)", [INIT])
    page.wait_for_function("document.querySelectorAll('.tl-metric').length === 0")
    assert page.locator(".tl-run").inner_text() == ""
    page.evaluate("([init, run]) => __tl.emit({...init, run: {...run, start: 0}})", [INIT, RUN])
    page.evaluate("__tl.cleanup()")
    assert page.evaluate("document.querySelectorAll('canvas').length") == 0
    assert page.evaluate("['msg:custom', 'change:metrics'].map(e => __tl.model.listeners(e))"
                         ) == [0, 0]
    time.sleep(0.2)
    assert errors == []
