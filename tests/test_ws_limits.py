"""The WebSocket's bounds (issue 13): metric patterns, connections, frames waiting for a slow
client, plain GETs of the socket's URL and clients that leave mid-write. Each limit is shown
with its error and with the server still answering REST promptly.

The session tests drive :class:`WsSession` with a fake ``send`` whose writes stay in flight
until the test completes them; the server tests use real servers and real clients (the
Jupyter extension through pytest-jupyter, the standalone app in-process on the same loop)."""

from __future__ import annotations

import asyncio
import fnmatch
import gc
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_server_ws import receive
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.websocket import websocket_connect

from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.sampler.hub import CLUSTER, EVENT, NODE, RUN, RUN_METRICS, SAMPLE
from tracklab_jupyter.server import ws_protocol
from tracklab_jupyter.server.limits import LIMITS_KEY, Limits
from tracklab_jupyter.server.standalone import make_app
from tracklab_jupyter.server.ws_bridge import WS_CONNECTIONS_KEY
from tracklab_jupyter.server.ws_protocol import (
    MAX_BACKLOG,
    MAX_CACHED_FILTERS,
    MAX_PENDING_FRAMES,
    MAX_PENDING_VALUES,
    TOPICS,
    WsSession,
)

TOKEN = "ws-limits-token"
PROMPT_S = 1.0  # what "answers promptly" means here (an idle answer takes a few ms)
# While subscriptions compile in a thread, the loop shares the GIL with it: answers take
# 0.2-1 s on a busy 2-core machine; compiled on the loop instead they took 3.6 s.
COMPILING_PROMPT_S = 2.0


# -- a session with a slow client ----------------------------------------------------------
class StubMonitor:
    node = "n1"
    interval = 0.0  # no interval gating: every offered frame counts
    role = "recorder"
    latest = None

    def hardware_state(self) -> dict[str, Any]:
        return {"accelerators": [], "drivers": {}, "notes": []}


class Write:
    """A write in flight until ``complete()`` (the client reads it)."""

    def __init__(self) -> None:
        self._done = False
        self._callbacks: list[Any] = []

    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Any) -> None:
        self._callbacks.append(callback)

    def complete(self) -> None:
        self._done = True
        for callback in self._callbacks:
            callback(self)


class SlowClient:
    """Records every frame written; reads (completes writes) only when told to."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.writes: list[Write] = []

    def send(self, text: str) -> Write:
        self.frames.append(json.loads(text))
        self.writes.append(Write())
        return self.writes[-1]

    def read_all(self) -> list[dict[str, Any]]:
        """Complete writes until nothing more is written; the frames written meanwhile."""
        start = len(self.frames)
        while not self.writes[-1].done():
            self.writes[-1].complete()
        return self.frames[start:]


def slow_session(**kwargs: Any) -> tuple[WsSession, SlowClient]:
    client = SlowClient()
    session = WsSession(StubMonitor(), client.send, **kwargs)  # type: ignore[arg-type]
    session.open()
    session.on_message(json.dumps({"type": "subscribe", "topics": list(TOPICS)}))
    return session, client


def increment(run: str, steps: range, names: tuple[str, ...] = ("loss",),
              process: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {"run": run, "project": "p", "step": list(steps),
                            "time": [float(s) for s in steps],
                            "metrics": {n: [float(s) for s in steps] for n in names}}
    if process:
        item["process"] = {"time": [float(s) for s in steps],
                           "metrics": {"tree.cpu_pct": [1.0] * len(steps)}}
    return item


def test_a_slow_client_holds_one_frame_per_key_and_the_newest_wins():
    session, client = slow_session()
    assert [f["type"] for f in client.frames] == ["hello"]  # in flight, never read
    n = 500
    for i in range(n):
        session.deliver([
            (SAMPLE, Sample(float(i), "n1", {"x": float(i)})),
            (CLUSTER, {"provider": "ray", "nodes": {"a": {"time": i, "metrics": {"x": i}}}}),
            (EVENT, Event(float(i), "n1", "throttle_start", "hot")),
            (NODE, {"node": f"w{i % 10}", "status": "up", "last_seen": i}),
            (RUN, {"reason": "updated", "run": {"id": f"r{i % 5}", "project": "p", "i": i}}),
            (RUN_METRICS, increment(f"m{i % 3}", range(i, i + 1),
                                    names=("loss",) if i % 2 else ("acc",))),
        ])
    # subscribed, hardware_update, system_metrics, cluster_metrics, 10 nodes, 5 runs' updates
    # and 3 runs' increments wait; nothing more was written
    assert session.pending == 22
    assert len(client.frames) == 1
    offered = 3 + 6 * n  # connect state, subscribed, subscribe state, then the items
    assert session.frames_coalesced == offered - 22

    frames = client.read_all()
    assert len(frames) == 22 and session.pending == 0
    by_type: dict[str, list[dict[str, Any]]] = {}
    for frame in frames:
        by_type.setdefault(frame["type"], []).append(frame["data"])
    assert by_type["system_metrics"] == [{"metrics": {"x": n - 1}}]
    assert by_type["cluster_metrics"][0]["nodes"]["a"]["metrics"] == {"x": n - 1}
    assert [d["event"]["time"] for d in by_type["hardware_update"]] == [n - 1]
    assert {d["node"]: d["last_seen"] for d in by_type["node_status"]} == {
        f"w{k}": n - 10 + k for k in range(10)}
    assert {d["run"]["id"]: d["run"]["i"] for d in by_type["run_update"]} == {
        f"r{k}": n - 5 + k for k in range(5)}
    # increments are merged, in order, every row kept; a column missing is None there
    for k in range(3):
        merged = next(d for d in by_type["metric_update"] if d["run"] == f"m{k}")
        steps = list(range(k, n, 3))
        assert merged["step"] == steps and "dropped" not in merged
        assert merged["metrics"]["loss"] == [float(s) if s % 2 else None for s in steps]
        assert merged["metrics"]["acc"] == [None if s % 2 else float(s) for s in steps]


def test_a_client_that_keeps_up_gets_every_frame():
    session, client = slow_session()
    client.read_all()
    coalesced = session.frames_coalesced  # the connect state, replaced while hello was sent
    for i in range(20):
        session.deliver([(NODE, {"node": "w", "status": "up", "last_seen": i})])
        client.read_all()
    assert [f["data"]["last_seen"] for f in client.frames if f["type"] == "node_status"] == \
        list(range(20))
    assert session.frames_coalesced == coalesced


def test_a_waiting_created_stays_created_until_the_run_is_deleted():
    session, client = slow_session()
    run = {"id": "r1", "project": "p"}
    session.deliver([(RUN, {"reason": "created", "run": run}),
                     (RUN, {"reason": "state", "run": {**run, "state": "finished"}}),
                     (RUN, {"reason": "created", "run": {"id": "r2", "project": "p"}}),
                     (RUN, {"reason": "deleted", "run": {"id": "r2", "project": "p"}})])
    updates = {f["data"]["run"]["id"]: f["data"] for f in client.read_all()
               if f["type"] == "run_update"}
    assert updates["r1"] == {"reason": "created", "run": {**run, "state": "finished"}}
    assert updates["r2"]["reason"] == "deleted"


def test_waiting_increments_are_bounded_and_say_what_was_left_out():
    session, client = slow_session()
    rows, batches = 1000, 100  # 100 batches of 1000 rows x 4 columns: 4x the bound
    for b in range(batches):
        session.deliver([(RUN_METRICS, increment("r", range(b * rows, (b + 1) * rows),
                                                 names=("loss", "acc"), process=True))])
        assert session.pending_values <= MAX_PENDING_VALUES
    update = next(f["data"] for f in client.read_all() if f["type"] == "metric_update")
    total = rows * batches
    assert update["step"][-1] == total - 1  # the newest rows are kept ...
    assert update["dropped"] > 0  # ... and the client is told how many were left out
    process_rows = len(update["process"]["time"])
    assert len(update["step"]) + process_rows + update["dropped"] == 2 * total
    assert update["step"] == list(range(total - len(update["step"]), total))
    assert len(update["metrics"]["acc"]) == len(update["step"])


def test_a_client_too_far_behind_is_closed_and_nothing_more_is_written():
    reasons: list[str] = []
    session, client = slow_session(on_too_slow=reasons.append)
    for i in range(MAX_PENDING_FRAMES + 10):
        session.deliver([(NODE, {"node": f"w{i}", "status": "up"})])
        assert session.pending <= MAX_PENDING_FRAMES
    assert session.closed and session.pending == 0
    assert len(reasons) == 1 and "frames waiting" in reasons[0]
    assert session.frames_dropped > MAX_PENDING_FRAMES
    written = len(client.frames)
    session.deliver([(NODE, {"node": "late", "status": "up"})])
    client.writes[-1].complete()
    assert len(client.frames) == written


def test_unsubscribing_drops_the_waiting_frames_of_that_topic():
    session, client = slow_session()
    session.deliver([(NODE, {"node": "w", "status": "up"}),
                     (SAMPLE, Sample(1.0, "n1", {"x": 1.0}))])
    session.on_message(json.dumps({"type": "unsubscribe", "topics": ["node_status"]}))
    kinds = [f["type"] for f in client.read_all()]
    assert "node_status" not in kinds and "system_metrics" in kinds


# -- patterns compiled once ----------------------------------------------------------------
def test_globs_are_compiled_once_and_match_like_fnmatchcase(monkeypatch):
    built: list[tuple[str, ...]] = []

    class Counted(ws_protocol.MetricFilter):
        def __init__(self, globs: tuple[str, ...]) -> None:
            built.append(globs)
            super().__init__(globs)

    monkeypatch.setattr(ws_protocol, "MetricFilter", Counted)
    monkeypatch.setattr(ws_protocol, "_FILTERS", {})
    monkeypatch.setattr(fnmatch, "fnmatchcase", lambda *a: pytest.fail("fnmatch per frame"))
    globs = ["cpu.*", "GPU.?.util_pct", "gpu.[01].mem_*", "disk.[!a-c]*"]
    names = ["cpu.util_pct", "gpu.0.util_pct", "GPU.0.util_pct", "gpu.1.mem_used_bytes",
             "gpu.2.mem_used_bytes", "disk.read", "disk.dread", "mem.used"]
    session, client = slow_session()
    session.on_message(json.dumps({"type": "subscribe", "topics": ["system_metrics"],
                                   "metrics": globs}))
    for i in range(50):
        session.deliver([(SAMPLE, Sample(float(i), "n1", dict.fromkeys(names, 1.0)))])
        client.read_all()
    assert [g for g in built if g] == [tuple(globs)]
    monkeypatch.undo()
    last = next(f for f in reversed(client.frames) if f["type"] == "system_metrics")
    assert sorted(last["data"]["metrics"]) == sorted(
        n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs))


def test_a_large_subscription_compiles_off_the_loop_and_later_messages_wait_in_order():
    jobs: list[tuple[Any, Any]] = []
    session, client = slow_session(offload=lambda work, done: jobs.append((work, done)))
    client.read_all()
    globs = [f"cpu.core.{i}.*{'x' * 50}" for i in range(100)]  # past INLINE_PATTERN_CHARS
    session.on_message(json.dumps({"type": "subscribe", "metrics": globs}))
    for i in range(MAX_BACKLOG + 4):
        session.on_message(json.dumps({"type": "ping", "data": i}))
    assert len(jobs) == 1 and session.globs == ()  # not applied until compiled
    kinds = [f["type"] for f in client.read_all()]
    assert kinds == ["error"] and "too many messages" in client.frames[-1]["data"]["error"]
    work, done = jobs.pop()
    start = len(client.frames)
    done(work())
    client.read_all()
    frames = client.frames[start:]
    assert frames[0]["type"] == "subscribed" and frames[0]["data"]["metrics"] == globs
    assert session.globs == tuple(globs)
    # the pongs come after the ack, and (coalesced while waiting) end with the newest
    pongs = [f["data"]["echo"] for f in frames if f["type"] == "pong"]
    assert pongs and pongs[-1] == MAX_BACKLOG - 1


def test_the_shared_frame_cache_keeps_a_bounded_number_of_filters():
    sample = Sample(1.0, "n1", {f"m{i}": 1.0 for i in range(10)})
    for i in range(5 * MAX_CACHED_FILTERS):
        session, _client = slow_session()
        session.on_message(json.dumps({"type": "subscribe", "metrics": [f"m{i % 10}", str(i)]}))
        session.deliver([(SAMPLE, sample)])
    assert 0 < len(ws_protocol._FRAMES._texts) <= MAX_CACHED_FILTERS


# -- the Jupyter extension -----------------------------------------------------------------
async def next_of(ws, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    return await receive(ws, kind, timeout)


async def timed(fetch: Any, *path: str) -> float:
    """Seconds for one REST answer (which must be a 200)."""
    start = time.perf_counter()
    response = await fetch(*path)
    assert response.code == 200
    return time.perf_counter() - start


@pytest.mark.usefixtures("tracklab_server")
async def test_too_many_patterns_are_refused_and_the_subscription_stays(jp_ws_fetch, jp_fetch):
    most = Limits().max_patterns
    ws = await jp_ws_fetch("tracklab", "ws")
    ws.write_message(json.dumps({"type": "subscribe", "metrics": ["mem.*"]}))
    await next_of(ws, "subscribed")
    ws.write_message(json.dumps({"type": "subscribe",
                                 "metrics": [f"gpu.{i}.*" for i in range(most + 1)]}))
    error = (await next_of(ws, "error"))["data"]
    assert error["error"] == "too many metric patterns"
    assert f"at most {most} metric patterns per subscription" in error["detail"]
    ws.write_message(json.dumps({"type": "subscribe",
                                 "runs": [f"r{i:07d}" for i in range(most + 1)]}))
    error = (await next_of(ws, "error"))["data"]
    assert error["error"] == "too many runs" and "max_patterns" in error["detail"]
    ws.write_message(json.dumps({"type": "subscribe"}))
    assert (await next_of(ws, "subscribed"))["data"]["metrics"] == ["mem.*"]
    assert await timed(jp_fetch, "tracklab", "api", "health") < PROMPT_S
    ws.close()


@pytest.mark.usefixtures("tracklab_server")
async def test_a_too_long_pattern_is_refused(jp_ws_fetch, jp_fetch):
    chars = Limits().max_pattern_chars
    ws = await jp_ws_fetch("tracklab", "ws")
    ws.write_message(json.dumps({"type": "subscribe", "metrics": ["cpu.*", "x" * (chars + 1)]}))
    error = (await next_of(ws, "error"))["data"]
    assert error["error"] == "metric pattern too long"
    assert f"at most {chars} characters" in error["detail"]
    assert len(error["detail"]) < 300  # the pattern is not echoed whole
    ws.write_message(json.dumps({"type": "subscribe", "metrics": ["x" * chars]}))
    assert (await next_of(ws, "subscribed"))["data"]["metrics"] == ["x" * chars]
    assert await timed(jp_fetch, "tracklab", "api", "health") < PROMPT_S
    ws.close()


@pytest.mark.usefixtures("tracklab_server")
async def test_the_largest_subscriptions_do_not_stall_the_server(jp_ws_fetch, jp_fetch):
    """Ten clients, each with as many and as long patterns as allowed (star-heavy: the
    slowest to compile): REST stays prompt while they subscribe and while frames flow."""
    limits = Limits()
    sockets = [await jp_ws_fetch("tracklab", "ws") for _ in range(10)]
    for c, ws in enumerate(sockets):
        globs = ["cpu.*"] + [(f"*{c}.{i}" * 50)[:limits.max_pattern_chars]
                             for i in range(limits.max_patterns - 1)]
        ws.write_message(json.dumps({"type": "subscribe", "topics": ["system_metrics"],
                                     "metrics": globs}))
    slowest = max([await timed(jp_fetch, "tracklab", "api", "health") for _ in range(10)])
    for ws in sockets:
        await next_of(ws, "subscribed", timeout=30)
    for ws in sockets:
        frame = await next_of(ws, "system_metrics")
        assert frame["data"]["metrics"] and all(k.startswith("cpu.")
                                                for k in frame["data"]["metrics"])
    for _ in range(10):
        slowest = max(slowest, await timed(jp_fetch, "tracklab", "api", "health"))
        await asyncio.sleep(0.05)
    assert slowest < COMPILING_PROMPT_S
    for ws in sockets:
        ws.close()


@pytest.mark.usefixtures("tracklab_server")
async def test_a_huge_client_message_closes_only_that_socket(jp_ws_fetch, jp_fetch):
    ws = await jp_ws_fetch("tracklab", "ws")
    other = await jp_ws_fetch("tracklab", "ws")
    await next_of(ws, "hello")
    ws.write_message("x" * (2 << 20))  # tornado's own default would read up to 10 MiB

    async def until_closed() -> None:
        while await ws.read_message() is not None:
            pass

    await asyncio.wait_for(until_closed(), 10)
    assert ws.close_code == 1009  # message too big
    assert await timed(jp_fetch, "tracklab", "api", "health") < PROMPT_S
    await next_of(other, "system_metrics")
    other.close()


def json_error(err: HTTPClientError) -> dict[str, Any]:
    assert err.response is not None
    assert err.response.headers["Content-Type"].startswith("application/json")
    body = json.loads(err.response.body)
    assert body["error"] and "detail" in body
    return body


async def test_the_connection_limit_refuses_with_503_and_others_keep_working(
        jp_serverapp, tracklab_server, jp_ws_fetch, jp_fetch):
    jp_serverapp.web_app.settings[LIMITS_KEY] = Limits(max_ws_connections=3)
    sockets = [await jp_ws_fetch("tracklab", "ws") for _ in range(3)]
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("tracklab", "ws")
    assert info.value.code == 503
    assert "at most 3 WebSocket connections" in json_error(info.value)["detail"]
    assert await timed(jp_fetch, "tracklab", "api", "health") < PROMPT_S
    for ws in sockets:
        await next_of(ws, "system_metrics")
    sockets.pop().close()  # a place frees up once the server has seen the close
    count = jp_serverapp.web_app.settings[WS_CONNECTIONS_KEY]
    for _ in range(100):
        if count.open < 3:
            break
        await asyncio.sleep(0.05)
    sockets.append(await jp_ws_fetch("tracklab", "ws"))
    await next_of(sockets[-1], "system_metrics")
    for ws in sockets:
        ws.close()
    for _ in range(100):
        if count.open == 0:
            break
        await asyncio.sleep(0.05)
    assert count.open == 0


@pytest.mark.usefixtures("tracklab_server")
async def test_plain_get_and_refused_socket_answer_json(jp_fetch, jp_ws_fetch):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("tracklab", "ws")
    assert info.value.code == 426
    assert json_error(info.value)["error"] == "upgrade required"
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("tracklab", "ws", headers={"Authorization": ""})
    assert info.value.code == 403
    json_error(info.value)


@pytest.mark.usefixtures("tracklab_server")
async def test_a_refused_origin_answers_json(jp_ws_fetch, monkeypatch):
    # Token-authenticated clients skip Jupyter's origin check; a cookie-authenticated page
    # from a foreign origin is refused: stand in for that with a failing check.
    from tracklab_jupyter.server.handlers import TrackLabWebSocket

    monkeypatch.setattr(TrackLabWebSocket, "check_origin", lambda self, origin=None: False)
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("tracklab", "ws", headers={"Origin": "http://elsewhere.example"})
    assert info.value.code == 403
    assert json_error(info.value)["error"] == "cross-origin WebSocket refused"


# -- the standalone server, in-process -----------------------------------------------------
class Standalone:
    def __init__(self, port: int, app: Any) -> None:
        self.port = port
        self.app = app

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def get(self, path: str, **headers: str) -> Any:
        request = HTTPRequest(self.url(path), headers={"Authorization": f"token {TOKEN}",
                                                       **headers})
        return await AsyncHTTPClient().fetch(request, raise_error=False)

    async def connect(self) -> Any:
        return await websocket_connect(HTTPRequest(
            self.url("/ws", "ws"), headers={"Authorization": f"token {TOKEN}"}))


@pytest.fixture
def standalone(tracklab_server, jp_asyncio_loop) -> Iterator[Standalone]:
    """The standalone app on the test's loop, serving the extension's monitor."""
    app = make_app(tracklab_server.monitor, TOKEN, **{LIMITS_KEY: Limits(max_ws_connections=2)})
    sock, port = bind_unused_port()

    async def start() -> HTTPServer:  # the server binds to the running loop
        server = HTTPServer(app)
        server.add_sockets([sock])
        return server

    server = jp_asyncio_loop.run_until_complete(start())
    yield Standalone(port, app)
    server.stop()
    jp_asyncio_loop.run_until_complete(server.close_all_connections())


async def test_standalone_plain_get_is_json_and_ping_timeout_fits(standalone):
    response = await standalone.get("/ws")
    assert response.code == 426
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body)["error"] == "upgrade required"
    settings = standalone.app.settings
    assert settings["websocket_ping_timeout"] <= settings["websocket_ping_interval"]


async def test_standalone_connection_limit(standalone):
    sockets = [await standalone.connect() for _ in range(2)]
    with pytest.raises(HTTPClientError) as info:
        await standalone.connect()
    assert info.value.code == 503
    assert "(max_ws_connections)" in json_error(info.value)["detail"]
    start = time.perf_counter()
    assert (await standalone.get("/api/health")).code == 200
    assert time.perf_counter() - start < PROMPT_S
    for ws in sockets:
        await next_of(ws, "system_metrics")
        ws.close()


async def test_a_client_leaving_mid_write_leaves_no_unretrieved_task_error(standalone, caplog,
                                                                           tracklab_server):
    """A raw client that never reads gets a frame too big for the socket buffers, then
    resets the connection: the write fails on the server, and that failure is handled."""
    reader, writer = await asyncio.open_connection("127.0.0.1", standalone.port)
    writer.write((f"GET /ws?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    count = standalone.app.settings[WS_CONNECTIONS_KEY]
    assert count.open == 1
    with caplog.at_level(logging.ERROR):
        big = Event(time.time(), "n1", "throttle_start", "big", {"blob": "x" * 40_000_000})
        tracklab_server.monitor.hub.publish(EVENT, big)
        await asyncio.sleep(1.0)  # the frame is written into full socket buffers
        writer.transport.abort()  # unread data: the kernel resets the connection
        for _ in range(100):
            if count.open == 0:
                break
            await asyncio.sleep(0.05)
        assert count.open == 0
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.1)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "never retrieved" in m], messages


def test_system_frames_carry_kernel_series_only_when_named():
    from tracklab_jupyter.server.metric_filter import MetricFilter

    kid = "0f3c2a9e-1b2c-4d5e-8f90-123456789abc"
    sample = Sample(5.0, "n", {"cpu.util_pct": 3.0, f"kernel.{kid}.rss_bytes": 1e8})
    frames = ws_protocol._FrameCache()
    plain = json.loads(frames.text(sample, MetricFilter(())))
    assert plain["data"]["metrics"] == {"cpu.util_pct": 3.0}
    named = json.loads(frames.text(sample, MetricFilter(("kernel.*",))))
    assert named["data"]["metrics"] == {f"kernel.{kid}.rss_bytes": 1e8}
