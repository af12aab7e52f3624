"""`jupyter server` as a user runs it: enabled by the installed config file alone, records
while running, flushes and lets go of the data dir when stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import wait_for

from tracklab_jupyter.recorder import Recorder, RecorderConfig
from tracklab_jupyter.sampler.factory import SamplerConfig
from tracklab_jupyter.store.reader import StoreReader


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_enabled_by_install_records_and_flushes_on_stop(tmp_path, stop_signal):
    port, token, data = free_port(), "lifecycle-token", tmp_path / "data"
    env = {**os.environ, "TRACKLAB_DATA_DIR": str(data), "TRACKLAB_INTERVAL": "0.2"}
    # No jpserver_extensions here: the file pip installed under etc/jupyter enables it.
    # A flush interval longer than the test: whatever is stored, the stop's flush stored.
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root",
         f"--ServerApp.root_dir={tmp_path}", "--TrackLab.flush_interval=60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}/tracklab/api/health"

    def health() -> dict | None:
        assert proc.poll() is None, "the server exited"
        try:
            request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            return None

    try:
        wait_for(lambda: (h := health()) and h["status"] == "ok", 60, "the server to start")
        # a few samples taken (the timed flush that would store them is a minute away)
        before = wait_for(lambda: (h := health()) and h["sampler"]["samples"] >= 3 and h, 60,
                          "three samples")
        assert before["role"] == "recorder"
    finally:
        # SIGTERM, as systemd, Docker and JupyterHub stop a server; SIGINT, as Ctrl+C does
        # (without a terminal it ends the server by KeyboardInterrupt, past the extensions'
        # stop: the extension's exit handler flushes then).
        proc.send_signal(stop_signal)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert proc.returncode == 0, output
    assert "tracklab: recorder for" in output
    reader = StoreReader(data)
    newest = reader.latest(within=60)
    stored = sum(f.times_ms.size for f in reader.read(None, 0, time.time() + 60).values())
    reader.close()
    assert newest is not None and "cpu.util_pct" in newest.metrics, output
    # the clean stop flushed the last batch: every sample taken before the stop is stored
    assert stored >= before["sampler"]["samples"]
    # and released the data dir: a new recorder takes it at once
    recorder = Recorder(RecorderConfig(data_dir=data, sampler=SamplerConfig(enable_gpu=False)),
                        takeover=False)
    try:
        assert recorder.role == "recorder"
    finally:
        recorder.stop()
