"""Extension configuration, GPUs through the server, and one recorder beside the
standalone server."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from test_standalone import TOKEN, start_server, stop_server
from tornado.httpclient import HTTPClientError


@pytest.fixture
def jp_server_config(tracklab_data_dir, fake_nvml_factory):
    # Two replayed H200s, installed before the server (and its sampler) starts.
    fake_nvml_factory(gpus=2, mode="busy")
    return {"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
            "TrackLab": {"data_dir": str(tracklab_data_dir), "interval": 0.2,
                         "flush_interval": 0.5, "gpus": ["1"]}}


async def wait_json(jp_fetch, *path) -> dict:
    for _ in range(200):
        try:
            body = json.loads((await jp_fetch("tracklab", *path)).body)
            if body.get("metrics") or body.get("accelerators"):
                return body
        except HTTPClientError as exc:
            assert exc.code == 503
        await asyncio.sleep(0.1)
    raise AssertionError("no data")


async def test_gpus_setting_and_accelerators_endpoint(jp_fetch, jp_serverapp):
    body = await wait_json(jp_fetch, "api", "hardware", "accelerators")
    (gpu,) = body["accelerators"]  # c.TrackLab.gpus = ["1"]
    assert gpu["index"] == 1 and gpu["name"] == "NVIDIA H200" and gpu["state"] == "ok"
    assert gpu["metrics"]["power_w"] == pytest.approx(686.452)
    assert body["drivers"]["nvidia"]["driver_version"] == "580.159.04"
    assert gpu["kind"] == "gpu" and gpu["vendor"] == "nvidia"
    text = (await jp_fetch("tracklab", "metrics")).body.decode()
    line = next(ln for ln in text.splitlines() if ln.startswith("tracklab_gpu_power_watts{"))
    assert 'gpu="1",' in line and f'uuid="{gpu["uuid"]}"' in line
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(686.452)


@pytest.mark.parametrize("bad", [{"interval": 0.01}, {"retention_days": -1},
                                 {"batch_size": 0}, {"kernel_interval": 0.1},
                                 {"alerts": {"memory": {"threshold_pct": 150}}}])
def test_invalid_setting_disables_the_extension_not_the_server(jp_configurable_serverapp,
                                                               tmp_path, capfd, bad):
    from tracklab_jupyter.server.serving import DISABLED_KEY, MONITOR_KEY

    app = jp_configurable_serverapp(config={
        "ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
        "TrackLab": {"data_dir": str(tmp_path / "d"), **bad}})
    assert app.web_app.settings[MONITOR_KEY] is None
    reason = app.web_app.settings[DISABLED_KEY]
    assert f"c.TrackLab.{next(iter(bad))}" in reason
    assert "tracklab disabled, invalid configuration: c.TrackLab." in capfd.readouterr().err


def test_alert_settings_from_the_environment_below_config(monkeypatch, jp_configurable_serverapp,
                                                          tmp_path):
    from tracklab_jupyter.server.serving import DISABLED_KEY

    config = {"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
              "TrackLab": {"data_dir": str(tmp_path / "d")}}
    monkeypatch.setenv("TRACKLAB_ALERTS", '{"disk": {"threshold_pct": 150}}')
    app = jp_configurable_serverapp(config=config)
    assert "TRACKLAB_ALERTS.disk.threshold_pct" in app.web_app.settings[DISABLED_KEY]
    monkeypatch.setenv("TRACKLAB_ALERTS", '{"disk": false}')
    app = jp_configurable_serverapp(config=config)
    ext = app.extension_manager.extension_points["tracklab"].app
    assert not ext._alert_settings.enabled("disk") and ext._alert_settings.enabled("memory")
    ext.monitor.stop()


def test_alert_settings_of_the_config_file_win(monkeypatch, jp_configurable_serverapp,
                                               tmp_path):
    monkeypatch.setenv("TRACKLAB_ALERTS", '{"disk": false}')
    app = jp_configurable_serverapp(config={
        "ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
        "TrackLab": {"data_dir": str(tmp_path / "d"), "alerts": {"memory": False}}})
    ext = app.extension_manager.extension_points["tracklab"].app
    assert ext._alert_settings.enabled("disk") and not ext._alert_settings.enabled("memory")
    ext.monitor.stop()


def test_precedence_environment_below_config(monkeypatch, jp_configurable_serverapp, tmp_path):
    monkeypatch.setenv("TRACKLAB_INTERVAL", "2.5")
    monkeypatch.setenv("TRACKLAB_GPUS", "0,GPU-abc")
    monkeypatch.setenv("TRACKLAB_DATA_DIR", str(tmp_path / "from-env"))
    app = jp_configurable_serverapp(config={
        "ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
        "TrackLab": {"interval": 3.0, "enable_gpu": False}})
    ext = app.extension_manager.extension_points["tracklab"].app
    assert ext.interval == 3.0  # config file beats the environment
    assert ext.gpus == ["0", "GPU-abc"] and ext.data_dir == str(tmp_path / "from-env")
    ext.monitor.stop()


async def test_standalone_beside_jupyter_reads_instead_of_sampling(jp_fetch, tracklab_data_dir):
    await wait_json(jp_fetch, "api", "system", "metrics")
    standalone = start_server(tracklab_data_dir, "--token", TOKEN)
    try:
        status, _, body = standalone.get("/api/health")
        assert status == 200 and json.loads(body)["role"] == "reader"
        deadline = time.monotonic() + 15
        while True:  # the reader serves the recorder's samples from the store
            status, _, body = standalone.get("/api/system/metrics")
            if status == 200:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert "gpu.1.util_pct" in json.loads(body)["metrics"]
        ours = json.loads((await jp_fetch("tracklab", "api", "health")).body)
        assert ours["role"] == "recorder"
    finally:
        stop_server(standalone)
