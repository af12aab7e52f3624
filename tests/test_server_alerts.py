"""Alerts through real servers: a container memory limit (a cgroup v2 fixture at
TRACKLAB_CGROUP_ROOT) crossed and left again gives one alert and one resolution, in
``api/alerts`` and as WebSocket ``alert`` frames, also for a Jupyter server that only reads
the store while another process records; kernel deaths; the standalone server's
``api/alerts``; and how WebSocket sessions queue ``alert`` and ``kernels`` frames."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest
from test_alerts import Host
from test_server_ws import COMPONENTS, receive
from test_standalone import TOKEN, start_server, stop_server
from test_ws_limits import SlowClient, StubMonitor

from tracklab_jupyter.alerts.book import Alert
from tracklab_jupyter.alerts.engine import AlertEngine
from tracklab_jupyter.metrics.sample import Event
from tracklab_jupyter.sampler.hub import EVENT, KERNELS
from tracklab_jupyter.server.alerts_api import alerts
from tracklab_jupyter.server.endpoint import Request
from tracklab_jupyter.server.limits import Limits
from tracklab_jupyter.server.ws_protocol import TOPICS, WsSession

GiB = float(1 << 30)


def valid(body: Any, schema: str) -> Any:
    jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", **COMPONENTS}).validate(body)
    return body


class FakeCgroup:
    """A cgroup v2 tree for this process's cgroup path, with a memory limit half the
    host's RAM; ``use(pct)`` sets how much of it is in use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        path = "/"
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                path = line[3:]
        self.leaf = root / path.strip("/")
        self.leaf.mkdir(parents=True, exist_ok=True)
        (root / "cgroup.controllers").write_text("cpu memory pids\n")
        self.limit = (psutil.virtual_memory().total // 2) & ~4095
        (self.leaf / "memory.max").write_text(f"{self.limit}\n")
        (self.leaf / "memory.stat").write_text("anon 0\ninactive_file 0\n")
        self.use(40)

    def use(self, pct: float) -> None:
        # Written whole at once (a rename), as the kernel's file is: a sampler reading an
        # empty, half-written file would take the cgroup for unreadable.
        staged = self.leaf / "memory.current.new"
        staged.write_text(f"{int(self.limit * pct / 100)}\n")
        os.replace(staged, self.leaf / "memory.current")


@pytest.fixture
def cgroup(tmp_path, monkeypatch) -> FakeCgroup:
    fake = FakeCgroup(tmp_path / "cgroup")
    monkeypatch.setenv("TRACKLAB_CGROUP_ROOT", str(fake.root))
    return fake


@pytest.fixture
def recorder_elsewhere(tracklab_data_dir, cgroup):
    """A standalone server recording the data dir (started first, so the Jupyter server
    started after it only reads), with the same fake cgroup."""
    server = start_server(tracklab_data_dir, "--token", TOKEN, "--alerts",
                          json.dumps({"memory": {"for_s": 0}}))
    try:
        deadline = time.monotonic() + 20
        while _health(server)["role"] != "recorder":
            assert time.monotonic() < deadline, "the standalone server did not record"
            time.sleep(0.1)
        yield server
    finally:
        stop_server(server)


def _health(server: Any) -> dict[str, Any]:
    status, _, body = server.get("/api/health")
    return json.loads(body) if status == 200 else {"role": None}


@pytest.fixture
def role(request) -> str:
    """What the Jupyter server's monitor should be: ``reader`` (parametrized indirectly)
    starts a recorder elsewhere first."""
    return getattr(request, "param", "recorder")


@pytest.fixture
def nvml(fake_nvml_factory):
    """The recorded H200 replayed from its trace (its "memory" phase, 84 to 124 s, holds
    7.6 GB at 0 % busy; its "compute" phase, 25 to 65 s, is busy)."""
    return fake_nvml_factory(mode="trace")


@pytest.fixture
def jp_server_config(request, tracklab_data_dir, cgroup, role, nvml):
    if role == "reader":
        request.getfixturevalue("recorder_elsewhere")
    return {
        "ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
        "TrackLab": {"data_dir": str(tracklab_data_dir), "interval": 0.2,
                     "flush_interval": 0.2, "kernel_interval": 0.5,
                     "alerts": {"memory": {"for_s": 0.4},
                                "idle_gpu": {"idle_minutes": 0.02}}},
    }


async def get_alerts(jp_fetch, **params: str) -> dict[str, Any]:
    response = await jp_fetch("tracklab", "api", "alerts", params=params or None)
    return valid(json.loads(response.body), "Alerts")


async def frames_until(ws, stop: str, monitor: Any = None) -> list[dict[str, Any]]:
    """Every ``alert`` frame up to and including the first whose data kind is ``stop``."""
    found: list[dict[str, Any]] = []
    while not found or found[-1]["data"]["kind"] != stop:
        try:
            found.append(valid(await receive(ws, "alert", timeout=20), "WsEnvelope"))
        except TimeoutError:
            raise AssertionError(f"no {stop} frame after {found}; {state(monitor)}") from None
        valid(found[-1]["data"], "WsAlert")
    return found


def state(monitor: Any) -> str:
    """What a failure message says about the server's monitor and alert engine."""
    if monitor is None:
        return ""
    engine, latest = monitor.alerts, monitor.latest
    thread = getattr(engine, "_thread", None)
    return (f"role {monitor.role}, engine {engine is not None}, thread alive "
            f"{thread is not None and thread.is_alive()}, active "
            f"{[a.key for a in engine.book.active()] if engine else None}, latest mem "
            f"{latest.metrics.get('mem.util_pct') if latest else None} at "
            f"{latest.time - time.time() if latest else None} s")


async def wait_limit_applies(ws, cgroup: FakeCgroup) -> None:
    """Until samples measure memory against the fake limit."""
    await receive(ws, lambda m: m["type"] == "system_metrics"
                  and m["data"]["metrics"].get("mem.limit_bytes") == cgroup.limit)


async def test_a_container_memory_limit_crossed_then_left(jp_fetch, jp_ws_fetch,
                                                           tracklab_server, cgroup):
    ws = await jp_ws_fetch("tracklab", "ws")
    hello = await receive(ws, "hello")
    assert "alerts" in hello["data"]["default_topics"]
    await wait_limit_applies(ws, cgroup)
    cgroup.use(95)
    monitor = tracklab_server.monitor
    fired = await frames_until(ws, "alert", monitor)
    data = fired[-1]["data"]
    assert [f["data"]["key"] for f in fired] == ["memory:host"]
    assert data["rule"] == "memory" and data["title"] == "OOM risk"
    assert data["severity"] == "warning" and data["value"] == pytest.approx(95, abs=0.1)
    assert "of the container's limit" in data["message"] and data["message"] == \
        data["message"].strip()
    # active at once (before the writer's flush), with the effective rules
    body = await get_alerts(jp_fetch)
    assert [a["key"] for a in body["active"]] == ["memory:host"]
    assert body["active"][0]["time"] == fired[-1]["data"]["time"]
    assert body["rules"]["memory"]["for_s"] == 0.4
    cgroup.use(88)  # between clear (85) and threshold (90): still active, nothing sent
    await asyncio.sleep(1.0)
    cgroup.use(30)
    later = await frames_until(ws, "alert_resolved", monitor)
    assert [f["data"]["kind"] for f in later] == ["alert_resolved"]  # no repeats meanwhile
    resolved = later[0]["data"]
    assert resolved["key"] == "memory:host" and resolved["since"] == data["since"]
    assert resolved["message"].startswith("resolved: memory back to")
    body = await get_alerts(jp_fetch)
    assert body["active"] == []
    assert [e["kind"] for e in body["recent"]] == ["alert_resolved", "alert"]
    # stored once each
    deadline = time.monotonic() + 10
    while True:
        response = await jp_fetch("tracklab", "api", "events",
                                  params={"kind": "alert,alert_resolved"})
        stored = json.loads(response.body)["events"]
        if len(stored) >= 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert [e["kind"] for e in stored] == ["alert", "alert_resolved"]
    assert (await get_alerts(jp_fetch, limit="1"))["recent"][0]["kind"] == "alert_resolved"
    ws.close()


@pytest.mark.parametrize("role", ["reader"], indirect=True)
async def test_a_reader_server_relays_the_recorders_alerts_once(
        jp_fetch, jp_ws_fetch, tracklab_server, cgroup, recorder_elsewhere, role):
    monitor = tracklab_server.monitor
    assert monitor.wait_started(10) and monitor.role == "reader"
    ws = await jp_ws_fetch("tracklab", "ws")
    await wait_limit_applies(ws, cgroup)  # the recorder's samples, through the store
    cgroup.use(96)
    fired = await frames_until(ws, "alert", monitor)
    cgroup.use(20)
    resolved = await frames_until(ws, "alert_resolved", monitor)
    assert [f["data"]["kind"] for f in fired + resolved] == ["alert", "alert_resolved"]
    assert fired[0]["data"]["key"] == "memory:host"
    body = await get_alerts(jp_fetch)
    assert body["active"] == []
    assert [e["kind"] for e in body["recent"]] == ["alert_resolved", "alert"]
    # the recorder's api/alerts says the same: one process stored them
    status, _, raw = recorder_elsewhere.get("/api/alerts")
    assert status == 200
    assert [e["kind"] for e in valid(json.loads(raw), "Alerts")["recent"]] == [
        "alert_resolved", "alert"]
    # a kernel rule of this reader: its alert is stored, and comes back once through the
    # store's tail
    kernel_id = "0d5e6f70-0000-4000-8000-000000000002"
    monitor.hub.publish(KERNELS, {"time": time.time(), "node": monitor.node,
                                  "interval_s": 0.5, "mem_limit_bytes": None,
                                  "mem_limit_source": None, "notes": [], "kernels": [
                                      {"id": kernel_id, "notebook": "r.ipynb",
                                       "rss_bytes": GiB}]})
    monitor.record_event(Event(time.time(), monitor.node, "kernel_died",
                               "the kernel of `r.ipynb` exited with code 1", {
                                   "kernel_id": kernel_id, "notebook": "r.ipynb",
                                   "reason": "exit", "exit_code": 1}))
    frame = await receive(ws, "alert", timeout=20)
    assert frame["data"]["key"] == f"kernel_death:{kernel_id}"
    with pytest.raises(asyncio.TimeoutError):
        await receive(ws, "alert", timeout=2.0)
    ws.close()


async def test_a_kernel_holding_an_idle_gpu(jp_fetch, jp_ws_fetch, jp_serverapp,
                                            tracklab_server, nvml):
    """A real kernel the fake NVML reports holding the recorded load's GPU memory: idle
    (shortened to 1.2 s) in the trace's memory phase, busy in its compute phase."""
    nvml.seek(100.0)
    ws = await jp_ws_fetch("tracklab", "ws")
    await receive(ws, "hello")
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps({
        "path": "work/idle.ipynb", "name": "idle.ipynb", "type": "notebook",
        "kernel": {"name": "python3"}}))
    kernel_id = json.loads(response.body)["kernel"]["id"]
    pid = jp_serverapp.kernel_manager.get_kernel(kernel_id).provisioner.process.pid
    nvml.set_load_pid(pid)
    monitor = tracklab_server.monitor
    fired = await frames_until(ws, "alert", monitor)
    data = fired[-1]["data"]
    assert [f["data"]["key"] for f in fired] == [f"idle_gpu:{kernel_id}"]
    assert data["title"] == "idle GPU" and data["kernels"][0]["notebook"] == "work/idle.ipynb"
    assert data["message"].startswith("`idle.ipynb` holds ") and " on GPU 0 " in data["message"]
    assert data["value"] > 1e9  # the recorded load's memory
    nvml.seek(40.0)  # the kernel computes
    resolved = await frames_until(ws, "alert_resolved", monitor)
    assert [f["data"]["kind"] for f in resolved] == ["alert_resolved"]
    assert resolved[0]["data"]["message"] == "resolved: `idle.ipynb` uses GPU 0 again"
    await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    ws.close()


async def test_a_kernel_death_is_one_alert_frame_with_its_message(
        jp_fetch, jp_ws_fetch, tracklab_server):
    monitor = tracklab_server.monitor
    assert monitor.wait_started(10)
    deadline = time.monotonic() + 10
    while monitor.alerts is None:  # started on the extension's start thread
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    ws = await jp_ws_fetch("tracklab", "ws")
    await receive(ws, "hello")
    message = ("the kernel of `train.ipynb` was killed by the out-of-memory killer at "
               "14:02:11 (RSS 22.8 GiB, limit 23.5 GiB)")
    monitor.record_event(Event(time.time(), monitor.node, "kernel_died", message, {
        "kernel_id": "6f1c2a3b-0000-4000-8000-000000000001", "kernel_name": "python3",
        "notebook": "work/train.ipynb", "pid": 4242, "reason": "oom_kill", "signal": 9,
        "signal_name": "SIGKILL", "exit_code": None, "oom_kills": 1,
        "rss_bytes": 22.8 * GiB, "mem_limit_bytes": 23.5 * GiB, "restarted": False}))
    frame = await receive(ws, "alert")
    data = valid(frame["data"], "WsAlert")
    assert data["kind"] == "alert" and data["message"] == message
    assert data["severity"] == "critical" and data["instant"] is True
    assert data["key"] == "kernel_death:6f1c2a3b-0000-4000-8000-000000000001"
    body = await get_alerts(jp_fetch)
    assert body["active"] == []  # instant: nothing to resolve
    assert body["recent"][0]["message"] == message
    with pytest.raises(asyncio.TimeoutError):  # told once
        await receive(ws, "alert", timeout=1.0)
    ws.close()


def test_the_standalone_server_serves_alerts(tmp_path):
    settings = {"disk": {"threshold_pct": 1, "clear_pct": 0.5}, "ecc": False}
    server = start_server(tmp_path / "data", "--token", TOKEN, "--alerts", json.dumps(settings))
    try:
        deadline = time.monotonic() + 20
        while True:  # every real disk is more than 1 % full
            status, _, raw = server.get("/api/alerts?start=-1h&limit=5")
            assert status == 200, raw
            body = valid(json.loads(raw), "Alerts")
            if body["active"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert body["active"] and all(a["rule"] == "disk" for a in body["active"])
        assert body["rules"]["disk"]["threshold_pct"] == 1 and not body["rules"]["ecc"]["enabled"]
        status, _, raw = server.get("/api/alerts?limit=0")
        assert status == 400 and json.loads(raw)["error"] == "bad limit"
        request = urllib.request.Request(server.url("/api/alerts"))
        with pytest.raises(urllib.error.HTTPError) as info:  # the token is required
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 401
    finally:
        stop_server(server)


def test_the_standalone_server_refuses_bad_alert_settings(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "tracklab_jupyter", "serve", "--port", "0", "--data-dir",
         str(tmp_path), "--alerts", '{"memory": {"threshold_pct": 150}}'],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--alerts.memory.threshold_pct: must be between 1 and 100, got 150" in done.stderr


# -- how sessions queue the new frames -------------------------------------------------------

def alert_event(key: str, kind: str = "alert", t: float = 1.0) -> Event:
    data = ({"key": key, "rule": "disk", "severity": "warning", "title": "disk full",
             "message": f"{key} full", "subject": key, "since": t, "value": 96.0,
             "threshold": 95.0, "kernels": [], "instant": False} if kind == "alert" else
            {"key": key, "rule": "disk", "subject": key, "since": t, "resolved": t + 1,
             "title": "disk full"})
    return Event(t, "n1", kind, f"{key} {kind}", data)


def test_a_slow_client_gets_each_alerts_latest_and_the_newest_kernel_pass():
    client = SlowClient()
    session = WsSession(StubMonitor(), client.send)  # type: ignore[arg-type]
    session.open()
    assert "alerts" in session.topics and "kernels" not in session.topics
    session.on_message(json.dumps({"type": "subscribe", "topics": ["kernels"]}))
    for i in range(50):
        session.deliver([(EVENT, alert_event("disk:/", t=float(i))),
                         (EVENT, alert_event(f"disk:/m{i % 3}", t=float(i))),
                         (KERNELS, {"time": float(i), "node": "n1", "kernels": []})])
    session.deliver([(EVENT, alert_event("disk:/", "alert_resolved", 99.0))])
    frames = client.read_all()
    alerts = [f["data"] for f in frames if f["type"] == "alert"]
    assert sorted(a["key"] for a in alerts) == ["disk:/", "disk:/m0", "disk:/m1", "disk:/m2"]
    assert next(a for a in alerts if a["key"] == "disk:/")["kind"] == "alert_resolved"
    assert [f["data"]["time"] for f in frames if f["type"] == "kernels"] == [49.0]
    # alert events are alert frames, never hardware changes
    assert not any(f["type"] == "hardware_update" and f["data"]["reason"] == "event"
                   for f in frames)
    for frame in frames:
        valid(frame, "WsEnvelope")
        if frame["type"] == "alert":
            valid(frame["data"], "WsAlert")
    # unsubscribed: waiting alert frames are dropped and no more come
    session.deliver([(EVENT, alert_event("disk:/x", t=100.0)),  # written: in flight
                     (EVENT, alert_event("disk:/x2", t=100.0))])  # waits
    session.on_message(json.dumps({"type": "unsubscribe", "topics": ["alerts", "kernels"]}))
    session.deliver([(EVENT, alert_event("disk:/y", t=101.0)),
                     (KERNELS, {"time": 101.0, "node": "n1", "kernels": []})])
    later = client.read_all()
    assert [f["type"] for f in later] == ["subscribed"]
    assert set(TOPICS) >= {"alerts", "kernels"}


def test_a_memory_alert_from_a_recorder_without_kernels_names_this_servers_kernels():
    """A standalone recorder knows no kernels; the Jupyter server that owns them names
    them when it sends the alert on."""

    class Tracker:
        def snapshot(self) -> dict[str, Any]:
            return {"time": 1.0, "node": "n1", "kernels": [
                {"id": "k1", "notebook": "work/train.ipynb", "rss_bytes": 12 * GiB},
                {"id": "k2", "notebook": None, "rss_bytes": None}]}

    monitor = StubMonitor()
    monitor.kernels = Tracker()  # type: ignore[attr-defined]
    client = SlowClient()
    session = WsSession(monitor, client.send)  # type: ignore[arg-type]
    session.open()
    data = {"key": "memory:host", "rule": "memory", "severity": "warning",
            "title": "OOM risk", "message": "Memory at 93 % of the machine's memory",
            "subject": "host", "since": 1.0, "value": 93.0, "threshold": 90.0,
            "kernels": [], "instant": False}
    session.deliver([(EVENT, Event(2.0, "n1", "alert", data["message"], data)),
                     (EVENT, Event(3.0, "n1", "alert", "x", {**data, "key": "disk:/",
                                                            "rule": "disk"}))])
    frames = {f["data"]["key"]: f["data"] for f in client.read_all() if f["type"] == "alert"}
    memory = valid(frames["memory:host"], "WsAlert")
    assert memory["kernels"] == [{"id": "k1", "notebook": "work/train.ipynb",
                                  "rss_bytes": 12 * GiB}]
    assert memory["message"] == ("Memory at 93 % of the machine's memory; most held by "
                                 "`train.ipynb` (12.0 GiB)")
    assert frames["disk:/"]["kernels"] == []  # other rules as they are


def test_api_alerts_merges_the_store_with_what_the_engine_just_told():
    """The recorder's writer stores events on its own clock: api/alerts folds the stored
    events with the engine's newest, each event once."""
    now = time.time()
    stored: list[Event] = []

    class StoreHost(Host):
        data_dir = Path("/nonexistent")

        def events(self, **query: Any) -> list[dict[str, Any]]:
            assert query["kinds"] == ["alert", "alert_resolved"]
            return [e.to_dict() for e in stored if e.time >= query["start"]]

    host = StoreHost()
    engine = AlertEngine(host)
    host.alerts = engine  # type: ignore[attr-defined]

    def get(**args: Any) -> dict[str, Any]:
        request = Request(monitor=host, args={"start": "-24h", "limit": 100, **args},
                          limits=Limits())
        return valid(alerts(request).body, "Alerts")

    def disk(mount: str, t: float) -> Alert:
        return Alert(key=f"disk:{mount}", rule="disk", severity="warning", title="disk full",
                     message=f"Disk {mount} is 96 % full", subject=mount, since=t,
                     value=96.0, threshold=95.0)

    # nothing recorded in the data dir yet: what the engine holds
    fresh = Host()
    fresh.alerts = AlertEngine(fresh)  # type: ignore[attr-defined]
    fresh.alerts.book.fire(disk("/", now))
    body = valid(alerts(Request(monitor=fresh, args={"start": "-24h", "limit": 100},
                                limits=Limits())).body, "Alerts")
    assert [a["key"] for a in body["active"]] == ["disk:/"] and len(body["recent"]) == 1
    # told a moment ago, not stored yet
    engine.book.fire(disk("/", now - 5))
    body = get()
    assert [a["key"] for a in body["active"]] == ["disk:/"]
    assert body["active"][0]["time"] >= now
    # stored now too: listed once; then resolved by the engine, the resolution not stored
    stored.extend(host.recorded)
    assert len(get()["recent"]) == 1
    engine.book.resolve("disk:/", now, "resolved: / is 80 % full")
    body = get()
    assert body["active"] == [] and [e["kind"] for e in body["recent"]] == [
        "alert_resolved", "alert"]
    # an alert stored by another process (this node's recorder), still active
    stored.append(Event(time.time() + 1, "n1", "alert", "Disk /data is 97 % full",
                        disk("/data", now).data()))
    assert [a["key"] for a in get()["active"]] == ["disk:/data"]
    # taken over from the store, told before the window: still listed; recent keeps the
    # window
    engine.book.load([replace(disk("/old", now - 7200), time=now - 7200)])
    body = get(start="-1h", limit=1)
    assert sorted(a["key"] for a in body["active"]) == ["disk:/data", "disk:/old"]
    assert [e["kind"] for e in body["recent"]] == ["alert"]  # the newest one, /data's
    assert body["rules"]["disk"]["threshold_pct"] == 95.0
