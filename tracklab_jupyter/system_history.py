"""``tracklab.history()``: recorded metrics as a pandas DataFrame.

    >>> h = tracklab.history("gpu.*.util_pct", start="-2h", step="1min")
    >>> df = h.to_pandas()          # UTC DatetimeIndex, one column per metric

numpy and the store are imported when history() is first called and pandas only when a
DataFrame is asked for, so ``import tracklab`` stays fast.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracklab_jupyter.store.config import check_agg
from tracklab_jupyter.store.timespec import parse_duration, parse_time

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from tracklab_jupyter.metrics.sample import Event
    from tracklab_jupyter.store.reader import Frame

__all__ = ["History", "UnknownMetricError", "history"]

_GLOB_CHARS = "*?["
#: Kernel events read (the newest before the history's end) to name its kernels.
MAX_KERNEL_EVENTS = 5000
_KERNEL_SERIES = re.compile(r"kernel\.([0-9a-f][0-9a-f-]{0,63})\.")


class UnknownMetricError(ValueError):
    """A requested metric is not in the store; the message lists close matches."""


def _matches(pattern: str, available: Sequence[str]) -> list[str]:
    if any(c in pattern for c in _GLOB_CHARS):
        return [name for name in available if fnmatch.fnmatchcase(name, pattern)]
    return [pattern] if pattern in set(available) else []


def _unknown(pattern: str, available: Sequence[str], data_dir: Path) -> UnknownMetricError:
    probe = pattern.replace("*", "0").replace("?", "0")
    close = difflib.get_close_matches(probe, available, n=6, cutoff=0.5)
    kind = "pattern" if any(c in pattern for c in _GLOB_CHARS) else "metric"
    hint = (f"; close matches: {', '.join(close)}" if close
            else f"; {len(available)} metrics are recorded (see History.metrics or "
                 "`python -m tracklab_jupyter history --list`)" if available
            else "; nothing is recorded there yet")
    known = ""
    if kind == "metric":
        from tracklab_jupyter.metrics.catalogue import is_known

        if is_known(pattern):
            known = " (a known metric, but this machine has not recorded it)"
    return UnknownMetricError(
        f"no {kind} {pattern!r} in the history at {data_dir}{known}{hint}")


def select_metrics(metrics: str | Iterable[str] | None, available: Sequence[str],
                   data_dir: Path) -> list[str] | None:
    """Expand names and globs against the stored names (None: all). Order follows the
    request; raises UnknownMetricError for a name or glob that matches nothing."""
    if metrics is None:
        return None
    requested = [metrics] if isinstance(metrics, str) else list(metrics)
    if not requested:
        raise ValueError("metrics is an empty list: pass None for every metric")
    chosen: list[str] = []
    for pattern in requested:
        if not isinstance(pattern, str):
            raise TypeError(f"metric names are strings, got {pattern!r}")
        found = _matches(pattern, available)
        if not found:
            raise _unknown(pattern, available, data_dir)
        chosen.extend(name for name in found if name not in chosen)
    return chosen


class History:
    """The result of :func:`history`: per-node arrays, turned into pandas on demand."""

    def __init__(self, frames: dict[str, Frame], *, metrics: list[str], tier: str,
                 step: float | None, agg: str, start: float, end: float,
                 events: list[Event], note: str | None = None,
                 data_dir: str | os.PathLike[str] | None = None) -> None:
        self.frames = frames
        #: The metric names in this history (the DataFrame's columns).
        self.metrics = metrics
        #: ``raw``, ``1min`` or ``1h``: where the data came from.
        self.tier = tier
        #: Bin width in seconds (None: raw samples as taken).
        self.step = step
        self.agg = agg
        self.start = start
        self.end = end
        #: Events (hardware changes, ...) in the same range and nodes, oldest first.
        self.events = events
        #: Why the data is coarser than asked, when it is.
        self.note = note
        #: The store it was read from (None: :meth:`info` names kernels from ``events``).
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._info: dict[str, dict[str, Any]] | None = None

    @property
    def nodes(self) -> list[str]:
        return sorted(self.frames)

    def __len__(self) -> int:
        """Number of distinct timestamps."""
        import numpy as np

        if not self.frames:
            return 0
        return int(np.unique(np.concatenate([f.times_ms for f in self.frames.values()])).size)

    def __repr__(self) -> str:
        step = "raw samples" if self.step is None else f"step {self.step:g}s"
        return (f"<History {len(self.metrics)} metrics × {len(self)} times, "
                f"{len(self.frames)} node(s), {self.tier} tier, {step}, agg={self.agg}>")

    # -- what the series are about -------------------------------------------------------
    def info(self) -> dict[str, dict[str, Any]]:
        """Per node: the static facts its recorder stored (CPU, memory, accelerators ...)
        and ``"kernels"``, the Jupyter kernels of this range, so ``kernel.<id>.*`` columns can
        be named::

            {"host": {..., "kernels": {"1a2b...": {"name": "python3",
                      "notebook": "work/train.ipynb", "first_seen": 1718000000.0,
                      "last_seen": None, "ended": None, "deaths": 0}}}}

        ``first_seen`` is when the kernel started, ``last_seen`` when it was shut down
        (``ended`` ``"stopped"``) or died for good (``"died"``; ``deaths`` counts its
        deaths, restarts included); None while it runs (or when its server ended without
        saying). A kernel is listed when its lifetime overlaps the range or the history holds
        its series. Read once (bounded: the newest :data:`MAX_KERNEL_EVENTS` kernel events
        before ``end``), then kept."""
        if self._info is None:
            self._info = self._read_info()
        return self._info

    def _read_info(self) -> dict[str, dict[str, Any]]:
        from tracklab_jupyter.kernels import KERNEL_EVENTS

        facts: dict[str, dict[str, Any]] = {}
        events = [e for e in self.events if e.kind in KERNEL_EVENTS]
        if self.data_dir is not None:
            from tracklab_jupyter.store.reader import StoreReader

            reader = StoreReader(self.data_dir)
            try:
                facts = reader.info()
                events = reader.events(None, self.end, kinds=KERNEL_EVENTS,
                                       limit=MAX_KERNEL_EVENTS)
            finally:
                reader.close()
        out: dict[str, dict[str, Any]] = {
            node: {**facts.get(node, {}), "kernels": {}} for node in self.frames}
        series = {(node, m.group(1)) for node, frame in self.frames.items()
                  for name in frame.names if (m := _KERNEL_SERIES.match(name))}
        for (node, kernel_id), kernel in _fold_kernels(events).items():
            alive_in_range = ((kernel["first_seen"] is None or kernel["first_seen"] < self.end)
                              and (kernel["last_seen"] is None
                                   or kernel["last_seen"] >= self.start))
            if alive_in_range or (node, kernel_id) in series:
                out.setdefault(node, {**facts.get(node, {}), "kernels": {}})
                out[node]["kernels"][kernel_id] = kernel
        for node, kernel_id in series:  # series whose events are no longer stored
            out[node]["kernels"].setdefault(kernel_id, {
                "name": None, "notebook": None, "first_seen": None, "last_seen": None,
                "ended": None, "deaths": 0})
        return out

    # -- pandas --------------------------------------------------------------------------
    def to_pandas(self) -> pd.DataFrame:
        """A DataFrame with a UTC DatetimeIndex named ``time`` and one column per metric;
        with several nodes the columns are a ``(node, metric)`` MultiIndex."""
        import numpy as np
        import pandas as pd

        def index(ms: np.ndarray) -> pd.DatetimeIndex:
            return pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True), name="time")

        if len(self.frames) <= 1:
            frame = next(iter(self.frames.values()), None)
            if frame is None:
                return pd.DataFrame(index=index(np.empty(0, dtype=np.int64)),
                                    columns=pd.Index(self.metrics, name="metric"),
                                    dtype="float64")
            # values is (metrics, times), C-ordered: its transpose is exactly the block
            # pandas keeps, so no copy is made.
            return pd.DataFrame(frame.values.T, index=index(frame.times_ms),
                                columns=pd.Index(frame.names, name="metric"), copy=False)
        times = np.unique(np.concatenate([f.times_ms for f in self.frames.values()]))
        labels: list[tuple[str, str]] = []
        blocks = []
        for node in self.nodes:
            frame = self.frames[node]
            full = np.full((len(frame.names), times.size), np.nan)
            full[:, np.searchsorted(times, frame.times_ms)] = frame.values
            blocks.append(full)
            labels += [(node, name) for name in frame.names]
        columns = pd.MultiIndex.from_tuples(labels, names=["node", "metric"])
        return pd.DataFrame(np.concatenate(blocks).T, index=index(times), columns=columns,
                            copy=False)

    def to_csv(self, path: str | os.PathLike[str],
               progress: Callable[[int, int], None] | None = None,
               chunk_rows: int = 20_000) -> Path:
        """Write the DataFrame as CSV (ISO 8601 UTC times); ``progress(done, total)`` is
        called after each chunk of rows."""
        df = self.to_pandas()
        path = Path(path)
        total = len(df)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            if total == 0:
                df.to_csv(fh)
            for first in range(0, total, chunk_rows):
                df.iloc[first:first + chunk_rows].to_csv(fh, header=first == 0)
                if progress is not None:
                    progress(min(first + chunk_rows, total), total)
        return path

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the DataFrame as Parquet (needs pyarrow)."""
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError(
                "History.to_parquet needs the pyarrow package, which is not installed: "
                "pip install pyarrow (or use to_csv)") from None
        df = self.to_pandas()
        if df.columns.nlevels > 1:
            # Parquet column names are strings: "node/metric".
            df = df.copy()
            df.columns = [f"{node}/{metric}" for node, metric in df.columns]
        path = Path(path)
        df.to_parquet(path)
        return path


def _fold_kernels(events: Iterable[Event]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(node, kernel id): {"name", "notebook", "first_seen", "last_seen", "ended",
    "deaths"}}`` from kernel events, oldest first."""
    from tracklab_jupyter.kernels import KERNEL_DIED, KERNEL_STARTED, KERNEL_STOPPED

    out: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        kernel_id = event.data.get("kernel_id")
        if not isinstance(kernel_id, str):
            continue
        kernel = out.setdefault((event.node, kernel_id), {
            "name": None, "notebook": None, "first_seen": None, "last_seen": None,
            "ended": None, "deaths": 0})
        kernel["name"] = event.data.get("kernel_name") or kernel["name"]
        kernel["notebook"] = event.data.get("notebook") or kernel["notebook"]
        if event.kind == KERNEL_STARTED:
            kernel["first_seen"] = kernel["first_seen"] or event.time
        elif event.kind == KERNEL_STOPPED:
            kernel["last_seen"], kernel["ended"] = event.time, "stopped"
        elif event.kind == KERNEL_DIED:
            kernel["deaths"] += 1
            if not event.data.get("restarted"):
                kernel["last_seen"], kernel["ended"] = event.time, "died"
    return out


def history(metrics: str | Iterable[str] | None = None, start: Any = "-1h", end: Any = None,
            step: Any = None, node: str | Sequence[str] | None = None, agg: str = "mean",
            data_dir: str | os.PathLike[str] | None = None) -> History:
    """Recorded metrics between ``start`` and ``end``.

    Args:
        metrics: a name (``"cpu.util_pct"``), a glob (``"gpu.*.util_pct"``), a list of
            either, or None for every recorded metric.
        start, end: a datetime (naive means UTC), epoch seconds, an ISO 8601 string, or a
            relative time such as ``"-15min"``, ``"-2h"``, ``"-1d"``; ``end`` None is now.
        step: None (raw samples for ranges raw data still covers, else the rollup tier's
            own 1-min or 1-h buckets) or a bin width (``"10s"``, ``"1min"``, seconds).
        node: one node name or several (default: every node).
        agg: how values within a bin combine: ``mean``, ``min``, ``max`` or ``last``.
        data_dir: the store's directory (default ``$TRACKLAB_DATA_DIR`` or ``~/.tracklab``).

    The tier (raw, 1-min or 1-h rollups) is chosen from the range and the step: the
    coarsest one fine enough for the step that still holds data back to ``start``.

    Jupyter kernels' figures are ``kernel.<kernel id>.*`` (``history("kernel.*.rss_bytes")``);
    :meth:`History.info` names each kernel's notebook (docs/KERNELS.md).
    """
    check_agg(agg)  # before the store is opened: a bad argument touches nothing
    now = time.time()
    t_start = parse_time(start, now)
    t_end = now if end is None else parse_time(end, now)
    if t_end <= t_start:
        raise ValueError(f"end ({end!r}) must be after start ({start!r})")
    step_s = None if step is None else parse_duration(step)
    from tracklab_jupyter.store.reader import StoreReader

    reader = StoreReader(data_dir)
    try:
        names = select_metrics(metrics, reader.metrics(), reader.data_dir)
        plan = reader.plan(t_start, step_s)
        if plan.note:
            warnings.warn(plan.note, stacklevel=2)
        frames = reader.read(names, t_start, t_end, node=node, tier=plan.tier,
                             step=plan.step if plan.tier != "raw" else step_s, agg=agg)
        events = reader.events(t_start, t_end, node=node)
        listed = names if names is not None else sorted(
            {name for f in frames.values() for name in f.names})
        return History(frames, metrics=listed, tier=plan.tier,
                       step=plan.step if plan.tier != "raw" else step_s, agg=agg,
                       start=t_start, end=t_end, events=events, note=plan.note,
                       data_dir=reader.data_dir)
    finally:
        reader.close()
