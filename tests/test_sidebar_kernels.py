"""The JupyterLab sidebar's Kernels section and TrackLab alerts as JupyterLab notifications,
end to end: a real JupyterLab with real kernels started through its REST API (sessions of
notebooks made through api/contents), code run in them over their ZMQ channels, and
headless chromium. One kernel allocates 300 MB: its row's RAM follows and it sorts first;
a click on a row opens its notebook. A kernel killed with SIGKILL raises a `kernel_death`
alert: a notification names its notebook. A fake cgroup (TRACKLAB_CGROUP_ROOT) whose
memory use is pushed over 90 % of its limit raises "OOM risk", and the notification turns
into "resolved" when it falls back."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from jupyterlab_process import (
    break_websocket,
    jupyterlab,
    new_page,
    open_side_panel,
    record_requests,
    screenshot_on_failure,
    widen_sidebar,
)

TOKEN = "sidebar-kernels-token"
BASE_URL = "/user/carol/"
SIDE = "#tracklab-monitor"
SECTION = f"{SIDE} .tl-kernels"
MIB = 2**20
# The fake container's memory limit (below this host's RAM, so it is the one that applies).
CGROUP_LIMIT = 4 * 2**30
TOAST = ".Toastify__toast"


def rest(base: str, path: str, method: str = "GET", body: object = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, method=method, headers={
        "Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
    return json.loads(raw) if raw else {}


def start_notebook_kernel(base: str, path: str) -> str:
    """A notebook made through api/contents and a kernel session for it (api/sessions)."""
    rest(base, f"api/contents/{path}", "PUT", {
        "type": "notebook", "format": "json",
        "content": {"cells": [], "metadata": {"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}})
    session = rest(base, "api/sessions", "POST", {
        "path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}})
    return session["kernel"]["id"]


@contextmanager
def kernel_client(runtime: Path, kernel_id: str):
    """A blocking client on the kernel's own channels (its connection file)."""
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=str(runtime / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()


def run_code(runtime: Path, kernel_id: str, code: str) -> None:
    with kernel_client(runtime, kernel_id) as client:
        reply = client.execute_interactive(code, timeout=60, output_hook=lambda _msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]


def tracked(base: str, kernel_ids: set[str], timeout_s: float = 60) -> dict:
    """`tracklab/api/kernels` once it lists every kernel of ``kernel_ids`` sampled."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = rest(base, "tracklab/api/kernels")
        seen = {k["id"]: k for k in body["kernels"]}
        if all(i in seen and seen[i]["sampled"] and seen[i]["rss_bytes"] for i in kernel_ids):
            return seen
        assert time.monotonic() < deadline, body
        time.sleep(0.3)


def row(kernel_id: str) -> str:
    return f'{SECTION} .tl-kernel[data-kernel-id="{kernel_id}"]'


def ram_bytes(page, kernel_id: str) -> float:
    """The row's RAM figure (`RAM 312 MiB / 4.00 GiB`) in bytes."""
    text = page.locator(f"{row(kernel_id)} [data-field=mem]").inner_text()
    m = re.match(r"RAM ([\d.]+) (B|KiB|MiB|GiB)", text)
    assert m, text
    return float(m[1]) * {"B": 1, "KiB": 2**10, "MiB": MIB, "GiB": 2**30}[m[2]]


def wait_ram(page, kernel_id: str, at_least: float, timeout_s: float = 15) -> None:
    """Until the row's RAM shows ``at_least`` bytes (a pass may catch an allocation midway)."""
    deadline = time.monotonic() + timeout_s
    while (shown := ram_bytes(page, kernel_id)) < at_least:
        assert time.monotonic() < deadline, \
            f"{kernel_id}'s row still shows {shown / MIB:.0f} MiB, not {at_least / MIB:.0f}"
        time.sleep(0.2)


def order(page) -> list[str]:
    return page.locator(f"{SECTION} .tl-kernel").evaluate_all(
        "rs => rs.map((r) => r.dataset.kernelId)")


def toasts(page) -> list[str]:
    return page.locator(TOAST).all_inner_texts()


def write_cgroup(root: Path, used: int) -> None:
    """A cgroup v2 root (this host's processes are at "/" of it) using ``used`` bytes."""
    root.mkdir(exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "memory.max").write_text(f"{CGROUP_LIMIT}\n")
    (root / "memory.stat").write_text("inactive_file 0\n")
    (root / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    tmp = root / "memory.current.tmp"
    tmp.write_text(f"{used}\n")
    tmp.replace(root / "memory.current")  # never read half written


@pytest.fixture
def lab(tmp_path):
    write_cgroup(tmp_path / "cgroup", CGROUP_LIMIT // 2)
    runtime = tmp_path / "runtime"
    # the memory rule fires at once (its default waits 5 s over the threshold)
    (tmp_path / "jupyter-config").mkdir()
    (tmp_path / "jupyter-config" / "jupyter_server_config.json").write_text(json.dumps(
        {"TrackLab": {"alerts": {"memory": {"for_s": 0}}}}))
    with jupyterlab(tmp_path, TOKEN, BASE_URL, extra_args=["--TrackLab.kernel_interval=0.5"],
                    extra_env={"TRACKLAB_CGROUP_ROOT": str(tmp_path / "cgroup"),
                               "JUPYTER_RUNTIME_DIR": str(runtime)}) as base:
        yield base, tmp_path, runtime


def open_sidebar(page, base: str) -> None:
    page.goto(f"{base}lab?token={TOKEN}")
    open_side_panel(page, "tracklab-monitor", f"{SIDE} .tl-sideroot")


def test_kernels_section_lists_sorts_by_memory_and_opens_notebooks(lab, browser):
    base, tmp_path, runtime = lab
    a = start_notebook_kernel(base, "a.ipynb")
    (tmp_path / "work").mkdir()
    b = start_notebook_kernel(base, "work/b.ipynb")
    tracked(base, {a, b})

    errors: list[str] = []
    page = new_page(browser, errors)
    requests = record_requests(page, "/tracklab/api/")
    frames: list[str] = []  # `kernels` frames the sidebar's socket received
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda f: frames.append(f) if '"type": "kernels"' in str(f) else None))
    open_sidebar(page, base)
    with screenshot_on_failure(page, tmp_path / "failed.png"):
        page.locator(row(a)).wait_for(timeout=30_000)
        page.locator(row(b)).wait_for(timeout=30_000)
        page.locator(f'{SIDE} .tl-sideroot[data-transport="websocket"]').wait_for(
            timeout=30_000)
    section = page.locator(SECTION)
    assert section.get_attribute("data-kernels") == "2"
    assert not page.locator(f"{SECTION} [data-field=kernels-empty]").is_visible()
    # notebook names (the full path in the title), states, figures against the cgroup limit
    assert page.locator(f"{row(a)} [data-field=notebook]").inner_text() == "a.ipynb"
    assert page.locator(f"{row(b)} [data-field=notebook]").inner_text() == "b.ipynb"
    assert page.locator(f"{row(b)} [data-field=notebook]").get_attribute("title").startswith(
        "work/b.ipynb")
    assert section.locator("[data-field=kernels-limit]").inner_text() == \
        "limit 4.00 GiB (cgroup)"
    for k in (a, b):
        assert page.locator(row(k)).get_attribute("data-state") in ("idle", "busy", "starting")
        assert page.locator(row(k)).get_attribute("role") == "button"
        assert re.fullmatch(r"CPU [\d.]+ %",
                            page.locator(f"{row(k)} [data-field=cpu]").inner_text())
        assert page.locator(f"{row(k)} [data-field=mem]").inner_text().endswith("/ 4.00 GiB")
        assert 10 * MIB < ram_bytes(page, k) < 300 * MIB
    # sparklines: the backfill asked for both kernels' RSS in one request, then the frames
    history = [u for u in requests if "/tracklab/api/history" in u]
    assert any(f"kernel.{a}.rss_bytes" in u and f"kernel.{b}.rss_bytes" in u
               for u in history), history
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{SECTION} .tl-kernel-spark')]"
        ".every((s) => +s.dataset.points >= 2)", timeout=15_000)

    # from here on the list can only follow the socket's `kernels` frames: REST is cut
    deadline = time.monotonic() + 15
    while not frames:
        assert time.monotonic() < deadline, "no kernels frames on the sidebar's socket"
        page.wait_for_timeout(100)
    page.route(re.compile(r".*/tracklab/api/kernels.*"), lambda route: route.abort())

    # the kernel listed second allocates 300 MB: its RAM follows and it moves first
    small, big = order(page)
    before = ram_bytes(page, big)
    run_code(runtime, big, "blob = b'\\x01' * (300 * 2**20)")
    wait_ram(page, big, before + 280 * MIB)
    page.wait_for_function(
        f"() => document.querySelector('{SECTION} .tl-kernel')?.dataset.kernelId === '{big}'",
        timeout=15_000)
    assert order(page) == [big, small]
    assert ram_bytes(page, small) < 300 * MIB
    width = page.locator(f"{row(big)} .tl-kernel-bar-fill").evaluate("e => e.style.width")
    assert float(width.rstrip("%")) > 7  # 300 MB of 4 GiB
    widen_sidebar(page, 140)
    page.locator(SECTION).screenshot(path=str(tmp_path / "kernels.png"))

    # a click (and Enter on a focused row) opens that kernel's notebook in a tab
    name = "b.ipynb" if big == b else "a.ipynb"
    page.locator(row(big)).click()
    tab = page.locator(f'.lm-DockPanel-tabBar .lm-TabBar-tab:has-text("{name}")')
    tab.wait_for(timeout=30_000)
    other = "a.ipynb" if big == b else "b.ipynb"
    page.locator(row(small)).focus()
    page.keyboard.press("Enter")
    page.locator(f'.lm-DockPanel-tabBar .lm-TabBar-tab:has-text("{other}")').wait_for(
        timeout=30_000)
    assert not errors, errors
    page.close()

    # a proxy that breaks WebSockets: the list follows by re-polling api/kernels
    page = new_page(browser, errors)
    break_websocket(page)
    open_sidebar(page, base)
    page.locator(f'{SIDE} .tl-sideroot[data-transport="polling"]').wait_for(timeout=30_000)
    page.locator(row(small)).wait_for(timeout=30_000)
    assert order(page) == [big, small]
    run_code(runtime, small, "blob = b'\\x02' * (600 * 2**20)")
    wait_ram(page, small, 580 * MIB)
    page.wait_for_function(
        f"() => document.querySelector('{SECTION} .tl-kernel')?.dataset.kernelId === "
        f"'{small}'", timeout=15_000)
    assert not errors, errors
    page.close()


def test_kernel_death_and_memory_alerts_are_lab_notifications(lab, browser):
    base, tmp_path, _ = lab
    victim = start_notebook_kernel(base, "doomed.ipynb")
    pid = tracked(base, {victim})[victim]["pid"]

    errors: list[str] = []
    page = new_page(browser, errors)
    # the sidebar stays closed: notifications do not need it
    page.goto(f"{base}lab?token={TOKEN}")
    page.locator('.jp-SideBar.jp-mod-left [data-id="tracklab-monitor"]').wait_for(
        timeout=60_000)
    page.wait_for_function(
        "() => performance.getEntriesByType('resource').some((e) => "
        "e.name.includes('/tracklab/api/alerts'))", timeout=30_000)

    with ExitStack() as stack:
        # a kernel killed from outside: "the kernel of `doomed.ipynb` was killed ..."
        os.kill(pid, signal.SIGKILL)
        death = page.locator(TOAST, has_text="doomed.ipynb")
        try:
            death.first.wait_for(timeout=30_000)
        except Exception:
            page.screenshot(path=str(tmp_path / "failed.png"))
            raise AssertionError(f"no notification for the kernel's death: {toasts(page)}; "
                                 f"{rest(base, 'tracklab/api/alerts')}") from None
        assert "killed" in death.first.inner_text() or "died" in death.first.inner_text()
        assert death.first.locator("button", has_text="Open notebook").count() == 1

        # the container's memory over 90 % of its limit: one "OOM risk" warning ...
        stack.callback(write_cgroup, tmp_path / "cgroup", CGROUP_LIMIT // 2)
        write_cgroup(tmp_path / "cgroup", int(CGROUP_LIMIT * 0.93))
        oom = page.locator(TOAST, has_text="OOM risk")
        try:
            oom.first.wait_for(timeout=30_000)
        except Exception:
            raise AssertionError(f"no OOM notification: {toasts(page)}; "
                                 f"{rest(base, 'tracklab/api/alerts')}") from None
        assert "Toastify__toast--warning" in oom.first.get_attribute("class")
        time.sleep(2)  # ... and no second one while it stays over
        assert page.locator(TOAST, has_text="OOM risk").count() == 1
        # ... that turns into "resolved" when it falls back (the same notification)
        write_cgroup(tmp_path / "cgroup", CGROUP_LIMIT // 2)
        page.locator(TOAST, has_text="resolved").first.wait_for(timeout=30_000)
        assert page.locator(TOAST, has_text="OOM risk").count() == 0
        assert "Toastify__toast--success" in page.locator(
            TOAST, has_text="resolved").first.get_attribute("class")
        page.close()

        # muted in the settings (client side): the server still raises it, no notification
        rest(base, "lab/api/settings/tracklab-jupyter:plugin", "PUT",
             {"raw": json.dumps({"mutedAlertRules": ["memory"]})})
        page = new_page(browser, errors)
        page.goto(f"{base}lab?token={TOKEN}")
        page.wait_for_function(
            "() => performance.getEntriesByType('resource').some((e) => "
            "e.name.includes('/tracklab/api/alerts'))", timeout=60_000)
        write_cgroup(tmp_path / "cgroup", int(CGROUP_LIMIT * 0.93))
        deadline = time.monotonic() + 30
        while not any(a["rule"] == "memory" for a in rest(base, "tracklab/api/alerts")["active"]):
            assert time.monotonic() < deadline, "the memory alert was not raised again"
            time.sleep(0.3)
        time.sleep(2)  # the time a notification takes, twice over
        assert page.locator(TOAST, has_text="OOM risk").count() == 0, toasts(page)
    assert not errors, errors
    page.close()
