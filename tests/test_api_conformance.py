"""The OpenAPI document tells the truth: schemathesis generates requests from it (valid and
invalid ones, every parameter's edges, then sequences through its links to real runs) and
runs every check against the real standalone server. Zero failures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

TOKEN = "conformance-token"

MAKE_RUNS = """
    import tracklab
    for i in range(3):
        tracklab.init(project="conformance", name=f"run {i}", config={"lr": 0.1 * i},
                      tags=["sweep"])
        for step in range(40):
            tracklab.log({"loss": 1.0 / (step + 1), "acc": step / 40}, step=step)
        tracklab.finish()
"""


@pytest.fixture
def standalone(tmp_path: Path):
    """A standalone server over a store holding samples and three finished runs."""
    data = tmp_path / "data"
    env = {**os.environ, "TRACKLAB_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "-c", textwrap.dedent(MAKE_RUNS)], env=env, check=True,
                   timeout=120)
    log = open(tmp_path / "server.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracklab_jupyter", "serve", "--port", "0", "--data-dir",
         str(data), "--interval", "0.5", "--token", TOKEN],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            time.sleep(0.1)
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", Path(log.name).read_text())
            port = int(match.group(1)) if match else None
        assert port is not None, Path(log.name).read_text()
        url = f"http://127.0.0.1:{port}"
        _wait_first_sample(url)
        yield url, Path(log.name)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _wait_first_sample(url: str) -> None:
    request = urllib.request.Request(url + "/api/history?metrics=cpu.util_pct&start=-1min",
                                     headers={"Authorization": f"token {TOKEN}"})
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if json.loads(response.read())["time"]:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server stored no sample"
        time.sleep(0.2)


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_failure_with_every_check(standalone, tmp_path):
    url, server_log = standalone
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file",
         str(Path(__file__).with_name("schemathesis.toml")), "run", f"{url}/api/openapi.json",
         "--header", f"Authorization: token {TOKEN}", "--checks", "all",
         "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "25",
         "--seed", "20261129", "--workers", "1", "--request-timeout", "30",
         "--report", "json", "--report-json-path", str(report)],
        capture_output=True, text=True, timeout=560, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-12000:]
    # It really exercised the API: every operation, and runs reached through the links.
    tested = re.search(r"Tested:\s+(\d+)\b", output)
    assert tested and int(tested.group(1)) == _operations() - 1, output[-3000:]  # not itself
    links = re.search(r"API Links:\s+(\d+) covered", output)
    assert links and int(links.group(1)) >= 5, output[-3000:]
    log = server_log.read_text()
    assert " 500 " not in log and "Traceback" not in log, log[-5000:]
    # The banner prints the URL to open, as Jupyter does; no log line holds the token.
    leaks = [line for line in log.splitlines() if TOKEN in line and "serving on" not in line]
    assert leaks == [], leaks[:5]


def _operations() -> int:
    """Operations in the OpenAPI document (``api/openapi.json`` among them)."""
    from tracklab_jupyter.server.openapi import openapi_dict

    return sum(1 for methods in openapi_dict()["paths"].values() for method in methods
               if method in ("get", "put", "post", "patch", "delete"))
