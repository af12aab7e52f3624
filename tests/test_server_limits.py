"""Every REST input bounded (issue 13): each limit answers a clear JSON error naming it,
checked before the work, and the server keeps answering promptly meanwhile. Also: no 500
from absurd input, an unusable store is a 503, errors echo little and no token is logged."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse

import pytest
from test_server_rest import get_json, validate, wait_for_sample
from test_server_runs import start_training, wait_exit
from tornado.httpclient import HTTPClientError

from tracklab_jupyter.server.limits import LIMITS_KEY, Limits

pytestmark = pytest.mark.usefixtures("tracklab_server")
PROMPT_S = 1.0  # an idle answer takes a few ms; "promptly" leaves room for a busy CI box


def set_limits(jp_serverapp, **values: int) -> None:
    jp_serverapp.web_app.settings[LIMITS_KEY] = Limits(**values)


async def error_of(jp_fetch, *path, method: str = "GET", body: str | None = None,
                   **params) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("tracklab", *path, method=method, body=body, params=params or None)
    payload = json.loads(info.value.response.body)
    validate(payload, "Error")
    return info.value.code, payload


async def answers_promptly(jp_fetch) -> None:
    began = time.monotonic()
    health = await get_json(jp_fetch, "api", "health")
    assert health["sampler_alive"] and time.monotonic() - began < PROMPT_S


async def raw_request(port: int, head: str) -> tuple[int, dict, bytes]:
    """Send only a request's head (no body) and read the answer: a server that waited for
    the body would time out here."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    headers_blob, _, body = rest.partition(b"\r\n\r\n")
    headers = dict(line.lower().split(": ", 1)
                   for line in headers_blob.decode().split("\r\n") if line)
    return int(status_line.split()[1]), headers, body


async def test_a_body_over_the_limit_is_refused_from_its_length_unread(
        jp_fetch, jp_serverapp, jp_http_port, jp_base_url):
    await wait_for_sample(jp_fetch)
    token = jp_serverapp.identity_provider.token
    path = f"{jp_base_url}tracklab/api/runs/abcd1234"
    status, headers, body = await raw_request(jp_http_port, (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {95 << 20}\r\n\r\n"))
    assert status == 413 and headers["content-type"].startswith("application/json")
    assert "max_body_bytes" in json.loads(body)["detail"]
    # Strangers are refused before their body too (403, as Jupyter answers them).
    status, _, _ = await raw_request(jp_http_port, (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {95 << 20}\r\n\r\n"))
    assert status == 403
    await answers_promptly(jp_fetch)


async def test_too_many_tags_fail_at_once_naming_the_limit(jp_fetch, tmp_path,
                                                           tracklab_data_dir):
    child, run_id = start_training(tmp_path, tracklab_data_dir, steps=3)
    assert await wait_exit(child) == 0
    body = json.dumps({"tags": [f"t{i}" for i in range(60_000)]})
    code, error = await error_of(jp_fetch, "api", "runs", run_id, method="PATCH", body=body)
    assert code == 400 and "at most 64 tags, got 60000" in error["detail"]
    await answers_promptly(jp_fetch)


async def test_metric_patterns_are_bounded_in_number_and_length(jp_fetch):
    await wait_for_sample(jp_fetch)
    code, error = await error_of(jp_fetch, "api", "system", "metrics",
                                 metrics=",".join(f"cpu.{i}*" for i in range(300)))
    assert code == 400 and "max_patterns" in error["detail"]
    code, error = await error_of(jp_fetch, "api", "history", metrics="x" * 500)
    assert code == 400 and "max_pattern_chars" in error["detail"]
    assert len(error["detail"]) < 300  # the 500 characters are not echoed back
    await answers_promptly(jp_fetch)


async def test_history_over_the_point_cap_gets_a_coarser_step_or_413(
        jp_fetch, jp_serverapp):
    await wait_for_sample(jp_fetch)
    for _ in range(100):  # wait until the store holds a few seconds of every metric
        try:
            body = await get_json(jp_fetch, "api", "history", start="-1h")
        except HTTPClientError:
            body = {}
        if len(body.get("time", [])) >= 10:
            break
        await asyncio.sleep(0.2)
    series = len(body["series"])
    set_limits(jp_serverapp, max_history_points=series * 5)
    # No step asked: the finest step that fits, said in the body and a header.
    response = await jp_fetch("tracklab", "api", "history", params={"start": "-1h"})
    capped = json.loads(response.body)
    validate(capped, "History")
    assert capped["auto_step"] is True and capped["step_s"] >= 1
    assert response.headers["X-TrackLab-Step"] == capped["step"]
    assert sum(len(s["values"]) for s in capped["series"]) <= series * 5
    assert "max_history_points" in capped["note"]
    # The same as CSV, streamed in chunks.
    response = await jp_fetch("tracklab", "api", "history",
                              params={"start": "-1h", "format": "csv"})
    assert response.headers["X-TrackLab-Step"] == capped["step"]
    assert len(response.body.decode().splitlines()) == len(capped["time"]) + 1
    # A fixed step that cannot fit: 413, with the limit and a step that would.
    code, error = await error_of(jp_fetch, "api", "history", start="-1h", step="100ms")
    assert code == 413 and "max_history_points" in error["detail"]
    assert "use step=" in error["detail"]
    await answers_promptly(jp_fetch)


async def test_run_metrics_come_in_pages_by_step(jp_fetch, jp_serverapp, tmp_path,
                                                 tracklab_data_dir):
    child, run_id = start_training(tmp_path, tracklab_data_dir, steps=25)
    assert await wait_exit(child) == 0
    whole = await get_json(jp_fetch, "api", "runs", run_id, "metrics")
    assert whole["next_start_step"] is None and len(whole["step"]) == 25
    set_limits(jp_serverapp, max_run_metric_steps=10)
    steps, start, starts = [], None, []
    while True:
        page = await get_json(jp_fetch, "api", "runs", run_id, "metrics",
                              **({"start_step": start} if start is not None else {}))
        validate(page, "RunMetrics")
        assert len(page["step"]) <= 10
        steps += page["step"]
        start = page["next_start_step"]
        starts.append(start)
        if start is None:
            break
    assert steps == whole["step"] and starts == [10, 20, None]
    code, error = await error_of(jp_fetch, "api", "runs", run_id, "metrics", limit="11")
    assert code == 400 and "from 1 to 10 (limit max_run_metric_steps)" in error["detail"]
    await answers_promptly(jp_fetch)


async def test_events_and_limits_out_of_range_are_400(jp_fetch):
    await wait_for_sample(jp_fetch)
    code, error = await error_of(jp_fetch, "api", "events", limit=str(10**6))
    assert code == 400 and "max_events" in error["detail"]
    await answers_promptly(jp_fetch)


@pytest.mark.parametrize("params", [
    {"end": "1e400"}, {"end": "1e17"}, {"start": "-99999999999d"}, {"start": "nan"},
    {"end": "inf"}, {"step": "0s"}, {"start": "2025-02-30"}, {"limit": "0"},
    {"start": "-1h" * 2000}])
async def test_absurd_times_and_steps_are_400_never_500(jp_fetch, params):
    await wait_for_sample(jp_fetch)
    path = ("api", "events") if "limit" in params else ("api", "history")
    code, error = await error_of(jp_fetch, *path, **params)
    assert code == 400 and error["error"].startswith("bad ")
    assert len(error["detail"]) < 600


async def wait_stored(jp_fetch) -> None:
    for _ in range(100):
        try:
            if (await get_json(jp_fetch, "api", "history", metrics="cpu.util_pct"))["time"]:
                return
        except HTTPClientError:  # 404 until the first flush
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("nothing was stored")


async def test_times_far_out_are_clamped_not_refused(jp_fetch):
    await wait_stored(jp_fetch)
    far = await get_json(jp_fetch, "api", "history", metrics="cpu.util_pct",
                         start="0", end="99999999999")
    empty = await get_json(jp_fetch, "api", "history", metrics="cpu.util_pct",
                           start="now", end="-1h", step="10s")
    validate(far, "History")
    assert empty["time"] == [] and all(s["values"] == [] for s in empty["series"])


async def test_a_run_too_short_for_a_sample_has_empty_system_columns(
        jp_fetch, tmp_path, tracklab_data_dir):
    child, run_id = start_training(tmp_path, tracklab_data_dir, steps=1)
    assert await wait_exit(child) == 0
    system = await get_json(jp_fetch, "api", "runs", run_id, "system", step="1s")
    validate(system, "RunSystem")


async def test_unknown_run_ids_are_404_and_long_input_is_not_echoed(jp_fetch):
    await wait_for_sample(jp_fetch)
    code, error = await error_of(jp_fetch, "api", "runs", "z" * 5000)
    assert code == 404 and len(json.dumps(error)) < 300
    code, error = await error_of(jp_fetch, "api", "projects", "p" * 5000)
    assert code == 400 and len(json.dumps(error)) < 600


@pytest.fixture
def file_in_the_way(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    return blocker / "data"


@pytest.fixture
def jp_server_config(file_in_the_way, request):
    if "unusable" not in request.node.name:
        return {"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
                "TrackLab": {"data_dir": str(request.getfixturevalue("tracklab_data_dir")),
                             "interval": 0.2, "flush_interval": 0.5}}
    return {"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
            "TrackLab": {"data_dir": str(file_in_the_way), "interval": 0.2}}


async def test_an_unusable_store_is_503_with_the_reason_and_no_path(jp_fetch,
                                                                     file_in_the_way):
    for path, method, body in ((("api", "history"), "GET", None),
                               (("api", "events"), "GET", None),
                               (("api", "runs"), "GET", None),
                               (("api", "runs", "abcd1234"), "PATCH", '{"name": "x"}')):
        code, error = await error_of(jp_fetch, *path, method=method, body=body)
        assert code == 503, (path, error)
        assert "not a directory" in error["detail"], error
        assert str(file_in_the_way.parent) not in json.dumps(error)


async def test_the_token_is_never_logged(jp_fetch, jp_serverapp, caplog, jp_http_port,
                                         jp_base_url):
    await wait_for_sample(jp_fetch)
    token = jp_serverapp.identity_provider.token
    caplog.set_level(logging.DEBUG)
    # A refusal tornado logs with the request line (a 413 from prepare), token in the query.
    status, _, _ = await raw_request(jp_http_port, (
        f"PATCH {jp_base_url}tracklab/api/runs/abcd1234?token={token} HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nContent-Length: {95 << 20}\r\n\r\n"))
    assert status == 413
    for given in (token, "wrong-secret-xyz"):
        with pytest.raises(HTTPClientError):
            await jp_fetch("tracklab", "api", "nothing", params={"token": given, "x": "1"},
                           headers={"Authorization": ""})
        with pytest.raises(HTTPClientError):
            await jp_fetch("tracklab", "api", "history", params={
                "start": "soon", "token": token})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "tracklab/api/" in logged
    assert token not in logged and "wrong-secret-xyz" not in logged


def test_the_standalone_server_logs_no_token(tmp_path):
    from test_standalone import TOKEN, start_server, stop_server, wait_metrics

    server = start_server(tmp_path / "data", "--token", TOKEN,
                          env={"TRACKLAB_LOG_LEVEL": "DEBUG"})
    try:
        wait_metrics(server)
        for token in (TOKEN, "wrong-secret-xyz"):
            server.get(f"/api/nope?token={urllib.parse.quote(token)}", token=None)
            server.get(f"/ws?token={token}", token=None)
    finally:
        output = stop_server(server)
    log_lines = [line for line in output.splitlines() if "serving on" not in line]
    assert any("/api/nope" in line for line in log_lines), output[-2000:]
    assert not [line for line in log_lines if TOKEN in line or "wrong-secret" in line]



def test_every_limit_is_a_documented_setting():
    from pathlib import Path

    from tracklab_jupyter.server.extension import TrackLab

    doc = (Path(__file__).parents[1] / "docs" / "LIMITS.md").read_text()
    app = TrackLab()
    for name in Limits.names():
        default = getattr(Limits(), name)
        assert f"| `{name}` | {default} " in doc, name
        assert getattr(app, name) == default and app.trait_metadata(name, "config")
    with pytest.raises(ValueError, match="max_events must be a positive integer"):
        Limits.from_settings(max_events=0)


async def test_heavy_metric_patterns_compile_off_the_event_loop(jp_fetch, monkeypatch):
    # 256 star-heavy globs of 80 characters take a regex compile of about 0.1 s: a set that
    # large is compiled on the compile thread, a small one where it is asked for.
    import threading

    from tracklab_jupyter.server import metric_filter

    compiled_on: list[str] = []
    real_init = metric_filter.MetricFilter.__init__

    def recording_init(self, globs):
        compiled_on.append(threading.current_thread().name)
        real_init(self, globs)

    monkeypatch.setattr(metric_filter.MetricFilter, "__init__", recording_init)
    await wait_for_sample(jp_fetch)
    letters = "abcdefghijklmnopqrstuvwxyz"
    heavy = ",".join("*" + "*".join(letters[(i + j) % 26] for j in range(40))
                     for i in range(256))
    for metrics in (heavy, "cpu.*"):
        reply = await get_json(jp_fetch, "api", "system", "metrics", metrics=metrics)
        assert all(k.startswith("cpu.") for k in reply["metrics"])
    assert compiled_on[0].startswith("tracklab-glob-compile")
    assert compiled_on[1] == threading.main_thread().name


async def test_the_standalone_server_refuses_big_bodies_unread(tmp_path):
    from test_standalone import TOKEN, start_server, stop_server, wait_metrics

    server = start_server(tmp_path / "data", "--token", TOKEN)
    try:
        await asyncio.get_running_loop().run_in_executor(None, wait_metrics, server)
        head = (f"PATCH /api/runs/abcd1234 HTTP/1.1\r\nHost: 127.0.0.1\r\n{{auth}}"
                f"Content-Length: {95 << 20}\r\n\r\n")
        status, headers, _ = await raw_request(server.port, head.format(auth=""))
        assert status == 401 and headers["www-authenticate"] == "token"
        status, _, body = await raw_request(
            server.port, head.format(auth=f"Authorization: token {TOKEN}\r\n"))
        assert status == 413 and "max_body_bytes" in json.loads(body)["detail"]
    finally:
        stop_server(server)
