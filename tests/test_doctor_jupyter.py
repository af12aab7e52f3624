"""The doctor's Jupyter checks against a real Jupyter server with the extension (and a real
proxy in front of it that refuses WebSocket upgrades), and against Jupyter config and data
dirs made here: a disabled extension, a disabled sidebar, a sidebar of another version."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest
from conftest import unavailable
from tornado import httpserver, web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.netutil import bind_sockets

from tracklab_jupyter._version import __version__
from tracklab_jupyter.doctor.jupyter import (
    jupyter_checks,
    labextension_check,
    server_extension_check,
    versions_check,
)
from tracklab_jupyter.doctor.net import MAX_REPLY_BYTES
from tracklab_jupyter.doctor.report import Finding


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def server_info(serverapp, port: int) -> dict:
    """What list_running_servers yields for ``serverapp``, served at ``port``."""
    return {"url": f"http://127.0.0.1:{port}{serverapp.base_url}",
            "base_url": serverapp.base_url, "token": serverapp.identity_provider.token}


# -- running servers --------------------------------------------------------------------------

async def test_a_running_server_answers_health_and_the_websocket(
        tracklab_server, jp_serverapp, http_server, jp_http_port):
    info = server_info(jp_serverapp, jp_http_port)
    # On a thread: the server runs on this thread's event loop, which must keep going.
    findings = await asyncio.to_thread(jupyter_checks, servers=[info], timeout=10)
    checks = by_check(findings)
    assert checks["health"].status == "ok", checks["health"]
    assert checks["websocket"].status == "ok", checks["websocket"]
    assert "hello received" in checks["websocket"].found
    assert info["token"] not in json.dumps([f.found + f.fix for f in findings])


class NoUpgradeProxy(web.RequestHandler):
    """A reverse proxy that forwards plain HTTP and answers WebSocket upgrades 400, as a
    proxy without the Upgrade/Connection headers configured does."""

    def initialize(self, target: str) -> None:
        self.target = target

    async def get(self, path: str) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            self.set_status(400)
            self.finish("Bad Request: no upgrades here")
            return
        client = AsyncHTTPClient(force_instance=True)
        try:
            forwarded = {k: v for k, v in self.request.headers.get_all()
                         if k.lower() in ("authorization", "accept")}
            answer = await client.fetch(HTTPRequest(self.target + self.request.uri,
                                                    headers=forwarded), raise_error=False)
        finally:
            client.close()
        self.set_status(answer.code)
        self.set_header("Content-Type", answer.headers.get("Content-Type", "text/plain"))
        self.finish(answer.body or b"")


async def test_a_proxy_that_refuses_upgrades_is_named_with_the_nginx_fix(
        tracklab_server, jp_serverapp, http_server, jp_http_port):
    [sock] = bind_sockets(0, "127.0.0.1")
    port = sock.getsockname()[1]
    proxy = httpserver.HTTPServer(web.Application(
        [(r"/(.*)", NoUpgradeProxy, {"target": f"http://127.0.0.1:{jp_http_port}"})]))
    proxy.add_sockets([sock])
    try:
        info = server_info(jp_serverapp, port)
        findings = await asyncio.to_thread(jupyter_checks, servers=[info], timeout=10)
    finally:
        proxy.stop()
    checks = by_check(findings)
    assert checks["health"].status == "ok", checks["health"]
    ws = checks["websocket"]
    assert ws.status == "problem", ws
    assert "REST works but the WebSocket upgrade failed (HTTP 400" in ws.found
    assert "proxy_set_header Upgrade $http_upgrade" in ws.fix
    assert 'proxy_set_header Connection "upgrade"' in ws.fix
    assert "polling" in ws.fix


@pytest.mark.parametrize("jp_server_config", [
    {"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": False}}}])
async def test_a_server_without_the_extension_loaded_is_a_problem(
        jp_serverapp, http_server, jp_http_port):
    info = server_info(jp_serverapp, jp_http_port)
    findings = await asyncio.to_thread(jupyter_checks, servers=[info], timeout=10)
    checks = by_check(findings)
    assert checks["health"].status == "problem", checks["health"]
    assert "extension is not loaded" in checks["health"].found
    assert checks["health"].fix.startswith("jupyter server extension enable tracklab_jupyter")
    assert checks["websocket"].status == "skipped"


class HugeAnswer(web.RequestHandler):
    """Something else at a server's address that answers with far more than a health."""

    def get(self, path: str) -> None:
        self.finish(b"x" * (MAX_REPLY_BYTES * 3))


async def test_a_huge_answer_is_not_read_into_memory():
    [sock] = bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(web.Application([(r"/(.*)", HugeAnswer)]))
    server.add_sockets([sock])
    port = sock.getsockname()[1]
    info = {"url": f"http://127.0.0.1:{port}/", "base_url": "/", "token": "t"}
    try:
        findings = await asyncio.to_thread(jupyter_checks, servers=[info], timeout=10)
    finally:
        server.stop()
    health = by_check(findings)["health"]
    assert health.status == "problem"
    assert f"more than the doctor reads (MAX_REPLY_BYTES, {MAX_REPLY_BYTES} bytes)" in \
        health.found, health.found


def test_no_running_server_is_skipped():
    [finding] = [f for f in jupyter_checks(servers=[]) if f.check == "running servers"]
    assert finding.status == "skipped" and "jupyter lab" in finding.found


# -- installation -----------------------------------------------------------------------------

def server_config(directory: Path, enabled: bool) -> None:
    config = directory / "jupyter_server_config.d"
    config.mkdir(parents=True, exist_ok=True)
    (config / "tracklab_jupyter.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": enabled}}}))


def test_a_disabled_server_extension_is_a_problem_with_the_enable_command(
        tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    # In a virtual env jupyter_core puts the env's dir first (where pip's enabled entry
    # lives): the user's dir first here, as outside one, so the order is the test's own.
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    server_config(tmp_path / "config", True)
    assert server_extension_check().status == "ok"
    # The first config dir wins over the enabled entry the package installs further down.
    server_config(tmp_path / "config", False)
    finding = server_extension_check()
    assert finding.status == "problem" and "disabled" in finding.found
    assert finding.fix.startswith("jupyter server extension enable tracklab_jupyter")
    assert finding.details["config_dir"] == str(tmp_path / "config")


def labextension(directory: Path, version: str) -> None:
    target = directory / "labextensions" / "tracklab-jupyter"
    target.mkdir(parents=True, exist_ok=True)
    (target / "package.json").write_text(json.dumps(
        {"name": "tracklab-jupyter", "version": version,
         "jupyterlab": {"_build": {"load": "static/remoteEntry.js"}}}))


def test_a_labextension_of_another_version_is_a_problem(tmp_path, monkeypatch):
    if importlib.util.find_spec("jupyterlab") is None:
        unavailable("jupyterlab is not installed (pip install -e '.[test]' installs it)")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "data"))
    labextension(tmp_path / "data", __version__)
    lab, version = labextension_check()
    assert lab.status == "ok" and lab.details["path"].startswith(str(tmp_path))
    assert versions_check(version).status == "ok"
    labextension(tmp_path / "data", "0.0.1")
    lab, version = labextension_check()
    assert version == "0.0.1"
    finding = versions_check(version)
    assert finding.status == "problem", finding
    assert "labextension 0.0.1" in finding.found and __version__ in finding.found
    assert finding.fix.startswith("restart the Jupyter server after upgrading; reinstall "
                                  "with pip")


def test_a_disabled_labextension_is_a_problem_with_the_enable_command(tmp_path, monkeypatch):
    if importlib.util.find_spec("jupyterlab") is None:
        unavailable("jupyterlab is not installed (pip install -e '.[test]' installs it)")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "data"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    labextension(tmp_path / "data", __version__)
    labconfig = tmp_path / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"tracklab-jupyter": True}}))
    lab, _ = labextension_check()
    assert lab.status == "problem" and "disabled" in lab.found, lab
    assert "jupyter labextension enable tracklab-jupyter" in lab.fix
