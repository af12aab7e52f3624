"""``tracklab.init()`` and the :class:`Run` it returns."""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import operator
import os
import secrets
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracklab_jupyter.runs import metadata
from tracklab_jupyter.runs.lifecycle import reap_crashed
from tracklab_jupyter.runs.run_writer import ActiveRun, RunWriter, close_writers, run_writer
from tracklab_jupyter.runs.store import (
    FAILED,
    FINISHED,
    RUNNING,
    MetricRow,
    RunNotFoundError,
    check_notes,
    check_project,
    check_run_name,
    check_tags,
)
from tracklab_jupyter.settings import DEFAULT_INTERVAL
from tracklab_jupyter.store.paths import ensure_data_dir

if TYPE_CHECKING:
    from tracklab_jupyter.monitor import Monitor
    from tracklab_jupyter.runs.run_history import RunHistory

ENV_PROJECT = "TRACKLAB_PROJECT"
DEFAULT_PROJECT = "default"
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
MAX_METRIC_NAME = 200

_state_lock = threading.RLock()
_active: dict[str, Run] = {}
_current: Run | None = None
_hooks_installed = False


def new_run_id() -> str:
    """8 random base-36 characters: short enough to type, 2.8e12 possibilities."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def _number(name: str, value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        out = float(value)
    else:
        item = getattr(value, "item", None)  # numpy scalars, 0-d arrays, torch tensors
        try:
            out = float(item()) if callable(item) else float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"run.log: {name!r} is a {type(value).__name__}, not a number; log numbers "
                "(a one-element tensor or array works; call .mean() on bigger ones)") from None
    return out if not math.isnan(out) else None


class Run:
    """One training run: log metrics with :meth:`log`, end it with :meth:`finish` (or a
    ``with`` block). Create it with :func:`tracklab.init`."""

    def __init__(self, *, run_id: str, project: str, name: str, config: dict[str, Any],
                 tags: list[str], node: str, start: float, data_dir: Path,
                 writer: RunWriter, system_monitor: bool, first_step: int = 0,
                 owned: bool = True) -> None:
        self.id = run_id
        self.project = project
        self.name = name
        #: The config as stored (JSON types).
        self.config = config
        self.tags = tags
        self.node = node
        self.start = start
        self.data_dir = data_dir
        self.system_monitor = system_monitor
        self.state = RUNNING
        self.end: float | None = None
        self._writer = writer
        self._step = first_step
        self._lock = threading.Lock()
        self._owned = owned  # ended by this process's exit (False for attached runs)

    def __repr__(self) -> str:
        return (f"<tracklab Run {self.id} {self.project}/{self.name} {self.state}, "
                f"step {self._step}>")

    @property
    def step(self) -> int:
        """The step the next ``log()`` without ``step=`` will use."""
        return self._step

    @property
    def summary(self) -> dict[str, float | None]:
        """The last logged value of each metric."""
        with self._writer._cond:
            active = self._writer._active.get(self.id)
            return dict(active.summary) if active is not None else {}

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record ``{name: number}`` at ``step`` (default: one past the last step).

        Several calls with the same ``step`` add to the same row. Values are numbers (a
        one-element numpy array or torch tensor is read with ``.item()``); NaN is kept as
        a missing value. Cheap: the values are written by a background thread.
        """
        if not isinstance(metrics, Mapping):
            raise TypeError("run.log takes a dict of metric names to numbers, e.g. "
                            f"run.log({{'loss': 0.25}}); got {type(metrics).__name__}")
        values: dict[str, float | None] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name or len(name) > MAX_METRIC_NAME:
                raise ValueError(f"run.log: metric names are non-empty strings of at most "
                                 f"{MAX_METRIC_NAME} characters; got {name!r}")
            values[name] = _number(name, value)
        if step is not None:
            try:
                step = operator.index(step)
            except TypeError:
                raise TypeError(f"run.log: step must be an integer, got {step!r}") from None
            if step < 0:
                raise ValueError(f"run.log: step must be 0 or more, got {step}")
        with self._lock:
            if self.state != RUNNING:
                raise RuntimeError(f"run {self.id} is {self.state}; start a new one with "
                                   "tracklab.init()")
            if step is None:
                step = self._step
            self._step = max(self._step, step + 1)
        now = time.time()
        rows: list[MetricRow] = [(self.id, step, now, n, v) for n, v in values.items()]
        self._writer.log(self.id, rows, values)

    def finish(self, error: str | None = None) -> None:
        """End the run: ``finished``, or ``failed`` when ``error`` (a message) is given.
        Waits until everything logged is saved. Calling it again does nothing."""
        self._end(FAILED if error else FINISHED, error)

    def _end(self, state: str, error: str | None) -> None:
        global _current
        with self._lock:
            if self.state != RUNNING:
                return
            self.state = state
            self.end = time.time()
        self._writer.end(self.id, state, self.end, error)
        self._writer.flush()
        with _state_lock:
            _active.pop(self.id, None)
            if _current is self:
                _current = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        if exc_type is None:
            self.finish()
        else:
            self._end(FAILED, _describe(exc_type, exc))

    def history(self, metrics: Any = None, system: Any = None, step: Any = None,
                agg: str = "mean") -> RunHistory:
        """This run's metrics and the host's system metrics over its lifetime; see
        :class:`~tracklab_jupyter.runs.run_history.RunHistory` (``.to_pandas()``)."""
        from tracklab_jupyter.runs.run_history import run_history

        self._writer.flush()
        return run_history(self.id, metrics=metrics, system=system, step=step, agg=agg,
                           data_dir=self.data_dir)


def _describe(exc_type: type[BaseException], exc: BaseException | None) -> str:
    text = "".join(traceback.format_exception_only(exc_type, exc)).strip()
    return text[-2000:]


# -- process exit ---------------------------------------------------------------------

def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    # An uncaught exception in a script: its runs failed. (Python then runs atexit, where
    # the remaining runs finish.) IPython does not call this for cell errors, so a
    # notebook's run survives a failing cell.
    try:
        for run in list(_active.values()):
            if run._owned:
                run._end(FAILED, _describe(exc_type, exc))
    finally:
        _previous_excepthook(exc_type, exc, tb)


_previous_excepthook = sys.excepthook


def _at_exit() -> None:
    for run in list(_active.values()):
        if run._owned:
            with contextlib.suppress(Exception):  # never raise from an exit handler
                run._end(FINISHED, None)
    close_writers()


def _install_hooks() -> None:
    global _hooks_installed, _previous_excepthook
    if _hooks_installed:
        return
    _hooks_installed = True
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    # atexit runs handlers last-in first-out: the kernel monitor (registered earlier, when
    # system_monitor started it) stops after the runs are finished and saved.
    atexit.register(_at_exit)


# -- init -----------------------------------------------------------------------------

def _monitor_for(data_dir: Path) -> Monitor:
    from tracklab_jupyter.process_monitor import process_monitor

    monitor = process_monitor(data_dir)
    if not monitor.wait_started(15.0):
        raise RuntimeError(f"tracklab could not start monitoring {data_dir}: "
                           f"{monitor.health().get('error') or 'timed out'}")
    return monitor


def init(project: str | None = None, name: str | None = None, config: Any = None,
         tags: list[str] | None = None, system_monitor: bool = True, notes: str | None = None,
         data_dir: str | os.PathLike[str] | None = None) -> Run:
    """Start a run (see docs/RUNS.md). Finishes this process's previous run, if any."""
    global _current
    if project is None:
        project = os.environ.get(ENV_PROJECT) or DEFAULT_PROJECT
    project = check_project(project)
    config_text = metadata.config_json(config)
    tags = check_tags(tags)
    notes = check_notes(notes)
    if name is not None:
        name = check_run_name(name)
    directory = ensure_data_dir(data_dir)
    monitor = _monitor_for(directory) if system_monitor else None
    node = monitor.node if monitor is not None else socket.gethostname()
    with _state_lock:
        if _current is not None:
            _current.finish()
        writer = run_writer(directory)
        with writer.db_lock:
            reap_crashed(writer.store, node)
            if name is None:
                name = f"run-{writer.store.count_runs(project) + 1}"
        cwd = os.getcwd()
        start = time.time()
        me = _this_process()
        run_id = new_run_id()
        row = {"id": run_id, "project": project, "name": name, "node": node,
               "pid": me[0], "pid_start": me[1], "command": metadata.command_line(),
               "cwd": cwd, "git": metadata.git_state(cwd), "python": metadata.python_version(),
               "config": config_text, "tags": tags, "notes": notes,
               "system_monitor": system_monitor, "start": start}
        with writer.db_lock:
            writer.store.create_run(row)
        run = Run(run_id=run_id, project=project, name=name, config=json.loads(config_text),
                  tags=tags, node=node, start=start, data_dir=directory, writer=writer,
                  system_monitor=system_monitor)
        writer.add(ActiveRun(run_id, system_monitor,
                             interval=monitor.interval if monitor is not None else DEFAULT_INTERVAL,
                             latest_metrics=_latest_of(monitor)))
        _active[run_id] = run
        _current = run
        _install_hooks()
        return run


def _this_process() -> tuple[int, float | None]:
    import psutil

    try:
        return os.getpid(), psutil.Process().create_time()
    except psutil.Error:
        return os.getpid(), None


def _latest_of(monitor: Monitor | None) -> Any:
    def latest() -> dict[str, float] | None:
        sample = monitor.latest if monitor is not None else None
        return sample.metrics if sample is not None else None
    return latest


def current_run() -> Run | None:
    """The run :func:`init` started last in this process, while it runs."""
    return _current


def attach(run_id: str, data_dir: str | os.PathLike[str] | None = None) -> Run:
    """A handle on a running run, this process's or another's, to log into it. An
    attached run is not finished when this process exits."""
    with _state_lock:
        run = _active.get(run_id)
        if run is not None:
            return run
    directory = ensure_data_dir(data_dir)
    writer = run_writer(directory)
    with writer.db_lock:
        info = writer.store.get_run(run_id)
        steps = writer.store.conn.execute(
            "SELECT max(step) FROM run_metrics WHERE run_id = ?", (run_id,)).fetchone()[0]
    if info["state"] != RUNNING:
        raise RuntimeError(f"run {run_id} is {info['state']}: only a running run can be "
                           "logged into")
    run = Run(run_id=run_id, project=info["project"], name=info["name"],
              config=info["config"], tags=info["tags"], node=info["node"],
              start=info["start"], data_dir=directory, writer=writer, system_monitor=False,
              first_step=(steps + 1) if steps is not None else 0, owned=False)
    # Not added to the writer's active runs: heartbeats from here would hide the owner's
    # crash.
    return run


__all__ = ["Run", "RunNotFoundError", "attach", "current_run", "init"]
