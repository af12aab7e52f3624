"""Runs from the Python side: real training scripts in child processes (normal exit, an
uncaught exception, SIGKILL), the run's process tree and GPU memory (replayed H200), the
logging rules, and history cut to a run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from wakeups import wake_ups_over

import tracklab
from tracklab_jupyter.runs.store import RunNotFoundError, RunStore
from tracklab_jupyter.store.schema import SCHEMA_VERSION

SHIM = Path(__file__).parent / "shim"
FIXTURE = Path(__file__).parent / "fixtures" / "nvidia-h200"


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TRACKLAB_DATA_DIR": str(data_dir), "TRACKLAB_INTERVAL": "0.2",
            "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")]),
            "TRACKLAB_FAKE_NVML_GPUS": "0", **extra}


def run_script(tmp_path: Path, body: str, data_dir: Path, *, wait: bool = True,
               **env: str) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(body))
    args = [sys.executable, str(script), "--epochs", "3"]
    if wait:
        return subprocess.run(args, env=child_env(data_dir, **env), cwd=tmp_path,
                              capture_output=True, text=True, timeout=90)
    return subprocess.Popen(args, env=child_env(data_dir, **env), cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def only_run(data_dir: Path) -> dict:
    with RunStore(data_dir) as store:
        runs, total = store.list_runs()
        assert total == 1, runs
        return store.get_run(runs[0]["id"])


TRAIN = """
    import sys, time, tracklab
    run = tracklab.init(project="mnist", config={"lr": 0.01, "epochs": 3}, tags=["cpu"],
                        system_monitor=False)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 10})
    print(run.id, flush=True)
    if sys.argv[-1] == "raise":
        raise ValueError("diverged at step 5")
"""


def test_a_script_that_exits_normally_finishes_its_run(tmp_path):
    data = tmp_path / "data"
    done = run_script(tmp_path, TRAIN, data)
    assert done.returncode == 0, done.stderr
    run = only_run(data)
    assert run["id"] == done.stdout.strip()
    assert (run["project"], run["name"], run["state"]) == ("mnist", "run-1", "finished")
    assert run["config"] == {"lr": 0.01, "epochs": 3} and run["tags"] == ["cpu"]
    assert run["end"] >= run["start"] and run["error"] is None
    assert "train.py --epochs 3" in run["command"] and run["cwd"] == str(tmp_path)
    assert run["python"].endswith(".".join(map(str, sys.version_info[:2])) + "."
                                  + str(sys.version_info[2]))
    assert run["git"] is None  # tmp_path is not in a repository
    assert run["summary"] == {"loss": pytest.approx(0.2), "acc": pytest.approx(0.4)}
    with RunStore(data) as store:
        logged = store.metrics(run["id"])
    assert logged["step"] == [0, 1, 2, 3, 4]
    assert logged["metrics"]["loss"] == pytest.approx([1, 0.5, 1 / 3, 0.25, 0.2])
    assert logged["time"] == sorted(logged["time"])
    assert run["start"] <= logged["time"][0] <= run["end"]


def test_a_script_that_raises_fails_its_run(tmp_path):
    data = tmp_path / "data"
    (tmp_path / "train.py").write_text(textwrap.dedent(TRAIN))
    done = subprocess.run([sys.executable, "train.py", "raise"], env=child_env(data),
                          cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert done.returncode == 1 and "diverged" in done.stderr  # the traceback still prints
    run = only_run(data)
    assert run["state"] == "failed"
    assert run["error"] == "ValueError: diverged at step 5"
    assert run["summary"]["loss"] == pytest.approx(0.2)


def test_the_git_commit_is_recorded_inside_a_repository(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "README").write_text("x")
    subprocess.run([*git, "add", "README"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "first"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()
    data = tmp_path / "data"
    assert run_script(tmp_path, TRAIN, data).returncode == 0
    assert only_run(data)["git"] == {"commit": head, "dirty": False}


def test_a_killed_script_is_noticed_as_crashed(tmp_path):
    data = tmp_path / "data"
    child = run_script(tmp_path, """
        import time, tracklab
        run = tracklab.init(project="mnist", system_monitor=False)
        print(run.id, flush=True)
        step = 0
        while True:
            run.log({"loss": 1.0 / (step + 1)}); step += 1; time.sleep(0.05)
    """, data, wait=False)
    run_id = child.stdout.readline().strip()
    deadline = time.monotonic() + 20
    while True:  # until some metrics are saved
        with RunStore(data) as store:
            if store.metrics(run_id)["step"]:
                break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    with RunStore(data) as store:
        assert store.get_run(run_id)["state"] == "running"  # nobody has noticed yet
    time.sleep(3.5)  # past the heartbeat grace
    tracklab.init(project="other", system_monitor=False, data_dir=data).finish()
    with RunStore(data) as store:
        crashed = store.get_run(run_id)
    assert crashed["state"] == "crashed"
    assert f"process {child.pid}" in crashed["error"]
    with RunStore(data) as store:
        last_logged = store.metrics(run_id)["time"][-1]
    assert crashed["end"] == max(crashed["heartbeat"], last_logged) > crashed["start"]


def test_system_monitor_records_the_process_tree_and_its_gpu_memory(tmp_path):
    """The script records the host (no other recorder), samples itself and a child process,
    matches GPU memory by pid (the replayed H200's load reported as this script's pid), and
    logs the GPUs' readings with monitor_gpu."""
    data = tmp_path / "data"
    done = run_script(tmp_path, """
        import os, subprocess, sys, time
        os.environ["TRACKLAB_FAKE_NVML_LOAD_PID"] = str(os.getpid())
        import tracklab
        run = tracklab.init(project="gpu")
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        for step in range(12):
            run.log({"loss": 1.0 / (step + 1)}); time.sleep(0.25)
        logged = tracklab.monitor_gpu(run.id).log_gpu_metrics()
        print(run.id, worker.pid, sorted(logged)[:3], flush=True)
        worker.kill()
    """, data, TRACKLAB_FAKE_NVML_GPUS="1")
    assert done.returncode == 0, done.stderr
    run_id, worker_pid, _rest = done.stdout.split(" ", 2)
    run = only_run(data)
    assert run["system_monitor"] is True and run["state"] == "finished"
    with RunStore(data) as store:
        process = store.process_metrics(run_id)
        logged = store.metrics(run_id)
    assert {"tree.procs", "tree.cpu_pct", "tree.rss_bytes", "tree.threads",
            "tree.gpu_mem_bytes"} <= set(process["metrics"])
    assert max(process["metrics"]["tree.procs"]) >= 2  # the script and its worker
    recorded = json.loads((FIXTURE / "gpu_probe.json").read_text())["busy"][0]
    used = recorded["memory_v2"]["value"]["used"]
    assert set(process["metrics"]["tree.gpu_mem_bytes"]) - {None} == {float(used)}
    rss = [v for v in process["metrics"]["tree.rss_bytes"] if v is not None]
    assert min(rss) > 10e6
    table = {p["pid"]: p for p in run["processes"]}
    assert int(worker_pid) in table and table[int(worker_pid)]["name"].startswith("python")
    assert run["pid"] in table and table[run["pid"]]["gpu_mem_bytes"] == used
    # monitor_gpu logged the busy H200's readings as one more step
    assert logged["step"][-1] == 12
    util = logged["metrics"]["gpu.0.util_pct"]
    assert util[:12] == [None] * 12 and util[12] == recorded["utilization"]["value"]["gpu"]
    # the system history of the run, joined with its metrics on time
    hist = tracklab.history("cpu.util_pct", run=run_id, data_dir=data)
    assert hist.start == run["start"] and hist.end == run["end"]
    from tracklab_jupyter.runs.run_history import run_history

    df = run_history(run_id, data_dir=data).to_pandas()
    assert list(df["step"]) == list(range(13))
    assert {"loss", "cpu.util_pct", "gpu.0.util_pct", "system:gpu.0.util_pct",
            "tree.rss_bytes"} <= set(df.columns)
    assert df["cpu.util_pct"].notna().sum() >= 8  # system samples matched on time
    assert df["tree.rss_bytes"].notna().sum() >= 8


def test_runs_in_process_context_manager_and_logging_rules(tmp_path):
    data = tmp_path / "data"
    with tracklab.init(project="rules", name="ok", system_monitor=False, data_dir=data) as run:
        run.log({"loss": np.float32(0.5), "t": np.array(2.0), "flag": True})
        run.log({"extra": 1}, step=0)  # the same step: the same row
        run.log({"loss": float("nan")})
        run.log({"loss": 0.25}, step=10)
        run.log({"loss": 0.125})  # continues after the explicit step
        assert run.step == 12
        for bad, error in ((["loss", 1], TypeError), ({"loss": "high"}, TypeError),
                           ({"": 1.0}, ValueError), ({3: 1.0}, ValueError)):
            with pytest.raises(error, match=r"run\.log"):
                run.log(bad)
        with pytest.raises(ValueError, match="step must be 0 or more"):
            run.log({"loss": 1}, step=-1)
        with pytest.raises(TypeError, match="step must be an integer"):
            run.log({"loss": 1}, step=1.5)
    assert run.state == "finished"
    with pytest.raises(RuntimeError, match="is finished"):
        run.log({"loss": 1})
    with RunStore(data) as store:
        logged = store.metrics(run.id)
    assert logged["step"] == [0, 1, 10, 11]
    assert logged["metrics"] == {"loss": [0.5, None, 0.25, 0.125], "t": [2.0, None, None, None],
                                 "flag": [1.0, None, None, None],
                                 "extra": [1.0, None, None, None]}
    with pytest.raises(ZeroDivisionError), tracklab.init(
            project="rules", system_monitor=False, data_dir=data) as failing:
        1 / 0  # noqa: B018
    assert failing.state == "failed"
    with RunStore(data) as store:
        assert store.get_run(failing.id)["error"] == "ZeroDivisionError: division by zero"
        assert store.get_run(failing.id)["name"] == "run-2"


def test_init_arguments_are_checked_and_configs_are_stored_as_json(tmp_path):
    data = tmp_path / "data"
    for project in ("has space", "", "../up", "x" * 200):
        with pytest.raises(ValueError, match="project must be"):
            tracklab.init(project=project, system_monitor=False, data_dir=data)
    with pytest.raises(TypeError, match="config must be a dict"):
        tracklab.init(project="p", config=[1, 2], system_monitor=False, data_dir=data)
    with pytest.raises(ValueError, match="each tag is a non-empty string"):
        tracklab.init(project="p", tags=[1], system_monitor=False, data_dir=data)

    @dataclasses.dataclass
    class Opt:
        lr: float = 0.1
        path: Path = Path("/data")

    namespace = argparse.Namespace(lr=np.float64(0.5), layers=(1, 2), nan=float("nan"))
    for config, expected in ((namespace, {"lr": 0.5, "layers": [1, 2], "nan": None}),
                             (Opt(), {"lr": 0.1, "path": "/data"})):
        run = tracklab.init(project="p", config=config, system_monitor=False, data_dir=data)
        run.finish()
        assert run.config == expected
        with RunStore(data) as store:
            assert store.get_run(run.id)["config"] == expected


def test_init_again_finishes_the_previous_run_and_module_level_log(tmp_path):
    data = tmp_path / "data"
    first = tracklab.init(project="p", system_monitor=False, data_dir=data)
    tracklab.log({"loss": 1.0})
    second = tracklab.init(project="p", system_monitor=False, data_dir=data)
    assert first.state == "finished" and second.state == "running"
    tracklab.log({"loss": 2.0})
    tracklab.finish()
    assert second.state == "finished"
    with pytest.raises(RuntimeError, match=r"tracklab\.init"):
        tracklab.log({"loss": 3.0})
    frame = tracklab.runs(project="p", data_dir=data)
    assert list(frame.index) == [second.id, first.id]
    assert list(frame["state"]) == ["finished", "finished"]
    assert list(frame["summary.loss"]) == [2.0, 1.0]
    assert isinstance(frame["start"].dtype, pd.DatetimeTZDtype)
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        tracklab.history(run="nope", data_dir=data)


def test_a_version_1_store_is_migrated_for_runs(tmp_path):
    from tracklab_jupyter.store.schema import MIGRATIONS

    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "metrics.db", isolation_level=None)
    MIGRATIONS[1](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO nodes (name) VALUES ('old-host')")
    conn.close()
    with RunStore(data) as store:  # a reader sees no runs, and changes nothing
        assert store.list_runs() == ([], 0)
    run = tracklab.init(project="p", system_monitor=False, data_dir=data)
    run.finish()
    conn = sqlite3.connect(data / "metrics.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT name FROM nodes").fetchall() == [("old-host",)]
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_a_notebook_run_survives_a_failing_cell_and_ends_with_the_kernel(tmp_path):
    from test_kernel import Kernel

    data = tmp_path / "data"
    kernel = Kernel(data)
    try:
        run_id = kernel.text("import tracklab\nrun = tracklab.init(project='nb')\n"
                             "run.log({'loss': 1.0})\nprint(run.id)").strip()
        failed = kernel.run("1 / 0")
        assert any(m["msg_type"] == "error" for m in failed)
        assert kernel.text("run.log({'loss': 0.5})\nprint(run.state)").strip() == "running"
    finally:
        kernel.kc.stop_channels()
        kernel.km.shutdown_kernel(now=False)  # a graceful shutdown, as JupyterLab's
    run = only_run(data)
    assert run["id"] == run_id and run["state"] == "finished"
    assert run["command"].startswith("notebook") and run["summary"] == {"loss": 0.5}


def test_inputs_are_measured_before_any_work_and_errors_echo_little():
    from tracklab_jupyter.runs.store import (
        check_notes,
        check_project,
        check_run_name,
        check_tags,
    )

    many = [f"tag-{i}" for i in range(60_000)]
    with pytest.raises(ValueError, match="at most 64 tags, got 60000"):
        check_tags(many)
    with pytest.raises(ValueError, match="at most 64 tags, got 65"):
        check_tags(["same"] * 65)  # counted as given, before deduplicating
    assert check_tags([" b", "a", "b ", "a"]) == ["b", "a"]  # first occurrence, in order
    huge = "x" * 5_000_000
    for check, value in ((check_run_name, huge), (check_project, huge),
                         (check_tags, [huge]), (check_tags, [[1] * 100_000])):
        with pytest.raises(ValueError) as caught:
            check(value)
        assert len(str(caught.value)) < 300, check.__name__
    with pytest.raises(ValueError, match=r"'xxx\w*'… \(5000000 characters\)"):
        check_run_name(huge)
    with pytest.raises(ValueError, match="at most 100000 characters; got 5000000 characters"):
        check_notes(huge)


def test_run_metrics_are_paged_by_step(tmp_path):
    data = tmp_path / "data"
    with tracklab.init(project="pages", system_monitor=False, data_dir=data) as run:
        for step in range(25):
            values = {"loss": 1.0 / (step + 1)}
            if step % 3 == 0:
                values["acc"] = step / 25
            run.log(values, step=step * 2)  # steps 0, 2, ..., 48
    with RunStore(data) as store:
        whole = store.metrics(run.id)
        assert whole["next_start_step"] is None and len(whole["step"]) == 25
        pages, start = [], None
        while True:
            page = store.metrics(run.id, start_step=start, limit=10)
            pages.append(page)
            start = page["next_start_step"]
            if start is None:
                break
        assert [len(p["step"]) for p in pages] == [10, 10, 5]
        assert [p["next_start_step"] for p in pages] == [20, 40, None]
        def joined(column: Callable[[dict], list]) -> list:
            return [v for p in pages for v in column(p)]

        assert joined(lambda p: p["step"]) == whole["step"]
        assert joined(lambda p: p["time"]) == whole["time"]
        for name in ("loss", "acc"):
            assert joined(lambda p, n=name: p["metrics"][n]) == whole["metrics"][name]
        # a range and a name choice page the same way
        page = store.metrics(run.id, ["acc"], start_step=10, end_step=40, limit=3)
        assert (page["step"], page["next_start_step"]) == ([12, 18, 24], 30)
        last = store.metrics(run.id, ["acc"], start_step=30, end_step=40, limit=3)
        assert (last["step"], last["next_start_step"]) == ([30, 36], None)
        exact = store.metrics(run.id, limit=25)
        assert exact["next_start_step"] is None and exact["step"] == whole["step"]
        for bad in (0, -1, 2.5, True, "10"):
            with pytest.raises(ValueError, match="limit must be"):
                store.metrics(run.id, limit=bad)


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_the_run_writer_sleeps_without_a_run(tmp_path):
    """After a run ends the writer's thread lives on for the process: it must sleep, not
    poll (it woke four times a second), and still answer a flush at once."""
    from tracklab_jupyter.runs.run_writer import RunWriter

    writer = RunWriter(tmp_path)
    try:
        assert writer.flush(5)
        time.sleep(0.5)  # the batch a flush asked for ends a moment after it returns
        assert wake_ups_over(writer._thread.native_id, 2.0) <= 1
        started = time.monotonic()
        assert writer.flush(5)
        assert time.monotonic() - started < 2
    finally:
        writer.close()
