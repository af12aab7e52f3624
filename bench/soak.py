"""Soak benchmark: does a Jupyter server with tracklab stay flat under a dashboard's load?

One real `jupyter server` with the extension (bench/server.py's JupyterServer, with the
bench-only looplag_ext) and, for ``--minutes`` (default 10):

  - ``--clients`` (default 100) WebSocket clients on tracklab/ws, asking for
    permessage-deflate as browsers do; a tenth of them connect and then never read;
  - a poller: 10 requests/s on tracklab/api/system/metrics, sending If-None-Match as a
    browser does (so 304 is a normal answer);
  - a history puller: tracklab/api/history?start=-1h every 10 s.

After a warm-up (10 % of the run or 30 s, whichever is smaller) the server process's RSS is
sampled every ``--rss-every`` seconds and the loop-lag probe is drained every 10 s (so the
probe's own list stays small). Printed: RSS at the start and end of the measured window and
its least-squares slope in MB per 10 min, loop lag p50/p99, frames delivered to the reading
clients, errors (connection errors; HTTP 5xx; other non-2xx/304), and PASS/FAIL against the
targets: RSS growth <= 20 MB per 10 min, loop lag p99 <= 5 ms, no 5xx. The exit status is 0
whatever the verdict: this is a report, not a test.

    python bench/soak.py [--minutes 10] [--clients 100] [--no-deflate]

``--no-deflate`` makes the clients plain (no permessage-deflate) to see what compressing
each frame per client costs the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from server import HEADERS, JupyterServer, WsClients, pct
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

POLL_PATH = "tracklab/api/system/metrics"
HISTORY_PATH = "tracklab/api/history?start=-1h"
TARGET_RSS_MB_PER_10MIN = 20.0
TARGET_LAG_P99_MS = 5.0
LAG_DRAIN_S = 10.0
MB = 2**20


@dataclass
class Tally:
    """Answers to one kind of request, by class."""

    name: str
    sent: int = 0
    ok: int = 0  # 2xx
    not_modified: int = 0  # 304
    http_5xx: int = 0
    http_other: int = 0  # any other status
    conn_errors: int = 0  # no HTTP answer: refused, reset, timed out
    seconds: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(text)

    async def fetch(self, client: AsyncHTTPClient, url: str,
                    headers: dict[str, str]) -> HTTPResponse | None:
        """GET ``url``, counting the outcome; the response when there was one."""
        self.sent += 1
        t0 = time.perf_counter()
        try:
            response = await client.fetch(HTTPRequest(url, headers=headers, request_timeout=60),
                                          raise_error=False)
        except Exception as exc:
            self.conn_errors += 1
            self.note(f"{type(exc).__name__}: {exc}")
            return None
        self.seconds.append(time.perf_counter() - t0)
        code = response.code
        if 200 <= code < 300:
            self.ok += 1
        elif code == 304:
            self.not_modified += 1
        elif code >= 500:
            self.http_5xx += 1
            self.note(f"HTTP {code}: {response.body[:200]!r}")
        else:
            self.http_other += 1
            self.note(f"HTTP {code}: {response.body[:200]!r}")
        return response


@dataclass
class Window:
    """What is sampled after the warm-up."""

    rss: list[tuple[float, int]] = field(default_factory=list)  # (monotonic s, bytes)
    lags_ms: list[float] = field(default_factory=list)
    lag_p99s: list[float] = field(default_factory=list)  # per drain, to see spikes
    lag_errors: list[str] = field(default_factory=list)
    frames_at_start: list[int] = field(default_factory=list)
    cpu_at_start: float = 0.0
    bench_cpu_at_start: float = 0.0
    machine_busy_pct: float = 0.0  # all CPUs, every process, over the window
    fds: tuple[int, int] = (0, 0)
    threads: tuple[int, int] = (0, 0)


async def sleep_until(deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def poll(server: JupyterServer, rate: float, end: float, tally: Tally) -> None:
    """``rate`` requests a second, one at a time, on a fixed schedule (late ones catch up,
    but never more than a second's worth)."""
    client = AsyncHTTPClient(force_instance=True)
    url = server.url(POLL_PATH)
    etag: str | None = None
    due = time.monotonic()
    try:
        while due < end:
            headers = {**HEADERS, **({"If-None-Match": etag} if etag else {})}
            response = await tally.fetch(client, url, headers)
            if response is not None and response.code == 200:
                etag = response.headers.get("Etag")
            due = max(due + 1 / rate, time.monotonic() - 1.0)
            await sleep_until(min(due, end))
    finally:
        client.close()


async def pull_history(server: JupyterServer, every: float, end: float, tally: Tally,
                       sizes: list[int]) -> None:
    client = AsyncHTTPClient(force_instance=True, max_body_size=1 << 32)
    url = server.url(HISTORY_PATH)
    due = time.monotonic()
    try:
        while due < end:
            response = await tally.fetch(client, url, HEADERS)
            if response is not None and response.code == 200:
                sizes.append(len(response.body))
            due += every
            await sleep_until(min(due, end))
    finally:
        client.close()


async def drain_lag(server: JupyterServer, warm: float, end: float, window: Window) -> None:
    """Reset the probe at the end of the warm-up, then collect its samples every 10 s."""
    await sleep_until(warm)
    await server.get("looplag?reset=1")
    due = warm
    while due < end:
        due = min(due + LAG_DRAIN_S, end)
        await sleep_until(due)
        try:
            body = await server.get("looplag?reset=1&samples=1")
        except Exception as exc:
            window.lag_errors.append(f"{type(exc).__name__}: {exc}")
            continue
        window.lags_ms += body["lags_ms"]
        window.lag_p99s.append(body["p99_ms"])


async def sample_rss(server: JupyterServer, clients: WsClients, warm: float, end: float,
                     every: float, window: Window) -> None:
    await sleep_until(warm)
    ps = server.ps
    window.frames_at_start = list(clients.frames)
    clients.latencies.clear()  # sample-to-client latency in the window only
    window.cpu_at_start = sum(ps.cpu_times()[:2])
    window.bench_cpu_at_start = sum(psutil.Process().cpu_times()[:2])
    psutil.cpu_percent()  # starts the machine-wide count
    fds0, threads0 = ps.num_fds(), ps.num_threads()
    due = warm
    try:
        while True:
            window.rss.append((time.monotonic(), ps.memory_info().rss))
            if due >= end:
                break
            due = min(due + every, end)
            await sleep_until(due)
        window.fds = (fds0, ps.num_fds())
        window.threads = (threads0, ps.num_threads())
    except psutil.Error as exc:  # the server died: the report says so
        window.lag_errors.append(f"server process: {type(exc).__name__}")
    window.machine_busy_pct = psutil.cpu_percent()


async def progress(clients: WsClients, tallies: list[Tally], server: JupyterServer,
                   t0: float, end: float) -> None:
    """A line a minute, so a long run shows it is alive."""
    due = t0 + 60
    while due < end:
        await sleep_until(due)
        errors = sum(t.conn_errors + t.http_5xx + t.http_other for t in tallies)
        try:
            rss = f"{server.ps.memory_info().rss / MB:6.1f} MB"
        except psutil.Error:
            rss = f"gone (exit status {server.proc.poll()})"
        print(f"  {(due - t0) / 60:4.0f} min: server RSS {rss}, {sum(clients.frames):,} frames "
              f"to readers, {errors} request errors, {clients.dropped} sockets dropped",
              flush=True)
        due += 60


def slope_mb_per_10min(rss: list[tuple[float, int]]) -> float:
    if len(rss) < 3:
        return float("nan")
    xs = [t - rss[0][0] for t, _ in rss]
    ys = [b / MB for _, b in rss]
    return statistics.linear_regression(xs, ys).slope * 600


async def main(args: argparse.Namespace) -> None:
    duration = args.minutes * 60
    warmup = min(0.1 * duration, 30.0)
    readers = args.clients - args.clients // 10
    with tempfile.TemporaryDirectory() as tmp:
        server = JupyterServer({"looplag_ext": True, "tracklab_jupyter": True}, Path(tmp))
        clients = WsClients(server, args.clients, silent=args.clients // 10,
                            compress=not args.no_deflate)
        metrics = Tally("system/metrics")
        history = Tally("history?start=-1h")
        window = Window()
        sizes: list[int] = []
        try:
            await server.wait_ready(POLL_PATH)
            print(f"server pid {server.proc.pid} up; {psutil.cpu_count()} CPUs; connecting "
                  f"{args.clients} clients ({readers} reading, {args.clients - readers} "
                  "never reading)", flush=True)
            await clients.connect()
            log_from = server.log_size()
            t0 = time.monotonic()
            end, warm = t0 + duration, t0 + warmup
            print(f"running {args.minutes:g} min (warm-up {warmup:.0f} s) ...", flush=True)
            await asyncio.gather(
                poll(server, args.rate, end, metrics),
                pull_history(server, args.history_every, end, history, sizes),
                drain_lag(server, warm, end, window),
                sample_rss(server, clients, warm, end, args.rss_every, window),
                progress(clients, [metrics, history], server, t0, end))
            frames = list(clients.frames)
            exit_status = server.proc.poll()
            cpu_share = (float("nan") if exit_status is not None else
                         (sum(server.ps.cpu_times()[:2]) - window.cpu_at_start)
                         / (duration - warmup) * 100)
            bench_share = ((sum(psutil.Process().cpu_times()[:2]) - window.bench_cpu_at_start)
                           / (duration - warmup) * 100)
        finally:
            clients.close()
            server.stop()
        log_errors, log_lines = server.log_problems(since=log_from)

    measured = duration - warmup
    rss = window.rss
    slope = slope_mb_per_10min(rss)
    p50, p99 = pct(window.lags_ms, 50), pct(window.lags_ms, 99)
    in_window = [f - s for f, s in zip(frames, window.frames_at_start, strict=False)]
    per_client = sum(frames) / max(len(frames), 1)
    fivexx = metrics.http_5xx + history.http_5xx
    conn_errors = (metrics.conn_errors + history.conn_errors + len(clients.connect_errors)
                   + clients.dropped)
    other = metrics.http_other + history.http_other

    print(f"\nSoak: {args.minutes:g} min, {args.clients} WebSocket clients "
          f"({len(frames)} reading), {args.rate:g} req/s on {POLL_PATH}, {HISTORY_PATH} "
          f"every {args.history_every:g} s; measured window {measured:.0f} s after "
          f"{warmup:.0f} s warm-up")
    if exit_status is not None:
        print(f"  SERVER EXITED during the run, status {exit_status}")
    print(f"  server RSS      start {rss[0][1] / MB:7.1f} MB   end {rss[-1][1] / MB:7.1f} MB   "
          f"max {max(b for _, b in rss) / MB:7.1f} MB   ({len(rss)} samples)")
    print(f"  RSS slope       {slope:+7.2f} MB per 10 min (least squares)")
    print(f"  server CPU      {cpu_share:.1f} % of one core;  open fds {window.fds[0]} -> "
          f"{window.fds[1]};  threads {window.threads[0]} -> {window.threads[1]}")
    others = window.machine_busy_pct * psutil.cpu_count() - cpu_share - bench_share
    print(f"  machine         {window.machine_busy_pct:.0f} % of {psutil.cpu_count()} CPUs busy: "
          f"server {cpu_share:.0f} %, this bench {bench_share:.0f} %, other processes "
          f"{max(others, 0):.0f} % of one core; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"  loop lag        p50 {p50:.3f} ms   p99 {p99:.3f} ms   max "
          f"{max(window.lags_ms, default=float('nan')):.1f} ms   ({len(window.lags_ms):,} "
          "ticks of 10 ms)")
    print("  lag p99 per 10 s " + " ".join(f"{v:.1f}" for v in window.lag_p99s[:60])
          + (" ..." if len(window.lag_p99s) > 60 else "") + " ms")
    print(f"  frames          {sum(frames):,} to {len(frames)} reading clients, "
          f"{per_client:.1f} per client (min {min(frames, default=0)}, max "
          f"{max(frames, default=0)}); {sum(in_window) / max(len(in_window), 1):.1f} per "
          f"client in the measured window of {measured:.0f} s")
    print(f"  sample-to-client latency p50 {pct(clients.latencies, 50) * 1e3:.1f} ms, "
          f"p99 {pct(clients.latencies, 99) * 1e3:.1f} ms")
    for tally in (metrics, history):
        mean_ms = statistics.mean(tally.seconds) * 1e3 if tally.seconds else float("nan")
        print(f"  {tally.name:<18} {tally.sent:6,} sent: {tally.ok:,} 2xx, "
              f"{tally.not_modified:,} 304, {tally.http_5xx} 5xx, {tally.http_other} other, "
              f"{tally.conn_errors} connection errors; mean {mean_ms:.1f} ms, p99 "
              f"{pct(tally.seconds, 99) * 1e3:.1f} ms")
        for example in tally.examples:
            print(f"      {example}")
    if sizes:
        print(f"  history reply   {sizes[0] / 1e3:.0f} kB first, {sizes[-1] / 1e3:.0f} kB last")
    print(f"  errors          connection {conn_errors} (WebSocket connects failed "
          f"{len(clients.connect_errors)}, sockets dropped by the server {clients.dropped}), "
          f"5xx {fivexx}, other non-2xx/304 {other}")
    for text in clients.connect_errors[:3] + window.lag_errors[:3]:
        print(f"      {text}")
    print(f"  server log      {log_errors} error/traceback line(s)")
    for line in log_lines:
        print(f"      {line[:200]}")

    checks = [
        (f"RSS growth per 10 min <= {TARGET_RSS_MB_PER_10MIN:g} MB", f"{slope:+.2f} MB",
         slope <= TARGET_RSS_MB_PER_10MIN),
        (f"loop lag p99 <= {TARGET_LAG_P99_MS:g} ms", f"{p99:.3f} ms", p99 <= TARGET_LAG_P99_MS),
        ("no 5xx", f"{fivexx}", fivexx == 0),
    ]
    print("\nAgainst targets:")
    for name, value, ok in checks:
        print(f"  {name:<32} {value:>12}   {'PASS' if ok else 'FAIL'}")
    print(f"VERDICT: {'PASS' if all(ok for *_, ok in checks) else 'FAIL'}")
    if measured < 300:
        print(f"(a {measured:.0f} s window: the slope is a short extrapolation; the target is "
              "for the 10 min default)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="length of the run (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=100,
                        help="WebSocket clients, a tenth of them never reading "
                             "(default: %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help=f"requests per second on {POLL_PATH} (default: %(default)s)")
    parser.add_argument("--history-every", type=float, default=10.0,
                        help="seconds between history pulls (default: %(default)s)")
    parser.add_argument("--no-deflate", action="store_true",
                        help="clients do not ask for permessage-deflate")
    parser.add_argument("--rss-every", type=float, default=5.0,
                        help="seconds between RSS samples (default: %(default)s)")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
