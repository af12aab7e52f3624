"""Shared fixtures: a real Jupyter server with the extension (pytest-jupyter), a fake NVML
replaying the recorded H200, and an isolated data dir for every test."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest_amd import *  # noqa: F403  (fake amdsmi, amdgpu sysfs host)
from conftest_ascend import *  # noqa: F403  (fake DCMI and npu-smi fixtures)
from conftest_nvml import *  # noqa: F403  (fake_nvml fixtures)
from conftest_tpu import *  # noqa: F403

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """No test touches ~/.tracklab."""
    monkeypatch.setenv("TRACKLAB_DATA_DIR", str(tmp_path / "tracklab-data"))


def backend_opener(cls):
    """A fixture for a backend test module: ``backends(*args)`` opens ``cls`` with them, and
    every backend the test opened is closed afterwards."""

    @pytest.fixture
    def backends():
        opened = []

        def open_(*args, **kwargs):
            backend = cls.open(*args, **kwargs)
            opened.append(backend)
            return backend

        yield open_
        for backend in opened:
            backend.close()

    return backends


def device_metrics(gauges: dict[str, float], kind: str, index: int) -> dict[str, float]:
    """One device's values from a reading, without its ``{kind}.{index}.`` prefix."""
    prefix = f"{kind}.{index}."
    return {k[len(prefix):]: v for k, v in gauges.items() if k.startswith(prefix)}


@pytest.fixture
def tracklab_data_dir(tmp_path):
    return tmp_path / "server-data"


@pytest.fixture
def jp_server_config(tracklab_data_dir):
    return {
        "ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
        "TrackLab": {"data_dir": str(tracklab_data_dir), "interval": 0.2,
                     "flush_interval": 0.5},
    }


@pytest.fixture
def tracklab_server(jp_serverapp):
    """A started Jupyter server with the extension; yields the extension app."""
    point = jp_serverapp.extension_manager.extension_points["tracklab"]
    yield point.app


CHROMIUM = "/usr/lib/chromium/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    """Poll ``predicate`` every 50 ms until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def unavailable(reason: str) -> None:
    """Skip a test whose tool or package is missing here; under CI=true that is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing the test extra and scripts/test-setup.sh "
                    "install may be missing)")
    pytest.skip(reason)


def optional_import(name: str):
    """The module ``name``, or None where it is not installed."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@pytest.fixture(scope="module")
def distributed_installed():
    """For a module of Dask tests (``pytestmark``): a skip without distributed, a failure
    under CI=true (the test extra installs it)."""
    if optional_import("distributed") is None:
        unavailable("distributed is not installed (pip install -e '.[test]' installs it)")


@pytest.fixture
def browser():
    """Debian's chromium, headless, driven by Playwright (never a downloaded browser).

    Function scope: pytest-jupyter's autouse event-loop fixture must be set up before (and
    torn down after) playwright's own loop."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright (Python) not installed")
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} missing (scripts/test-setup.sh installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run"])
        yield b
        b.close()


def loopback_transfer(nbytes: int) -> int:
    """Send nbytes over a loopback TCP connection; returns what the receiver got."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    got = [0]

    def receive() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(1 << 20):
                got[0] += len(data)

    worker = threading.Thread(target=receive)
    worker.start()
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"\0" * nbytes)
    worker.join(10)
    server.close()
    return got[0]
