"""Stored history over HTTP, bounded: ``api/history`` and the system part of a run.

A reply holds at most ``max_history_points`` values. Its size is known before anything is
read (series x rows, from the store's block counts), so a request that would be larger
either gets the finest step that fits (when it did not fix ``step``; the reply says so) or
a 413 naming the limit and how to narrow it. The reply is encoded in small pieces off the
event loop: JSON per column chunk, CSV per block of rows.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tracklab_jupyter.server.endpoint import ApiError, Request
from tracklab_jupyter.server.limits import Limits, clip
from tracklab_jupyter.store.plan import choose_tier

#: Steps chosen for a request that did not fix one: the finest that fits the cap.
NICE_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                43200, 86400, 604800)
_VALUES_PER_PIECE = 4096  # json.dumps holds the GIL: encode a few thousand values at a time


@dataclass(frozen=True)
class Query:
    metrics: list[str] | None
    start: float
    end: float
    step_s: float | None
    agg: str
    node: str | None


@dataclass
class Sized:
    """How a query will be answered: the step used (None: raw samples), whether the
    server chose it to fit the cap, and why the data is coarser than asked, if it is."""

    step_s: float | None
    auto: bool
    note: str | None = None


def step_text(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms"


def hide_paths(message: str, data_dir: Any) -> str:
    """``message`` without the server's data directory (or its database) in it."""
    for path in sorted({str(data_dir), str(data_dir) + "/metrics.db"}, key=len, reverse=True):
        message = message.replace(path, "the data directory")
    return message


def store_error(exc: Exception, data_dir: Any) -> ApiError:
    """A store exception as an API error that never shows the server's paths."""
    from tracklab_jupyter.store.db import StoreUnavailableError, unavailable_reason
    from tracklab_jupyter.store.schema import StoreVersionError

    message = hide_paths(str(exc.args[0] if exc.args else exc), data_dir)
    if isinstance(exc, StoreUnavailableError | StoreVersionError):
        return ApiError(503, "store unavailable", message)
    reason = unavailable_reason(exc) if isinstance(exc, OSError | sqlite3.Error) else None
    if reason is not None:
        return ApiError(503, "store unavailable", reason)
    if isinstance(exc, FileNotFoundError):
        return ApiError(503, "no store yet", "nothing has been recorded in the data "
                                             "directory yet")
    return ApiError(400, "bad history query", message)


def size_query(reader: Any, query: Query, names: list[str] | None,
               oldest: dict[str, float | None], limits: Limits) -> Sized:
    """The step of the reply, sized before reading it (``oldest``: each tier's oldest
    data); ApiError 413 when it cannot fit."""
    wanted = None if names is None else set(names)
    series = sum(1 for _, name in reader.series(query.node) if wanted is None or name in wanted)
    known = [t for t in oldest.values() if t is not None]
    start = max(query.start, min(known)) if known else query.end
    span = max(query.end - start, 0.0)
    plan = choose_tier(query.start, query.step_s, oldest)
    step = plan.step if plan.tier != "raw" else query.step_s
    rows = (reader.raw_rows(start, query.end, query.node) if step is None
            else math.ceil(span / step))
    points = series * rows
    cap = limits.max_history_points
    if points <= cap:
        return Sized(step, auto=False, note=plan.note)
    fits = next((s for s in NICE_STEPS_S if series * math.ceil(span / s) <= cap), None)
    if query.step_s is not None or fits is None:
        hint = (f"use step={step_text(fits)} or coarser, fewer metrics, or a shorter range"
                if fits is not None else "ask for fewer metrics or a shorter range")
        raise ApiError(413, "reply too large",
                       f"{points} values ({series} series x {rows} rows) exceed "
                       f"max_history_points ({cap}): {hint}")
    return Sized(float(fits), auto=True,
                 note=f"step {step_text(fits)} chosen: a finer one would exceed "
                      f"max_history_points ({cap})")


def read_history(request: Request, query: Query) -> tuple[Any, Sized]:
    """The History for ``query``, sized to the limits (blocking)."""
    from tracklab_jupyter.store.reader import StoreReader
    from tracklab_jupyter.system_history import History, UnknownMetricError, select_metrics

    monitor = request.monitor
    try:
        reader = StoreReader(monitor.data_dir)
        try:
            names = select_metrics(query.metrics, reader.metrics(), reader.data_dir)
            if query.end <= query.start:
                return History({}, metrics=names or [], tier="raw", step=query.step_s,
                               agg=query.agg, start=query.start, end=query.end,
                               events=[]), Sized(query.step_s, auto=False)
            oldest = reader.oldest()
            sized = size_query(reader, query, names, oldest, request.limits)
            step = sized.step_s if sized.auto else query.step_s
            plan = choose_tier(query.start, step, oldest)
            used = plan.step if plan.tier != "raw" else step
            frames = reader.read(names, query.start, query.end, node=query.node,
                                 tier=plan.tier, step=used, agg=query.agg)
        finally:
            reader.close()
    except UnknownMetricError as exc:
        raise ApiError(404, "unknown metric",
                       clip(hide_paths(str(exc), monitor.data_dir), 400)) from None
    except (OSError, ValueError, RuntimeError, sqlite3.Error) as exc:
        raise store_error(exc, monitor.data_dir) from None
    listed = names if names is not None else sorted(
        {name for f in frames.values() for name in f.names})
    sized.step_s = used
    sized.note = plan.note or sized.note
    return History(frames, metrics=listed, tier=plan.tier, step=used, agg=query.agg,
                   start=query.start, end=query.end, events=[]), sized


def history_table(hist: Any, sized: Sized) -> dict[str, Any]:
    """A History as columns: one shared ``time`` axis, one value list per (node, metric),
    ``None`` where a series has no value at that time."""
    import numpy as np

    frames = [hist.frames[n] for n in hist.nodes]
    times_ms = (np.unique(np.concatenate([f.times_ms for f in frames]))
                if frames else np.array([], dtype=np.int64))
    series = []
    for frame in frames:
        where = np.searchsorted(times_ms, frame.times_ms)
        for i, name in enumerate(frame.names):
            column = np.full(times_ms.shape, np.nan)
            column[where] = frame.values[i]
            series.append({"node": frame.node, "metric": name, "values": column})
    return {"time": times_ms / 1000, "nodes": hist.nodes, "step_s": sized.step_s,
            "step": step_text(sized.step_s), "auto_step": sized.auto, "note": sized.note,
            "tier": hist.tier, "agg": hist.agg, "series": series}


def _array_pieces(values: Any) -> Iterator[str]:
    """A float array as a JSON list (NaN as null), a few thousand values per piece."""
    yield "["
    for first in range(0, len(values), _VALUES_PER_PIECE):
        chunk = values[first:first + _VALUES_PER_PIECE].tolist()
        text = json.dumps([None if v != v else v for v in chunk], allow_nan=False)
        yield ("," if first else "") + text[1:-1]
    yield "]"


def json_pieces(table: dict[str, Any], extra: dict[str, Any] | None = None
                ) -> Iterator[bytes]:
    """The table (and ``extra`` top-level fields) as JSON, in pieces of about 64 KB."""
    def pieces() -> Iterator[str]:
        head = {k: v for k, v in table.items() if k not in ("time", "series")}
        yield json.dumps(head)[:-1] + ', "time": '
        yield from _array_pieces(table["time"])
        yield ', "series": ['
        for i, s in enumerate(table["series"]):
            yield ("," if i else "") + json.dumps({"node": s["node"], "metric": s["metric"]}
                                                  )[:-1] + ', "values": '
            yield from _array_pieces(s["values"])
            yield "}"
        yield "]}"
    return _batched(pieces(), extra)


def _batched(pieces: Iterator[str], extra: dict[str, Any] | None) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    if extra:
        # ``{"a": 1, "history": <table>}``: the table nested under its key.
        buffer.append(json.dumps({k: v for k, v in extra.items() if k != "history"})[:-1]
                      + ', "history": ')
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= 65536:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if extra:
        buffer.append("}")
    if buffer:
        yield "".join(buffer).encode()


def csv_chunks(table: dict[str, Any]) -> Iterator[bytes]:
    """The table as CSV (ISO 8601 UTC times, empty cells where a series has no value), in
    chunks of about 64 KB. Numbers are written by the JSON encoder (C, the same digits as
    ``repr``), a few thousand at a time so the event loop is never kept waiting long."""
    import numpy as np

    series = table["series"]
    multi = len(table["nodes"]) > 1
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(
        ["time"] + [f"{s['node']}:{s['metric']}" if multi else s["metric"] for s in series])
    times_ms = np.round(np.asarray(table["time"], dtype=float) * 1000).astype("int64")
    stamps = np.datetime_as_string(times_ms.astype("datetime64[ms]"), unit="ms")
    values = (np.vstack([s["values"] for s in series]).T if series
              else np.empty((len(times_ms), 0)))
    rows_per_piece = max(1, _VALUES_PER_PIECE // max(1, len(series)))

    def pieces() -> Iterator[str]:
        yield header.getvalue()
        for first in range(0, len(times_ms), rows_per_piece):
            block = values[first:first + rows_per_piece]
            text = json.dumps(block.tolist())  # [[v, v], [v, v]], NaN for a gap
            lines = (text[2:-2].replace("], [", "\n").replace(", ", ",")
                     .replace("NaN", "").replace("Infinity", "inf"))
            cells = lines.split("\n") if series else [""] * len(block)
            stamp = stamps[first:first + rows_per_piece]
            yield "".join(f"{t}Z,{c}\n" if series else f"{t}Z\n"
                          for t, c in zip(stamp.tolist(), cells, strict=True))
    return _batched(pieces(), None)


def step_header(sized: Sized) -> dict[str, str]:
    text = step_text(sized.step_s)
    return {"X-TrackLab-Step": text} if text else {}
