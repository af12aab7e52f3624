"""Benchmark: what tracking kernels costs: reading their process trees (against the naive
ways), and a real Jupyter server tracking 20 real kernels.

Phase A (``--no-server`` runs only it): starts N real kernel-like process trees (a Python
process with 6 sleeping threads, as an ipykernel has, and 2 forked children, as DataLoader
workers are) for N = 1, 20 and 100, and prints for this machine:
  - CPU time (this thread) and wall time of one ``ProcessTrees.read()`` of all N trees, and
    per tree, median of many reads, in each of its modes: members only (no fork since the
    last listing, or within ``relist_interval``), re-listed through the children files on
    every read, the fallback scan of every /proc/*/stat on every read, and with the
    smaps_rollup detail read (PSS/USS) of every tree;
  - the same for two naive baselines measured in the same run: psutil.process_iter over every
    process with the trees grouped by ppid (one pass per read), and runs/process_tree.py's
    ProcessTree per kernel (psutil ``children(recursive=True)``, which scans every process
    once per tree);
  - the CPU share of one core of reading 20 kernels every 5 s (the default kernel_interval)
    and every 1 s, over a real window of --seconds, from this process's CPU time (precise
    clock; /proc/self/stat's 10 ms ticks beside it), the naive baseline at 1 s likewise, and
    the ratios.

Phase B (default after phase A; ``--server`` runs it alone, ``--no-server`` skips it): what
a user pays with 20 real kernels. Two real ``jupyter server`` processes side by side
(bench/server.py's JupyterServer: own port, root and data dir, token auth, the extension
enabled in both, the sampler at 1 Hz), one with ``c.TrackLab.kernel_interval = 5`` (the
default: the tracker reads the kernels' trees every 5 s) and one with 3600 (the most it takes:
the tracker idles, the baseline). Each starts 20 real python3 kernels (ipykernel processes)
as notebook sessions through its REST API (POST api/sessions) and waits until each is idle;
after a warm-up, ``tracklab/api/kernels`` of the tracked server must list the 20 kernels with
their RSS (a one-line check: the bench measures real work). Both server processes are then
watched over one window from /proc (bench/recorder.py's ``measure``: the whole process, and
per thread by name, so the tracker's thread "tracklab-kernels" and the event loop, where
server_glue.py lists the kernels, are seen apart), and this prints each server's CPU share
of one core, the difference (what tracking 20 kernels adds), per 10 kernels, the tracker
thread's own share, and the main thread's difference. The servers are shut down at the end
(which stops their kernels), and any kernel left is killed, on errors and Ctrl+C too.

Target (issue 15): <= 0.05 % of one core per 10 kernels at the default 5 s kernel interval.
The exit status is 0 whatever the verdict: this is a report, not a test.

    python bench/kernels.py [--seconds 20] [--reads 50] [--server | --no-server]
                            [--warmup 20] [--kernels 20]

``--seconds`` is each window of phase A (default 20) and phase B's window (default 60).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (ROOT, BENCH):  # the checkout's package, and the other benches
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from recorder import Figures, measure, print_figures  # noqa: E402  (bench/recorder.py)
from server import HEADERS, JupyterServer  # noqa: E402  (bench/server.py)
from tornado.httpclient import AsyncHTTPClient, HTTPRequest  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

from tracklab_jupyter.kernels import procs  # noqa: E402
from tracklab_jupyter.kernels.procs import ProcessTrees  # noqa: E402
from tracklab_jupyter.runs.process_tree import ProcessTree  # noqa: E402

TARGET_PCT_PER_10 = 0.05
DEFAULT_INTERVAL_S = 5.0
SIZES = (1, 20, 100)
SHARE_KERNELS = 20
PHASE_A_SECONDS = 20.0  # each real-time window of phase A
PHASE_B_SECONDS = 60.0  # phase B's window: the server's own noise needs a longer one
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 2**20

# A kernel-like tree: forks its 2 workers first (as a DataLoader does from the main thread),
# then starts the threads an ipykernel has (shell, control, iopub, heartbeat, history...).
KERNEL = """
import os, threading, time
for _ in range(2):
    if os.fork() == 0:
        time.sleep(1e6)
        os._exit(0)
for _ in range(6):
    threading.Thread(target=time.sleep, args=(1e6,), daemon=True).start()
os.write(1, b"ready\\n")
time.sleep(1e6)
"""


@contextlib.contextmanager
def kernel_trees(n: int) -> Iterator[dict[str, int]]:
    """``n`` kernel-like trees, each in its own session, killed as groups at the end."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(n):
            started.append(subprocess.Popen([sys.executable, "-S", "-c", KERNEL],
                                            stdout=subprocess.PIPE, start_new_session=True))
        for proc in started:
            assert proc.stdout is not None
            if proc.stdout.readline() != b"ready\n":
                raise RuntimeError("a kernel-like tree did not start")
        yield {f"kernel-{i}": proc.pid for i, proc in enumerate(started)}
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the session we started
        for proc in started:
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


# -- ways to read the trees ------------------------------------------------------------------

class _NoGate(ProcessTrees):
    """ProcessTrees that never skips a listing because no pid was handed out."""

    def _last_pid(self) -> int | None:
        return None


def ours(mode: str) -> Callable[[dict[str, int]], object]:
    if mode == "members":
        reader = ProcessTrees(relist_interval=3600.0, detail_interval=3600.0)
    elif mode == "relist":
        reader = _NoGate(relist_interval=0.0, detail_interval=3600.0)
    elif mode == "scan":
        reader = _NoGate(relist_interval=0.0, detail_interval=3600.0, children_files=False)

        def rescan(roots: dict[str, int]) -> object:
            reader._scan = None  # the parent map is otherwise kept FALLBACK_RELIST_S
            return reader.read(roots)

        return rescan
    elif mode == "detail":
        reader = _NoGate(relist_interval=0.0, detail_interval=0.0)
    else:
        raise ValueError(mode)
    return reader.read


def naive_iter() -> Callable[[dict[str, int]], object]:
    """process_iter over every process per read; trees grouped by ppid."""

    def read(roots: dict[str, int]) -> object:
        children: dict[int, list[int]] = {}
        info: dict[int, dict] = {}
        for proc in psutil.process_iter(["ppid", "name", "cpu_percent", "memory_info",
                                         "num_threads"]):
            info[proc.pid] = proc.info
            children.setdefault(proc.info["ppid"], []).append(proc.pid)
        out = {}
        for key, root in roots.items():
            todo, members = [root], []
            while todo:
                pid = todo.pop()
                members.append(pid)
                todo.extend(children.get(pid, ()))
            out[key] = (sum(info[p]["memory_info"].rss for p in members if p in info
                            and info[p]["memory_info"]),
                        sum(info[p]["cpu_percent"] or 0.0 for p in members if p in info))
        return out

    return read


def naive_per_tree() -> Callable[[dict[str, int]], object]:
    """runs/process_tree.py's ProcessTree per kernel, re-listed on each read."""
    trees: dict[str, ProcessTree] = {}

    def read(roots: dict[str, int]) -> object:
        out = {}
        for key, root in roots.items():
            tree = trees.get(key)
            if tree is None:
                tree = trees[key] = ProcessTree(root)
            tree._relist_at = 0.0  # as at a 5 s interval: RELIST_S (2 s) has passed
            out[key] = tree.sample()
        return out

    return read


# -- measurements ----------------------------------------------------------------------------

def per_read(read: Callable[[dict[str, int]], object], roots: dict[str, int], n: int
             ) -> tuple[float, float]:
    """Median (CPU s of this thread, wall s) of ``n`` reads after one warm-up read."""
    read(roots)
    cpu, wall = [], []
    for _ in range(n):
        t0, w0 = time.thread_time(), time.perf_counter()
        read(roots)
        cpu.append(time.thread_time() - t0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms"


def _ticks() -> int:
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def share(read: Callable[[dict[str, int]], object], roots: dict[str, int], interval: float,
          seconds: float) -> tuple[float, float, int]:
    """(CPU share of one core in %, the same from /proc/self/stat ticks, reads) of calling
    ``read`` every ``interval`` s over ``seconds`` (this process sleeps in between)."""
    read(roots)  # warm: the first read of a tree lists it and reads its details
    t0, w0, k0 = time.process_time(), time.monotonic(), _ticks()
    next_at, reads = w0, 0
    while True:
        read(roots)
        reads += 1
        next_at += interval
        if next_at - w0 >= seconds:
            break
        time.sleep(max(0.0, next_at - time.monotonic()))
    time.sleep(max(0.0, w0 + seconds - time.monotonic()))
    elapsed = time.monotonic() - w0
    cpu = time.process_time() - t0
    return cpu / elapsed * 100.0, (_ticks() - k0) / CLK_TCK / elapsed * 100.0, reads


# -- the report ------------------------------------------------------------------------------

MODES = [("members", "ours: members only (no fork since the last listing)"),
         ("relist", "ours: re-listed through children files"),
         ("scan", "ours: fallback scan of every /proc/*/stat"),
         ("detail", "ours: re-listed + smaps_rollup of every tree")]


def cost_table(reads: int) -> dict[tuple[str, int], float]:
    costs: dict[tuple[str, int], float] = {}
    for n in SIZES:
        with kernel_trees(n) as roots:
            print(f"\n{n} kernel tree{'s' if n > 1 else ''} ({3 * n} processes, "
                  f"{len(psutil.pids())} on the machine); one read of all of them, median:")
            print(f"  {'':<52} {'CPU':>12} {'wall':>12} {'CPU per tree':>14}")
            rows = [(mode, label, ours(mode), reads) for mode, label in MODES]
            rows += [("iter", "naive: process_iter over every process",
                      naive_iter(), max(5, reads // 10)),
                     ("per_tree", "naive: ProcessTree (psutil children) per kernel",
                      naive_per_tree(), max(3, reads // (10 * n) + 2))]
            for mode, label, read, count in rows:
                cpu, wall = per_read(read, roots, count)
                costs[(mode, n)] = cpu
                print(f"  {label:<52} {ms(cpu)} {ms(wall)} {cpu / n * 1e6:11.1f} µs")
    return costs


def phase_trees(args: argparse.Namespace) -> None:
    """Phase A: the process-tree reader alone, against the naive ways."""
    print("\nPhase A: the process-tree reader alone (kernel-like trees)")
    seconds = args.seconds if args.seconds is not None else PHASE_A_SECONDS
    costs = cost_table(args.reads)

    print(f"\nCPU share of one core reading {SHARE_KERNELS} kernels, over {seconds:g} s "
          f"each (whole process; ticks-based figure in brackets):")
    with kernel_trees(SHARE_KERNELS) as roots:
        windows = [("ours, every 5 s (default reader)", ProcessTrees().read, 5.0),
                   ("ours, every 1 s (default reader)", ProcessTrees().read, 1.0),
                   ("naive process_iter, every 1 s", naive_iter(), 1.0)]
        shares = {}
        for label, read, interval in windows:
            pct, ticks_pct, reads = share(read, roots, interval, seconds)
            shares[label] = pct
            print(f"  {label:<40} {pct:8.4f} %  [{ticks_pct:6.3f} %]  ({reads} reads)")

    per10_5 = shares["ours, every 5 s (default reader)"] * 10 / SHARE_KERNELS
    per10_1 = shares["ours, every 1 s (default reader)"] * 10 / SHARE_KERNELS
    naive10_1 = shares["naive process_iter, every 1 s"] * 10 / SHARE_KERNELS
    # Worst case from the per-read medians (warm caches): pids always changing, so a listing
    # on every read once RELIST_INTERVAL_S has passed, and one smaps_rollup pass per tree
    # every DETAIL_INTERVAL_S.
    members, relist = costs[("members", 20)], costs[("relist", 20)]
    detail = costs[("detail", 20)]

    def worst(interval: float) -> float:
        per_s = (members / interval
                 + (relist - members) / max(interval, procs.RELIST_INTERVAL_S)
                 + max(0.0, detail - relist) / procs.DETAIL_INTERVAL_S)
        return per_s * 100

    worst_5, worst_1 = worst(5.0), worst(1.0)
    print("\nPer 10 kernels (% of one core):")
    print(f"  measured, every 5 s                     {per10_5:8.4f} %")
    print(f"  measured, every 1 s                     {per10_1:8.4f} %")
    print(f"  worst case from medians, every 5 s      {worst_5 * 10 / SHARE_KERNELS:8.4f} %  "
          f"(listed every {procs.RELIST_INTERVAL_S:g} s + smaps_rollup every "
          f"{procs.DETAIL_INTERVAL_S:g} s)")
    print(f"  worst case from medians, every 1 s      {worst_1 * 10 / SHARE_KERNELS:8.4f} %")
    print(f"  naive process_iter, every 1 s           {naive10_1:8.4f} %")
    print(f"  naive / ours at 1 s: {naive10_1 / per10_1 if per10_1 else float('inf'):6.1f}x;  "
          f"per read of 20 trees, naive process_iter / ours re-listed: "
          f"{costs[('iter', 20)] / relist:6.1f}x, ProcessTree per kernel / ours re-listed: "
          f"{costs[('per_tree', 20)] / relist:6.1f}x")
    met_5 = max(per10_5, worst_5 * 10 / SHARE_KERNELS) <= TARGET_PCT_PER_10
    met_1 = max(per10_1, worst_1 * 10 / SHARE_KERNELS) <= TARGET_PCT_PER_10
    print(f"\ntarget <= {TARGET_PCT_PER_10} % of a core per 10 kernels (every 5 s): "
          f"{'met' if met_5 else 'not met'} (measured {per10_5:.4f} %, worst case "
          f"{worst_5 * 10 / SHARE_KERNELS:.4f} %); at 1 s: {'met' if met_1 else 'not met'}")



# -- phase B: real servers with real kernels -------------------------------------------------

SERVER_KERNELS = 20
TRACKED_INTERVAL_S = 5.0  # c.TrackLab.kernel_interval's default
IDLE_INTERVAL_S = 3600.0  # the most check_kernel_interval accepts: the tracker idles
KERNEL_START_S = 240.0  # each kernel's start (queued behind the others) until it is idle
KERNEL_STARTS_AT_ONCE = 4  # per server: 40 interpreters starting at once thrash 2 cores
# The tracker's thread (kernels/tracker.py; "tl-kernels" in /proc, named back by
# recorder.py's read_thread). The glue (kernels/server_glue.py) runs on the event loop,
# the server's main thread (tid == pid).
TRACKER_THREAD = "tracklab-kernels"
TRACKED, BASELINE = "tracked", "baseline"


def server_config(data_dir: Path, kernel_interval: float) -> None:
    """Give the server about to start in ``data_dir`` this kernel interval.

    bench/server.py's JupyterServer writes its own --config file (the extension enabled,
    sampler at 1 Hz, its data dir), which replaces the server's jupyter_server_config, and
    points JUPYTER_CONFIG_DIR at data_dir/jupyter-config. The extension app reads its own
    file there too (jupyter_tracklab_config.json), whose TrackLab section traitlets merges
    with that of the --config file."""
    config_dir = data_dir / "jupyter-config"
    config_dir.mkdir(parents=True)
    (config_dir / "jupyter_tracklab_config.json").write_text(
        json.dumps({"TrackLab": {"kernel_interval": kernel_interval}}))


def descendants(server: JupyterServer) -> list[psutil.Process]:
    """The server's children and theirs (its kernels run in sessions of their own, so only
    their pids find them once the server is gone)."""
    with contextlib.suppress(psutil.Error):
        return server.ps.children(recursive=True)
    return []


def stop_server(server: JupyterServer, known: list[psutil.Process]) -> None:
    """SIGTERM (the server shuts its kernels down), then SIGKILL whatever of ``known`` and
    of its children now is still running. psutil checks a pid's start time before it
    signals, so a pid reused meanwhile is left alone."""
    left = {p.pid: p for p in [*known, *descendants(server)]}
    server.stop()
    for proc in left.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _, alive = psutil.wait_procs(list(left.values()), timeout=10)
    if alive:
        print(f"warning: processes left running: {sorted(p.pid for p in alive)}")


@contextlib.contextmanager
def kernel_servers(tmp: Path) -> Iterator[tuple[dict[str, JupyterServer],
                                                 dict[str, list[psutil.Process]]]]:
    """The tracked and the baseline server by label, and the processes each started (to
    fill in), all stopped however the block ends."""
    with contextlib.ExitStack() as stack:
        servers: dict[str, JupyterServer] = {}
        known: dict[str, list[psutil.Process]] = {}
        for label, interval in ((TRACKED, TRACKED_INTERVAL_S), (BASELINE, IDLE_INTERVAL_S)):
            data_dir = tmp / label
            server_config(data_dir, interval)
            server = JupyterServer({"tracklab_jupyter": True}, data_dir)
            known[label] = []
            stack.callback(stop_server, server, known[label])
            servers[label] = server
        yield servers, known


async def post(server: JupyterServer, path: str, body: dict) -> dict:
    request = HTTPRequest(server.url(path), method="POST", headers=HEADERS,
                          body=json.dumps(body), connect_timeout=KERNEL_START_S,
                          request_timeout=KERNEL_START_S)
    reply = await AsyncHTTPClient().fetch(request)
    return json.loads(reply.body)


async def start_kernels(server: JupyterServer, n: int, label: str) -> list[str]:
    """``n`` python3 kernels as notebook sessions, a few at a time; their ids once each is
    idle. A kernel says so only to a client: each is opened once over its channels
    WebSocket, as JupyterLab does (the server then asks the kernel for its info until it
    answers), and closed again once the server reports it idle."""
    gate = asyncio.Semaphore(KERNEL_STARTS_AT_ONCE)
    deadline = time.monotonic() + KERNEL_START_S

    async def one(i: int) -> str:
        path = f"{label}/notebook-{i:02d}.ipynb"
        async with gate:
            session = await post(server, "api/sessions", {
                "path": path, "name": Path(path).name, "type": "notebook",
                "kernel": {"name": "python3"}})
            kernel_id = session["kernel"]["id"]
            url = server.url(f"api/kernels/{kernel_id}/channels").replace("http", "ws", 1)
            channels = await websocket_connect(HTTPRequest(url, headers=HEADERS,
                                                           connect_timeout=KERNEL_START_S))
            try:
                while True:
                    state = (await server.get(f"api/kernels/{kernel_id}"))["execution_state"]
                    if state == "idle":
                        return kernel_id
                    if time.monotonic() > deadline or server.proc.poll() is not None:
                        raise RuntimeError(f"kernel {kernel_id} of the {label} server is "
                                           f"{state!r} after {KERNEL_START_S:g} s")
                    await asyncio.sleep(0.25)
            finally:
                channels.close()

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def start_all(servers: dict[str, JupyterServer], n: int,
                    known: dict[str, list[psutil.Process]]) -> None:
    await asyncio.gather(*(s.wait_ready("tracklab/api/system/metrics")
                           for s in servers.values()))
    for label, server in servers.items():
        print(f"  {label} server up: pid {server.proc.pid}, port {server.port}")
    t0 = time.monotonic()
    try:
        await asyncio.gather(*(start_kernels(s, n, label) for label, s in servers.items()))
    finally:  # the kernels started so far, remembered for the clean-up
        for label, server in servers.items():
            known[label].extend(descendants(server))
    print(f"  {2 * n} kernels started and idle in {time.monotonic() - t0:.1f} s", flush=True)


async def check_kernels(servers: dict[str, JupyterServer], n: int) -> bool:
    """One line: the tracked server's api/kernels lists the ``n`` kernels with RSS figures;
    both servers still run ``n`` kernels."""
    body = await servers[TRACKED].get("tracklab/api/kernels")
    entries = body["kernels"]
    with_rss = [k for k in entries if k["sampled"] and k["rss_bytes"]]
    notebooks = sum(1 for k in entries if k["notebook"])
    running = {label: len(await s.get("api/kernels")) for label, s in servers.items()}
    baseline = await servers[BASELINE].get("tracklab/api/kernels")
    rss = sorted(k["rss_bytes"] for k in with_rss)
    ok = len(with_rss) == n and notebooks == n and all(v == n for v in running.values())
    line = (f"check {'ok' if ok else 'FAILED'}: tracklab/api/kernels of the tracked server lists "
            f"{len(entries)} kernels, {len(with_rss)} with RSS"
            + (f" ({sum(rss) / MIB:.0f} MiB in all, median {statistics.median(rss) / MIB:.1f}"
               f" MiB)" if rss else "")
            + f", {notebooks} with their notebook, every {body['interval_s']:g} s; jupyter "
            f"runs {running[TRACKED]} + {running[BASELINE]} kernels; the baseline's tracker: "
            f"every {baseline['interval_s']:g} s, {len(baseline['kernels'])} kernels listed")
    print(line, flush=True)
    return ok


def thread_groups(f: Figures) -> dict[str, float]:
    """CPU % of one core per part of the server: the tracker's thread, the main thread
    (the event loop), tracklab's other threads, everything else."""
    groups = {"tracker thread (tracklab-kernels)": 0.0, "main thread (event loop)": 0.0,
              "tracklab's other threads": 0.0, "other threads": 0.0}
    for t in f.threads:
        if t.name == TRACKER_THREAD:
            key = "tracker thread (tracklab-kernels)"
        elif t.tid == f.pid:
            key = "main thread (event loop)"
        elif t.name.startswith("tracklab-"):
            key = "tracklab's other threads"
        else:
            key = "other threads"
        groups[key] += t.share_pct
    return groups


def phase_server(args: argparse.Namespace) -> None:
    """Phase B: what tracking ``--kernels`` real kernels adds to a real server."""
    n = args.kernels
    seconds = args.seconds if args.seconds is not None else PHASE_B_SECONDS
    print(f"\nPhase B: two jupyter servers with tracklab (sampler at 1 Hz), {n} python3 "
          f"kernels each as notebook sessions;\n  {TRACKED}: kernel_interval "
          f"{TRACKED_INTERVAL_S:g} s (the default), {BASELINE}: kernel_interval "
          f"{IDLE_INTERVAL_S:g} s (the tracker idle)", flush=True)
    with tempfile.TemporaryDirectory(prefix="tracklab-bench-kernels-") as name, \
            kernel_servers(Path(name)) as (servers, known):
        asyncio.run(start_all(servers, n, known))
        print(f"warming up {args.warmup:g} s ...", flush=True)
        time.sleep(args.warmup)
        ok = asyncio.run(check_kernels(servers, n))
        print(f"measuring {seconds:g} s ...", flush=True)
        figures = measure({label: s.proc.pid for label, s in servers.items()}, seconds)
        for label, server in servers.items():
            if server.proc.poll() is not None:
                raise RuntimeError(f"the {label} server exited during the window")
        if not ok:  # say so again beside the figures: they do not measure the real work
            print("warning: the check above failed; the figures below may not measure "
                  "the tracking of every kernel")
    report_server(figures[TRACKED], figures[BASELINE], n)


def report_server(ours: Figures, base: Figures, n: int) -> None:
    for f in (ours, base):
        print_figures(f)
    per10 = 10 / n
    diff = ours.share_pct - base.share_pct
    ticks = ours.share_ticks_pct - base.share_ticks_pct
    groups, base_groups = thread_groups(ours), thread_groups(base)
    print(f"\nWhat tracking {n} kernels every {TRACKED_INTERVAL_S:g} s adds to a server "
          f"(% of one core; {TRACKED} - {BASELINE}, one {ours.seconds:.0f} s window):")
    print(f"  {'':<36}{TRACKED:>10}{BASELINE:>10}{'added':>10}{'per 10 kernels':>16}")
    rows = [("whole process (threads' schedstat)", ours.share_pct, base.share_pct),
            ("whole process (/proc/PID/stat ticks)", ours.share_ticks_pct,
             base.share_ticks_pct)]
    rows += [(f"  {key}", groups[key], base_groups[key]) for key in groups]
    for label, a, b in rows:
        print(f"  {label:<36}{a:10.4f}{b:10.4f}{a - b:+10.4f}{(a - b) * per10:+16.4f}")
    tracker = groups["tracker thread (tracklab-kernels)"]
    loop = groups["main thread (event loop)"] - base_groups["main thread (event loop)"]
    met = diff * per10 <= TARGET_PCT_PER_10
    print(f"\ntarget <= {TARGET_PCT_PER_10} % of a core per 10 kernels: "
          f"{'met' if met else 'not met'} (whole process {diff * per10:+.4f} % per 10 "
          f"kernels, ticks {ticks * per10:+.3f} %; the tracker thread's own "
          f"{tracker * per10:.4f} %, the event loop's difference {loop * per10:+.4f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"each real-time window: phase A's (default {PHASE_A_SECONDS:g}) "
                             f"and phase B's (default {PHASE_B_SECONDS:g})")
    parser.add_argument("--reads", type=int, default=50, help="reads per per-read median")
    parser.add_argument("--warmup", type=float, default=20.0,
                        help="phase B: seconds between the kernels' start and the window "
                             "(default: %(default)s)")
    parser.add_argument("--kernels", type=int, default=SERVER_KERNELS,
                        help="phase B: kernels per server (default: %(default)s)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--server", action="store_true", help="run only phase B")
    which.add_argument("--no-server", action="store_true", help="run only phase A")
    args = parser.parse_args()
    if args.kernels < 1:
        parser.error("--kernels must be at least 1")
    print(f"host: {psutil.cpu_count()} logical CPUs, {len(psutil.pids())} processes, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
          f"Python {sys.version.split()[0]}, psutil {psutil.__version__}, "
          f"children files: {os.path.exists(f'/proc/{os.getpid()}/task/{os.getpid()}/children')}")
    if not args.server:
        phase_trees(args)
    if not args.no_server:
        phase_server(args)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the trees, servers and kernels were stopped on the way out
        sys.exit("interrupted")
