"""What a person sees fits, in headless chromium: at sidebar widths 200, 270, 400 and 600 px
and notebook output widths 400 and 1200 px, no text of a card (headline, caption, legend,
badge, axis unit) overlaps its chart canvas or another text, and nothing leaves its card or
its container; the same in JupyterLab Dark (set through the settings API), where the text,
grid and series colours come from the theme's variables, text reaches a contrast ratio of
4.5 against the card and the series 3 (WCAG), and a live switch back to the light theme
recolours the series. The memory charts' value axis ends just above the memory limit.
The cluster view's node detail chart has a value axis with its unit,
time labels and a title. One screenshot per width and theme is kept in tmp_path; with
TRACKLAB_UPDATE_DOC_IMAGES=1 the two README pictures go to docs/images/theme-*.png."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from jupyterlab_process import (
    CANVAS_COLOURS,
    dismiss_news,
    jupyterlab,
    open_side_panel,
    run_command,
    run_first_cell,
)

ROOT = Path(__file__).parent.parent
TOKEN = "fit-test-token"
SIDE = "#tracklab-monitor .tl-sideroot"
WIDGET = ".tl-root"
SIDEBAR_WIDTHS = (200, 270, 400, 600)
NOTEBOOK_WIDTHS = (400, 1200)
THEMES = "lab/api/settings/@jupyterlab/apputils-extension:themes"

# Every chart card under `root`: the bounding boxes of its text (each text node's visible
# part, clipped by overflow) and of its canvases; the problems found, as strings.
FIT = r"""(root) => {
  const problems = [];
  const rootEl = document.querySelector(root);
  const R = (r) => ({l: r.left, t: r.top, r: r.right, b: r.bottom});
  const cut = (a, b) => ({l: Math.max(a.l, b.l), t: Math.max(a.t, b.t),
                          r: Math.min(a.r, b.r), b: Math.min(a.b, b.b)});
  const area = (a) => Math.max(0, a.r - a.l) * Math.max(0, a.b - a.t);
  const overlaps = (a, b, tol) => {
    const c = cut(a, b);
    return c.r - c.l > tol && c.b - c.t > tol;
  };
  const inside = (a, b) => a.l >= b.l - 1 && a.t >= b.t - 1 && a.r <= b.r + 1 && a.b <= b.b + 1;
  const name = (e) => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}`;
  // the root's scroll container must not scroll sideways
  for (const c of [rootEl, rootEl.closest('.tl-sidebar')]) {
    if (!c || c.scrollWidth <= c.clientWidth + 1) continue;
    const edge = c.getBoundingClientRect().right;
    const out = [...c.querySelectorAll('*')]
      .filter((e) => e.getBoundingClientRect().right > edge + 1).slice(-3).map(name);
    problems.push(`${name(c)} scrolls sideways: ${c.scrollWidth} > ${c.clientWidth} (${out})`);
  }
  const box = R(rootEl.getBoundingClientRect());
  const cards = [...rootEl.querySelectorAll('.tl-host > .tl-panel, .tl-devices > .tl-panel')]
    .filter((c) => c.getClientRects().length);
  let nCanvas = 0;
  for (const card of cards) {
    const cb = R(card.getBoundingClientRect());
    const title = card.querySelector('.tl-panel-title')?.textContent;
    if (!inside(cb, box)) problems.push(`${title}: card leaves its container`);
    const texts = [];
    const walker = document.createTreeWalker(card, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.textContent.trim()) continue;
      const el = n.parentElement;
      if (!el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
      const range = document.createRange();
      range.selectNodeContents(n);
      let r = R(range.getBoundingClientRect());
      for (let a = el; a && a !== card; a = a.parentElement) {
        if (getComputedStyle(a).overflow !== 'visible') r = cut(r, R(a.getBoundingClientRect()));
      }
      if (area(r) <= 0) continue;  // cut off entirely (an ellipsis' hidden part)
      texts.push({el, r, text: n.textContent.trim()});
      if (!inside(r, cb)) problems.push(`${title}: "${n.textContent.trim()}" leaves the card`);
    }
    const canvases = [...card.querySelectorAll('canvas')].filter((c) => c.getClientRects().length);
    nCanvas += canvases.length;
    for (const c of canvases) {
      const r = R(c.getBoundingClientRect());
      if (!inside(r, cb)) problems.push(`${title}: chart canvas leaves the card`);
      for (const t of texts) {
        if (overlaps(t.r, r, 1))
          problems.push(`${title}: "${t.text}" (${name(t.el)}) over the chart`);
      }
    }
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
      const a = texts[i], b = texts[j];
      if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
      if (overlaps(a.r, b.r, 3)) problems.push(`${title}: "${a.text}" over "${b.text}"`);
    }
    // every chart says what its values are
    for (const ch of card.querySelectorAll('.tl-chart')) {
      if (!ch.querySelector('canvas')) continue;
      const unit = ch.querySelector('.tl-axis-unit')?.textContent ?? '';
      if (!unit) problems.push(`${title}: a chart without its value axis's unit`);
    }
  }
  return {cards: cards.length, canvases: nCanvas, problems};
}"""

# The colour a CSS expression resolves to at the element `sel`, as getComputedStyle writes it.
RESOLVE = """([sel, expr]) => {
  const probe = document.createElement('span');
  probe.style.color = expr;
  document.querySelector(sel).append(probe);
  const c = getComputedStyle(probe).color;
  probe.remove();
  return c;
}"""
# (text colour, background behind it) of every text in the root's chart cards, and the
# card's background; the background is the nearest opaque one up the tree.
TEXT_COLOURS = r"""(root) => {
  const out = [];
  const cards = document.querySelectorAll(
    `${root} .tl-host > .tl-panel, ${root} .tl-devices > .tl-panel`);
  for (const card of cards) {
    if (!card.getClientRects().length) continue;
    const walker = document.createTreeWalker(card, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!n.textContent.trim() || !el.getClientRects().length) continue;
      let bg = 'rgba(0, 0, 0, 0)';
      for (let a = el; a; a = a.parentElement) {
        const c = getComputedStyle(a).backgroundColor;
        if (!/rgba\(.*, 0\)$/.test(c)) { bg = c; break; }
      }
      const cs = getComputedStyle(el);
      out.push({text: n.textContent.trim(), color: cs.color, opacity: Number(cs.opacity), bg,
                card: getComputedStyle(card).backgroundColor});
    }
  }
  return out;
}"""
def rgba(css: str) -> tuple[float, float, float, float]:
    """``rgb(…)``, ``rgba(…)`` or ``color(srgb …)`` (computed style) as four floats."""
    m = re.findall(r"[\d.]+", css)
    if css.startswith("color(srgb"):
        return (*(float(v) * 255 for v in m[:3]), float(m[3]) if len(m) > 3 else 1.0)
    assert css.startswith("rgb") and len(m) >= 3, css
    return (float(m[0]), float(m[1]), float(m[2]), float(m[3]) if len(m) > 3 else 1.0)


def over(fg: str, bg: str | tuple[float, float, float],
         opacity: float = 1.0) -> tuple[float, float, float]:
    """``fg`` (with its alpha and the element's opacity) painted over the opaque ``bg``."""
    r, g, b, a = rgba(fg)
    a *= opacity
    br, bgg, bb = rgba(bg)[:3] if isinstance(bg, str) else bg
    return (r * a + br * (1 - a), g * a + bgg * (1 - a), b * a + bb * (1 - a))


def luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance."""
    def lin(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import tracklab\ntracklab.widget(window='2m')"),
                nbformat.v4.new_code_cell("tracklab.widget(cluster=True, window='1m')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp / "monitor.ipynb")
    with jupyterlab(tmp, TOKEN, extra_args=["--LabApp.expose_app_in_browser=True"]) as base:
        yield base


def set_theme(base: str, theme: str) -> None:
    """JupyterLab's theme setting, through the settings API (as the Settings editor saves it)."""
    body = json.dumps({"raw": json.dumps({"theme": theme})}).encode()
    req = urllib.request.Request(f"{base}{THEMES}", data=body, method="PUT",
                                 headers={"Authorization": f"token {TOKEN}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 204), r.status


def open_lab(browser, base: str, theme: str):
    """The notebook's two cells run, the widget and the sidebar live; ``(page, errors)``."""
    set_theme(base, theme)
    page, errors = run_first_cell(browser, f"{base}lab/tree/monitor.ipynb?token={TOKEN}",
                                  width=1600, height=1000)
    page.keyboard.press("Shift+Enter")  # the second cell: the cluster view
    page.locator(f'body[data-jp-theme-name="{theme}"]').wait_for(state="attached",
                                                                 timeout=30_000)
    page.locator(f"{WIDGET}[data-state=live]").wait_for(timeout=60_000)
    open_side_panel(page, "tracklab-monitor", f"{SIDE}[data-state=live]")
    # every card there: the GPUs' headlines drawn in both
    for root in (WIDGET, SIDE):
        page.wait_for_function(
            f"() => document.querySelector('{root} [data-metric=\"gpu.1.util_pct\"]')"
            "?.textContent.endsWith('%')", timeout=30_000)
    dismiss_news(page)
    return page, errors


# Lowers JupyterLab's sidebar floor and has Lumino read the sizes again (from the panel up).
FLOOR = """(px) => {
  document.documentElement.style.setProperty('--jp-sidebar-min-width', `${px}px`);
  const shell = window.jupyterapp.shell;
  for (const w of shell.widgets('left')) if (w.id === 'tracklab-monitor') {
    for (let p = w; p; p = p.parent) p.fit();
  }
}"""


def set_sidebar_width(page, px: int) -> None:
    """Drags the left area's split handle until the TrackLab panel is ``px`` wide.

    JupyterLab keeps sidebars at least ``--jp-sidebar-min-width`` (250 px) wide; below
    that, the floor is lowered as a user's custom CSS would."""
    if px < 250:
        page.evaluate(FLOOR, px)
        time.sleep(0.2)
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    for _ in range(5):
        width = page.locator("#tracklab-monitor").bounding_box()["width"]
        if abs(width - px) <= 1:
            break
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + px - width, y, steps=4)
        page.mouse.up()
    width = page.locator("#tracklab-monitor").bounding_box()["width"]
    assert abs(width - px) <= 2, f"the sidebar is {width} px wide, not {px}"


def set_output_width(page, px: int) -> None:
    """Resizes the window until the widget's output is ``px`` wide (the sidebar as it is)."""
    for _ in range(5):
        width = page.locator(WIDGET).first.bounding_box()["width"]
        if abs(width - px) <= 1:
            break
        size = page.viewport_size
        page.set_viewport_size({"width": int(size["width"] + px - width), "height": size["height"]})
        time.sleep(0.3)
    width = page.locator(WIDGET).first.bounding_box()["width"]
    assert abs(width - px) <= 2, f"the widget is {width} px wide, not {px}"


def settle(page) -> None:
    """Resize observers ran, the charts were rebuilt and drew a new sample."""
    time.sleep(0.8)
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def check_fit(page, root: str, label: str, shot: Path) -> None:
    """No overlap or overflow in the chart cards under ``root``; a screenshot at ``shot``."""
    settle(page)
    page.screenshot(path=str(shot))
    found = page.evaluate(FIT, root)
    assert found["cards"] >= 6, (label, found)  # CPU, memory, disk, network, two GPUs
    assert found["canvases"] >= 7, (label, found)
    assert not found["problems"], (label, found["problems"], str(shot))


def check_every_width(page, tmp_path: Path, theme: str) -> None:
    for px in SIDEBAR_WIDTHS:
        set_sidebar_width(page, px)
        check_fit(page, SIDE, f"sidebar {px} px ({theme})", tmp_path / f"sidebar-{px}-{theme}.png")
    set_sidebar_width(page, 270)
    for px in NOTEBOOK_WIDTHS:
        set_output_width(page, px)
        check_fit(page, WIDGET, f"notebook {px} px ({theme})",
                  tmp_path / f"notebook-{px}-{theme}.png")


def readme_picture(page, tmp_path: Path, theme: str) -> None:
    """The widget and the sidebar side by side, for the README."""
    page.set_viewport_size({"width": 1400, "height": 1000})
    set_sidebar_width(page, 300)
    page.evaluate("() => document.querySelector('.tl-root').scrollIntoView()")
    if os.environ.get("TRACKLAB_UPDATE_DOC_IMAGES"):
        time.sleep(8)  # longer lines for the picture
    path = tmp_path / f"theme-{theme}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 20_000
    if os.environ.get("TRACKLAB_UPDATE_DOC_IMAGES"):
        shutil.copy(path, ROOT / "docs" / "images")


def check_memory_axis(page, base: str) -> None:
    """The memory charts' value axis ends at or just above the memory limit (23.5 GiB, not
    the 32G a round number would give)."""
    url = f"{base}tracklab/api/system/info?token={TOKEN}"
    with urllib.request.urlopen(url, timeout=10) as r:
        mem = json.loads(r.read())["memory"]
    limit = mem.get("effective_limit_bytes") or mem["total_bytes"]
    for root in (WIDGET, SIDE):
        top = float(page.locator(f"{root} .tl-mem .tl-plot").first.get_attribute("data-y-max"))
        assert limit <= top <= limit * 1.05, (root, top, limit)


def test_cards_fit_at_every_width(lab, browser, tmp_path):
    page, errors = open_lab(browser, lab, "JupyterLab Light")
    try:
        check_memory_axis(page, lab)
        check_every_width(page, tmp_path, "light")
        readme_picture(page, tmp_path, "light")
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise
    assert not errors, errors


def palette(page, root: str) -> list[str]:
    return [page.evaluate(RESOLVE, [root, f"var(--tl-c{i})"]) for i in range(1, 5)]


def test_dark_theme_fits_and_reads(lab, browser, tmp_path):
    page, errors = open_lab(browser, lab, "JupyterLab Dark")
    try:
        check_every_width(page, tmp_path, "dark")
        theme = lambda var: page.evaluate(RESOLVE, ["body", f"var({var})"])  # noqa: E731
        text_colours = {theme(f"--jp-ui-font-color{i}") for i in range(4)}
        layout0 = theme("--jp-layout-color0")
        for root in (SIDE, WIDGET):
            texts = page.evaluate(TEXT_COLOURS, root)
            assert len(texts) > 20, texts
            for t in texts:
                # the cards are the theme's, the text in the theme's text colours
                assert t["card"] == layout0, t
                assert t["color"] in text_colours, t
                ratio = contrast(over(t["color"], over(t["bg"], t["card"]), t["opacity"]),
                                 over(t["bg"], t["card"]))
                assert ratio >= 4.5, (root, t, round(ratio, 2))
            # grid lines in the theme's --jp-border-color3 (CPU and memory charts)
            for chart in (".tl-cpu canvas", ".tl-mem canvas"):
                grid = page.evaluate(CANVAS_COLOURS, f"{root} {chart}")[0]  # the commonest
                assert grid == theme("--jp-border-color3")
            # the series: the theme's colours, 3:1 against the card (WCAG, graphics)
            dark = palette(page, root)
            assert dark[0] == theme("--jp-brand-color1")
            assert dark[2] == theme("--jp-accent-color1")
            for c in dark:
                assert contrast(over(c, layout0), rgba(layout0)[:3]) >= 3, (root, c)
        dark_swatches = page.evaluate(
            f"() => [...document.querySelectorAll('{SIDE} .tl-disk .tl-swatch')]"
            ".map((s) => getComputedStyle(s).backgroundColor)")
        assert dark_swatches == palette(page, SIDE)[:2], dark_swatches
        readme_picture(page, tmp_path, "dark")

        # a live switch: the series follow without a reload
        run_command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})
        page.locator('body[data-jp-theme-name="JupyterLab Light"]').wait_for(state="attached",
                                                                            timeout=30_000)
        settle(page)
        light = palette(page, SIDE)
        assert light != dark, light
        layout0 = theme("--jp-layout-color0")
        for c in light:
            assert contrast(over(c, layout0), rgba(layout0)[:3]) >= 3, c
        page.wait_for_function(
            f"(want) => JSON.stringify([...document.querySelectorAll('{SIDE} .tl-disk .tl-swatch')]"
            ".map((s) => getComputedStyle(s).backgroundColor)) === JSON.stringify(want)",
            arg=light[:2], timeout=10_000)
        grid = page.evaluate(CANVAS_COLOURS, f"{WIDGET} .tl-mem canvas")[0]
        assert grid == theme("--jp-border-color3")
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise
    finally:
        set_theme(lab, "JupyterLab Light")
    assert not errors, errors


def test_cluster_detail_chart_has_axes(lab, browser, tmp_path):
    page, errors = open_lab(browser, lab, "JupyterLab Light")
    try:
        detail = page.locator(".tlc-detail")
        detail.locator(".tlc-plot").wait_for(timeout=30_000)
        page.wait_for_function(
            "() => document.querySelector('.tlc-detail .tlc-line')?.getAttribute('d')",
            timeout=30_000)
        detail.scroll_into_view_if_needed()
        y = detail.locator(".tlc-yaxis .tlc-tick").all_inner_texts()
        x = detail.locator(".tlc-xaxis .tlc-tick").all_inner_texts()
        assert y == ["100 %", "50 %", "0 %"], y
        assert len(x) == 3 and all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in x), x
        assert len(set(x)) == 3, x  # oldest, middle, newest
        assert "%" in detail.locator(".tlc-chart-title").inner_text()
        assert detail.locator(".tlc-legend").inner_text().split() == ["CPU", "memory", "GPU"]
        # the labels sit beside and below the plot, not on it
        plot = detail.locator("svg.tlc-chart").bounding_box()
        for tick in detail.locator(".tlc-yaxis .tlc-tick").all():
            b = tick.bounding_box()
            assert b["x"] + b["width"] <= plot["x"] + 0.5, (b, plot)
        for tick in detail.locator(".tlc-xaxis .tlc-tick").all():
            b = tick.bounding_box()
            assert b["y"] >= plot["y"] + plot["height"] - 0.5, (b, plot)
        page.screenshot(path=str(tmp_path / "cluster-detail.png"))
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise
    assert not errors, errors
