"""``tracklab.widget()``: live charts of this machine in a notebook output (anywidget).

The front end (js/widget.ts, bundled into static/) asks for data when it is rendered; the
kernel answers with the window's history (backfill), then the shared feed streams batches.
Works with or without the server extension (JupyterLab, Notebook 7, VS Code).

``tracklab.widget(run=...)`` shows one run (docs/RUNS.md): its header, one chart per logged
metric (x = step), its process tree, and the host panels from the run's start. The run's
data comes from the store; live changes from the monitor's run watcher, through the feed.

Both views show a banner while alerts are active (issue 15): the feed sends the active
ones when the view starts (an ``alerts`` message) and every change after as an ``event``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import traitlets

from tracklab_jupyter.accelerators.registry import card_facts, devices_in
from tracklab_jupyter.metrics.sample import Sample
from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.notebook.columns import StepColumns, table_columns, to_columns
from tracklab_jupyter.notebook.feed import json_safe
from tracklab_jupyter.notebook.feed_widget import FeedWidget, bundle
from tracklab_jupyter.sampler.hub import RUN, RUN_METRICS

log = logging.getLogger("tracklab_jupyter.notebook")

DEFAULT_WINDOW_S = 300.0
MAX_WINDOW_S = 7 * 86400.0
# A run's host panels: raw samples for a run of up to an hour, resampled to about this
# many rows beyond (a 7-day run at 1 Hz would be 600 000 rows).
RAW_BACKFILL_S = 3600.0
BACKFILL_ROWS = 2000
# A run's process-tree backfill is thinned to this many rows.
PROCESS_ROWS = 5000


class MonitorWidget(FeedWidget):
    """Live CPU, memory, disk, network and GPU panels. Create with :func:`tracklab.widget`."""

    _esm = bundle("widget.js")
    _css = bundle("widget.css")

    height = traitlets.Int(0, help="Chart height in pixels (0: automatic)").tag(sync=True)
    window_s = traitlets.Float(DEFAULT_WINDOW_S, help="Seconds of data shown").tag(sync=True)
    metrics = traitlets.List(traitlets.Unicode(), help="Metric globs shown ([]: all)"
                             ).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    run_id = traitlets.Unicode("", help="The run shown ('': this machine only)").tag(sync=True)

    # Class defaults: trait observers and __del__ may run before __init__ finishes.
    last_sent = 0.0
    #: System samples after this time are not sent (a run that ended; another node's run).
    sample_until = math.inf
    _run_pending: list[tuple[str, Any]] | None = None

    def __init__(self, monitor: Monitor, **kwargs: Any) -> None:
        self._run_lock = threading.Lock()
        self._steps = StepColumns([])
        super().__init__(monitor, **kwargs)

    def start_view(self) -> None:
        monitor = self._monitor
        monitor.wait_started()  # it opens NVML and SQLite in the background
        self.ready = False
        if self.run_id:
            self._start_run_view()
            return
        self.sample_until = math.inf
        self.send({"type": "init", "node": monitor.node, "interval_s": monitor.interval,
                   "window_s": self.window_s, "info": _panel_info(monitor.info)})
        samples = self._backfill()
        header, buffers = to_columns(samples, self.metrics)
        self.send({"type": "data", "backfill": True, **header}, buffers)
        self.last_sent = samples[-1].time if samples else time.time() - monitor.interval
        self.status = f"live · {monitor.role} · every {monitor.interval:g} s"
        self.ready = True
        self._feed.add(self)
        self._feed.request_alerts(self)

    # -- a run ---------------------------------------------------------------------------
    def _start_run_view(self) -> None:
        """init (with the run), the host panels' backfill from the run's start, the
        process tree's and the logged metrics' backfills; then the feed's live items."""
        _wait_for_run_watcher(self._monitor)
        with self._run_lock:
            self._run_pending = []  # the feed keeps this run's items from here on
        self._feed.add(self)  # subscribed to the hub before anything is read
        try:
            self._send_run_view()
        finally:
            self._run_pending = None  # (already None unless it failed)

    def _send_run_view(self) -> None:
        from tracklab_jupyter.runs.store import RunStore

        monitor = self._monitor
        with RunStore(monitor.data_dir) as store:
            run = store.get_run(self.run_id)
            metrics = store.metrics(self.run_id)
            process = store.process_metrics(self.run_id)
        node = run.get("node") or monitor.node
        here = node == monitor.node
        end = _run_end(run)
        until = time.time() if end is None else end
        since = max(float(run["start"]), until - self.window_s)
        info = monitor.info if here else _stored_info(monitor, node)
        self.send({"type": "init", "node": node, "interval_s": monitor.interval,
                   "window_s": self.window_s, "info": _panel_info(info),
                   "run": json_safe(run)})
        header, buffers, last = self._run_host_backfill(node, since, until, live=here)
        self.send({"type": "data", "backfill": True, **header}, buffers)
        self.last_sent = last
        self.sample_until = math.inf if here and end is None else until if here else -math.inf
        if run.get("system_monitor"):
            keep = [i for i, t in enumerate(process["time"]) if t >= since]
            table = {k: [v[i] for i in keep] for k, v in process["metrics"].items()}
            header, buffers = table_columns([process["time"][i] for i in keep], table,
                                            self.metrics, PROCESS_ROWS)
            self.send({"type": "data", "source": "process", "backfill": True, **header},
                      buffers)
        with self._run_lock:
            self._steps = StepColumns(self.metrics)
            header, buffers = self._steps.backfill(metrics)
            self.send({"type": "data", "source": "run", "backfill": True, **header}, buffers)
            pending, self._run_pending = self._run_pending or [], None
            for topic, item in pending:
                self._on_run_item(topic, item)
            self.status = (f"live · {monitor.role} · every {monitor.interval:g} s"
                           if end is None and here else
                           f"run on {node}: history only" if not here else
                           f"run {run['state']} · {_clock(since)}–{_clock(until)}")
            self.ready = True
        self._feed.request_alerts(self)

    def run_items(self, items: list[tuple[str, Any]]) -> None:
        """Live run changes and metrics from the feed (its thread): sent now, or kept for
        after the backfill while the view starts."""
        with self._run_lock:
            if self._run_pending is not None:
                self._run_pending.extend(items)
            elif self.ready:
                for topic, item in items:
                    self._on_run_item(topic, item)

    def _on_run_item(self, topic: str, item: dict[str, Any]) -> None:
        if topic == RUN:
            run = item.get("run") or {}
            if run.get("id") != self.run_id:
                return
            reason = item.get("reason")
            if reason == "deleted":
                run = {**run, "state": "deleted"}
            elif run.get("state") != "running" and self.sample_until == math.inf:
                end = _run_end(run)
                self.sample_until = end if end is not None else time.time()
            self.send({"type": "run_update", "reason": reason, "run": json_safe(run)})
        elif topic == RUN_METRICS and item.get("run") == self.run_id:
            out = self._steps.update(item)
            if out is not None:
                self.send({"type": "data", "source": "run", "backfill": False, **out[0]},
                          out[1])
            process = item.get("process")
            if process and process.get("time"):
                header, buffers = table_columns(process["time"], process["metrics"],
                                                self.metrics)
                self.send({"type": "data", "source": "process", "backfill": False,
                           **header}, buffers)

    def resend_run(self) -> None:
        """The whole run again (the feed lost some of its items)."""
        from tracklab_jupyter.runs.store import RunNotFoundError, RunStore

        try:
            with RunStore(self._monitor.data_dir) as store:
                metrics = store.metrics(self.run_id)
                process = store.process_metrics(self.run_id)
        except RunNotFoundError:  # deleted meanwhile: its run_update says so
            return
        with self._run_lock:
            if not self.ready:
                return
            header, buffers = self._steps.backfill(metrics)
            self.send({"type": "data", "source": "run", "backfill": True, **header}, buffers)
            header, buffers = table_columns(process["time"], process["metrics"],
                                            self.metrics, PROCESS_ROWS)
            self.send({"type": "data", "source": "process", "backfill": True, **header},
                      buffers)

    def _run_host_backfill(self, node: str, since: float, until: float, live: bool
                           ) -> tuple[dict[str, Any], list[bytes], float]:
        """The host panels over the run: stored samples of ``node`` in [since, until]
        (resampled beyond an hour), then newer ones still in memory when ``live``."""
        monitor = self._monitor
        samples: list[Sample] = []
        recorder = getattr(monitor, "_recorder", None)
        if recorder is not None:
            step = None
            if until - since > RAW_BACKFILL_S:
                step = (until - since) / BACKFILL_ROWS
            try:
                reader = recorder.reader
                tier = "raw"
                if step is not None:
                    plan = reader.plan(since, step)
                    tier, step = plan.tier, plan.step
                frames = reader.read(None, since, until + 1e-3, node=node, tier=tier,
                                     step=step)
                samples = _frame_samples(frames.get(node))
            except Exception:  # no store yet (first seconds of a new data dir)
                log.debug("tracklab: no stored history for the run", exc_info=True)
        if live:
            newest = samples[-1].time if samples else since
            samples += [s for s in list(monitor.recent) if newest < s.time <= until]
        header, buffers = to_columns(samples, self.metrics)
        last = samples[-1].time if samples else until - monitor.interval
        return header, buffers, last

    @traitlets.observe("window_s", "metrics", "run_id")
    def _on_view_change(self, change: dict[str, Any]) -> None:
        # A longer window, other metrics or another run need data the front end never
        # got: start over.
        if self.ready and change["new"] != change["old"]:
            self.restart_view()

    def _backfill(self) -> list[Sample]:
        """The window's samples: stored ones, then newer ones still in memory."""
        monitor = self._monitor
        since = time.time() - self.window_s
        stored: list[Sample] = []
        recorder = getattr(monitor, "_recorder", None)
        if recorder is not None:
            try:
                stored = recorder.reader.tail(since, node=monitor.node)
            except Exception:  # no store yet (first seconds of a new data dir)
                log.debug("tracklab: no stored history for the backfill", exc_info=True)
        newest = stored[-1].time if stored else since
        return stored + [s for s in list(monitor.recent) if s.time > newest]

def _panel_info(info: dict[str, Any]) -> dict[str, Any]:
    system = info.get("system", {})
    memory = info.get("memory", {})
    accelerators = [card_facts(d) for d in devices_in(info) if d.get("state") != "lost"]
    return {"cpu_model": system.get("cpu_model", ""),
            "cpu_count": system.get("cpu_logical_cores"),
            "mem_limit_bytes": (memory.get("effective_limit_bytes")
                                or system.get("memory_total_bytes")),
            "accelerators": accelerators}


def _run_end(run: dict[str, Any]) -> float | None:
    """When a run stopped (None while it runs): its end, else its last heartbeat."""
    if run.get("state") == "running":
        return None
    for key in ("end", "heartbeat", "start"):
        value = run.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return time.time()


def _wait_for_run_watcher(monitor: Monitor) -> None:
    """Make sure the monitor's run watcher runs. ``watch_runs`` takes the watcher's starting
    point in the store before it returns, so values logged before this call are in the
    backfill and values logged after it reach the feed."""
    monitor.watch_runs()


def _stored_info(monitor: Monitor, node: str) -> dict[str, Any]:
    recorder = getattr(monitor, "_recorder", None)
    try:
        return recorder.reader.info(node).get(node, {}) if recorder is not None else {}
    except Exception:
        return {}


def _frame_samples(frame: Any) -> list[Sample]:
    if frame is None:
        return []
    import numpy as np

    out: list[Sample] = []
    for j, t in enumerate(frame.times_ms.tolist()):
        column = frame.values[:, j]
        present = ~np.isnan(column)
        out.append(Sample(t / 1000, frame.node, dict(zip(
            (frame.names[i] for i in np.flatnonzero(present)), column[present].tolist(),
            strict=True))))
    return out


def _clock(t: float) -> str:
    return time.strftime("%H:%M", time.localtime(t))


def _run_id(run: Any) -> str:
    run_id = run if isinstance(run, str) else getattr(run, "id", None)
    if not isinstance(run_id, str) or not run_id:
        raise TypeError(f"run must be a run id (a string) or a run from tracklab.init(), "
                        f"got {run!r}")
    return run_id


def make_widget(monitor: Monitor, metrics: str | Sequence[str] | None = None,
                window: float | str | None = None, node: str | None = None,
                height: int | None = None, run: Any = None) -> MonitorWidget:
    """Validate the arguments of :func:`tracklab.widget` and build the widget.

    ``window`` defaults to 5 minutes, or with ``run`` to the run's whole life (7 days at
    most: a run's host panels start at the run's start or ``window`` before its end)."""
    from tracklab_jupyter.store.timespec import parse_duration

    if window is None:
        window = MAX_WINDOW_S if run is not None else DEFAULT_WINDOW_S
    window_s = parse_duration(window)
    if not 1 <= window_s <= MAX_WINDOW_S:
        raise ValueError(f"window must be between 1 s and 7 days, got {window!r}")
    if node is not None and node != monitor.node:
        raise ValueError(f"unknown node {node!r}: this kernel monitors {monitor.node!r}")
    if height is not None and not (isinstance(height, int) and 60 <= height <= 2000):
        raise ValueError(f"height must be a number of pixels from 60 to 2000, got {height!r}")
    globs = [metrics] if isinstance(metrics, str) else list(metrics or [])
    run_id = ""
    if run is not None:
        run_id = _check_run(monitor, run)
        if hasattr(monitor, "watch_runs"):
            monitor.watch_runs()  # early: it opens the store in its own thread
    return MonitorWidget(monitor, metrics=globs, window_s=window_s, height=height or 0,
                         run_id=run_id)


def _check_run(monitor: Monitor, run: Any) -> str:
    """The run's id, once the run is known to be in this kernel's data dir."""
    from tracklab_jupyter.runs.store import RunNotFoundError, RunStore
    from tracklab_jupyter.store.paths import resolve_data_dir

    run_id = _run_id(run)
    run_dir = getattr(run, "data_dir", None)
    if run_dir is not None and resolve_data_dir(run_dir) != monitor.data_dir:
        raise ValueError(
            f"run {run_id} is recorded in {run_dir}, but this kernel's widgets read "
            f"{monitor.data_dir}: start the run without data_dir=, or set "
            "TRACKLAB_DATA_DIR to the same folder before the kernel starts")
    try:
        with RunStore(monitor.data_dir) as store:
            store.get_run(run_id)
    except RunNotFoundError as exc:
        raise RunNotFoundError(
            f"{exc}. tracklab.widget(run=...) takes run.id of tracklab.init(...) or an id "
            "from tracklab.runs(); runs started with another data_dir= are not in this "
            "kernel's store") from None
    return run_id
