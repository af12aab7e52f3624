"""What the Diagnose button costs a running Jupyter server: its event loop's lag while a
client asks ``tracklab/api/health?full=1`` back to back (every check that applies to a
running server: two replayed H200s opened again, the data dir written and synced, the
store's pages counted), against the lag of the same server with plain ``api/health``
requests, measured in the same run; and how long one full report takes.

    python bench/doctor.py [--seconds 10]

The checks run on a thread (the endpoint is blocking with full=1), one run at a time, and
an answer younger than 5 s is shared, so back-to-back requests measure both the run and the
reuse. The figure to watch is the loop lag ratio: near 1 means the loop did not notice.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from server import HEADERS, JupyterServer, fake_gpu_env, loop_lag  # bench/server.py
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

#: The loop lag p99 while diagnosing should stay within this many ms of the baseline's.
LAG_TARGET_MS = 5.0


async def hammer(server: JupyterServer, path: str, seconds: float) -> tuple[dict, list[float]]:
    """Ask ``path`` back to back for ``seconds`` while the loop lag is taken."""
    client = AsyncHTTPClient(force_instance=True)
    times: list[float] = []
    stop = time.monotonic() + seconds

    async def ask() -> None:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            await client.fetch(HTTPRequest(server.url(path), headers=HEADERS,
                                           request_timeout=60))
            times.append(time.perf_counter() - t0)

    try:
        lag, _ = await asyncio.gather(loop_lag(server, seconds), ask())
    finally:
        client.close()
    return lag, times


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = JupyterServer({"looplag_ext": True, "tracklab_jupyter": True}, Path(tmp),
                               env=fake_gpu_env())
        try:
            await server.wait_ready("tracklab/api/system/metrics")
            await asyncio.sleep(3)  # the first samples and the slow reads
            # one run alone: what a single click costs
            t0 = time.perf_counter()
            report = await server.get("tracklab/api/health?full=1")
            cold_s = time.perf_counter() - t0
            base_lag, base_times = await hammer(server, "tracklab/api/health", args.seconds)
            await asyncio.sleep(5.5)  # the shared answer expires
            full_lag, full_times = await hammer(server, "tracklab/api/health?full=1",
                                                args.seconds)
        finally:
            server.stop()
    counts = report["doctor"]["counts"]
    print(f"one full report: {cold_s * 1e3:.0f} ms ({len(report['doctor']['checks'])} checks: "
          f"{counts})")
    for name, lag, times in (("health (baseline)", base_lag, base_times),
                             ("health?full=1", full_lag, full_times)):
        print(f"{name:<20} {len(times):6d} requests  median {statistics.median(times) * 1e3:7.2f}"
              f" ms   loop lag p50 {lag['p50_ms']:6.3f} ms  p99 {lag['p99_ms']:6.3f} ms  "
              f"max {lag['max_ms']:7.2f} ms")
    extra = full_lag["p99_ms"] - base_lag["p99_ms"]
    ratio = full_lag["p99_ms"] / base_lag["p99_ms"] if base_lag["p99_ms"] else float("nan")
    print(f"\nloop lag p99 while diagnosing: {full_lag['p99_ms']:.3f} ms, "
          f"{ratio:.2f}× the baseline's ({extra:+.3f} ms); target: within "
          f"{LAG_TARGET_MS:g} ms of it   {'met' if extra <= LAG_TARGET_MS else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds of requests per phase (default: %(default)s)")
    asyncio.run(main(parser.parse_args()))
