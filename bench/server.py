"""Benchmark: what the server extension costs a Jupyter server, and how fast it serves.

Starts real `jupyter server` subprocesses (with a bench-only extension, looplag_ext, that
measures event-loop lag) and prints:
  - event-loop lag p50/p99 without the extension, and with it at 1 Hz with 0 and with
    100 WebSocket clients (same run, same machine);
  - the server process's CPU share with 100 clients;
  - p99 latency from sample time to a client's receipt;
  - requests per second of tracklab/api/system/metrics beside jupyter-resource-usage's
    /api/metrics/v1 on the same server (if jupyter-resource-usage is installed).

Targets (issue 4): added p99 loop lag <= 2 ms; 100 clients <= 5 % of one core;
sample-to-client p99 <= 50 ms.

    python bench/server.py [--seconds 15] [--clients 100]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

BENCH = Path(__file__).resolve().parent
TOKEN = "bench-token"
HEADERS = {"Authorization": f"token {TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterServer:
    def __init__(self, extensions: dict[str, bool], data_dir: Path) -> None:
        self.port = free_port()
        config = {"ServerApp": {"jpserver_extensions": extensions, "open_browser": False,
                                "port": self.port, "ip": "127.0.0.1", "allow_root": True,
                                "root_dir": str(data_dir)},
                  "IdentityProvider": {"token": TOKEN},
                  "TrackLab": {"data_dir": str(data_dir / "tracklab"), "interval": 1.0}}
        self.config_file = data_dir / f"config-{self.port}.json"
        self.config_file.write_text(json.dumps(config))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(BENCH), os.environ.get("PYTHONPATH", "")]),
            "JUPYTER_CONFIG_DIR": str(data_dir / "jupyter-config")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--config={self.config_file}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        self.ps = psutil.Process(self.proc.pid)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def get(self, path: str) -> dict:
        response = await AsyncHTTPClient().fetch(HTTPRequest(self.url(path), headers=HEADERS))
        return json.loads(response.body)

    async def wait_ready(self, path: str = "looplag") -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                await self.get(path)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def loop_lag(server: JupyterServer, seconds: float) -> dict:
    await server.get("looplag?reset=1")
    await asyncio.sleep(seconds)
    return await server.get("looplag?reset=1")


async def run_clients(server: JupyterServer, n: int, seconds: float) -> tuple[dict, float, list]:
    """Connect n WebSocket clients; measure loop lag, server CPU and sample latency."""
    latencies: list[float] = []
    sockets = []
    for _ in range(n):
        ws = await websocket_connect(HTTPRequest(
            f"ws://127.0.0.1:{server.port}/tracklab/ws", headers=HEADERS))
        sockets.append(ws)

    async def reader(ws) -> None:
        while True:
            raw = await ws.read_message()
            if raw is None:
                return
            message = json.loads(raw)
            if message["type"] == "system_metrics":
                latencies.append(time.time() - message["time"])

    tasks = [asyncio.create_task(reader(ws)) for ws in sockets]
    await asyncio.sleep(2)  # connection bursts settle
    latencies.clear()
    cpu0 = sum(server.ps.cpu_times()[:2])
    t0 = time.monotonic()
    lag = await loop_lag(server, seconds)
    share = (sum(server.ps.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0) * 100
    for ws in sockets:
        ws.close()
    for task in tasks:
        task.cancel()
    return lag, share, latencies


async def requests_per_second(server: JupyterServer, path: str, seconds: float,
                              concurrency: int = 8) -> float:
    client = AsyncHTTPClient(max_clients=concurrency)
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await client.fetch(HTTPRequest(server.url(path), headers=HEADERS))
            done += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - t0)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 2 else float("nan")


async def main(args: argparse.Namespace) -> None:
    have_jru = importlib.util.find_spec("jupyter_resource_usage") is not None
    with tempfile.TemporaryDirectory() as tmp:
        base = JupyterServer({"looplag_ext": True, "tracklab_jupyter": False}, Path(tmp))
        ours = JupyterServer({"looplag_ext": True, "tracklab_jupyter": True,
                              "jupyter_resource_usage": have_jru}, Path(tmp))
        try:
            await base.wait_ready()
            await ours.wait_ready("tracklab/api/system/metrics")
            print(f"servers up: baseline pid {base.proc.pid}, with tracklab pid "
                  f"{ours.proc.pid}; {psutil.cpu_count()} CPUs")
            lag_base, lag_idle = await asyncio.gather(loop_lag(base, args.seconds),
                                                      loop_lag(ours, args.seconds))
            lag_clients, share, latencies = await run_clients(ours, args.clients, args.seconds)
            rps_ours = await requests_per_second(ours, "tracklab/api/system/metrics", 5)
            rps_jru = (await requests_per_second(ours, "api/metrics/v1", 5)) if have_jru else None
        finally:
            base.stop()
            ours.stop()

    print(f"\nEvent-loop lag over {args.seconds:g} s (10 ms probe):")
    for label, lag in (("server without tracklab", lag_base),
                       ("with tracklab, 0 clients", lag_idle),
                       (f"with tracklab, {args.clients} clients", lag_clients)):
        print(f"  {label:<32} p50 {lag['p50_ms']:6.3f} ms   p99 {lag['p99_ms']:6.3f} ms   "
              f"max {lag['max_ms']:6.2f} ms")
    added_idle = lag_idle["p99_ms"] - lag_base["p99_ms"]
    added_clients = lag_clients["p99_ms"] - lag_base["p99_ms"]
    p99_latency = pct(latencies, 99) * 1e3
    print(f"\nServer CPU with {args.clients} clients: {share:.2f} % of one core")
    print(f"Sample-to-client latency over {len(latencies)} frames: p50 "
          f"{pct(latencies, 50) * 1e3:.2f} ms, p99 {p99_latency:.2f} ms")
    print("\nRequests per second (8 concurrent, same server):")
    print(f"  tracklab/api/system/metrics          {rps_ours:8.0f} /s")
    if rps_jru is not None:
        print(f"  jupyter-resource-usage /api/metrics/v1 {rps_jru:6.0f} /s   "
              f"(ratio {rps_ours / rps_jru:.1f}x)")
    else:
        print("  jupyter-resource-usage not installed: pip install jupyter-resource-usage")
    print("\nResults against targets:")
    rows = [("added p99 loop lag, 0 clients", added_idle, 2.0, "ms"),
            (f"added p99 loop lag, {args.clients} clients", added_clients, 2.0, "ms"),
            (f"server CPU, {args.clients} clients", share, 5.0, "% of a core"),
            ("sample-to-client p99", p99_latency, 50.0, "ms")]
    for name, value, target, unit in rows:
        print(f"  {name:<36} {value:8.2f} {unit:<12} target <= {target:g}   "
              f"{'met' if value <= target else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=100)
    asyncio.run(main(parser.parse_args()))
