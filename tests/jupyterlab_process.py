"""Starting a real JupyterLab (or Notebook 7, the same server with another front end) for
the browser tests: its own port, config dir and data dir, and two replayed H200s (the fake
NVML shim) whose trace GPU 1 plays 25 s ahead, so its utilisation moves from the first
second."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

SHIM = Path(__file__).parent / "shim"
TRACKLAB_WS = re.compile(r".*/tracklab/ws.*")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# the application's own options: JupyterLab must not ask the network for news or updates
# (Notebook 7 does neither)
APP_ARGS: dict[str, tuple[str, ...]] = {
    "jupyterlab": ("--LabApp.news_url=",
                   "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"),
    "notebook": (),
}


@contextmanager
def jupyterlab(tmp_path: Path, token: str, base_url: str = "/", extra_args: Sequence[str] = (),
               extra_env: Mapping[str, str] | None = None,
               app: str = "jupyterlab") -> Iterator[str]:
    """Run JupyterLab rooted at ``tmp_path``; yields its URL (ending in ``base_url``).
    ``extra_args`` go at the end of its command line (e.g. ``--TrackLab.cluster=...``),
    ``extra_env`` over its environment; ``app="notebook"`` runs Notebook 7 instead."""
    port = free_port()
    env = {**os.environ, "TRACKLAB_DATA_DIR": str(tmp_path / "data"),
           "TRACKLAB_INTERVAL": "0.5", "TRACKLAB_FAKE_NVML_GPUS": "2",
           "TRACKLAB_FAKE_NVML_MODE": "trace", "TRACKLAB_FAKE_NVML_STAGGER_S": "25",
           "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")]),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"), **(extra_env or {})}
    with open(tmp_path / "lab.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", app, "--no-browser", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root",
             f"--ServerApp.base_url={base_url}", f"--ServerApp.root_dir={tmp_path}",
             *APP_ARGS[app], *extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}{base_url}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    urllib.request.urlopen(f"{base}api/status?token={token}", timeout=2)
                    break
                except OSError:
                    assert time.monotonic() < deadline and proc.poll() is None, \
                        (tmp_path / "lab.log").read_text()[-3000:]
                    time.sleep(0.3)
            yield base
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def open_side_panel(page, panel_id: str, ready: str, timeout_s: float = 30.0) -> None:
    """Open the left-sidebar panel ``panel_id`` and wait until ``ready`` (a selector) shows.

    JupyterLab restores the last layout while the page loads: the panel can look closed at
    first and then open by itself, so a single click could close it again. Click only
    while it is closed, and look again until it is ready."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    tab = page.locator(f'.jp-SideBar.jp-mod-left [data-id="{panel_id}"]')
    tab.wait_for(timeout=60_000)
    deadline = time.monotonic() + timeout_s
    while True:
        if page.locator(f"#{panel_id}").is_hidden():
            tab.click()
        try:
            page.locator(ready).wait_for(timeout=3_000)
            return
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                raise


def dismiss_news(page) -> None:
    """Answer JupyterLab's "notified about news?" question, which covers part of a picture
    (exactly "No": the Notebook and Diagnose buttons contain the letters too)."""
    news = page.get_by_role("button", name="No", exact=True)
    if news.count():
        news.first.click()
        news.first.wait_for(state="detached", timeout=5_000)


def widen_sidebar(page, px: int) -> None:
    """Drags the left area's split handle, so a screenshot shows the sidebar's rows at a
    usable width."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    if not box:
        return
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 1, y)
    page.mouse.down()
    page.mouse.move(box["x"] + px, y, steps=5)
    page.mouse.up()


def new_page(browser, errors: list[str], width: int = 1400, height: int = 1000):
    """A new page whose uncaught errors are appended to ``errors``."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def break_websocket(page) -> None:
    """As a proxy that breaks WebSockets would: every tracklab socket the page opens from
    now on is closed at once."""
    page.route_web_socket(TRACKLAB_WS, lambda ws: ws.close())


def record_requests(page, part: str) -> list[str]:
    """The URLs of the page's requests from now on that contain ``part``, as they are made."""
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if part in r.url else None)
    return urls


@contextmanager
def screenshot_on_failure(page, path: Path) -> Iterator[None]:
    """A screenshot of ``page`` at ``path`` when the block fails; the failure goes on."""
    try:
        yield
    except Exception:
        page.screenshot(path=str(path))
        raise


def run_first_cell(browser, url: str, width: int = 1400, height: int = 1000):
    """Open the notebook at ``url`` in a new page, wait until its kernel is connected and
    idle (the status bar says so), run its first cell; returns ``(page, page_errors)``."""
    errors: list[str] = []
    page = new_page(browser, errors, width, height)
    page.goto(url)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    page.locator(".jp-Cell .jp-InputArea-editor").first.click()
    page.keyboard.press("Shift+Enter")
    return page, errors


MONITOR_CELL = "import tracklab\ntracklab.widget(window='2m')"


def write_monitor_notebook(path: Path, source: str = MONITOR_CELL) -> None:
    """A one-cell notebook at ``path`` on the python3 kernel."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def run_command(page, command: str, args: dict | None = None) -> None:
    """Execute a JupyterLab command through ``window.jupyterapp`` (the server must run with
    ``--LabApp.expose_app_in_browser=True``, as JupyterLab's own UI tests do)."""
    page.wait_for_function("() => !!window.jupyterapp?.commands", timeout=60_000)
    page.evaluate("([id, args]) => window.jupyterapp.commands.execute(id, args)",
                  [command, args or {}])


def points(page, selector: str) -> int:
    """The ``data-points`` count of the widget or sidebar root at ``selector``."""
    return int(page.locator(selector).first.get_attribute("data-points") or 0)


def wait_for_more_points(page, selector: str, timeout_s: float = 20.0) -> None:
    """Wait until the root at ``selector`` holds more points than now: it draws live data."""
    before = points(page, selector)
    deadline = time.monotonic() + timeout_s
    while points(page, selector) <= before:
        assert time.monotonic() < deadline, f"{selector} got no new points (stuck at {before})"
        time.sleep(0.25)


# The four most frequent fully opaque colours of a chart canvas: the grid lines (one colour,
# drawn crisp) come first; the series' line is among the others.
CANVAS_COLOURS = """(sel) => {
  const c = document.querySelector(sel);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const n = {};
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] !== 255) continue;
    const k = `rgb(${d[i]}, ${d[i + 1]}, ${d[i + 2]})`;
    n[k] = (n[k] || 0) + 1;
  }
  return Object.entries(n).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k]) => k);
}"""
