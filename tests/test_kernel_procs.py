"""ProcessTrees: many kernels' process trees from /proc (tracklab_jupyter.kernels.procs).

Real processes for what the machine does (memory, CPU, children, ends); a fake /proc tree
under tmp_path only for what cannot be staged with real ones (a reused pid, a pid namespace
of our own, a kernel without children files, a process gone between listing and reading).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracklab_jupyter.kernels import procs
from tracklab_jupyter.kernels.procs import (
    MAX_PROCESSES,
    NOTE_NOT_MAPPED,
    ProcessTrees,
    parse_nspid,
    parse_smaps_rollup,
    parse_stat,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

FIXTURES = Path(__file__).parent / "fixtures"
MiB = 2**20
ALLOC = 200 * MiB
TIMEOUT_S = 20.0


# -- real process trees ----------------------------------------------------------------------

class Tree:
    """A real process tree started in its own session, killed as a group at the end."""

    def __init__(self, code: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.pid = self.proc.pid

    def line(self) -> list[str]:
        """The next line any process of the tree printed (they share the root's stdout)."""
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline()
        assert text, "the tree ended early"
        return text.split()

    def send(self, text: str = "") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # our own session: the tree we started
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def trees() -> Iterator[list[Tree]]:
    started: list[Tree] = []
    yield started
    for tree in started:
        tree.kill()


def start(trees: list[Tree], code: str) -> Tree:
    tree = Tree(code)
    trees.append(tree)
    return tree


def python(code: str) -> str:
    """A subprocess.Popen call that runs ``code`` in a child sharing stdin/stdout."""
    return f"subprocess.Popen([sys.executable, '-c', {code!r}])"


# The grandchild holds ALLOC bytes after one line on stdin: the tree's memory is not the root's.
GRANDCHILD = (
    "import os, sys\n"
    "print('ready', os.getppid(), os.getpid(), flush=True)\n"
    "sys.stdin.readline()\n"
    f"held = bytearray(b'\\x01') * {ALLOC}\n"
    "print('allocated', flush=True)\n"
    "sys.stdin.readline()\n")
CHILD = f"import subprocess, sys\n{python(GRANDCHILD)}.wait()\n"
KERNEL = f"import subprocess, sys\n{python(CHILD)}.wait()\n"


def kernel_tree(trees: list[Tree]) -> tuple[Tree, int, int]:
    """A root with a child and a grandchild; returns (tree, child pid, grandchild pid)."""
    tree = start(trees, KERNEL)
    word, child, grandchild = tree.line()
    assert word == "ready"
    return tree, int(child), int(grandchild)


def test_descendants_and_memory_of_the_tree(trees: list[Tree]) -> None:
    tree, child, grandchild = kernel_tree(trees)
    reader = ProcessTrees(detail_interval=0.0)
    before = reader.read({"k": tree.pid})["k"]
    assert before.pids == sorted([tree.pid, child, grandchild])
    assert before.procs == 3 and before.threads >= 3 and not before.ended
    assert before.cpu_pct is None  # the first read of a tree has nothing to compare with
    names = {row["pid"]: row["name"] for row in before.processes}
    assert names[grandchild].startswith("python")
    assert before.pss_bytes is not None and before.uss_bytes is not None

    tree.send()
    assert tree.line() == ["allocated"]
    after = reader.read({"k": tree.pid})["k"]
    assert after.rss_bytes - before.rss_bytes >= ALLOC * 0.98
    assert after.uss_bytes - before.uss_bytes >= ALLOC * 0.98  # private to the grandchild
    assert after.pss_bytes - before.pss_bytes >= ALLOC * 0.98
    assert after.processes[0]["pid"] == grandchild  # largest RSS first
    assert after.processes[0]["rss_bytes"] >= ALLOC
    assert after.cpu_pct is not None and after.cpu_pct >= 0.0
    reader.close()


def test_pss_and_uss_are_read_at_the_detail_cadence_only(trees: list[Tree]) -> None:
    tree, _, _ = kernel_tree(trees)
    reader = ProcessTrees(detail_interval=3600.0)
    before = reader.read({"k": tree.pid})["k"]
    tree.send()
    assert tree.line() == ["allocated"]
    after = reader.read({"k": tree.pid})["k"]
    assert after.rss_bytes - before.rss_bytes >= ALLOC * 0.98  # RSS: every read
    assert (after.pss_bytes, after.uss_bytes) == (before.pss_bytes, before.uss_bytes)
    reader.close()


def test_the_fallback_scan_finds_the_same_tree(trees: list[Tree]) -> None:
    tree, child, grandchild = kernel_tree(trees)
    with_files = ProcessTrees()
    scanned = ProcessTrees(children_files=False)
    a = with_files.read({"k": tree.pid})["k"]
    b = scanned.read({"k": tree.pid})["k"]
    assert a.pids == b.pids == sorted([tree.pid, child, grandchild])
    assert with_files._children_files is True and scanned._children_files is False
    with_files.close()
    scanned.close()


# Lines from several processes on one pipe: one os.write each, so they cannot interleave.
SPIN = "import os\nos.write(1, b'spinning\\n')\nwhile True: pass"
REST = "import os, time\nos.write(1, b'0\\n')\ntime.sleep(60)"
SPIN_AND_SLEEP = (
    "import os, subprocess, sys\n"
    f"spin = {python(SPIN)}\n"
    f"rest = {python(REST)}\n"
    "os.write(1, f'{spin.pid} {rest.pid}\\n'.encode())\n"
    "spin.wait()\n")


def test_cpu_of_a_busy_child(trees: list[Tree]) -> None:
    tree = start(trees, SPIN_AND_SLEEP)
    lines = sorted((tree.line() for _ in range(3)), key=lambda w: (len(w), w))  # any order
    assert lines[:2] == [["0"], ["spinning"]]  # both started: no start-up in the window
    spin, rest = map(int, lines[2])
    reader = ProcessTrees()
    assert reader.read({"k": tree.pid})["k"].cpu_pct is None
    time.sleep(0.5)
    reading = reader.read({"k": tree.pid})["k"]
    cpu = {row["pid"]: row["cpu_pct"] for row in reading.processes}
    assert cpu[spin] > cpu[rest]
    assert reading.cpu_pct is not None and reading.cpu_pct >= cpu[spin] > 0.0
    reader.close()


# On a line: run a child that burns 0.3 s of CPU and reap it; between two reads of the tree
# it is born, works and is gone.
SHORT_SUBPROCESS = (
    "import subprocess, sys\n"
    "burn = 'import time\\nwhile time.process_time() < 0.3: pass'\n"
    "sys.stdin.readline()\n"
    "subprocess.run([sys.executable, '-c', burn])\n"
    "print('done', flush=True)\n"
    "sys.stdin.readline()\n")


def test_cpu_of_a_subprocess_that_ended_between_reads_counts(trees: list[Tree]) -> None:
    tree = start(trees, SHORT_SUBPROCESS)
    reader = ProcessTrees(relist_interval=0.0)
    t0 = time.monotonic()
    reader.read({"k": tree.pid})
    tree.send()
    assert tree.line() == ["done"]
    reading = reader.read({"k": tree.pid})["k"]
    elapsed = time.monotonic() - t0  # at least the interval the reading covers
    assert reading.pids == [tree.pid]
    assert reading.cpu_pct is not None
    # The child's 0.3 s reached the tree through the root's cutime.
    assert reading.cpu_pct / 100.0 * elapsed >= 0.25
    reader.close()


# On a line: kill the spinning child and reap it.
SPIN_UNTIL_TOLD = (
    "import subprocess, sys\n"
    f"spin = {python('while True: pass')}\n"
    "print(spin.pid, flush=True)\n"
    "sys.stdin.readline()\n"
    "spin.kill(); spin.wait()\n"
    "print('reaped', flush=True)\n"
    "sys.stdin.readline()\n")


def _ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return parse_stat(f.read()).ticks


def _state(pid: int) -> bytes:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return parse_stat(f.read()).state


def test_a_reaped_member_is_not_counted_twice(trees: list[Tree]) -> None:
    tree = start(trees, SPIN_UNTIL_TOLD)
    (spin,) = map(int, tree.line())
    reader = ProcessTrees(relist_interval=0.0)
    reader.read({"k": tree.pid})
    deadline = time.monotonic() + TIMEOUT_S
    while _ticks(spin) < 0.5 * procs.CLK_TCK:  # let it gather half a second of CPU
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert spin in reader.read({"k": tree.pid})["k"].pids
    tree.send()
    assert tree.line() == ["reaped"]
    time.sleep(0.2)
    reading = reader.read({"k": tree.pid})["k"]
    assert reading.pids == [tree.pid]
    # Its past half second, already counted, moved into the root's cutime when it was
    # reaped; counted again it would read as several cores over this short interval.
    assert reading.cpu_pct is not None and reading.cpu_pct < 100.0
    reader.close()


SPAWN_ON_LINE = (
    "import subprocess, sys\n"
    "sys.stdin.readline()\n"
    f"c = {python('import time; time.sleep(60)')}\n"
    "print(c.pid, flush=True)\n"
    "sys.stdin.readline()\n"
    "c.kill(); c.wait()\n"
    "print('gone', flush=True)\n"
    "sys.stdin.readline()\n")


def test_new_and_ended_children_at_the_relist_cadence(trees: list[Tree]) -> None:
    tree = start(trees, SPAWN_ON_LINE)
    eager, lazy = ProcessTrees(relist_interval=0.0), ProcessTrees(relist_interval=3600.0)
    assert eager.read({"k": tree.pid})["k"].pids == [tree.pid]
    assert lazy.read({"k": tree.pid})["k"].pids == [tree.pid]
    tree.send()
    (child,) = map(int, tree.line())
    assert eager.read({"k": tree.pid})["k"].pids == sorted([tree.pid, child])
    assert lazy.read({"k": tree.pid})["k"].pids == [tree.pid]  # not listed again yet
    tree.send()
    assert tree.line() == ["gone"]
    for reader in (eager, lazy):
        reading = reader.read({"k": tree.pid})["k"]
        assert reading.pids == [tree.pid] and reading.procs == 1 and not reading.ended
        reader.close()


def test_an_ended_root_reads_ended_with_zero_figures(trees: list[Tree]) -> None:
    first = start(trees, "import time; time.sleep(60)")
    second = start(trees, "import time; time.sleep(60)")
    reader = ProcessTrees()
    assert not reader.read({"k": first.pid})["k"].ended
    first.proc.kill()
    deadline = time.monotonic() + TIMEOUT_S
    while _state(first.pid) != b"Z":  # dead, not yet reaped by its parent (us)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    zombie = reader.read({"k": first.pid})["k"]
    first.proc.wait()
    gone = reader.read({"k": first.pid})["k"]
    for reading in (zombie, gone):
        assert reading.ended and reading.root == first.pid
        assert (reading.procs, reading.threads, reading.rss_bytes) == (0, 0, 0.0)
        assert reading.pids == [] and reading.processes == [] and reading.cpu_pct is None
        assert reading.gpu_mem_bytes is None
    # A restarted kernel has a new pid under the same id: a new tree.
    restarted = reader.read({"k": second.pid})["k"]
    assert not restarted.ended and restarted.pids == [second.pid]
    assert reader._open_fds == 1  # the ended tree's descriptors are closed
    reader.read({})
    assert reader._open_fds == 0  # so are those of trees no longer asked for
    reader.close()


BIG = ("held = bytearray(b'\\x01') * (64 * 2**20)\n"
       "import os, time\nos.write(1, b'big\\n')\ntime.sleep(60)")
MANY_CHILDREN = (
    "import os, subprocess, sys\n"
    f"big = {python(BIG)}\n"
    "small = [subprocess.Popen(['sleep', '60']) for _ in range(40)]\n"
    "os.write(1, b'ready\\n')\n"
    "big.wait()\n")


def test_the_processes_list_is_capped_and_sorted(trees: list[Tree]) -> None:
    tree = start(trees, MANY_CHILDREN)
    assert {tree.line()[0], tree.line()[0]} == {"big", "ready"}
    reader = ProcessTrees()
    reading = reader.read({"k": tree.pid})["k"]
    assert reading.procs == 42 and len(reading.pids) == 42
    assert len(reading.processes) == MAX_PROCESSES
    sizes = [row["rss_bytes"] for row in reading.processes]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] >= 64 * MiB  # the big child leads
    assert reading.rss_bytes > sum(sizes)  # the totals count the processes left out too
    assert set(reading.processes[0]) == {"pid", "name", "cpu_pct", "rss_bytes", "threads",
                                         "gpu_mem_bytes"}
    reader.close()


def busy_sample_metrics() -> tuple[dict[str, float], int]:
    """The metrics of a real busy H200 sample and the pid its one GPU process had."""
    sample = json.loads((FIXTURES / "real-nvml" / "snapshot_busy.json").read_text())
    metrics = dict(sample["metrics"])
    (name,) = [k for k in metrics if k.startswith("gpu.0.proc.")]
    return metrics, int(name.split(".")[3])


def test_accelerator_memory_matched_by_pid(trees: list[Tree]) -> None:
    tree, child, grandchild = kernel_tree(trees)
    other = start(trees, "import time; time.sleep(60)")
    metrics, recorded = busy_sample_metrics()
    used = metrics.pop(f"gpu.0.proc.{recorded}.mem_used_bytes")
    metrics[f"gpu.0.proc.{grandchild}.mem_used_bytes"] = used  # the recorded process, ours
    metrics[f"gpu.1.proc.{grandchild}.mem_used_bytes"] = 2e9
    metrics[f"npu.3.proc.{child}.mem_used_bytes"] = 3e9
    metrics["gpu.1.proc.1.mem_used_bytes"] = 7e9  # a process of no kernel
    reader = ProcessTrees()
    readings = reader.read({"k": tree.pid, "other": other.pid}, metrics)
    mine = readings["k"]
    assert mine.gpus == {"gpu.0": used, "gpu.1": 2e9, "npu.3": 3e9}
    assert mine.gpu_mem_bytes == used + 2e9 + 3e9
    rows = {row["pid"]: row["gpu_mem_bytes"] for row in mine.processes}
    assert rows == {tree.pid: None, child: 3e9, grandchild: used + 2e9}
    assert readings["other"].gpus == {} and readings["other"].gpu_mem_bytes is None
    assert reader.pid_namespace_note is None
    # No metrics at all: no accelerator figures, the rest as before.
    plain = reader.read({"k": tree.pid})["k"]
    assert plain.gpu_mem_bytes is None and plain.pids == mine.pids
    reader.close()


# -- a fake /proc for what real processes cannot stage ----------------------------------------

def stat_line(pid: int, name: str, ppid: int, *, start: int = 1000, rss_pages: int = 100,
              threads: int = 1, utime: int = 0, cutime: int = 0, state: str = "S") -> str:
    fields = [state, ppid, *[0] * 9, utime, 0, cutime, 0, 20, 0, threads, 0, start, 0,
              rss_pages, *[0] * 30]
    return f"{pid} ({name}) {' '.join(map(str, fields))}\n"


def fake_proc(root: Path, tree: dict[int, int], *, children_files: bool = True,
              ns_inode: int = procs.PROC_PID_INIT_INO, start: int = 1000) -> Path:
    """A /proc with one process per ``{pid: ppid}``, each with one thread."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "self" / "ns").mkdir(parents=True)
    (root / "self" / "ns" / "pid").symlink_to(f"pid:[{ns_inode}]")
    for pid, ppid in tree.items():
        task = root / str(pid) / "task" / str(pid)
        task.mkdir(parents=True)
        text = stat_line(pid, f"proc {pid}", ppid, start=start, rss_pages=pid)
        (root / str(pid) / "stat").write_text(text)
        (task / "stat").write_text(text)
        if children_files:
            kids = [str(p) for p, pp in tree.items() if pp == pid]
            (task / "children").write_text(" ".join(kids) + (" " if kids else ""))
    return root


def test_parsers_on_fixture_text() -> None:
    stat = parse_stat(stat_line(7, "a) (b", 1, start=4242, rss_pages=3, threads=5, utime=9,
                                cutime=4).encode())
    assert (stat.name, stat.ppid, stat.start, stat.rss_pages, stat.threads) == (
        "a) (b", 1, 4242, 3, 5)
    assert (stat.ticks, stat.child_ticks) == (9, 4)
    assert parse_nspid("Name:\tpython3\nNSpid:\t48211\t17\nNSpgid:\t1\n") == [48211, 17]
    assert parse_nspid("Name:\tpython3\nPid:\t17\n") == []
    rollup = ("00400000-7ffd [rollup]\nRss:  9000 kB\nPss:  4000 kB\n"
              "Private_Clean:  100 kB\nPrivate_Dirty:  2000 kB\nPrivate_Hugetlb:  8 kB\n")
    assert parse_smaps_rollup(rollup) == (4000 * 1024.0, 2108 * 1024.0)


def test_a_reused_root_pid_is_an_ended_kernel(tmp_path: Path) -> None:
    root = fake_proc(tmp_path / "proc", {100: 1, 101: 100})
    reader = ProcessTrees(proc_root=str(root))
    assert reader.read({"k": 100})["k"].pids == [100, 101]
    # Pid 100 now names another process: the same pid, a later start time.
    (root / "100" / "stat").write_text(stat_line(100, "other", 1, start=9999))
    reading = reader.read({"k": 100})["k"]
    assert reading.ended and reading.pids == []
    reader.close()


def test_without_children_files_the_scan_finds_the_tree(tmp_path: Path) -> None:
    shape = {100: 1, 101: 100, 102: 101, 103: 100, 200: 1, 201: 200}
    with_files = fake_proc(tmp_path / "a", shape)
    without = fake_proc(tmp_path / "b", shape, children_files=False)
    a = ProcessTrees(proc_root=str(with_files)).read({"k": 100, "j": 200})
    reader = ProcessTrees(proc_root=str(without))
    b = reader.read({"k": 100, "j": 200})
    assert reader._children_files is False  # found out, not told
    assert a["k"].pids == b["k"].pids == [100, 101, 102, 103]
    assert a["j"].pids == b["j"].pids == [200, 201]
    assert b["k"].rss_bytes == (100 + 101 + 102 + 103) * procs.PAGE_SIZE


def test_a_process_gone_between_listing_and_reading_is_skipped(tmp_path: Path) -> None:
    root = fake_proc(tmp_path / "proc", {100: 1, 101: 100})
    (root / "100" / "task" / "100" / "children").write_text("101 102 ")  # 102: gone already
    reading = ProcessTrees(proc_root=str(root)).read({"k": 100})["k"]
    assert reading.pids == [100, 101] and not reading.ended


def test_own_pid_namespace_maps_nothing_and_says_so(tmp_path: Path) -> None:
    nested = fake_proc(tmp_path / "nested", {100: 1}, ns_inode=4026532999)
    host = fake_proc(tmp_path / "host", {100: 1})
    on_device = {"gpu.0.proc.100.mem_used_bytes": 5e9,
                 "gpu.0.proc.777777.mem_used_bytes": 1e9}  # a host pid we cannot see
    reader = ProcessTrees(proc_root=str(nested))
    reading = reader.read({"k": 100}, on_device)["k"]
    assert reading.gpu_mem_bytes is None and reading.gpus == {}
    assert reader.pid_namespace_note == NOTE_NOT_MAPPED
    # Every driver pid is ours (a driver or fake inside our namespace): matched.
    reading = reader.read({"k": 100}, {"gpu.0.proc.100.mem_used_bytes": 5e9})["k"]
    assert reading.gpus == {"gpu.0": 5e9} and reader.pid_namespace_note is None
    # In the initial namespace the driver's pids are ours whatever else it reports.
    in_host = ProcessTrees(proc_root=str(host))
    assert in_host.read({"k": 100}, on_device)["k"].gpus == {"gpu.0": 5e9}
    assert in_host.pid_namespace_note is None
