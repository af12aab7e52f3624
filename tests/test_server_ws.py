"""The WebSocket stream of the Jupyter extension with real tornado WebSocket clients."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable

import jsonschema
import pytest
from tornado.httpclient import HTTPClientError

from tracklab_jupyter.server.openapi import openapi_dict

pytestmark = pytest.mark.usefixtures("tracklab_server")

COMPONENTS = {"components": openapi_dict("")["components"]}


def check(message: dict, data_schema: str | None = None) -> None:
    jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/WsEnvelope", **COMPONENTS}).validate(message)
    if data_schema:
        jsonschema.Draft202012Validator(
            {"$ref": f"#/components/schemas/{data_schema}", **COMPONENTS}).validate(
                message["data"])


async def receive(ws, kind: str | Callable[[dict], bool], timeout: float = 10.0) -> dict:
    """The next message of type ``kind``, or for which ``kind(message)`` is true (others
    are skipped); every message is checked against the envelope schema."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        raw = await asyncio.wait_for(ws.read_message(), deadline - loop.time())
        assert raw is not None, "server closed the socket"
        message = json.loads(raw)
        check(message)
        if (kind(message) if callable(kind) else message["type"] == kind):
            return message


async def test_hello_state_then_live_frames(jp_ws_fetch):
    ws = await jp_ws_fetch("tracklab", "ws")
    hello = json.loads(await ws.read_message())
    check(hello, "WsHello")
    assert hello["type"] == "hello"
    # Not pytest.approx: it peeks at sys.modules["numpy"], which the server's start thread
    # may be importing right now (a partly initialised module).
    assert abs(hello["data"]["interval_s"] - 0.2) < 1e-9
    assert set(hello["data"]["default_topics"]) == {"system_metrics", "hardware_update",
                                                      "alerts"}
    state = await receive(ws, "hardware_update")
    check(state, "WsHardwareUpdate")
    assert state["data"]["reason"] == "connect"
    first = await receive(ws, "system_metrics")
    second = await receive(ws, "system_metrics")
    check(second, "WsSystemMetrics")
    assert second["time"] > first["time"]
    assert "cpu.util_pct" in second["data"]["metrics"]
    ws.close()


async def test_subscribe_with_globs_and_a_slower_interval(jp_ws_fetch):
    ws = await jp_ws_fetch("tracklab", "ws")
    await receive(ws, "hello")
    ws.write_message(json.dumps({"type": "subscribe", "topics": ["system_metrics"],
                                 "metrics": ["mem.*"], "interval": 1.0}))
    ack = await receive(ws, "subscribed")
    assert ack["data"]["metrics"] == ["mem.*"] and ack["data"]["interval_s"] == 1.0
    frames = [await receive(ws, "system_metrics") for _ in range(3)]
    assert all(set(f["data"]["metrics"]) and all(k.startswith("mem.")
               for k in f["data"]["metrics"]) for f in frames[1:])
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(frames[1:])]
    assert all(gap >= 0.75 for gap in gaps), gaps  # 1 s asked for, 0.2 s sampled
    ws.close()


@pytest.mark.parametrize(("raw", "needle"), [
    ("not json", "malformed"),
    ("[1, 2]", "malformed"),
    ('{"type": "dance"}', "unknown message type"),
    ('{"type": "subscribe", "topics": ["weather"]}', "unknown topic"),
    ('{"type": "subscribe", "interval": 0.01}', "interval"),
    ('{"type": "subscribe", "metrics": 5}', "metrics"),
    ("x" * 70000, "too large"),
])
async def test_bad_client_messages_get_an_error_and_the_socket_stays_up(jp_ws_fetch, raw,
                                                                         needle):
    ws = await jp_ws_fetch("tracklab", "ws")
    await receive(ws, "hello")
    ws.write_message(raw)
    error = await receive(ws, "error")
    assert needle in (error["data"]["error"] + error["data"]["detail"]).lower()
    ws.write_message(json.dumps({"type": "ping", "data": 7}))
    pong = await receive(ws, "pong")
    assert pong["data"]["echo"] == 7
    ws.close()


async def test_unsubscribe_stops_frames(jp_ws_fetch):
    ws = await jp_ws_fetch("tracklab", "ws")
    await receive(ws, "hello")
    ws.write_message(json.dumps({"type": "unsubscribe", "topics": ["system_metrics"]}))
    ack = await receive(ws, "subscribed")
    assert "system_metrics" not in ack["data"]["topics"]
    ws.write_message(json.dumps({"type": "ping"}))
    # after the ack, nothing but the pong arrives within several sample intervals
    message = json.loads(await asyncio.wait_for(ws.read_message(), 5))
    while message["type"] == "system_metrics":  # a frame already in flight before the ack
        message = json.loads(await asyncio.wait_for(ws.read_message(), 5))
    assert message["type"] == "pong"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.read_message(), 1.0)
    ws.close()


async def test_many_clients_each_get_frames(jp_ws_fetch):
    sockets = [await jp_ws_fetch("tracklab", "ws") for _ in range(20)]
    for ws in sockets:
        await receive(ws, "system_metrics")
    for ws in sockets:
        ws.close()


async def test_websocket_refuses_without_credentials(jp_ws_fetch):
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("tracklab", "ws", headers={"Authorization": ""})
    assert info.value.code == 403


async def test_hardware_events_reach_subscribers(jp_ws_fetch, tracklab_server):
    from tracklab_jupyter.metrics.sample import Event
    from tracklab_jupyter.sampler.hub import EVENT

    ws = await jp_ws_fetch("tracklab", "ws")
    await receive(ws, "hardware_update")
    event = Event(1.0, tracklab_server.monitor.node, "throttle_start", "GPU 0 throttling",
                  {"gpu": 0, "reasons": ["software power cap"]})
    tracklab_server.monitor.hub.publish(EVENT, event)
    update = await receive(ws, "hardware_update")
    check(update, "WsHardwareUpdate")
    assert update["data"]["reason"] == "event"
    assert update["data"]["event"]["kind"] == "throttle_start"
    ws.close()
