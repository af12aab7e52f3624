"""Per-kernel resources against a real Jupyter server (pytest-jupyter) with real ipykernel
kernels started through its REST API: ``api/kernels``, the WebSocket topic ``kernels``, the
stored ``kernel.<id>.*`` history, and kernel deaths explained (a cgroup v2 fixture stands
in for the container's memory limit and OOM counter; the fake NVML for the GPU)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import jsonschema
import psutil
import pytest
from tornado.httpclient import HTTPClientError

from tracklab_jupyter.accelerators.nvidia import NvidiaBackend
from tracklab_jupyter.kernels.deaths import Death, explain
from tracklab_jupyter.kernels.server_glue import ServerGlue
from tracklab_jupyter.server.endpoint import Request
from tracklab_jupyter.server.kernels_api import KERNEL_ENDPOINTS
from tracklab_jupyter.server.limits import Limits
from tracklab_jupyter.server.openapi import openapi_dict
from tracklab_jupyter.system_history import history

COMPONENTS = {"components": openapi_dict("")["components"]}
MiB = 1 << 20
HOST_TOTAL = psutil.virtual_memory().total
#: The fixture container's memory limit: below the host's memory, so it is the one that
#: applies.
LIMIT = HOST_TOTAL // 2 // 4096 * 4096


def validate(body: object, schema: str) -> None:
    jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", **COMPONENTS}).validate(body)


@pytest.fixture
def cgroup_root(tmp_path, monkeypatch):
    """A cgroup v2 tree (root folder only: every process's cgroup resolves to it) with a
    memory limit below the host's and an OOM-kill counter at 0. Set before the server
    starts: the memory collector reads it too."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "memory.max").write_text(f"{LIMIT}\n")
    (root / "memory.current").write_text(f"{1 << 30}\n")
    (root / "memory.stat").write_text("inactive_file 0\n")
    (root / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    monkeypatch.setenv("TRACKLAB_CGROUP_ROOT", str(root))
    return root


@pytest.fixture
def jp_server_config(tracklab_data_dir, fake_nvml, cgroup_root, monkeypatch):
    # The NVIDIA backend's slow path (per-process utilisation) every second, not every 5 s,
    # as the other cadences here are shortened.
    monkeypatch.setattr(NvidiaBackend, "slow_interval", 1.0)
    return {
        "ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
        "TrackLab": {"data_dir": str(tracklab_data_dir), "interval": 0.2,
                     "flush_interval": 0.5, "kernel_interval": 0.5},
        # The server notices a dead kernel within half a second, not three.
        "KernelRestarter": {"time_to_dead": 0.5},
    }


async def get_kernels(jp_fetch, **params) -> dict:
    response = await jp_fetch("tracklab", "api", "kernels", params=params or None)
    body = json.loads(response.body)
    validate(body, "Kernels")
    return body


async def wait_kernels(jp_fetch, predicate, timeout: float = 30.0, what: str = "") -> dict:
    """Poll api/kernels until ``predicate(body)`` holds; return that body."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = await get_kernels(jp_fetch)
        if predicate(body):
            return body
        assert loop.time() < deadline, f"timed out waiting for {what}: {body}"
        await asyncio.sleep(0.2)


def by_id(body: dict) -> dict[str, dict]:
    return {k["id"]: k for k in body["kernels"]}


async def start_session(jp_fetch, path: str) -> str:
    """A notebook session with a python3 kernel, through the REST API; its kernel id."""
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps({
        "path": path, "name": os.path.basename(path), "type": "notebook",
        "kernel": {"name": "python3"}}))
    return json.loads(response.body)["kernel"]["id"]


async def run_code(serverapp, kernel_id: str, code: str) -> None:
    """Execute ``code`` in the kernel (a client on its own channels) and wait for it."""
    km = serverapp.kernel_manager.get_kernel(kernel_id)
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(code, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()


def kernel_pid(serverapp, kernel_id: str) -> int:
    return serverapp.kernel_manager.get_kernel(kernel_id).provisioner.process.pid


async def events_of(jp_fetch, kind: str) -> list[dict]:
    response = await jp_fetch("tracklab", "api", "events", params={"kind": kind})
    return json.loads(response.body)["events"]


async def wait_event(jp_fetch, kind: str, predicate=lambda e: True, timeout: float = 30.0):
    """The stored events of ``kind`` for which ``predicate`` holds, once there is one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = [e for e in await events_of(jp_fetch, kind) if predicate(e)]
        if found:
            return found
        assert loop.time() < deadline, f"no {kind} event"
        await asyncio.sleep(0.2)


async def test_each_kernel_shows_its_own_memory_gpu_and_notebook(
        jp_fetch, jp_serverapp, tracklab_server, fake_nvml):
    big = await start_session(jp_fetch, "work/train.ipynb")
    small = await start_session(jp_fetch, "work/eda.ipynb")
    body = await wait_kernels(jp_fetch, lambda b: {big, small} <= set(by_id(b)) and all(
        k["rss_bytes"] for k in b["kernels"]), what="both kernels sampled")
    before = by_id(body)[big]["rss_bytes"]
    await run_code(jp_serverapp, big, f"held = b'x' * ({300 * MiB})")
    fake_nvml.set_load_pid(kernel_pid(jp_serverapp, big))
    body = await wait_kernels(
        jp_fetch, lambda b: by_id(b)[big]["rss_bytes"] >= before + 280 * MiB
        and by_id(b)[big]["gpu_mem_bytes"], what="the allocation and the GPU memory")
    kernels = by_id(body)
    one, other = kernels[big], kernels[small]
    assert one["notebook"] == "work/train.ipynb" and other["notebook"] == "work/eda.ipynb"
    assert one["rss_bytes"] >= other["rss_bytes"] + 280 * MiB
    assert other["rss_bytes"] < 250 * MiB
    assert body["kernels"][0]["id"] == big  # largest RSS first
    assert one["name"] == "python3" and one["sampled"] and one["not_sampled"] is None
    assert one["pid"] == kernel_pid(jp_serverapp, big) and one["procs"] >= 1
    assert one["threads"] >= 1 and one["cpu_pct"] is not None
    assert one["processes"][0]["pid"] == one["pid"]
    # The limit that applies: the cgroup's, below the host's memory.
    assert one["mem_limit_bytes"] == LIMIT and one["mem_limit_source"] == "cgroup"
    assert body["mem_limit_bytes"] == LIMIT and body["mem_limit_source"] == "cgroup"
    # The recorded H200 process's memory, matched to the kernel by its pid; none for the
    # other kernel.
    handle = fake_nvml.nvmlDeviceGetHandleByIndex(0)
    recorded = fake_nvml.nvmlDeviceGetComputeRunningProcesses(handle)[0].usedGpuMemory
    assert one["gpus"]["gpu.0"]["mem_used_bytes"] == recorded == one["gpu_mem_bytes"]
    assert one["gpus"]["gpu.0"]["util_pct"] is not None
    assert other["gpus"] == {} and other["gpu_mem_bytes"] is None
    # The recorded process's own utilisation (smUtil 86), read by the NVIDIA backend's slow
    # path, matched to the kernel by the same pid.
    body = await wait_kernels(
        jp_fetch, lambda b: by_id(b)[big]["gpus"].get("gpu.0", {}).get("proc_util_pct")
        is not None, timeout=30, what="the kernel's own GPU utilisation")
    assert by_id(body)[big]["gpus"]["gpu.0"]["proc_util_pct"] == 86
    # A poller gets 304 until the next pass (which may fall between two requests: retry).
    for _ in range(5):
        etag = (await jp_fetch("tracklab", "api", "kernels", params={"id": big})).headers["ETag"]
        try:
            await jp_fetch("tracklab", "api", "kernels", params={"id": big},
                           headers={"If-None-Match": etag})
        except HTTPClientError as error:
            assert error.code == 304
            break
    else:
        raise AssertionError("never 304 Not Modified")
    # One kernel by id; an unknown one is a 404, a malformed one a 400.
    only = await get_kernels(jp_fetch, id=small)
    assert [k["id"] for k in only["kernels"]] == [small]
    for bad, code in (("0" * 36, 404), ("Not-A-Kernel", 400), ("a" * 65, 400)):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("tracklab", "api", "kernels", params={"id": bad})
        assert info.value.code == code
        validate(json.loads(info.value.response.body), "Error")


async def test_kernel_history_is_stored_named_and_shutdown_is_an_event(
        jp_fetch, jp_serverapp, tracklab_server, tracklab_data_dir):
    """``kernel.<id>.rss_bytes`` is read back through history(), whose info() names the
    kernel's notebook; DELETE api/kernels/{id} is a ``kernel_stopped`` event."""
    kernel = await start_session(jp_fetch, "notes/plot.ipynb")
    await wait_kernels(jp_fetch, lambda b: kernel in by_id(b), what="the kernel")
    started = await wait_event(jp_fetch, "kernel_started",
                               lambda e: e["data"]["kernel_id"] == kernel)
    assert started[0]["data"]["notebook"] == "notes/plot.ipynb"
    assert started[0]["data"]["pid"] == kernel_pid(jp_serverapp, kernel)

    def stored():
        try:
            hist = history(metrics="kernel.*.rss_bytes", start="-5min",
                           data_dir=tracklab_data_dir)
        except ValueError:  # nothing stored yet
            return None
        column = hist.to_pandas().get(f"kernel.{kernel}.rss_bytes")
        return hist if column is not None and column.notna().sum() >= 2 else None

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while (hist := stored()) is None:
        assert loop.time() < deadline, "no stored kernel series"
        await asyncio.sleep(0.2)
    values = hist.to_pandas()[f"kernel.{kernel}.rss_bytes"].dropna()
    assert (values > 10 * MiB).all()
    named = hist.info()[tracklab_server.monitor.node]["kernels"][kernel]
    assert named["notebook"] == "notes/plot.ipynb" and named["name"] == "python3"
    assert named["first_seen"] is not None and named["last_seen"] is None

    await jp_fetch("api", "kernels", kernel, method="DELETE")
    stopped = await wait_event(jp_fetch, "kernel_stopped",
                               lambda e: e["data"]["kernel_id"] == kernel)
    assert "plot.ipynb" in stopped[0]["message"]
    assert (await get_kernels(jp_fetch))["kernels"] == []
    assert await events_of(jp_fetch, "kernel_died") == []  # a shutdown is no death
    ended = history(metrics="kernel.*.rss_bytes", start="-5min", data_dir=tracklab_data_dir)
    assert ended.info()[ended.nodes[0]]["kernels"][kernel]["ended"] == "stopped"


async def test_kernels_frames_reach_websocket_subscribers(jp_fetch, jp_ws_fetch,
                                                          tracklab_server):
    kernel = await start_session(jp_fetch, "ws.ipynb")
    ws = await jp_ws_fetch("tracklab", "ws")
    try:
        ws.write_message(json.dumps({"type": "subscribe", "topics": ["kernels"]}))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:
            raw = await asyncio.wait_for(ws.read_message(), deadline - loop.time())
            assert raw is not None, "server closed the socket"
            message = json.loads(raw)
            if message["type"] == "kernels" and any(
                    k["id"] == kernel and k["rss_bytes"] for k in message["data"]["kernels"]):
                break
        validate(message["data"], "Kernels")
        assert message["data"]["kernels"][0]["notebook"] == "ws.ipynb"
    finally:
        ws.close()


async def test_a_killed_kernel_is_explained_signal_then_oom(
        jp_fetch, jp_serverapp, tracklab_server, cgroup_root):
    kernel = await start_session(jp_fetch, "work/train.ipynb")
    await wait_kernels(jp_fetch, lambda b: kernel in by_id(b) and by_id(b)[kernel][
        "rss_bytes"], what="the kernel sampled")
    first = kernel_pid(jp_serverapp, kernel)
    os.kill(first, signal.SIGKILL)
    died = await wait_event(jp_fetch, "kernel_died", lambda e: e["data"]["pid"] == first)
    data = died[0]["data"]
    assert data["kernel_id"] == kernel and data["notebook"] == "work/train.ipynb"
    assert data["reason"] == "signal" and data["signal_name"] == "SIGKILL"
    assert data["signal"] == signal.SIGKILL and data["restarted"] is True
    assert data["mem_limit_bytes"] == LIMIT and data["rss_bytes"] > 10 * MiB
    assert data["oom_kills"] == 0
    assert died[0]["message"].startswith("the kernel of `train.ipynb` was killed by SIGKILL")

    # The server restarted it: a new process, sampled again.
    body = await wait_kernels(jp_fetch, lambda b: kernel in by_id(b) and by_id(b)[kernel][
        "pid"] not in (None, first) and by_id(b)[kernel]["rss_bytes"], what="the restart")
    second = by_id(body)[kernel]["pid"]
    await asyncio.sleep(1.2)  # a pass or two see it alive with the count at 0
    # What the out-of-memory killer does: count the kill in memory.events, then SIGKILL.
    (cgroup_root / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    os.kill(second, signal.SIGKILL)
    died = await wait_event(jp_fetch, "kernel_died", lambda e: e["data"]["pid"] == second)
    data = died[0]["data"]
    assert data["reason"] == "oom_kill" and data["oom_kills"] == 1
    assert data["signal_name"] == "SIGKILL" and data["restarted"] is True
    message = died[0]["message"]
    assert message.startswith("the kernel of `train.ipynb` was killed by the out-of-memory "
                              "killer at ")
    assert "(RSS " in message and "limit " in message
    assert time.time() - died[0]["time"] < 60


class _Stand:
    """A stand-in for a gateway's kernel manager: kernels with no local process."""

    def __init__(self) -> None:
        self.kernel = SimpleNamespace(kernel_name="python3", execution_state="idle",
                                      last_activity=None)

    def list_kernel_ids(self) -> list[str]:
        return ["4f1c2d3e-0000-4000-8000-000000000001"]

    def get_kernel(self, kernel_id: str) -> SimpleNamespace:
        return self.kernel


class _Sessions:
    async def list_sessions(self) -> list[dict]:
        return [{"path": "remote/job.ipynb",
                 "kernel": {"id": "4f1c2d3e-0000-4000-8000-000000000001"}}]


class _Sink:
    def __init__(self) -> None:
        self.listings: list = []
        self.deaths: list[Death] = []

    def update_listing(self, kernels, at) -> None:
        self.listings.append(kernels)

    def report_death(self, death) -> None:
        self.deaths.append(death)


async def test_remote_kernels_are_listed_not_sampled():
    sink = _Sink()
    app = SimpleNamespace(kernel_manager=_Stand(), session_manager=_Sessions(), io_loop=None)
    glue = ServerGlue(app, sink, 1.0)
    await glue.poll()
    (listing,) = sink.listings
    (entry,) = listing
    assert entry.not_sampled == "remote" and entry.pid is None
    assert entry.notebook == "remote/job.ipynb" and entry.name == "python3"

    from tracklab_jupyter.kernels.tracker import _entry

    shown = _entry(entry, None, None, {}, None)
    assert shown["sampled"] is False and shown["not_sampled"] == "remote"
    assert shown["rss_bytes"] is None and shown["processes"] == []
    validate(shown, "Kernel")
    assert sink.deaths == []


async def test_without_a_restarter_a_dead_kernel_process_is_noticed_once():
    """autorestart off: no restarter callbacks, so the glue polls the kernel's process."""
    from jupyter_client.provisioning import LocalProvisioner

    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait(30)
    provisioner = LocalProvisioner(kernel_id="k", kernel_spec=None)
    provisioner.process, provisioner.pid = process, process.pid
    kernel = SimpleNamespace(kernel_name="python3", execution_state="idle",
                             last_activity=None, provisioner=provisioner, _restarter=None)
    manager = SimpleNamespace(list_kernel_ids=lambda: ["0abc"], get_kernel=lambda k: kernel)
    sink = _Sink()
    glue = ServerGlue(SimpleNamespace(kernel_manager=manager, session_manager=None,
                                      io_loop=None), sink, 1.0)
    await glue.poll()
    await glue.poll()
    assert sink.listings[0][0].pid == process.pid
    (death,) = sink.deaths
    assert (death.kernel_id, death.pid, death.returncode, death.restarted) == (
        "0abc", process.pid, 3, False)


def test_without_kernels_the_endpoint_says_why():
    (endpoint,) = KERNEL_ENDPOINTS
    monitor = SimpleNamespace(node="host", kernels=None)
    reply = endpoint.handler(Request(monitor, {"id": None}, Limits()))
    validate(reply.body, "Kernels")
    assert reply.body["kernels"] == [] and "standalone" in reply.body["notes"][0]


def test_death_messages_name_the_exit():
    death = Death("0f0f0f0f-1111", 4242, 1, False, time.time())
    message, data = explain(death, kernel_name="python3", notebook=None, rss_bytes=None,
                            mem_limit_bytes=2 << 30, oom_kills_before=0, oom_kills_now=0)
    assert message.startswith("the python3 kernel 0f0f0f0f exited with code 1 at ")
    assert message.endswith("(limit 2.0 GiB)")
    assert data["reason"] == "exit" and data["exit_code"] == 1 and data["signal"] is None
