"""Benchmark: what the server extension costs a Jupyter server, and how fast it serves.

Starts real `jupyter server` subprocesses (with a bench-only extension, looplag_ext, that
measures event-loop lag) and prints:
  - event-loop lag p50/p99 without the extension, and with it at 1 Hz with 0 and with
    100 WebSocket clients (same run, same machine);
  - the server process's CPU share with 100 clients;
  - p99 latency from sample time to a client's receipt;
  - requests per second of tracklab/api/system/metrics beside jupyter-resource-usage's
    /api/metrics/v1 on the same server (if jupyter-resource-usage is installed);
  - the largest history reply: a store holding a day of 100 series at 1 Hz (written
    through the real StoreWriter before the server starts), pulled again and again as
    JSON and as CSV (tracklab/api/history?start=-24h) with the 100 clients connected:
    reply size, time per pull, and event-loop lag during the pulls;
  - the Prometheus scrape (tracklab/metrics), once with 8 fake GPUs on this host (the fake
    NVML of tests/shim, replaying a recorded H200) and once with a 16-node cluster (the
    bench extension fakecluster_ext, each node this host's answer with the 8 fake GPUs):
    reply size and series, p50/p99 latency of sequential GETs in the text format and in
    OpenMetrics, the server's CPU per scrape (above its idle CPU, measured just before
    over as long), and event-loop lag while scraped beside idle.

Targets (issue 4): added p99 loop lag <= 2 ms; 100 clients <= 5 % of one core;
sample-to-client p99 <= 50 ms; loop lag p99 <= 5 ms while the largest history reply is
pulled. Issue 16: scrape p99 <= 5 ms with 8 GPUs and with 16 nodes.

    python bench/server.py [--seconds 15] [--clients 100] [--skip-history]
                           [--history-hours 24] [--history-seconds 20]
                           [--skip-scrape | --scrape-only] [--scrape-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:  # the package from this checkout, installed or not
    sys.path.insert(1, str(ROOT))
TOKEN = "bench-token"
HEADERS = {"Authorization": f"token {TOKEN}"}
HISTORY_LAG_TARGET_MS = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterServer:
    """A `jupyter server` subprocess on a free port; its log goes to ``log_path``."""

    def __init__(self, extensions: dict[str, bool], data_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        """``env``: more environment variables for the server; its ``PYTHONPATH``, if any,
        goes before the bench's own entries (so a shim there shadows installed modules)."""
        self.port = free_port()
        config = {"ServerApp": {"jpserver_extensions": extensions, "open_browser": False,
                                "port": self.port, "ip": "127.0.0.1", "allow_root": True,
                                "root_dir": str(data_dir)},
                  "IdentityProvider": {"token": TOKEN},
                  "TrackLab": {"data_dir": str(data_dir / "tracklab"), "interval": 1.0}}
        self.config_file = data_dir / f"config-{self.port}.json"
        self.config_file.write_text(json.dumps(config))
        extra = dict(env or {})
        first = [extra.pop("PYTHONPATH")] if "PYTHONPATH" in extra else []
        env = {**os.environ, **extra, "PYTHONPATH": os.pathsep.join(
            [*first, str(BENCH), str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "JUPYTER_CONFIG_DIR": str(data_dir / "jupyter-config")}
        self.log_path = data_dir / f"server-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyter_server", f"--config={self.config_file}"],
                stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=ROOT)
        self.ps = psutil.Process(self.proc.pid)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def get(self, path: str) -> dict:
        response = await AsyncHTTPClient().fetch(HTTPRequest(self.url(path), headers=HEADERS))
        return json.loads(response.body)

    async def wait_ready(self, path: str = "looplag") -> None:
        """Wait until ``path`` answers 200; on failure say why, with the server's log."""
        deadline = time.monotonic() + 60
        while True:
            try:
                await self.get(path)
                return
            except Exception as exc:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
                    raise RuntimeError(f"server on port {self.port} not ready at {path} "
                                       f"({exc}); its log ends:\n" + "\n".join(tail)) from exc
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_problems(self, since: int = 0, limit: int = 5) -> tuple[int, list[str]]:
        """Lines of the server's log (from byte ``since`` on) that report an error or a
        traceback: how many, and the first ``limit`` of them."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(since)
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return 0, []
        bad = [line for line in lines
               if "Traceback" in line or "[E " in line or " ERROR " in line]
        return len(bad), bad[:limit]


class WsClients:
    """``n`` clients of ``tracklab/ws``. The first ``n - silent`` read every frame (counted
    per client, with sample-to-receipt latencies); the last ``silent`` connect and then
    never call read_message. ``compress`` asks for permessage-deflate, as browsers do."""

    def __init__(self, server: JupyterServer, n: int, silent: int = 0,
                 compress: bool = False) -> None:
        self.server = server
        self.n = n
        self.silent = silent
        self.compress = compress
        self.sockets: list[WebSocketClientConnection] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.frames: list[int] = []  # per reading client, every message
        self.latencies: list[float] = []
        self.connect_errors: list[str] = []
        self.dropped = 0  # reading clients whose connection the server closed
        self._closing = False

    @property
    def readers(self) -> int:
        return len(self.frames)

    async def connect(self) -> None:
        request = HTTPRequest(f"ws://127.0.0.1:{self.server.port}/tracklab/ws",
                              headers=HEADERS)
        for i in range(self.n):
            try:
                ws = await websocket_connect(
                    request, compression_options={} if self.compress else None)
            except Exception as exc:
                self.connect_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            self.sockets.append(ws)
            if i < self.n - self.silent:
                self.frames.append(0)
                self.tasks.append(asyncio.create_task(self._read(len(self.frames) - 1, ws)))

    async def _read(self, index: int, ws: WebSocketClientConnection) -> None:
        while True:
            raw = await ws.read_message()
            if raw is None:
                if not self._closing:
                    self.dropped += 1
                return
            self.frames[index] += 1
            message = json.loads(raw)
            if message["type"] == "system_metrics":
                self.latencies.append(time.time() - message["time"])

    def close(self) -> None:
        self._closing = True
        for ws in self.sockets:
            ws.close()
        for task in self.tasks:
            task.cancel()


async def loop_lag(server: JupyterServer, seconds: float) -> dict:
    await server.get("looplag?reset=1")
    await asyncio.sleep(seconds)
    return await server.get("looplag?reset=1")


async def run_clients(server: JupyterServer, n: int, seconds: float) -> tuple[dict, float, list]:
    """Connect n WebSocket clients; measure loop lag, server CPU and sample latency."""
    clients = WsClients(server, n)
    await clients.connect()
    if clients.connect_errors:
        raise RuntimeError(f"{len(clients.connect_errors)} of {n} WebSocket clients failed "
                           f"to connect: {clients.connect_errors[0]}")
    await asyncio.sleep(2)  # connection bursts settle
    clients.latencies.clear()
    cpu0 = sum(server.ps.cpu_times()[:2])
    t0 = time.monotonic()
    lag = await loop_lag(server, seconds)
    share = (sum(server.ps.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0) * 100
    clients.close()
    return lag, share, clients.latencies


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


# -- the largest history reply -------------------------------------------------------------
STEP_HEAD_BYTES = 16 << 20  # the JSON's step_s follows its time axis: keep this much to find it


def fill_history(data_dir: Path, hours: float, node: str) -> int:
    """Write ``hours`` of 1 Hz samples of 100 series for ``node`` (bench/store.py's
    shapes, replaying the H200 trace) through the real StoreWriter, then run the
    maintenance pass a server runs in the background. Returns the number of points."""
    import numpy as np
    from store import generate  # bench/store.py

    from tracklab_jupyter.metrics.sample import Sample
    from tracklab_jupyter.store import StoreWriter
    from tracklab_jupyter.store.maintenance import Maintenance

    times, names, values = generate(int(hours * 3600))
    writer = StoreWriter(data_dir)
    for t, row in zip(times.tolist(), values.tolist(), strict=True):
        writer.write(Sample(t, node, dict(zip(names, row, strict=True))), block=True)
    writer.close()
    upkeep = Maintenance(writer.path, writer.config)
    upkeep.run_once(now=float(times[-1]) + 1)
    upkeep.close()
    return int(np.count_nonzero(~np.isnan(values)))


@dataclass
class Pull:
    """One history request: status (0: no answer), bytes, seconds to the first and the
    last byte, and the step the server chose (its header, else the JSON's ``step_s``)."""

    status: int = 0
    size: int = 0
    seconds: float = 0.0
    first_byte_s: float = 0.0
    step: str = "?"
    error: str = ""


async def pull(client: AsyncHTTPClient, url: str) -> Pull:
    """GET ``url`` streaming: the body is counted, only its head is kept."""
    out = Pull()
    head = bytearray()
    t0 = time.perf_counter()

    def chunk(data: bytes) -> None:
        if not out.size:
            out.first_byte_s = time.perf_counter() - t0
        out.size += len(data)
        if len(head) < STEP_HEAD_BYTES:
            head.extend(data[:STEP_HEAD_BYTES - len(head)])

    try:
        response = await client.fetch(
            HTTPRequest(url, headers=HEADERS, streaming_callback=chunk, request_timeout=600),
            raise_error=False)
    except HTTPClientError as exc:
        out.status, out.error = exc.code, str(exc)
        return out
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {exc}"
        return out
    out.seconds = time.perf_counter() - t0
    out.status = response.code
    step = response.headers.get("X-TrackLab-Step")
    if step is None:
        at = head.find(b'"step_s":')
        if at >= 0:
            step = head[at + 9:at + 40].split(b",")[0].split(b"}")[0].strip().decode()
    out.step = step if step is not None else "?"
    return out


@dataclass
class HistoryResult:
    """What the history phase measured, per format."""

    points: int
    fill_s: float
    lag_clients: dict
    pulls: dict[str, list[Pull]] = field(default_factory=dict)
    lag: dict[str, dict] = field(default_factory=dict)
    rss_peak: dict[str, int] = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)  # % of all CPUs, every process
    rss_before: int = 0
    dropped: int = 0


async def rss_peak(server: JupyterServer, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, server.ps.memory_info().rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    return peak


async def history_phase(args: argparse.Namespace, tmp: Path) -> HistoryResult:
    """A day of history in the store, 100 clients on the socket, and one client pulling
    ``api/history?start=-24h`` (JSON, then CSV) back to back while the loop lag is taken."""
    data = tmp / "history"
    data.mkdir()
    print(f"\nwriting {args.history_hours:g} h × 100 series at 1 Hz through StoreWriter ...",
          flush=True)
    t0 = time.perf_counter()
    points = fill_history(data / "tracklab", args.history_hours, socket.gethostname())
    fill_s = time.perf_counter() - t0
    server = JupyterServer({"looplag_ext": True, "tracklab_jupyter": True}, data)
    clients = WsClients(server, args.clients)
    client = AsyncHTTPClient(force_instance=True, max_body_size=1 << 40)
    try:
        await server.wait_ready("tracklab/api/system/metrics")
        await clients.connect()
        await asyncio.sleep(2)  # connection bursts settle
        result = HistoryResult(points, fill_s, await loop_lag(server, 5))
        result.rss_before = server.ps.memory_info().rss
        for fmt, query in (("json", ""), ("csv", "&format=csv")):
            path = f"tracklab/api/history?start=-{args.history_hours:g}h{query}"
            print(f"pulling {path} for {args.history_seconds:g} s ...", flush=True)
            url = server.url(path)
            await server.get("looplag?reset=1")
            stop = asyncio.Event()
            peak = asyncio.create_task(rss_peak(server, stop))
            psutil.cpu_percent()  # starts the machine-wide count
            pulls: list[Pull] = []
            deadline = time.monotonic() + args.history_seconds
            while not pulls or time.monotonic() < deadline:
                pulls.append(await pull(client, url))
                if pulls[-1].status == 0:
                    break  # no answer at all: the next would fail alike
            result.lag[fmt] = await server.get("looplag?reset=1")
            result.busy[fmt] = psutil.cpu_percent()
            stop.set()
            result.rss_peak[fmt] = await peak
            result.pulls[fmt] = pulls
        result.dropped = clients.dropped
    finally:
        clients.close()
        client.close()
        server.stop()
    return result


def print_history(args: argparse.Namespace, h: HistoryResult) -> list[tuple]:
    """The history phase's figures; returns its rows for the targets table."""
    print(f"\nLargest history reply: {args.history_hours:g} h × 100 series at 1 Hz "
          f"({h.points:,} points, written in {h.fill_s:.0f} s), {args.clients} clients "
          "connected")
    lag = h.lag_clients
    print(f"  loop lag, clients only (5 s)    p50 {lag['p50_ms']:6.3f} ms   p99 "
          f"{lag['p99_ms']:6.3f} ms   max {lag['max_ms']:7.2f} ms")
    print(f"  server RSS before pulls         {h.rss_before / 2**20:8.0f} MB")
    rows = []
    for fmt, pulls in h.pulls.items():
        ok = [p for p in pulls if p.status == 200]
        codes = sorted({p.status for p in pulls})
        lag = h.lag[fmt]
        window = sum(p.seconds for p in pulls) or float("nan")
        print(f"  {fmt.upper()}: {len(pulls)} pull(s), status {codes}, step {pulls[-1].step}")
        for p in pulls:
            if p.error:
                print(f"    error: {p.error}")
        if ok:
            print(f"    reply {statistics.mean(p.size for p in ok) / 1e6:9.1f} MB   "
                  f"per pull {statistics.mean(p.seconds for p in ok):6.2f} s "
                  f"(first byte after {statistics.mean(p.first_byte_s for p in ok):.2f} s)")
        print(f"    loop lag p50 {lag['p50_ms']:6.3f} ms   p99 {lag['p99_ms']:7.2f} ms   "
              f"max {lag['max_ms']:7.1f} ms   behind schedule {lag.get('sum_ms', 0) / 1e3:.2f} s"
              f" of {window:.1f} s")
        print(f"    server RSS peak {h.rss_peak[fmt] / 2**20:8.0f} MB;  machine "
              f"{h.busy[fmt]:.0f} % of {psutil.cpu_count()} CPUs busy (every process)")
        rows.append((f"loop lag p99, pulling history {fmt.upper()}", lag["p99_ms"],
                     HISTORY_LAG_TARGET_MS, "ms"))
    if h.dropped:
        print(f"  {h.dropped} WebSocket client(s) were disconnected by the server")
    return rows


# -- the Prometheus scrape ---------------------------------------------------------------
SCRAPE_TARGET_MS = 5.0
SCRAPE_PATH = "tracklab/metrics"
FAKE_GPUS = 8
CLUSTER_NODES = 16
#: (label, path, Accept header): the baseline (the smallest authenticated reply of the same
#: server: what Jupyter's request handling costs before any exposition), the 0.0.4 text
#: format (no Accept, as curl) and OpenMetrics.
BASELINE = "baseline"
SCRAPE_FORMATS = ((BASELINE, "tracklab/api/health", ""), ("text", SCRAPE_PATH, ""),
                  ("OpenMetrics", SCRAPE_PATH, "application/openmetrics-text; version=1.0.0"))


def fake_gpu_env() -> dict[str, str]:
    """Environment that makes ``import pynvml`` the fake NVML with 8 recorded H200s."""
    return {"PYTHONPATH": str(ROOT / "tests" / "shim"),
            "TRACKLAB_FAKE_NVML_GPUS": str(FAKE_GPUS), "TRACKLAB_FAKE_NVML_MODE": "trace"}


def q_ms(seconds: list[float], q: float) -> float:
    """The ``q``-th percentile in ms, interpolated between samples (never beyond the largest
    one, unlike ``pct``'s extrapolation, which shows with a few dozen slow scrapes)."""
    if len(seconds) < 2:
        return seconds[0] * 1e3 if seconds else float("nan")
    return statistics.quantiles(seconds, n=100, method="inclusive")[int(q) - 1] * 1e3


def series_count(body: bytes) -> int:
    """Samples in an exposition: the lines that are not comments (``# HELP``, ``# EOF``)."""
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


@dataclass
class Scrapes:
    """Sequential scrapes in one format, and what the server spent on them."""

    fmt: str
    latencies: list[float] = field(default_factory=list)  # seconds, successful scrapes
    size: int = 0  # bytes of the last successful reply
    series: int = 0
    content_type: str = ""
    cpu_s: float = 0.0  # server process CPU (user + system) over the scrapes
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    lag: dict = field(default_factory=dict)


def scrape_loop(server: JupyterServer, fmt: str, path: str, accept: str,
                seconds: float) -> Scrapes:
    """GET the scrape path back to back for ``seconds`` over one keep-alive connection (as
    Prometheus does), timing each reply in full; the server's CPU is read around it. Runs
    on a thread: blocking, so the bench's own event loop adds nothing to the timings."""
    out = Scrapes(fmt)
    headers = {**HEADERS, **({"Accept": accept} if accept else {})}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        cpu0 = sum(server.ps.cpu_times()[:2])
        t_start = time.monotonic()
        deadline = t_start + seconds
        while not (out.latencies or out.errors) or time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                conn.request("GET", "/" + path, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                out.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()  # reconnects on the next request
                if len(out.errors) >= 10:
                    break
                continue
            elapsed = time.perf_counter() - t0
            if response.status != 200:
                out.errors.append(f"HTTP {response.status}: {body[:200]!r}")
                if len(out.errors) >= 10:
                    break
                continue
            out.latencies.append(elapsed)
            out.size = len(body)
            out.content_type = response.getheader("Content-Type", "")
            last = body
        out.seconds = time.monotonic() - t_start
        out.cpu_s = sum(server.ps.cpu_times()[:2]) - cpu0
    finally:
        conn.close()
    if out.latencies:
        out.series = series_count(last)
    return out


@dataclass
class ScrapeResult:
    """One server's scrape measurements: idle baseline, then each format."""

    label: str
    nodes: int = 0
    gpus: int = 0
    idle_cpu_s: float = 0.0  # server CPU over the idle window
    idle_seconds: float = 0.0
    idle_lag: dict = field(default_factory=dict)
    formats: list[Scrapes] = field(default_factory=list)
    log_problems: tuple[int, list[str]] = (0, [])

    def cpu_per_scrape_ms(self, s: Scrapes) -> float:
        """Server CPU per scrape above its idle CPU over the same time, in ms."""
        if not s.latencies or not self.idle_seconds:
            return float("nan")
        idle_rate = self.idle_cpu_s / self.idle_seconds
        return (s.cpu_s - idle_rate * s.seconds) / len(s.latencies) * 1e3


async def wait_for_scrape(server: JupyterServer, nodes: int, gpus: int,
                          timeout: float = 90.0) -> None:
    """Wait until ``cluster/info`` has ``nodes`` online nodes and a scrape shows ``gpus``
    GPUs in all (their ``tracklab_gpu_info`` series): the view a scrape reads is full."""
    deadline = time.monotonic() + timeout
    seen: tuple[int, int, int] = (0, 0, 0)
    while True:
        try:
            info = await server.get("tracklab/api/cluster/info")
            online = sum(1 for n in info["nodes"] if n["state"] == "online")
            response = await AsyncHTTPClient().fetch(
                HTTPRequest(server.url(SCRAPE_PATH), headers=HEADERS))
            gpu_series = sum(1 for line in response.body.splitlines()
                             if line.startswith(b"tracklab_gpu_info{"))
            seen = (len(info["nodes"]), online, gpu_series)
            if seen == (nodes, nodes, gpus):
                return
        except (HTTPClientError, OSError, KeyError, ValueError):
            pass
        if time.monotonic() > deadline or server.proc.poll() is not None:
            _, problems = server.log_problems()
            raise RuntimeError(
                f"server on port {server.port}: wanted {nodes} online nodes and {gpus} GPUs "
                f"in a scrape, saw (nodes, online, GPUs) = {seen}; log problems: {problems}")
        await asyncio.sleep(0.5)


async def measure_scrapes(server: JupyterServer, result: ScrapeResult,
                          seconds: float) -> None:
    """Idle first (CPU and loop lag over ``seconds``), then each format for as long."""
    await asyncio.sleep(2)  # the first ticks after the nodes came up settle
    await server.get("looplag?reset=1")
    cpu0 = sum(server.ps.cpu_times()[:2])
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    result.idle_cpu_s = sum(server.ps.cpu_times()[:2]) - cpu0
    result.idle_seconds = time.monotonic() - t0
    result.idle_lag = await server.get("looplag?reset=1")
    for fmt, path, accept in SCRAPE_FORMATS:
        await server.get("looplag?reset=1")
        scrapes = await asyncio.to_thread(scrape_loop, server, fmt, path, accept, seconds)
        scrapes.lag = await server.get("looplag?reset=1")
        result.formats.append(scrapes)


async def scrape_phase(args: argparse.Namespace, tmp: Path) -> list[ScrapeResult]:
    """The scrape measured on two servers, one after the other (not to share the CPUs):
    this host with 8 fake GPUs, then the same plus a 16-node bench cluster."""
    setups = (
        (f"{FAKE_GPUS} fake GPUs, this host", "scrape-gpus", {}, 1),
        (f"{CLUSTER_NODES}-node cluster + this host, {FAKE_GPUS} fake GPUs each",
         "scrape-cluster", {"fakecluster_ext": True}, CLUSTER_NODES + 1),
    )
    results = []
    for label, folder, more, nodes in setups:
        data = tmp / folder
        data.mkdir()
        print(f"\nscrape: {label} ({args.scrape_seconds:g} s idle, then "
              f"{args.scrape_seconds:g} s per format); {psutil.cpu_count()} CPUs, load "
              f"average {' '.join(f'{v:.2f}' for v in os.getloadavg())} ...", flush=True)
        server = JupyterServer({"looplag_ext": True, "tracklab_jupyter": True, **more}, data,
                               env={**fake_gpu_env(),
                                    "FAKECLUSTER_NODES": str(CLUSTER_NODES)})
        try:
            await server.wait_ready("tracklab/api/system/metrics")
            await wait_for_scrape(server, nodes, FAKE_GPUS * nodes)
            since = server.log_size()  # the 503s of start-up are not the scrapes' doing
            result = ScrapeResult(label, nodes, FAKE_GPUS * nodes)
            await measure_scrapes(server, result, args.scrape_seconds)
            result.log_problems = server.log_problems(since)
        finally:
            server.stop()
        results.append(result)
    return results


def print_scrapes(results: list[ScrapeResult]) -> list[tuple]:
    """The scrape phase's figures; returns its rows for the targets table."""
    print(f"\nPrometheus scrape ({SCRAPE_PATH}): sequential GETs on one keep-alive "
          "connection; CPU is the server process's, above its idle CPU")
    rows = []
    short = {1: f"{FAKE_GPUS} GPUs"}
    for r in results:
        idle_pct = r.idle_cpu_s / r.idle_seconds * 100 if r.idle_seconds else float("nan")
        print(f"  {r.label}: {r.nodes} node(s), {r.gpus} GPUs")
        print(f"    idle          server CPU {idle_pct:5.1f} % of a core   loop lag p50 "
              f"{r.idle_lag['p50_ms']:6.3f} ms   p99 {r.idle_lag['p99_ms']:6.3f} ms   max "
              f"{r.idle_lag['max_ms']:6.2f} ms")
        base = next((s for s in r.formats if s.fmt == BASELINE and s.latencies), None)
        for s in r.formats:
            if not s.latencies:
                print(f"    {s.fmt:<12}  no successful scrape: {s.errors[:3]}")
                continue
            print(f"    {s.fmt:<12}  {s.size / 1e3:8.1f} kB  {s.series:6,} series  "
                  f"{len(s.latencies):6,} scrapes   p50 {q_ms(s.latencies, 50):6.2f} ms  "
                  f"p99 {q_ms(s.latencies, 99):6.2f} ms  max "
                  f"{max(s.latencies) * 1e3:6.1f} ms")
            print(f"    {'':<12}  CPU {r.cpu_per_scrape_ms(s):6.2f} ms per scrape   loop lag "
                  f"p50 {s.lag['p50_ms']:6.3f} ms   p99 {s.lag['p99_ms']:6.3f} ms   max "
                  f"{s.lag['max_ms']:6.2f} ms   ({s.content_type})")
            full = s.lag.get("gc", {}).get("2")
            if full:
                print(f"    {'':<12}  full GC: {full['n']} pause(s), max {full['max_ms']:.1f} ms,"
                      f" {full['sum_ms']:.0f} ms in all")
            if base is not None and s is not base:
                print(f"    {'':<12}  p50 {q_ms(s.latencies, 50) / q_ms(base.latencies, 50):.1f}x "
                      f"the baseline's; the exposition adds "
                      f"{q_ms(s.latencies, 50) - q_ms(base.latencies, 50):.2f} ms at p50")
            if s.errors:
                print(f"    {'':<12}  {len(s.errors)} failed scrape(s): {s.errors[:3]}")
        count, problems = r.log_problems
        if count:
            print(f"    server log: {count} error line(s), first: {problems}")
        worst = max((q_ms(s.latencies, 99) for s in r.formats
                     if s.latencies and s.fmt != BASELINE), default=float("nan"))
        name = short.get(r.nodes, f"{r.nodes - 1} nodes")
        rows.append((f"scrape p99, {name} (worse format)", worst, SCRAPE_TARGET_MS, "ms"))
    return rows


@dataclass
class OverheadResult:
    """What the first phase measured: loop lag, CPU and latency with WebSocket clients,
    requests per second."""

    lag_base: dict
    lag_idle: dict
    lag_clients: dict
    share: float
    latencies: list[float]
    rps_ours: float
    rps_jru: float | None


async def overhead_phase(args: argparse.Namespace, tmp: Path) -> OverheadResult:
    """A server without tracklab beside one with it: loop lag idle and with clients,
    the CPU the clients cost, sample-to-client latency, requests per second."""
    have_jru = importlib.util.find_spec("jupyter_resource_usage") is not None
    base = JupyterServer({"looplag_ext": True, "tracklab_jupyter": False}, tmp)
    ours = JupyterServer({"looplag_ext": True, "tracklab_jupyter": True,
                          "jupyter_resource_usage": have_jru}, tmp)
    try:
        await base.wait_ready()
        await ours.wait_ready("tracklab/api/system/metrics")
        print(f"servers up: baseline pid {base.proc.pid}, with tracklab pid "
              f"{ours.proc.pid}; {psutil.cpu_count()} CPUs, load average "
              f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        lag_base, lag_idle = await asyncio.gather(loop_lag(base, args.seconds),
                                                  loop_lag(ours, args.seconds))
        lag_clients, share, latencies = await run_clients(ours, args.clients, args.seconds)
        rps_ours = await requests_per_second(ours, "tracklab/api/system/metrics", 5)
        rps_jru = (await requests_per_second(ours, "api/metrics/v1", 5)) if have_jru else None
    finally:
        base.stop()
        ours.stop()
    return OverheadResult(lag_base, lag_idle, lag_clients, share, latencies, rps_ours,
                          rps_jru)


def print_overhead(args: argparse.Namespace, o: OverheadResult) -> list[tuple]:
    """The first phase's figures; returns its rows for the targets table."""
    print(f"\nEvent-loop lag over {args.seconds:g} s (10 ms probe):")
    for label, lag in (("server without tracklab", o.lag_base),
                       ("with tracklab, 0 clients", o.lag_idle),
                       (f"with tracklab, {args.clients} clients", o.lag_clients)):
        print(f"  {label:<32} p50 {lag['p50_ms']:6.3f} ms   p99 {lag['p99_ms']:6.3f} ms   "
              f"max {lag['max_ms']:6.2f} ms")
    added_idle = o.lag_idle["p99_ms"] - o.lag_base["p99_ms"]
    added_clients = o.lag_clients["p99_ms"] - o.lag_base["p99_ms"]
    p99_latency = pct(o.latencies, 99) * 1e3
    print(f"\nServer CPU with {args.clients} clients: {o.share:.2f} % of one core")
    print(f"Sample-to-client latency over {len(o.latencies)} frames: p50 "
          f"{pct(o.latencies, 50) * 1e3:.2f} ms, p99 {p99_latency:.2f} ms")
    print("\nRequests per second (8 concurrent, same server):")
    print(f"  tracklab/api/system/metrics          {o.rps_ours:8.0f} /s")
    if o.rps_jru is not None:
        print(f"  jupyter-resource-usage /api/metrics/v1 {o.rps_jru:6.0f} /s   "
              f"(ratio {o.rps_ours / o.rps_jru:.1f}x)")
    else:
        print("  jupyter-resource-usage not installed: pip install jupyter-resource-usage")
    return [("added p99 loop lag, 0 clients", added_idle, 2.0, "ms"),
            (f"added p99 loop lag, {args.clients} clients", added_clients, 2.0, "ms"),
            (f"server CPU, {args.clients} clients", o.share, 5.0, "% of a core"),
            ("sample-to-client p99", p99_latency, 50.0, "ms")]


async def main(args: argparse.Namespace) -> None:
    overhead = history = scrapes = None
    with tempfile.TemporaryDirectory() as tmp:
        if not args.scrape_only:
            overhead = await overhead_phase(args, Path(tmp))
            if not args.skip_history:
                history = await history_phase(args, Path(tmp))
        if not args.skip_scrape:
            scrapes = await scrape_phase(args, Path(tmp))

    rows: list[tuple] = []
    if overhead is not None:
        rows += print_overhead(args, overhead)
    if history is not None:
        rows += print_history(args, history)
    if scrapes is not None:
        rows += print_scrapes(scrapes)
    print("\nResults against targets:")
    for name, value, target, unit in rows:
        print(f"  {name:<36} {value:8.2f} {unit:<12} target <= {target:g}   "
              f"{'met' if value <= target else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--skip-history", action="store_true",
                        help="skip the largest-history-reply phase")
    parser.add_argument("--history-hours", type=float, default=24.0,
                        help="hours of 1 Hz history in its store (default: %(default)s)")
    parser.add_argument("--history-seconds", type=float, default=20.0,
                        help="seconds of back-to-back pulls per format, at least one pull "
                             "(default: %(default)s)")
    scrape = parser.add_mutually_exclusive_group()
    scrape.add_argument("--skip-scrape", action="store_true",
                        help="skip the Prometheus scrape phase")
    scrape.add_argument("--scrape-only", action="store_true",
                        help="run the Prometheus scrape phase alone")
    parser.add_argument("--scrape-seconds", type=float, default=10.0,
                        help="seconds idle, then of scrapes per format, per server (default: "
                             "%(default)s)")
    asyncio.run(main(parser.parse_args()))
