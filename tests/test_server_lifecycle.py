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

from tracklab_jupyter.recorder import Recorder, RecorderConfig
from tracklab_jupyter.sampler.factory import SamplerConfig
from tracklab_jupyter.store.reader import StoreReader


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_enabled_by_install_records_and_flushes_on_stop(tmp_path):
    port, token, data = free_port(), "lifecycle-token", tmp_path / "data"
    env = {**os.environ, "TRACKLAB_DATA_DIR": str(data), "TRACKLAB_INTERVAL": "0.2"}
    # No jpserver_extensions here: the file pip installed under etc/jupyter enables it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", "--allow-root",
         f"--ServerApp.root_dir={tmp_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        url = f"http://127.0.0.1:{port}/tracklab/api/health"
        while True:
            try:
                request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    health = json.loads(response.read())
                if health["status"] == "ok":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.2)
        assert health["role"] == "recorder"
        time.sleep(1.5)
    finally:
        stopped_at = time.time()
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
    assert proc.returncode == 0, output
    assert "tracklab: recorder for" in output
    reader = StoreReader(data)
    newest = reader.latest(within=60)
    reader.close()
    assert newest is not None and "cpu.util_pct" in newest.metrics
    # the clean stop flushed the last batch: samples up to the stop are stored
    assert stopped_at - newest.time < 1.0
    # and released the data dir: a new recorder takes it at once
    recorder = Recorder(RecorderConfig(data_dir=data, sampler=SamplerConfig(enable_gpu=False)),
                        takeover=False)
    try:
        assert recorder.role == "recorder"
    finally:
        recorder.stop()
