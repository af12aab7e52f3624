"""JupyterLab layouts other than the default, in headless chromium: the simple interface
(single-document mode), the TrackLab panel moved to the right sidebar, and the JupyterLab
Dark theme, where the widget's and the sidebar's colours must come from the theme's
``--jp-*`` variables. The dark-theme picture is written to tmp_path (the README's pictures
of both themes come from tests/test_browser_fit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jupyterlab_process import (
    CANVAS_COLOURS,
    dismiss_news,
    jupyterlab,
    open_side_panel,
    run_command,
    run_first_cell,
    wait_for_more_points,
    widen_sidebar,
    write_monitor_notebook,
)

ROOT = Path(__file__).parent.parent
TOKEN = "layouts-test-token"
SIDE = "#tracklab-monitor .tl-sideroot"
WIDGET = ".tl-root"

# The computed colour a CSS variable of <body> resolves to (rgb()/rgba(), as getComputedStyle
# writes colours), so it compares with an element's computed colour.
RESOLVE = """(name) => {
  const probe = document.createElement('span');
  probe.style.color = getComputedStyle(document.body).getPropertyValue(name).trim();
  document.body.append(probe);
  const c = getComputedStyle(probe).color;
  probe.remove();
  return c;
}"""
CPU_CHART = ".tl-panel canvas"  # the first chart: CPU


@pytest.fixture
def lab(tmp_path):
    write_monitor_notebook(tmp_path / "monitor.ipynb")
    # window.jupyterapp, to run the layout and theme commands as a menu entry would
    with jupyterlab(tmp_path, TOKEN, extra_args=["--LabApp.expose_app_in_browser=True"]) as base:
        yield base, tmp_path


def start(browser, base: str):
    """The monitor notebook open with its widget live; returns ``(page, page_errors)``."""
    page, errors = run_first_cell(browser, f"{base}lab/tree/monitor.ipynb?token={TOKEN}")
    page.locator(f"{WIDGET}[data-state=live]").wait_for(timeout=60_000)
    return page, errors


def both_stream(page) -> None:
    """The sidebar and the widget both draw new values."""
    page.locator(f"{SIDE}[data-state=live]").wait_for(timeout=30_000)
    wait_for_more_points(page, SIDE)
    wait_for_more_points(page, WIDGET)
    assert page.locator("#tracklab-monitor canvas").count() >= 4
    page.wait_for_function(
        "() => document.querySelector('#tracklab-monitor [data-metric=\"gpu.1.util_pct\"]')"
        "?.textContent.endsWith('%')", timeout=30_000)


def test_panel_streams_in_the_simple_interface(lab, browser):
    base, tmp_path = lab
    page, errors = start(browser, base)
    try:
        run_command(page, "application:toggle-mode")
        page.locator('#jp-main-dock-panel[data-mode="single-document"]').wait_for(
            state="attached", timeout=15_000)
        open_side_panel(page, "tracklab-monitor", f"{SIDE}[data-state=live]")
        both_stream(page)
        assert page.evaluate("() => window.jupyterapp.shell.mode") == "single-document"
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise
    assert not errors, errors


def test_panel_streams_in_the_right_sidebar(lab, browser):
    base, tmp_path = lab
    page, errors = start(browser, base)
    try:
        open_side_panel(page, "tracklab-monitor", f"{SIDE}[data-state=live]")
        # the tab's context menu, "Switch Sidebar Side" (the sidebar:switch command)
        page.locator('.jp-SideBar.jp-mod-left [data-id="tracklab-monitor"]').click(button="right")
        page.locator(".lm-Menu-itemLabel", has_text="Switch Sidebar Side").click()
        tab = page.locator('.jp-SideBar.jp-mod-right [data-id="tracklab-monitor"]')
        tab.wait_for(timeout=15_000)
        assert page.locator("#jp-right-stack #tracklab-monitor").count() == 1
        if page.locator("#tracklab-monitor").is_hidden():
            tab.click()
        both_stream(page)
        assert page.locator(f'{SIDE}[data-transport="websocket"]').count() == 1
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise
    assert not errors, errors


def colours(page) -> dict[str, object]:
    """The theme's variables, resolved, beside what the widget and the sidebar show."""
    resolve = lambda name: page.evaluate(RESOLVE, name)  # noqa: E731
    # the chart panel of the first chart (CPU)
    style = lambda sel, prop: page.evaluate(  # noqa: E731
        "([sel, prop]) => getComputedStyle(document.querySelector(sel).closest('.tl-panel'))"
        "[prop]", [sel, prop])
    return {
        "font1": resolve("--jp-ui-font-color1"),
        "layout0": resolve("--jp-layout-color0"),
        "border3": resolve("--jp-border-color3"),
        "brand1": resolve("--jp-brand-color1"),
        "widget_text": style(f"{WIDGET} {CPU_CHART}", "color"),
        "widget_bg": style(f"{WIDGET} {CPU_CHART}", "backgroundColor"),
        "side_text": style(f"{SIDE} {CPU_CHART}", "color"),
        "side_bg": style(f"{SIDE} {CPU_CHART}", "backgroundColor"),
        "widget_chart": page.evaluate(CANVAS_COLOURS, f"{WIDGET} {CPU_CHART}"),
        "side_chart": page.evaluate(CANVAS_COLOURS, f"#tracklab-monitor {CPU_CHART}"),
    }


def assert_from_theme(c: dict[str, object]) -> None:
    assert c["widget_text"] == c["font1"], c
    assert c["side_text"] == c["font1"], c
    assert c["widget_bg"] == c["layout0"], c
    assert c["side_bg"] == c["layout0"], c
    # the grid lines are drawn in --jp-border-color3, in the widget and in the sidebar
    assert c["widget_chart"][0] == c["border3"], c  # type: ignore[index]
    assert c["side_chart"][0] == c["border3"], c  # type: ignore[index]
    # and the first series (CPU) in --jp-brand-color1
    assert c["brand1"] in c["widget_chart"], c  # type: ignore[operator]
    assert c["brand1"] in c["side_chart"], c  # type: ignore[operator]


def test_dark_theme_colours_come_from_the_theme(lab, browser):
    base, tmp_path = lab
    page, errors = start(browser, base)
    try:
        open_side_panel(page, "tracklab-monitor", f"{SIDE}[data-state=live]")
        both_stream(page)
        light = colours(page)
        assert_from_theme(light)
        run_command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
        page.locator('body[data-jp-theme-name="JupyterLab Dark"]').wait_for(
            state="attached", timeout=30_000)
        wait_for_more_points(page, WIDGET)  # charts redrawn since the switch
        wait_for_more_points(page, SIDE)
        dark = colours(page)
        assert_from_theme(dark)
        for key in ("font1", "layout0", "border3", "brand1", "widget_text", "side_text"):
            assert dark[key] != light[key], (key, light, dark)
        assert dark["widget_chart"][0] != light["widget_chart"][0]  # type: ignore[index]
    except Exception:
        page.screenshot(path=str(tmp_path / "failed.png"))
        raise
    assert not errors, errors

    widen_sidebar(page, 120)
    dismiss_news(page)
    page.screenshot(path=str(tmp_path / "dark-theme.png"))
    assert (tmp_path / "dark-theme.png").stat().st_size > 20_000
