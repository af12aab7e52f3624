"""Runs through the Jupyter server: a real training script in a child process logs while a
real WebSocket client receives run_update and metric_update; SIGKILL gives a crashed run;
the REST endpoints answer per the OpenAPI document; PATCH and DELETE edit and remove."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
from test_server_ws import receive
from tornado.httpclient import HTTPClientError

from tracklab_jupyter.server.openapi import openapi_dict

pytestmark = pytest.mark.usefixtures("tracklab_server")

COMPONENTS = {"components": openapi_dict("")["components"]}
SHIM = Path(__file__).parent / "shim"

TRAIN = """
    import sys, time, tracklab
    run = tracklab.init(project="resnet", config={"lr": 0.1}, tags=["a"],
                        system_monitor=sys.argv[2] == "monitor")
    print(run.id, flush=True)
    for step in range(int(sys.argv[1])):
        run.log({"loss": 1.0 / (step + 1), "lr": 0.1})
        time.sleep(0.05)
"""


def validate(body: object, schema: str) -> None:
    jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", **COMPONENTS}).validate(body)


def start_training(tmp_path: Path, data_dir: Path, steps: int, monitor: bool = False
                   ) -> tuple[subprocess.Popen[str], str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    env = {**os.environ, "TRACKLAB_DATA_DIR": str(data_dir), "TRACKLAB_INTERVAL": "0.2",
           "TRACKLAB_FAKE_NVML_GPUS": "0",
           "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(script), str(steps),
                              "monitor" if monitor else "plain"],
                             env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


async def wait_exit(child: subprocess.Popen[str], timeout: float = 60.0) -> int:
    """Wait for the child without blocking the event loop (the server runs on it)."""
    for _ in range(int(timeout / 0.05)):
        if child.poll() is not None:
            return child.returncode
        await asyncio.sleep(0.05)
    raise AssertionError("the training script did not end")


async def subscribe(ws, *topics: str) -> None:
    ws.write_message(json.dumps({"type": "subscribe", "topics": list(topics)}))
    await receive(ws, lambda m: m["type"] == "subscribed")


def run_in_state(run_id: str, state: str):
    """A run_update showing the run in ``state`` (a run created and finished between two
    polls of the store arrives once, as "created", already finished)."""
    return lambda m: (m["type"] == "run_update" and m["data"]["run"]["id"] == run_id
                      and m["data"]["run"].get("state") == state)


def run_update(run_id: str, reason: str):
    return lambda m: (m["type"] == "run_update" and m["data"]["run"]["id"] == run_id
                      and m["data"]["reason"] == reason)


async def get_json(jp_fetch, *path, **params):
    response = await jp_fetch("tracklab", "api", *path, params=params or None)
    return json.loads(response.body)


async def fetch_error(jp_fetch, *path, method: str = "GET", body: str | None = None,
                      **params) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("tracklab", "api", *path, method=method, body=body,
                       params=params or None, allow_nonstandard_methods=True)
    return info.value.code, json.loads(info.value.response.body)


async def test_a_training_script_streams_to_websocket_clients_and_a_kill_is_a_crash(
        jp_ws_fetch, jp_fetch, tmp_path, tracklab_data_dir):
    ws = await jp_ws_fetch("tracklab", "ws")
    await subscribe(ws, "run_update", "metric_update")
    child, run_id = start_training(tmp_path, tracklab_data_dir, steps=100_000, monitor=True)
    try:
        created = await receive(ws, run_update(run_id, "created"))
        validate(created["data"], "WsRunUpdate")
        validate(created["data"]["run"], "RunSummary")
        assert created["data"]["run"]["state"] == "running"
        assert created["data"]["run"]["project"] == "resnet"
        steps: list[int] = []
        while len(steps) < 30:  # batches of new values, in step order, within a second each
            update = await receive(ws, lambda m: m["type"] == "metric_update", timeout=5)
            validate(update["data"], "WsMetricUpdate")
            data = update["data"]
            if data["run"] != run_id or not data["step"]:
                continue
            assert data["project"] == "resnet"
            steps += data["step"]
            assert data["metrics"]["loss"] == [pytest.approx(1 / (s + 1))
                                               for s in data["step"]]
        assert steps == list(range(steps[0], steps[0] + len(steps)))
        # the script reads the server's samples (it is not the recorder) for its tree
        run = await get_json(jp_fetch, "runs", run_id)
        assert run["system_monitor"] is True and run["processes"][0]["pid"] == child.pid
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        crashed = await receive(ws, run_update(run_id, "state"), timeout=15)
        assert crashed["data"]["run"]["state"] == "crashed"
        run = await get_json(jp_fetch, "runs", run_id)
        assert run["state"] == "crashed" and f"process {child.pid}" in run["error"]
    finally:
        child.kill()
        child.wait(10)
        ws.close()


async def test_runs_rest_endpoints_patch_and_delete(jp_ws_fetch, jp_fetch, tmp_path,
                                                     tracklab_data_dir):
    ws = await jp_ws_fetch("tracklab", "ws")
    await subscribe(ws, "run_update")
    child, run_id = start_training(tmp_path, tracklab_data_dir, steps=20)
    assert await wait_exit(child) == 0
    await receive(ws, run_in_state(run_id, "finished"))

    projects = await get_json(jp_fetch, "projects")
    validate(projects, "Projects")
    assert [(p["name"], p["runs"], p["states"]) for p in projects["projects"]] == [
        ("resnet", 1, {"finished": 1})]
    validate(await get_json(jp_fetch, "projects", "resnet"), "Project")
    listing = await get_json(jp_fetch, "projects", "resnet", "runs")
    validate(listing, "RunList")
    assert [r["id"] for r in listing["runs"]] == [run_id] and listing["total"] == 1
    assert (await get_json(jp_fetch, "runs", state="running"))["runs"] == []
    paged = await get_json(jp_fetch, "runs", project="resnet", limit="1", offset="1")
    assert paged["runs"] == [] and paged["total"] == 1

    run = await get_json(jp_fetch, "runs", run_id)
    validate(run, "Run")
    assert run["config"] == {"lr": 0.1} and run["summary"]["loss"] == pytest.approx(0.05)
    metrics = await get_json(jp_fetch, "runs", run_id, "metrics")
    validate(metrics, "RunMetrics")
    assert metrics["step"] == list(range(20))
    some = await get_json(jp_fetch, "runs", run_id, "metrics", metrics="lo*",
                          start_step="5", end_step="7")
    assert some["step"] == [5, 6, 7] and list(some["metrics"]) == ["loss"]
    system = await get_json(jp_fetch, "runs", run_id, "system", metrics="cpu.util_pct")
    validate(system, "RunSystem")
    assert system["start"] == run["start"] and system["end"] == run["end"]
    assert all(run["start"] <= t <= run["end"] for t in system["history"]["time"])

    patched = json.loads((await jp_fetch(
        "tracklab", "api", "runs", run_id, method="PATCH",
        body=json.dumps({"name": "baseline", "tags": ["best", "a"], "notes": "lr 0.1"}))).body)
    validate(patched, "Run")
    assert (patched["name"], patched["tags"], patched["notes"]) == (
        "baseline", ["best", "a"], "lr 0.1")
    updated = await receive(ws, run_update(run_id, "updated"))
    assert updated["data"]["run"]["name"] == "baseline"

    for body, detail in (("not json", "expected a JSON object"),
                         ('{"state": "finished"}', "editable fields"),
                         ('{"name": ""}', "name must not be empty"),
                         ('{"tags": [1]}', "each tag"), ("{}", "expected a JSON object")):
        code, error = await fetch_error(jp_fetch, "runs", run_id, method="PATCH", body=body)
        assert code == 400 and detail in error["detail"], (body, error)

    response = await jp_fetch("tracklab", "api", "runs", run_id, method="DELETE")
    assert response.code == 204
    deleted = await receive(ws, run_update(run_id, "deleted"))
    assert deleted["data"]["run"] == {"id": run_id, "project": "resnet"}
    assert (await fetch_error(jp_fetch, "runs", run_id))[0] == 404
    assert (await get_json(jp_fetch, "runs"))["total"] == 0
    ws.close()


async def test_deleting_a_running_run_conflicts_and_bad_queries_are_400(
        jp_fetch, tmp_path, tracklab_data_dir):
    child, run_id = start_training(tmp_path, tracklab_data_dir, steps=100_000)
    try:
        code, error = await fetch_error(jp_fetch, "runs", run_id, method="DELETE")
        assert code == 409 and "still running" in error["detail"]
    finally:
        child.kill()
        child.wait(10)
    for path, params, code, text in (
            (("runs",), {"state": "sleeping"}, 400, "bad state"),
            (("runs",), {"limit": "0"}, 400, "bad limit"),
            (("runs",), {"project": "a b"}, 400, "bad project"),
            (("runs",), {"sort": "name"}, 400, "unknown query parameter"),
            (("projects", "nope"), {}, 404, "not found"),
            (("projects", "nope", "runs"), {}, 404, "not found"),
            (("runs", "nope"), {}, 404, "not found"),
            (("runs", run_id, "metrics"), {"metrics": "accuracy"}, 404, "unknown metric"),
            (("runs", run_id, "metrics"), {"start_step": "x"}, 400, "bad start_step"),
            (("runs", run_id, "system"), {"agg": "median"}, 400, "bad agg")):
        got, error = await fetch_error(jp_fetch, *path, **params)
        assert (got, error["error"]) == (code, text) or (
            got == code and error["error"].startswith(text)), (path, params, error)
    code, error = await fetch_error(jp_fetch, "runs", run_id, method="PUT", body="{}")
    assert code == 405


async def test_editing_needs_credentials(jp_fetch, tmp_path, tracklab_data_dir):
    """No credentials but a valid XSRF pair, so that the 403 is the auth check's."""
    from test_server_auth import xsrf_pair

    child, run_id = start_training(tmp_path, tracklab_data_dir, steps=3)
    await wait_exit(child)
    cookie, header = xsrf_pair()
    for method, body in (("PATCH", '{"name": "x"}'), ("DELETE", None)):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("tracklab", "api", "runs", run_id, method=method, body=body,
                           headers={"Authorization": "", "Cookie": f"_xsrf={cookie}",
                                    "X-XSRFToken": header},
                           allow_nonstandard_methods=True)
        assert info.value.code == 403
        assert b"xsrf" not in info.value.response.body.lower(), method
    assert (await get_json(jp_fetch, "runs", run_id))["name"] == "run-1"
