"""Shared fixtures: a real Jupyter server with the extension (pytest-jupyter), a fake NVML
replaying the recorded H200, and an isolated data dir for every test."""

from __future__ import annotations

import pytest
from conftest_nvml import *  # noqa: F403  (fake_nvml fixtures)

pytest_plugins = ("pytest_jupyter.jupyter_server",)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """No test touches ~/.tracklab."""
    monkeypatch.setenv("TRACKLAB_DATA_DIR", str(tmp_path / "tracklab-data"))


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
