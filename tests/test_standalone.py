"""The standalone server as a user starts it: a real subprocess, real HTTP and WebSocket
clients, a token on every request."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tracklab_jupyter.server.openapi import openapi_dict

TOKEN = "s3cret-test-token"


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, lines: list[str],
                 scheme: str = "http") -> None:
        self.proc = proc
        self.port = port
        self.lines = lines
        self.scheme = scheme

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def get(self, path: str, token: str | None = TOKEN, header: bool = True):
        url = self.url(path)
        headers = {}
        if token is not None and header:
            headers["Authorization"] = f"token {token}"
        elif token is not None:
            url += ("&" if "?" in url else "?") + f"token={token}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()


def start_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracklab_jupyter", "serve", "--port", "0", "--data-dir",
         str(data_dir), "--interval", "0.2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ)
    lines: list[str] = []
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"(https?)://127\.0\.0\.1:(\d+)/", line)
        if match:
            return Server(proc, int(match.group(2)), lines, match.group(1))
    proc.kill()
    raise AssertionError("server did not start:\n" + "".join(lines))


def stop_server(server: Server) -> str:
    server.proc.send_signal(signal.SIGTERM)
    out, _ = server.proc.communicate(timeout=20)
    return "".join(server.lines) + (out or "")


def running_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None
                   ) -> Iterator[Server]:
    """For fixtures: a started server, stopped afterwards if it still runs."""
    srv = start_server(data_dir, *extra, env=env)
    yield srv
    if srv.proc.poll() is None:
        stop_server(srv)


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    yield from running_server(tmp_path / "data", "--token", TOKEN)


def wait_metrics(server: Server) -> dict:
    deadline = time.monotonic() + 15
    while True:
        status, _, body = server.get("/api/system/metrics")
        if status == 200:
            return json.loads(body)
        assert time.monotonic() < deadline, (status, body)
        time.sleep(0.1)


def test_token_is_required_as_header_or_query(server):
    assert wait_metrics(server)["metrics"]["cpu.util_pct"] >= 0
    status, headers, body = server.get("/api/system/metrics", token=None)
    assert status == 401 and json.loads(body)["error"]
    assert headers["WWW-Authenticate"] == "token"
    status, _, body = server.get("/api/system/metrics", token="wrong")
    assert status == 403 and json.loads(body)["detail"] == "the token is not valid"
    status, _, body = server.get("/api/health", header=False)
    assert status == 200 and json.loads(body)["role"] == "recorder"
    status, _, body = server.get("/metrics")
    assert status == 200 and b"tracklab_memory_used_bytes{" in body
    status, _, body = server.get("/api/nope")
    assert status == 404 and json.loads(body)["error"] == "not found"
    status, _, body = server.get("/api/history?start=whenever")
    assert status == 400 and json.loads(body)["error"] == "bad start"


async def test_websocket_with_token(server):
    wait_metrics(server)
    request = HTTPRequest(f"ws://127.0.0.1:{server.port}/ws",
                          headers={"Authorization": f"token {TOKEN}"})
    ws = await websocket_connect(request)
    hello = json.loads(await ws.read_message())
    assert hello["type"] == "hello"
    kinds = set()
    while "system_metrics" not in kinds:
        kinds.add(json.loads(await ws.read_message())["type"])
    ws.close()
    with pytest.raises(Exception) as info:
        await websocket_connect(f"ws://127.0.0.1:{server.port}/ws")
    assert "401" in str(info.value)
    with pytest.raises(Exception) as info:
        await websocket_connect(f"ws://127.0.0.1:{server.port}/ws?token=wrong")
    assert "403" in str(info.value)


def test_clean_stop_on_sigterm(server):
    wait_metrics(server)
    output = stop_server(server)
    assert server.proc.returncode == 0
    assert "stopped" in output


def test_generates_a_token_and_binds_loopback_by_default(tmp_path):
    srv = start_server(tmp_path / "d", env={"TRACKLAB_TOKEN": ""})
    try:
        match = re.search(r"\?token=([0-9a-f]{32,})", "".join(srv.lines))
        assert match, srv.lines
        wait_metrics_with = match.group(1)
        status, _, _ = srv.get("/api/health", token=wait_metrics_with)
        assert status == 200
    finally:
        stop_server(srv)


def test_refuses_a_public_address_without_a_token(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tracklab_jupyter", "serve", "--host", "0.0.0.0", "--port", "0",
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if k != "TRACKLAB_TOKEN"})
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a token" in proc.stderr


def test_second_server_on_the_same_data_dir_reads_instead_of_sampling(tmp_path):
    first = start_server(tmp_path / "shared", "--token", TOKEN)
    second = start_server(tmp_path / "shared", "--token", TOKEN)
    try:
        wait_metrics(first)
        healths = [json.loads(s.get("/api/health")[2]) for s in (first, second)]
        assert {h["role"] for h in healths} == {"recorder", "reader"}
        for health in healths:  # a reader has no sampler of its own: the document says so
            jsonschema.Draft202012Validator({"$ref": "#/components/schemas/Health",
                                             **openapi_dict("")}).validate(health)
        # the reader still serves live samples, from the recorder's store
        sample = wait_metrics(second)
        assert time.time() - sample["time"] < 5
        # its doctor names the recorder, and says what it cannot check from here
        full = json.loads(second.get("/api/health?full=1")[2])
        jsonschema.Draft202012Validator({"$ref": "#/components/schemas/Health",
                                         **openapi_dict("")}).validate(full)
        checks = {c["check"]: c for c in full["doctor"]["checks"]}
        assert f"held by pid {first.proc.pid} " in checks["recorder lock"]["found"]
        assert checks["cost"]["status"] == "skipped"
        assert "reads what another process records" in checks["cost"]["found"]
        assert checks["jupyter"]["status"] == "skipped"
        assert "standalone server" in checks["jupyter"]["found"]
    finally:
        stop_server(first)
        stop_server(second)


def test_runs_are_served_and_edited_with_the_token(server, tmp_path):
    """A script's run through the standalone server: listed, renamed with PATCH, refused
    without the token, deleted."""
    env = {**os.environ, "TRACKLAB_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c",
                           "import tracklab; r = tracklab.init(project='cli', "
                           "system_monitor=False); r.log({'loss': 0.5}); print(r.id)"],
                          env=env, capture_output=True, text=True, timeout=60)
    run_id = done.stdout.strip()
    status, _, body = server.get("/api/runs?project=cli")
    assert status == 200 and [r["id"] for r in json.loads(body)["runs"]] == [run_id]

    def send(method: str, token: str | None, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"token {token}"} if token else {}
        request = urllib.request.Request(server.url(f"/api/runs/{run_id}"), data=body,
                                         method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    assert send("PATCH", None, b'{"name": "x"}')[0] == 401
    assert send("DELETE", "wrong")[0] == 403
    status, body = send("PATCH", TOKEN, b'{"notes": "from the CLI"}')
    assert status == 200 and json.loads(body)["notes"] == "from the CLI"
    assert send("DELETE", TOKEN)[0] == 204
    assert server.get(f"/api/runs/{run_id}")[0] == 404
