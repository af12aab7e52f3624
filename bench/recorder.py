"""Benchmark: what the running recorder costs the machine, against a naive sampler.

Phase A (default): the real recorder (``python -m tracklab_jupyter record --interval 1``,
writing to a temporary data dir) and, beside it in the same run, the naive sampler of
bench/sampler.py as its own process (``bench/sampler.py --naive-loop``). After a warm-up (so
start-up costs such as py-cpuinfo's are left out) both are watched over one window, from
/proc, and for each this prints:
  - CPU share of one core, of the whole process and per thread by name (OS thread names,
    "tl-" read back as "tracklab-"), from schedstat's nanoseconds where the kernel has them,
    else from clock ticks; the tick-based /proc/PID/stat figure is printed beside it;
  - wake-ups per second per thread (voluntary + involuntary context switches);
  - bytes written to disk (/proc/PID/io write_bytes) per minute and per stored point (the
    points the recorder stored in the window, counted with StoreReader);
  - RSS at the start and the end of the window.

Phase B (default after A; ``--jupyter`` runs it alone): two real ``jupyter server``
processes side by side (bench/server.py's JupyterServer: no browser, a temp root dir and
data dir each, token auth, no client), one with the extension recording and one with it
disabled; the same figures over one window, and what tracklab adds to a server.

``--rss-minutes N`` instead runs the recorder alone for N minutes and samples its RSS every
10 s after a 60 s warm-up: start, end, max and the least-squares slope.

Targets (this 2-core machine, 1 Hz): recorder <= 0.15 % of one core and >= 10x below the
naive sampler in the same run; disk writes <= 0.33 MB (1e6 bytes) per minute; RSS growth
<= 2 MB over 10 minutes after warm-up (memory MB as bench/soak.py counts them, 2**20 bytes;
RSS is printed in MiB). The exit status is 0 whatever the verdict: this is a report, not a
test.

    python bench/recorder.py [--seconds 90] [--warmup 15] [--jupyter | --no-jupyter]
                             [--rss-minutes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (ROOT, BENCH):  # the checkout's package, and the other benches
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from server import JupyterServer  # noqa: E402  (bench/server.py)

from tracklab_jupyter.recorder import DataDirLock  # noqa: E402
from tracklab_jupyter.threads import python_name  # noqa: E402

TARGET_SHARE_PCT = 0.15
TARGET_RATIO = 10.0
TARGET_DISK_MB_PER_MIN = 0.33
TARGET_RSS_GROWTH_MIB = 2.0  # MB as bench/soak.py counts memory: 2**20 bytes
MIN_SECONDS = 60.0
POLL_S = 1.0  # /proc is read once a second: a thread that exits loses at most this much
RSS_EVERY_S = 10.0
RSS_WARMUP_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 2**20
MB = 1e6  # disk figures, as the issue counts them


# -- /proc ---------------------------------------------------------------------------------

def _stat_fields(path: Path) -> list[str]:
    """Fields of a /proc stat file after the ``(comm)``, which may hold spaces."""
    text = path.read_text()
    return text[text.rindex(")") + 2:].split()


def _status(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


@dataclass
class ThreadStat:
    name: str
    cpu_ns: int  # schedstat's on-CPU time, else ticks converted
    switches: int  # voluntary + involuntary context switches: its wake-ups


@dataclass
class Snapshot:
    """One reading of a process: wall clock, whole-process ticks, I/O, RSS, threads."""

    mono: float
    wall: float
    ticks: int  # utime + stime, dead threads included
    write_bytes: int
    rss: int
    threads: dict[int, ThreadStat]


def read_thread(task: Path) -> ThreadStat | None:
    try:
        name = (task / "comm").read_text().strip()
        status = _status(task / "status")
        try:
            cpu_ns = int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):  # a kernel without CONFIG_SCHED_INFO
            fields = _stat_fields(task / "stat")
            cpu_ns = (int(fields[11]) + int(fields[12])) * 10**9 // CLK_TCK
    except (OSError, ValueError):  # it exited while being read
        return None
    return ThreadStat(python_name(name), cpu_ns, int(status["voluntary_ctxt_switches"])
                      + int(status["nonvoluntary_ctxt_switches"]))


def read_process(pid: int) -> Snapshot:
    proc = Path(f"/proc/{pid}")
    fields = _stat_fields(proc / "stat")
    io = _status(proc / "io")
    rss_kb = int(_status(proc / "status")["VmRSS"].split()[0])
    threads = {}
    for task in (proc / "task").iterdir():
        stat = read_thread(task)
        if stat is not None:
            threads[int(task.name)] = stat
    return Snapshot(time.monotonic(), time.time(), int(fields[11]) + int(fields[12]),
                    int(io["write_bytes"]), rss_kb * 1024, threads)


# -- one process over one window -----------------------------------------------------------

@dataclass
class ThreadFigure:
    tid: int
    name: str
    share_pct: float
    wakeups_per_s: float
    note: str  # "new" (started in the window), "exited", or ""


@dataclass
class Figures:
    """What one process cost over the window."""

    label: str
    pid: int
    seconds: float
    wall_start: float  # epoch seconds: the window in the store's time
    wall_end: float
    share_pct: float  # the threads' schedstat sum
    share_ticks_pct: float  # /proc/PID/stat, 10 ms ticks
    ticks: int
    write_bytes: int
    rss_start: int
    rss_end: int
    rss_max: int
    threads: list[ThreadFigure]
    points: int | None = None
    points_note: str = ""

    @property
    def disk_per_min(self) -> float:
        return self.write_bytes / self.seconds * 60

    @property
    def bytes_per_point(self) -> float | None:
        return self.write_bytes / self.points if self.points else None


@dataclass
class Watch:
    """Reads one process at the start, every POLL_S, and at the end of a window."""

    label: str
    pid: int
    start: Snapshot | None = None
    last: Snapshot | None = None
    seen: dict[int, ThreadStat] = field(default_factory=dict)  # every thread, latest values
    rss_max: int = 0

    def poll(self) -> None:
        snap = read_process(self.pid)
        if self.start is None:
            self.start = snap
        self.last = snap
        self.seen.update(snap.threads)
        self.rss_max = max(self.rss_max, snap.rss)

    def figures(self) -> Figures:
        start, end = self.start, self.last
        assert start is not None and end is not None
        seconds = end.mono - start.mono
        threads = []
        for tid, stat in self.seen.items():
            before = start.threads.get(tid)
            cpu = stat.cpu_ns - (before.cpu_ns if before else 0)
            switches = stat.switches - (before.switches if before else 0)
            note = "new" if before is None else "exited" if tid not in end.threads else ""
            threads.append(ThreadFigure(tid, stat.name, cpu / 1e9 / seconds * 100,
                                        switches / seconds, note))
        threads.sort(key=lambda t: (-t.share_pct, t.name))
        ticks = end.ticks - start.ticks
        return Figures(self.label, self.pid, seconds, start.wall, end.wall,
                       sum(t.share_pct for t in threads), ticks / CLK_TCK / seconds * 100, ticks,
                       end.write_bytes - start.write_bytes, start.rss, end.rss,
                       self.rss_max, threads)


def measure(pids: dict[str, int], seconds: float) -> dict[str, Figures]:
    """Watch every process of ``pids`` (label: pid) over the same ``seconds``."""
    watches = [Watch(label, pid) for label, pid in pids.items()]
    t0 = time.monotonic()
    for watch in watches:
        watch.poll()
    tick = 1
    while True:
        time.sleep(max(0.0, t0 + tick * POLL_S - time.monotonic()))
        for watch in watches:
            watch.poll()
        if time.monotonic() - t0 >= seconds:
            break
        tick += 1
    return {watch.label: watch.figures() for watch in watches}


def count_points(figures: Figures, data_dir: Path) -> None:
    """Points the process stored in its window, read back with StoreReader."""
    try:
        from tracklab_jupyter.store.reader import StoreReader

        with StoreReader(data_dir) as reader:
            frames = reader.read(None, figures.wall_start, figures.wall_end)
        figures.points = sum(frame.points for frame in frames.values())
    except Exception as exc:  # the store is changing; a report still says the rest
        figures.points_note = f"{type(exc).__name__}: {exc}"


# -- children ------------------------------------------------------------------------------

def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}


@contextlib.contextmanager
def child(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own session (Ctrl+C reaches only this script, which stops it),
    stderr to ``log``; terminated, then killed, however the block ends."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env=child_env(), cwd=ROOT, start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def jupyter(enabled: bool, data_dir: Path) -> Iterator[JupyterServer]:
    data_dir.mkdir()
    server = JupyterServer({"tracklab_jupyter": enabled}, data_dir)
    try:
        yield server
    finally:
        server.stop()


def check_alive(procs: dict[str, tuple[subprocess.Popen[bytes], Path]]) -> None:
    for label, (proc, log) in procs.items():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{label} exited with status {proc.returncode}; its log "
                               "ends:\n" + "\n".join(tail))


def wait(seconds: float, what: str) -> None:
    print(f"{what} {seconds:g} s ...", flush=True)
    time.sleep(seconds)


def flush_then_count(figures: Figures, data_dir: Path) -> None:
    time.sleep(2.5)  # the recorder flushes every second: the window's last points land
    count_points(figures, data_dir)


# -- phases --------------------------------------------------------------------------------

def phase_recorder(args: argparse.Namespace, tmp: Path) -> dict[str, Figures]:
    """The recorder and the naive sampler, side by side, over one window."""
    data = tmp / "recorder-data"
    record = [sys.executable, "-m", "tracklab_jupyter", "record", "--interval", "1",
              "--data-dir", str(data)]
    naive = [sys.executable, str(BENCH / "sampler.py"), "--naive-loop"]
    print(f"\nPhase A: {' '.join(record[1:])}\n     beside {' '.join(naive[1:])}")
    with child(record, tmp / "recorder.log") as rec, child(naive, tmp / "naive.log") as nai:
        procs = {"recorder": (rec, tmp / "recorder.log"), "naive": (nai, tmp / "naive.log")}
        wait(args.warmup, "warming up")
        check_alive(procs)
        print(f"measuring {args.seconds:g} s (pids {rec.pid}, {nai.pid}) ...", flush=True)
        figures = measure({"recorder": rec.pid, "naive sampler": nai.pid}, args.seconds)
        check_alive(procs)
        flush_then_count(figures["recorder"], data)
    return figures


def phase_jupyter(args: argparse.Namespace, tmp: Path) -> dict[str, Figures]:
    """Two real servers side by side, no client: with the extension recording, without."""
    print("\nPhase B: jupyter server with tracklab recording, beside one with it disabled "
          "(no client)")
    with jupyter(True, tmp / "with") as ours, jupyter(False, tmp / "without") as base:
        asyncio.run(ready(ours, base))
        print(f"servers up: with tracklab pid {ours.proc.pid}, without pid {base.proc.pid}")
        wait(args.warmup, "warming up")
        # The extension starts its monitor on a thread: ask who records after the warm-up.
        holder = DataDirLock(tmp / "with" / "tracklab").holder() or {}
        if holder.get("pid") != ours.proc.pid:
            print(f"warning: the server with tracklab does not record (the lock is held by "
                  f"{holder.get('pid')})")
        print(f"measuring {args.seconds:g} s ...", flush=True)
        figures = measure({"jupyter + tracklab": ours.proc.pid,
                           "jupyter, tracklab disabled": base.proc.pid}, args.seconds)
        for server in (ours, base):
            if server.proc.poll() is not None:
                raise RuntimeError(f"server pid {server.proc.pid} exited during the window")
        flush_then_count(figures["jupyter + tracklab"], tmp / "with" / "tracklab")
        baseline_tl = [t.name for t in figures["jupyter, tracklab disabled"].threads
                       if t.name.startswith("tracklab-")]
        if baseline_tl:
            print(f"warning: the disabled server runs tracklab threads: {baseline_tl}")
    return figures


async def ready(ours: JupyterServer, base: JupyterServer) -> None:
    await asyncio.gather(ours.wait_ready("tracklab/api/system/metrics"),
                         base.wait_ready("api/status"))


def rss_soak(args: argparse.Namespace, tmp: Path) -> tuple[list[float], list[int]]:
    """The recorder alone for ``--rss-minutes``: RSS every 10 s after a 60 s warm-up."""
    data = tmp / "soak-data"
    record = [sys.executable, "-m", "tracklab_jupyter", "record", "--interval", "1",
              "--data-dir", str(data)]
    print(f"\nRSS soak: {' '.join(record[1:])} alone for {args.rss_minutes:g} min")
    times: list[float] = []
    rss: list[int] = []
    with child(record, tmp / "soak.log") as rec:
        wait(RSS_WARMUP_S, "warming up")
        check_alive({"recorder": (rec, tmp / "soak.log")})
        print(f"sampling RSS every {RSS_EVERY_S:g} s ...", flush=True)
        t0 = time.monotonic()
        deadline = t0 + args.rss_minutes * 60
        while True:
            times.append(time.monotonic() - t0)
            rss.append(read_process(rec.pid).rss)
            if times[-1] >= args.rss_minutes * 60:
                break
            time.sleep(max(0.0, min(t0 + len(times) * RSS_EVERY_S, deadline)
                           - time.monotonic()))
        check_alive({"recorder": (rec, tmp / "soak.log")})
    return times, rss


# -- printing ------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_figures(f: Figures) -> None:
    print(f"\n{f.label} (pid {f.pid}), {f.seconds:.1f} s window:")
    print(f"  CPU      {f.share_pct:.4f} % of one core (/proc/PID/stat: "
          f"{f.share_ticks_pct:.3f} %, {f.ticks} ticks of {1000 // CLK_TCK} ms)")
    ours = sum(t.share_pct for t in f.threads if t.name.startswith("tracklab-"))
    if ours:
        print(f"           {ours:.4f} % in tracklab's named threads")
    print(f"  disk     {f.write_bytes:,} bytes written = {f.disk_per_min:,.0f} B/min = "
          f"{f.disk_per_min / MB:.4f} MB/min")
    if f.points is not None:
        per_point = f.bytes_per_point
        per = f"{per_point:.2f} bytes written per point" if per_point is not None else "n/a"
        print(f"  points   {f.points:,} stored ({f.points / f.seconds:.1f} per s): {per}")
    elif f.points_note:
        print(f"  points   not counted: {f.points_note}")
    print(f"  RSS      {f.rss_start / MIB:.1f} -> {f.rss_end / MIB:.1f} MiB (max "
          f"{f.rss_max / MIB:.1f})")
    print(f"  {'thread':<34}{'tid':>8}{'CPU %':>10}{'wake-ups/s':>12}")
    for t in f.threads:
        note = f"  ({t.note})" if t.note else "  (main)" if t.tid == f.pid else ""
        print(f"  {t.name:<34}{t.tid:>8}{t.share_pct:10.4f}{t.wakeups_per_s:12.2f}{note}")


def report_recorder(figures: dict[str, Figures]) -> list[tuple[str, str, str]]:
    ours, naive = figures["recorder"], figures["naive sampler"]
    for f in (ours, naive):
        print_figures(f)
    ratio = naive.share_pct / ours.share_pct if ours.share_pct else float("inf")
    disk = ours.disk_per_min / MB
    print("\nPhase A against the targets:")
    print(f"  {verdict(ours.share_pct <= TARGET_SHARE_PCT)}  recorder CPU {ours.share_pct:.4f} "
          f"% of one core (target <= {TARGET_SHARE_PCT} %)")
    print(f"  {verdict(ratio >= TARGET_RATIO)}  naive / recorder {ratio:.1f}x "
          f"(target >= {TARGET_RATIO:g}x)")
    print(f"  {verdict(disk <= TARGET_DISK_MB_PER_MIN)}  recorder disk writes {disk:.4f} "
          f"MB/min (target <= {TARGET_DISK_MB_PER_MIN})")
    per_point = ours.bytes_per_point
    rows = [("recorder CPU, % of one core", f"{ours.share_pct:.4f}", f"{naive.share_pct:.3f}"),
            ("naive / recorder", f"{ratio:.1f}x", ""),
            ("disk writes, MB/min", f"{disk:.4f}", f"{naive.disk_per_min / MB:.4f}"),
            ("bytes written per stored point",
             f"{per_point:.2f}" if per_point is not None else "n/a", ""),
            ("RSS, MiB (window start -> end)",
             f"{ours.rss_start / MIB:.1f} -> {ours.rss_end / MIB:.1f}",
             f"{naive.rss_start / MIB:.1f} -> {naive.rss_end / MIB:.1f}")]
    return rows


def report_jupyter(figures: dict[str, Figures]) -> list[tuple[str, str, str]]:
    ours, base = figures["jupyter + tracklab"], figures["jupyter, tracklab disabled"]
    for f in (ours, base):
        print_figures(f)
    cpu = ours.share_pct - base.share_pct
    disk = (ours.disk_per_min - base.disk_per_min) / MB
    rss = (ours.rss_end - base.rss_end) / MIB
    print("\nWhat tracklab adds to an idle jupyter server (no client):")
    print(f"  CPU   {cpu:+.4f} % of one core ({base.share_pct:.4f} -> {ours.share_pct:.4f})")
    print(f"  disk  {disk:+.4f} MB/min ({base.disk_per_min / MB:.4f} -> "
          f"{ours.disk_per_min / MB:.4f})")
    print(f"  RSS   {rss:+.1f} MiB ({base.rss_end / MIB:.1f} -> {ours.rss_end / MIB:.1f}) at "
          "the window's end")
    return [("server CPU, % of one core", f"{ours.share_pct:.4f}", f"{base.share_pct:.4f}"),
            ("  added by tracklab", f"{cpu:+.4f}", ""),
            ("server disk writes, MB/min", f"{ours.disk_per_min / MB:.4f}",
             f"{base.disk_per_min / MB:.4f}"),
            ("  added by tracklab", f"{disk:+.4f}", ""),
            ("server RSS, MiB (window end)", f"{ours.rss_end / MIB:.1f}",
             f"{base.rss_end / MIB:.1f}"),
            ("  added by tracklab", f"{rss:+.1f}", "")]


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def report_soak(times: list[float], rss: list[int]) -> list[tuple[str, str, str]]:
    mib = [r / MIB for r in rss]
    growth = slope(times, mib) * (times[-1] - times[0])
    print(f"\nRSS of the recorder alone, {len(rss)} readings over {times[-1] / 60:.1f} min "
          f"after a {RSS_WARMUP_S:g} s warm-up:")
    print(f"  start {mib[0]:.2f} MiB, end {mib[-1]:.2f} MiB, max {max(mib):.2f} MiB; "
          f"slope {slope(times, mib) * 600:+.3f} MiB per 10 min")
    print(f"  {verdict(growth <= TARGET_RSS_GROWTH_MIB)}  fitted growth {growth:+.3f} MiB "
          f"(end - start {mib[-1] - mib[0]:+.3f}; target <= {TARGET_RSS_GROWTH_MIB:g} MiB)")
    return [(f"recorder RSS over {times[-1] / 60:g} min, MiB",
             f"{mib[0]:.1f} -> {mib[-1]:.1f} ({growth:+.2f})", "")]


def print_table(rows: list[tuple[str, str, str]]) -> None:
    print("\nFigures for the README (baseline: the naive sampler in phase A, the server with "
          "tracklab disabled in phase B):")
    print(f"  {'':<36}{'tracklab':>22}{'baseline':>18}")
    for name, ours, theirs in rows:
        print(f"  {name:<36}{ours:>22}{theirs:>18}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0,
                        help="measured window, at least 60 s (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=15.0,
                        help="seconds before the window (default: %(default)s)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--jupyter", action="store_true", help="run only phase B")
    which.add_argument("--no-jupyter", action="store_true", help="run only phase A")
    which.add_argument("--rss-minutes", type=float, metavar="N",
                       help="only the RSS soak: the recorder alone for N minutes")
    args = parser.parse_args()
    if args.seconds < MIN_SECONDS:
        parser.error(f"--seconds must be at least {MIN_SECONDS:g}")
    print(f"host: {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, Python {sys.version.split()[0]}, "
          f"{os.uname().release}")
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tracklab-bench-") as name:
        tmp = Path(name)
        if args.rss_minutes is not None:
            rows += report_soak(*rss_soak(args, tmp))
        else:
            if not args.jupyter:
                rows += report_recorder(phase_recorder(args, tmp))
            if not args.no_jupyter:
                rows += report_jupyter(phase_jupyter(args, tmp))
    print_table(rows)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the children were stopped on the way out
        sys.exit("interrupted")
