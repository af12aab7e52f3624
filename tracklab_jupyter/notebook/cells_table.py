"""``tracklab.cells()``: the stored per-cell costs as a DataFrame (see docs/CELLS.md)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from tracklab_jupyter.metrics.sample import Event

MAX_LIMIT = 100_000  # rows one call returns
PAGE = 5_000  # events read at a time while filtering by kernel

#: The columns every frame has, in this order; one ``<device>.<figure>`` column per
#: accelerator figure follows (``gpu.0.mem_peak_bytes``, ``gpu.0.util_mean_pct``...).
COLUMNS = ["start", "end", "execution_count", "source", "notebook", "kernel_id", "cell_id",
           "wall_s", "cpu_s", "rss_start_bytes", "rss_end_bytes", "rss_peak_bytes",
           "rss_change_bytes", "procs", "host_mem_peak_bytes", "success"]


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_LIMIT}; got {limit!r}")
    return limit


def _kernel_filter(kernel: Any) -> str | None:
    if kernel is None:
        return None
    if kernel == "this":
        from tracklab_jupyter.notebook.cells import kernel_id

        found = kernel_id()
        if found is None:
            raise ValueError("kernel='this' works inside a Jupyter kernel only (no kernel "
                             "connection file here); pass a kernel id or None")
        return found
    if not isinstance(kernel, str) or not kernel or len(kernel) > 200:
        raise ValueError(f"kernel must be None, 'this' or a kernel id; got {kernel!r}")
    return kernel


def _row(event: Event) -> dict[str, Any]:
    data = dict(event.data or {})
    row = {key: data.get(key) for key in COLUMNS}
    row["start"] = data.get("start", event.time)
    if "rss_peak_bytes" not in data and "mem_peak_bytes" in data:
        # Events stored before the kernel's own figures: their peak was the host's.
        row["host_mem_peak_bytes"] = data["mem_peak_bytes"]
    for device, figures in (data.get("gpus") or {}).items():
        for name, value in (figures or {}).items():
            row[f"{device}.{name}"] = value
    return row


def _read(reader: Any, start: float, end: float, kernel: str | None,
          limit: int) -> list[Event]:
    """The newest ``limit`` cell events of ``kernel`` (or of all kernels), oldest first."""
    if kernel is None:
        return list(reader.events(start, end, kinds=["cell"], limit=limit))
    found: list[Event] = []
    while len(found) < limit:
        page = reader.events(start, end, kinds=["cell"], limit=PAGE)
        found.extend(e for e in reversed(page) if (e.data or {}).get("kernel_id") == kernel)
        if len(page) < PAGE:
            break
        # The next page ends before this one's oldest event (the end bound is exclusive).
        end = page[0].time
    found = found[:limit]
    found.reverse()
    return found


def cells_frame(start: Any = "-24h", end: Any = None, kernel: str | None = None,
                data_dir: str | os.PathLike[str] | None = None,
                limit: int = 1000) -> pd.DataFrame:
    """Stored cells with their costs, one row per cell, sorted by start.

    Columns: :data:`COLUMNS` (``start``/``end`` as UTC datetimes), then one column per
    accelerator figure, e.g. ``gpu.0.mem_peak_bytes`` (the kernel's processes' memory peak on
    that device) and ``gpu.0.util_mean_pct`` (the device's mean utilisation). ``kernel``:
    None (every kernel), ``"this"`` (the calling kernel) or a kernel id. ``limit``: the
    newest 1 to :data:`MAX_LIMIT` cells. Raises ValueError for a bad argument and
    :class:`~tracklab_jupyter.store.reader.StoreNotFoundError`-like errors as ``history``.
    """
    import pandas as pd

    from tracklab_jupyter.store.db import unavailable_as_error
    from tracklab_jupyter.store.reader import StoreReader
    from tracklab_jupyter.store.timespec import parse_time

    limit = _check_limit(limit)
    wanted = _kernel_filter(kernel)
    now = time.time()
    t_start = parse_time(start, now)
    t_end = now + 1 if end is None else parse_time(end, now)
    if t_end <= t_start:
        raise ValueError(f"end ({end!r}) must be after start ({start!r})")
    reader = StoreReader(data_dir)
    try:
        with unavailable_as_error(reader.data_dir):
            events = _read(reader, t_start, t_end, wanted, limit)
    finally:
        reader.close()
    rows = [_row(e) for e in events]  # a cell event's time is its start: already in order
    devices = sorted({c for r in rows for c in r if c not in COLUMNS}, key=_device_order)
    frame = pd.DataFrame(rows, columns=COLUMNS + devices)
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame


def _device_order(column: str) -> tuple[int, int, str]:
    kind, index, figure = column.split(".", 2)
    rank = {"gpu": 0, "npu": 1, "tpu": 2}.get(kind, 3)
    return rank, int(index) if index.isdigit() else 0, figure
