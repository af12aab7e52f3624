"""``tracklab-jupyter record --alerts``: the bare recorder evaluates the host rules and
stores alerts (a container memory limit from a cgroup v2 fixture, crossed then left); a bad
setting is refused before anything records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_server_alerts import FakeCgroup

from tracklab_jupyter.store.reader import StoreReader


def stored_alerts(data: Path) -> list[tuple[str, str]]:
    if not (data / "metrics.db").exists():
        return []
    reader = StoreReader(data)
    try:
        events = reader.events(0, time.time() + 1, kinds=["alert", "alert_resolved"])
    finally:
        reader.close()
    return [(e.kind, e.data.get("rule", "")) for e in events]


def wait_for_alerts(data: Path, proc: subprocess.Popen, wanted: list[tuple[str, str]],
                    timeout: float = 20.0) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    found: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        found = stored_alerts(data)
        if found == wanted:
            return found
        time.sleep(0.2)
    raise AssertionError(f"stored alerts {found}, wanted {wanted}")


def record(tmp_path: Path, *extra: str) -> tuple[FakeCgroup, Path, subprocess.Popen]:
    """``record`` at 5 Hz on a fake container whose memory is 95 % used."""
    cgroup = FakeCgroup(tmp_path / "cgroup")
    cgroup.use(95)
    data = tmp_path / "data"
    env = {**os.environ, "TRACKLAB_CGROUP_ROOT": str(cgroup.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracklab_jupyter", "record", "--data-dir", str(data),
         "--interval", "0.2", "--flush-interval", "0.2s", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return cgroup, data, proc


def test_record_with_alerts_stores_a_memory_alert_and_its_resolution(tmp_path):
    cgroup, data, proc = record(tmp_path, "--alerts", '{"memory": {"for_s": 0}}')
    try:
        wait_for_alerts(data, proc, [("alert", "memory")])
        cgroup.use(30)
        wait_for_alerts(data, proc, [("alert", "memory"), ("alert_resolved", "memory")])
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def test_record_without_alerts_stores_none(tmp_path):
    _cgroup, data, proc = record(tmp_path)
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not (data / "metrics.db").exists():
            time.sleep(0.1)
        time.sleep(1.5)  # long enough for the alert of the test above
        assert stored_alerts(data) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_record_refuses_bad_alert_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tracklab_jupyter", "record", "--data-dir",
         str(tmp_path / "data"), "--alerts", '{"memory": {"threshold_pct": 150}}'],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--alerts.memory.threshold_pct: must be between 1 and 100" in result.stderr
    assert not (tmp_path / "data" / "metrics.db").exists()
