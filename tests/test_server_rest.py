"""The Jupyter server extension's REST endpoints against a real Jupyter server
(pytest-jupyter, non-root base_url ``/a%40b/``), real SQLite and the real sampler."""

from __future__ import annotations

import asyncio
import json
import re

import jsonschema
import pytest
from tornado.httpclient import HTTPClientError

from tracklab_jupyter.server.openapi import openapi_dict

pytestmark = pytest.mark.usefixtures("tracklab_server")

SCHEMA_ROOT = openapi_dict("")


def validate(body: object, schema_name: str) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", **{"components": SCHEMA_ROOT[
        "components"]}}
    jsonschema.Draft202012Validator(schema).validate(body)


async def get_json(jp_fetch, *path, **params):
    response = await jp_fetch("tracklab", *path, params=params or None)
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def wait_for_sample(jp_fetch, timeout: float = 20.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            body = await get_json(jp_fetch, "api", "system", "metrics")
            if "cpu.util_pct" in body["metrics"]:  # CPU use needs two readings
                return body
        except HTTPClientError as exc:
            if exc.code != 503 or asyncio.get_running_loop().time() > deadline:
                raise
        assert asyncio.get_running_loop().time() < deadline, "no complete sample"
        await asyncio.sleep(0.1)


async def test_system_metrics_is_the_latest_sample(jp_fetch):
    body = await wait_for_sample(jp_fetch)
    validate(body, "Sample")
    metrics = body["metrics"]
    assert 0 <= metrics["cpu.util_pct"] <= 100
    assert metrics["mem.used_bytes"] > 0
    assert metrics["mem.util_pct"] == pytest.approx(
        metrics["mem.used_bytes"] / metrics["mem.limit_bytes"] * 100, rel=0.05)
    # a filter by glob
    only_mem = await get_json(jp_fetch, "api", "system", "metrics", metrics="mem.*")
    assert only_mem["metrics"] and all(k.startswith("mem.") for k in only_mem["metrics"])


async def test_latest_sample_supports_conditional_get(jp_fetch):
    await wait_for_sample(jp_fetch)
    first = await jp_fetch("tracklab", "api", "system", "metrics")
    etag = first.headers["ETag"]
    assert first.headers["Last-Modified"]
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("tracklab", "api", "system", "metrics",
                       headers={"If-None-Match": etag})
    assert info.value.code == 304


async def test_every_endpoint_answers_per_its_openapi_schema(jp_fetch):
    await wait_for_sample(jp_fetch)
    validate(await get_json(jp_fetch, "api", "system", "info"), "SystemInfo")
    validate(await get_json(jp_fetch, "api", "hardware", "accelerators"), "Accelerators")
    cpu = await get_json(jp_fetch, "api", "hardware", "cpu")
    validate(cpu, "Cpu")
    assert "cpu.util_pct" in cpu["metrics"]
    cluster = await get_json(jp_fetch, "api", "cluster", "info")
    validate(cluster, "ClusterInfo")
    assert cluster["nodes"][0]["status"] == "up"
    validate(await get_json(jp_fetch, "api", "cluster", "metrics"), "ClusterMetrics")
    health = await get_json(jp_fetch, "api", "health")
    validate(health, "Health")
    assert health["status"] == "ok" and health["sampler_alive"] is True
    assert health["role"] == "recorder"
    validate(await get_json(jp_fetch, "api", "events"), "Events")
    doc = await get_json(jp_fetch, "api", "openapi.json")
    assert doc["openapi"] == "3.1.0"
    assert "/api/history" in doc["paths"] and "WsEnvelope" in doc["components"]["schemas"]


async def test_history_as_columns_and_csv(jp_fetch):
    await wait_for_sample(jp_fetch)
    body: dict = {}
    for _ in range(100):  # the writer flushes every 0.5 s in these tests
        try:
            body = await get_json(jp_fetch, "api", "history", metrics="cpu.util_pct,mem.*",
                                  start="-5min")
        except HTTPClientError as exc:  # 404 "unknown metric" until the first flush
            assert exc.code == 404
        if body.get("time"):
            break
        await asyncio.sleep(0.1)
    validate(body, "History")
    names = {s["metric"] for s in body["series"]}
    assert "cpu.util_pct" in names and "mem.used_bytes" in names
    assert all(len(s["values"]) == len(body["time"]) for s in body["series"])
    response = await jp_fetch("tracklab", "api", "history",
                              params={"metrics": "cpu.util_pct", "start": "-5min",
                                      "format": "csv"})
    assert response.headers["Content-Type"].startswith("text/csv")
    lines = response.body.decode().splitlines()
    assert lines[0] == "time,cpu.util_pct" and len(lines) >= 2


@pytest.mark.parametrize(("path", "params", "needle"), [
    (("api", "history"), {"start": "yesterday-ish"}, "start"),
    (("api", "history"), {"agg": "median"}, "agg"),
    (("api", "history"), {"format": "xml"}, "format"),
    (("api", "events"), {"limit": "-3"}, "limit"),
    (("api", "system", "metrics"), {"colour": "blue"}, "colour"),
])
async def test_bad_parameters_get_400_with_json(jp_fetch, path, params, needle):
    await wait_for_sample(jp_fetch)
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("tracklab", *path, params=params)
    assert info.value.code == 400
    body = json.loads(info.value.response.body)
    validate(body, "Error")
    assert needle in (body["error"] + body["detail"]).lower()


async def test_unknown_node_and_path_get_json_404(jp_fetch):
    await wait_for_sample(jp_fetch)
    for path, params in ((("api", "system", "metrics"), {"node": "elsewhere"}),
                         (("api", "history"), {"metrics": "gpu.0.utl_pct"}),
                         (("api", "nothing", "here"), None)):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("tracklab", *path, params=params)
        assert info.value.code == 404
        validate(json.loads(info.value.response.body), "Error")


async def test_every_route_refuses_requests_without_credentials(jp_fetch, jp_serverapp):
    """No token, no login cookie, but a valid XSRF pair: the 403 is the auth check's (the
    XSRF check would say "_xsrf"; test_server_auth.py shows the pair passes it)."""
    from test_server_auth import xsrf_pair

    from tracklab_jupyter.server.handlers import build_handlers

    await wait_for_sample(jp_fetch)
    paths = [re.sub(r"\(\?P<\w+>\[\^/\]\+\)", "x", p).replace("(.*)", "anything")
             for p, _ in build_handlers("/")]
    assert len(paths) >= 18 and "/tracklab/api/runs/x/metrics" in paths
    cookie, header = xsrf_pair()
    for path in paths:
        parts = path.strip("/").split("/")
        # The WebSocket has no PATCH/DELETE: tornado answers those 405 before any handler.
        for method in ("GET",) if path.endswith("/ws") else ("GET", "PATCH", "DELETE"):
            with pytest.raises(HTTPClientError) as info:
                await jp_fetch(*parts, method=method,
                               headers={"Authorization": "", "Cookie": f"_xsrf={cookie}",
                                        "X-XSRFToken": header},
                               body="{}" if method == "PATCH" else None,
                               allow_nonstandard_methods=True)
            assert info.value.code == 403, (method, path)
            assert b"xsrf" not in info.value.response.body.lower(), (method, path)


async def test_polling_does_not_count_as_user_activity(jp_fetch, jp_serverapp):
    """A dashboard polling every second must not keep an idle server from being culled."""
    await wait_for_sample(jp_fetch)
    before = jp_serverapp.web_app.settings.get("api_last_activity")
    for _ in range(3):
        await jp_fetch("tracklab", "api", "system", "metrics")
        await jp_fetch("tracklab", "api", "health")
    assert jp_serverapp.web_app.settings.get("api_last_activity") == before
