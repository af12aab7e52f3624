"""tracklab.widget(run=...) in this process (ipywidgets' stand-in comm): the run's init,
its backfills (host panels, process tree, logged metrics by step), live metric batches
and state changes through the shared feed, for a run logged by another process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import wait_for
from widget_recorder import Recorded, _fresh_kernel_monitor, feed_threads, ready  # noqa: F401 (autouse)

import tracklab
from tracklab_jupyter.notebook.columns import StepColumns
from tracklab_jupyter.notebook.monitor_widget import make_widget
from tracklab_jupyter.process_monitor import process_monitor
from tracklab_jupyter.runs.store import RunNotFoundError, RunStore


def decode(content: dict, buffers: list) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    n = content["n"]
    x = np.frombuffer(buffers[0], dtype=np.float64)
    values = np.frombuffer(buffers[1], dtype=np.float64).reshape(len(content["names"]), n)
    assert len(x) == n
    return x, dict(zip(content["names"], values, strict=True))






CHILD = textwrap.dedent("""
    import sys, time
    import tracklab
    run = tracklab.init(project="widget-test", name="child", system_monitor=True,
                        data_dir=sys.argv[1])
    print(run.id, flush=True)
    for step in range(int(sys.argv[2])):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 100})
        if step % 20 == 19:  # later, at a step the widget already has
            time.sleep(0.6)
            run.log({"val_loss": 2.0 / (step + 1)}, step=step)
        time.sleep(float(sys.argv[3]))
    sys.stdin.readline()  # the test says when to finish
""")


@pytest.fixture
def child_run(tmp_path, monkeypatch):
    """Starts a training script in another process: 60 steps, one every 50 ms, and
    val_loss 0.6 s after every 20th step; it finishes when the test writes to its stdin."""
    data_dir = tmp_path / "tracklab-data"
    monkeypatch.setenv("TRACKLAB_DATA_DIR", str(data_dir))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), "60", "0.05"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the child printed no run id"
        yield run_id, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_run_widget_sends_the_run_then_live_steps_and_its_end(child_run):
    run_id, child = child_run
    monitor = process_monitor()
    with RunStore(monitor.data_dir) as store:
        wait_for(lambda: len(store.metrics(run_id)["step"]) >= 15, what="the first steps")
    widget = make_widget(monitor, run=run_id)
    assert widget.run_id == run_id and widget.window_s == 7 * 86400
    sent = Recorded(widget)
    ready(widget)

    (init, _), = sent.of("init")
    assert init["run"]["id"] == run_id and init["run"]["state"] == "running"
    assert init["run"]["project"] == "widget-test" and init["run"]["name"] == "child"
    assert init["run"]["system_monitor"] is True and init["node"] == monitor.node
    assert sent.of("data")[0][0]["backfill"] is True
    # The host panels start with the run (the backfill may still be empty: the script
    # records and flushes once a second); then live samples come.
    wait_for(lambda: sum(c["n"] for c, _ in sent.of("data")) >= 3, what="host samples")
    times = np.concatenate([decode(c, b)[0] for c, b in sent.of("data")])
    assert times[0] >= init["run"]["start"] - 1 and np.all(np.diff(times) > 0)
    assert "cpu.util_pct" in decode(*sent.of("data")[-1])[1]
    first, first_buffers = sent.of("data", "run")[0]
    assert first["backfill"] is True
    steps, values = decode(first, first_buffers)
    assert steps[0] == 0 and np.all(np.diff(steps) == 1) and len(steps) >= 15
    np.testing.assert_allclose(values["loss"], 1.0 / (steps + 1))
    assert "live" in widget.status

    # Live: every step logged later arrives exactly once, in order, with its values.
    wait_for(lambda: len(sent.of("data", "run")) >= 5, what="live metric batches")
    wait_for(lambda: len(sent.of("data", "process")) >= 2, what="process-tree rows")
    child.stdin.write("done\n")
    child.stdin.flush()
    child.wait(20)
    wait_for(lambda: any(m["run"]["state"] == "finished" for m, _ in sent.of("run_update")),
         what="the finished state")
    with RunStore(monitor.data_dir) as store:
        stored = store.metrics(run_id)
    wait_for(lambda: _front_end_steps(sent)[0] == stored["step"], what="every step")
    columns = _front_end_steps(sent)[1]
    for name in ("loss", "acc", "val_loss"):
        expected = [np.nan if v is None else v for v in stored["metrics"][name]]
        np.testing.assert_allclose(columns[name], expected, err_msg=name)
    assert any("from" in m for m, _ in sent.of("data", "run"))  # val_loss at a sent step

    # The host panels stop at the run's end; the process tree has the run's rows.
    (update, _), = [m for m in sent.of("run_update") if m[0]["run"]["state"] == "finished"]
    end = update["run"]["end"]
    time.sleep(0.6)
    live_host = [decode(c, b)[0] for c, b in sent.of("data")[1:]]
    assert all(t[-1] <= end for t in live_host if len(t))
    proc_times = np.concatenate([decode(c, b)[0] for c, b in sent.of("data", "process")])
    assert proc_times.min() >= init["run"]["start"] - 1 and proc_times.max() <= end + 1
    widget.close()


def _front_end_steps(sent: Recorded) -> tuple[list[int], dict[str, list[float]]]:
    """What the front end holds after the run's `data` messages (js/series.ts semantics:
    a backfill replaces, `from` drops rows at and after it, older rows are skipped)."""
    rows: dict[int, dict[str, float]] = {}
    for content, buffers in sent.of("data", "run"):
        steps, values = decode(content, buffers)
        if content["backfill"]:
            rows = {}
        if "from" in content:
            rows = {s: r for s, r in rows.items() if s < content["from"]}
        last = max(rows, default=-1)
        for j, step in enumerate(steps.astype(int).tolist()):
            if step > last:
                rows[step] = {n: float(v[j]) for n, v in values.items()}
                last = step
    steps = sorted(rows)
    names = sorted({n for r in rows.values() for n in r})
    return steps, {n: [rows[s].get(n, np.nan) for s in steps] for n in names}


def test_a_finished_run_shows_its_lifetime_and_gets_no_live_host_data(tmp_path):
    monitor = process_monitor()
    monitor.wait_started()
    run = tracklab.init(project="widget-test", system_monitor=False,
                        data_dir=monitor.data_dir)
    for step in range(3):
        run.log({"loss": 3.0 - step, "lr_pct": 10.0})
    time.sleep(0.8)
    run.finish()
    widget = tracklab.widget(run=run)  # the public call, with a Run object
    sent = Recorded(widget)
    ready(widget)
    (init, _), = sent.of("init")
    assert init["run"]["state"] == "finished" and init["run"]["system_monitor"] is False
    assert "finished" in widget.status
    times, _ = decode(*sent.of("data")[0])
    assert times[0] >= init["run"]["start"] - 0.5 and times[-1] <= init["run"]["end"] + 1e-3
    steps, values = decode(*sent.of("data", "run")[0])
    assert steps.tolist() == [0, 1, 2] and values["loss"].tolist() == [3.0, 2.0, 1.0]
    assert sent.of("data", "process") == []  # system_monitor=False: no process tree
    time.sleep(1.0)
    assert len(sent.of("data")) == 1  # the host is still sampled, but not sent
    widget.close()
    wait_for(lambda: not feed_threads())


def test_unknown_run_and_bad_arguments_say_what_to_do():
    monitor = process_monitor()
    with pytest.raises(RunNotFoundError, match=r"no run 'nope'.*tracklab\.runs\(\)"):
        tracklab.widget(run="nope")
    assert issubclass(RunNotFoundError, LookupError)
    with pytest.raises(TypeError, match="run must be a run id"):
        make_widget(monitor, run=42)

    class Elsewhere:
        id = "abc"
        data_dir = "/somewhere/else"

    with pytest.raises(ValueError, match="TRACKLAB_DATA_DIR"):
        make_widget(monitor, run=Elsewhere())


def test_step_columns_merge_a_step_logged_again_and_skip_older_ones():
    cols = StepColumns([])
    header, (x, v) = cols.backfill({"step": [0, 1], "metrics": {"loss": [1.0, 0.5]}})
    assert header == {"names": ["loss"], "n": 2}
    assert np.frombuffer(x).tolist() == [0, 1]
    # More logged at step 1, then step 2: step 1 again, whole, from 1.
    header, (x, v) = cols.update({"step": [1, 2], "metrics": {"acc": [0.9, None],
                                                               "loss": [None, 0.25]}})
    assert header == {"names": ["acc", "loss"], "n": 2, "from": 1}
    assert np.frombuffer(x).tolist() == [1, 2]
    values = np.frombuffer(v).reshape(2, 2)
    assert values[0].tolist()[0] == 0.9 and np.isnan(values[0][1])
    assert values[1].tolist() == [0.5, 0.25]
    # Only older steps: nothing for the front end; new names filtered by the globs.
    assert cols.update({"step": [0], "metrics": {"loss": [9.0]}}) is None
    only_loss = StepColumns(["loss"])
    assert only_loss.update({"step": [0], "metrics": {"acc": [1.0]}}) is None
    assert only_loss.backfill({"step": [], "metrics": {}})[0] == {"names": [], "n": 0}
