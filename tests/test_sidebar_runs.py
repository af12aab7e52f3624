"""The JupyterLab sidebar's runs section (docs/RUNS.md), end to end: real training scripts
(`tracklab.init` in child processes) write to the data dir of a real JupyterLab, and headless
chromium shows their rows live: running with a changing loss, finished when the script
ends, crashed soon after a SIGKILL; a row opens its details (config, host, sparkline) and
a finished run is deleted through the UI. With the WebSocket broken by a proxy, the list
still follows by REST polling."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from jupyterlab_process import (
    break_websocket,
    jupyterlab,
    new_page,
    open_side_panel,
    screenshot_on_failure,
    widen_sidebar,
)

ROOT = Path(__file__).parent.parent
TOKEN = "sidebar-runs-token"
BASE_URL = "/user/bob/"
PROJECT = "sidebar-test"
SIDE = "#tracklab-monitor"

# Logs a falling loss every 0.2 s until the stop file appears (then exits normally).
TRAIN = """
import os, sys, time
import tracklab
project, name, stop = sys.argv[1:]
run = tracklab.init(project=project, name=name, config={"lr": 0.01, "model": {"depth": 3}})
print(run.id, flush=True)
for i in range(3000):
    if os.path.exists(stop):
        break
    run.log({"loss": 1 / (i + 1), "acc": i / (i + 1)})
    time.sleep(0.2)
"""


class Trainer:
    """One `python -c TRAIN project name stopfile` child on the lab's data dir."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.stop_file = tmp_path / f"stop-{name}"
        self.log = tmp_path / f"{name}.log"
        env = {**os.environ, "TRACKLAB_DATA_DIR": str(tmp_path / "data")}
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", TRAIN, PROJECT, name, str(self.stop_file)],
                stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=tmp_path)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().strip() if ready else ""
        assert line, f"tracklab.init printed no run id: {self.log.read_text()[-3000:]}"
        self.id = line

    def finish(self) -> None:
        self.stop_file.touch()
        assert self.proc.wait(30) == 0, self.log.read_text()[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def row(run_id: str) -> str:
    return f'{SIDE} .tl-run[data-run-id="{run_id}"]'


def wait_state(page, run_id: str, state: str, timeout_ms: int) -> None:
    page.locator(f'{row(run_id)}[data-state="{state}"]').wait_for(state="attached",
                                                                  timeout=timeout_ms)


def api_status(base: str, path: str) -> int:
    req = urllib.request.Request(f"{base}tracklab/api/{path}",
                                 headers={"Authorization": f"token {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def open_sidebar(page, base: str):
    page.goto(f"{base}lab?token={TOKEN}")
    open_side_panel(page, SIDE[1:], f"{SIDE} .tl-runs")



def test_runs_in_the_sidebar_live(tmp_path, browser):
    with ExitStack() as stack:
        base = stack.enter_context(jupyterlab(tmp_path, TOKEN, BASE_URL))
        trainers: list[Trainer] = []
        stack.callback(lambda: [t.kill() for t in trainers])

        errors: list[str] = []
        page = new_page(browser, errors, height=1100)
        requests: list[tuple[str, str]] = []
        page.on("request", lambda r: requests.append((r.method, r.url))
                if "/tracklab/api/runs" in r.url else None)
        sent: list[str] = []
        received: list[str] = []

        def on_websocket(ws) -> None:
            ws.on("framesent", lambda f: sent.append(str(f)))
            ws.on("framereceived", lambda f: received.append(str(f)))

        page.on("websocket", on_websocket)
        open_sidebar(page, base)
        page.locator(f'{SIDE} .tl-sideroot[data-transport="websocket"]').wait_for(
            timeout=60_000)
        assert "No runs yet" in page.locator(f"{SIDE} .tl-runs").inner_text()

        # a training script starts: its row appears, running, and its loss falls
        first = Trainer(tmp_path, "first-run")
        trainers.append(first)
        with screenshot_on_failure(page, tmp_path / "failed.png"):
            wait_state(page, first.id, "running", 15_000)
        r1 = page.locator(row(first.id))
        loss = r1.locator('[data-run-metric="loss"]')
        loss.wait_for(timeout=10_000)
        assert r1.locator("[data-field=name]").inner_text() == "first-run"
        assert r1.locator("[data-field=project]").inner_text() == PROJECT
        assert r1.locator("[data-field=state]").inner_text() == "running"
        losses = set()
        duration_before = r1.locator("[data-field=duration]").inner_text()
        for _ in range(10):
            losses.add(loss.inner_text())
            time.sleep(0.3)
        assert len(losses) >= 3, losses  # metric_update reaches the row about once a second
        # its process-tree series (tree.*) arrive in the same updates but are not listed
        # among the metrics it logged
        for _ in range(50):
            if any('"tree.' in f for f in received):
                break
            page.wait_for_timeout(200)
        assert any('"tree.' in f for f in received), "no process-tree values were sent"
        page.wait_for_timeout(500)
        shown = [m.get_attribute("data-run-metric") for m in r1.locator("[data-run-metric]").all()]
        assert shown and not [n for n in shown if n.startswith("tree.")], shown
        assert r1.locator("[data-field=duration]").inner_text() != duration_before  # ticks

        # its details: config, host and pid, a sparkline that grows while it runs
        r1.locator(".tl-run-head").click()
        detail = r1.locator("[data-field=detail]")
        detail.locator('dd[data-fact="lr"]').wait_for(timeout=10_000)
        assert detail.locator('dd[data-fact="lr"]').inner_text() == "0.01"
        assert detail.locator('dd[data-fact="model.depth"]').inner_text() == "3"
        assert f"pid {first.proc.pid}" in detail.locator('dd[data-fact="host"]').inner_text()
        assert detail.locator('dd[data-fact="start"]').inner_text()
        spark = detail.locator(".tl-run-spark")
        assert spark.get_attribute("data-metric") in ("loss", "acc")
        n0 = int(spark.get_attribute("data-points") or 0)
        time.sleep(2)
        assert int(spark.get_attribute("data-points") or 0) > n0 > 0
        assert detail.locator("polyline").get_attribute("points")
        assert detail.locator("[data-action=delete]").is_hidden()  # not while running

        # the script ends normally: finished, with an end time and the Delete action
        first.finish()
        wait_state(page, first.id, "finished", 10_000)
        detail.locator('dd[data-fact="end"]').wait_for(timeout=5_000)
        detail.locator("[data-action=delete]").wait_for(timeout=5_000)
        duration_done = r1.locator("[data-field=duration]").inner_text()
        time.sleep(1.5)
        assert r1.locator("[data-field=duration]").inner_text() == duration_done  # stopped

        # a second script killed with SIGKILL: crashed within a few seconds
        second = Trainer(tmp_path, "killed-run")
        trainers.append(second)
        wait_state(page, second.id, "running", 15_000)
        page.locator(f'{row(second.id)} [data-run-metric="loss"]').wait_for(timeout=10_000)
        second.kill()
        t0 = time.monotonic()
        wait_state(page, second.id, "crashed", 10_000)
        crash_s = time.monotonic() - t0
        # newest first
        ids = [e.get_attribute("data-run-id") for e in page.locator(f"{SIDE} .tl-run").all()]
        assert ids[:2] == [second.id, first.id], ids

        # a third one still running, for the picture
        third = Trainer(tmp_path, "still-running")
        trainers.append(third)
        wait_state(page, third.id, "running", 15_000)
        page.locator(f'{row(third.id)} [data-run-metric="loss"]').wait_for(timeout=10_000)
        widen_sidebar(page, 160)
        time.sleep(0.5)
        section = page.locator(f"{SIDE} .tl-runs")
        section.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "sidebar-runs-page.png"))
        section.screenshot(path=str(tmp_path / "sidebar-runs.png"))
        assert (tmp_path / "sidebar-runs.png").stat().st_size > 5_000
        if os.environ.get("TRACKLAB_UPDATE_DOC_IMAGES"):
            shutil.copy(tmp_path / "sidebar-runs.png", ROOT / "docs" / "images")

        # delete the finished run through the UI (confirm dialog, DELETE with the XSRF header)
        detail.locator("[data-action=delete]").click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(timeout=10_000)
        assert "first-run" in dialog.inner_text()
        dialog.locator("button.jp-mod-warn").click()
        r1.wait_for(state="detached", timeout=10_000)
        assert api_status(base, f"runs/{first.id}") == 404
        assert api_status(base, f"runs/{second.id}") == 200
        assert ("DELETE", f"{base}tracklab/api/runs/{first.id}") in requests

        # the list request is exactly the contract's (no cache-busting parameter)
        lists = [u for m, u in requests if m == "GET" and "/tracklab/api/runs?" in u]
        assert lists and all(u == f"{base}tracklab/api/runs?limit=20" for u in lists), lists
        subs = [json.loads(s) for s in sent if '"subscribe"' in s]
        assert subs and {"system_metrics", "hardware_update", "run_update",
                         "metric_update"} <= set(subs[-1]["topics"]), subs
        assert not errors, errors
        page.close()

        # a proxy that breaks WebSockets: the runs list follows by REST polling
        page = new_page(browser, errors, height=1100)
        break_websocket(page)
        open_sidebar(page, base)
        page.locator(f'{SIDE} .tl-sideroot[data-transport="polling"]').wait_for(timeout=30_000)
        wait_state(page, second.id, "crashed", 10_000)
        wait_state(page, third.id, "running", 10_000)
        assert page.locator(row(first.id)).count() == 0
        third.finish()
        wait_state(page, third.id, "finished", 10_000)  # polled every 3 s
        assert not errors, errors
        page.close()
        print(f"crash shown {crash_s:.1f} s after SIGKILL")
