"""Each setting is declared once (tracklab_jupyter/settings.py): the extension's traitlets,
the standalone server's options, the environment reading and the README's table come from
it, and every process starts its monitor through one sequence (tracklab_jupyter/startup)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tracklab_jupyter import settings
from tracklab_jupyter.cli import build_parser
from tracklab_jupyter.commands.docs import readme_with_settings
from tracklab_jupyter.server.extension import TrackLab

ROOT = Path(__file__).resolve().parents[1]
SHIM = Path(__file__).resolve().parent / "shim"


def test_the_readme_configuration_table_is_generated_from_the_spec():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == readme_with_settings(readme), \
        "README's configuration table is stale: python -m tracklab_jupyter docs"
    for setting in settings.SETTINGS:
        assert f"| `{setting.name}` |" in readme


def test_every_setting_reaches_each_place_it_applies(monkeypatch):
    for s in settings.SETTINGS:  # defaults, not this test run's environment
        if s.env:
            monkeypatch.delenv(s.env, raising=False)
    app = TrackLab()
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore
    options = {a.dest: a for a in serve._actions}
    for s in settings.SETTINGS:
        if settings.JUPYTER in s.where:
            assert app.trait_metadata(s.name, "config"), s.name
            assert getattr(app, s.name) == s.default, s.name
        if settings.SERVE in s.where:
            assert s.option in options[s.name].option_strings, s.name
        else:
            assert s.name not in options
        assert s.check(s.default) == s.default  # every default is within its bounds


def test_environment_and_command_line_take_turns_with_errors_naming_the_source():
    env = {"TRACKLAB_INTERVAL": "2.5", "TRACKLAB_GPUS": "0, GPU-abc",
           "TRACKLAB_ALERTS": '{"disk": false}', "TRACKLAB_CLUSTER": "ray:auto"}
    got = settings.resolve({"gpus": ["1"], "port": 80}, env, settings.SERVE,
                           settings.COMMAND_LINE)
    assert got.values["interval"] == 2.5 and got.values["gpus"] == ["1"]
    assert got.values["alerts"] == {"disk": False} and got.values["cluster"] == "ray:auto"
    assert "port" not in got.values and got.origin("alerts") == "TRACKLAB_ALERTS"
    assert got.origin("gpus") == "--gpus" and got.origin("retention_days") == "retention_days"
    kernel = settings.resolve({}, env, settings.KERNEL, "x")
    assert "cluster" not in kernel.values and kernel.values["interval"] == 2.5
    with pytest.raises(ValueError, match=r"^TRACKLAB_INTERVAL: must be between 0\.1 and 3600"):
        settings.resolve({}, {"TRACKLAB_INTERVAL": "0.01"}, settings.SERVE, "x")
    with pytest.raises(ValueError, match=r"^TRACKLAB_INTERVAL: could not convert"):
        settings.resolve({}, {"TRACKLAB_INTERVAL": "fast"}, settings.SERVE, "x")
    with pytest.raises(ValueError, match=r"^--retention-days: must be more than 0 days"):
        settings.resolve({"retention_days": 0}, {}, settings.SERVE, settings.COMMAND_LINE)


def test_the_standalone_server_reads_the_environment_and_takes_gpus(tmp_path):
    """`serve` used to ignore TRACKLAB_INTERVAL and TRACKLAB_GPUS and had no --gpus."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRACKLAB_INTERVAL": "0.7",
           "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")]),
           "TRACKLAB_FAKE_NVML_GPUS": "2", "TRACKLAB_TOKEN": "tok"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracklab_jupyter", "serve", "--port", "0", "--data-dir",
         str(tmp_path), "--gpus", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        port = None
        while port is None:
            line = proc.stdout.readline()
            assert line, "the server ended before it served"
            if found := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
                port = int(found.group(1))

        def get(path: str) -> dict:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                             headers={"Authorization": "token tok"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        assert get("/api/health")["interval_s"] == 0.7
        deadline = time.monotonic() + 20
        while not (devices := get("/api/hardware/accelerators")["accelerators"]):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert [d["index"] for d in devices] == [1]
    finally:
        proc.terminate()
        proc.wait(20)
    bad = subprocess.run(
        [sys.executable, "-m", "tracklab_jupyter", "serve", "--port", "0", "--data-dir",
         str(tmp_path)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "TRACKLAB_INTERVAL": "0"})
    assert bad.returncode == 2
    assert "TRACKLAB_INTERVAL: must be between 0.1 and 3600 seconds, got 0.0" in bad.stderr


def test_a_kernel_with_unreadable_alert_rules_monitors_without_alerts(tmp_path, monkeypatch,
                                                                      caplog):
    from tracklab_jupyter.process_monitor import process_monitor, stop_process_monitor

    monkeypatch.setenv("TRACKLAB_ALERTS", "{not json")
    monkeypatch.setenv("TRACKLAB_INTERVAL", "0.2")
    monitor = process_monitor(tmp_path / "data")
    try:
        assert monitor.wait_started(15.0) and monitor.interval == 0.2
        assert monitor.alerts is None
        assert "alerts off in this kernel: TRACKLAB_ALERTS:" in caplog.text
    finally:
        stop_process_monitor()
