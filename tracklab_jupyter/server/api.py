"""The REST endpoints as plain functions, shared by the Jupyter extension and the
standalone server.

Each endpoint takes the :class:`~tracklab_jupyter.monitor.Monitor` and the query arguments
and returns a :class:`Reply`. Bad input raises :class:`ApiError`, which both servers turn
into ``400 {"error": ..., "detail": ...}``. Latest-sample endpoints read memory only; the
history and events endpoints read SQLite and are run off the event loop by the servers.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracklab_jupyter._version import __version__
from tracklab_jupyter.accelerators.registry import devices_in
from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.server.prometheus import render_prometheus

Params = Mapping[str, list[str]]


class ApiError(Exception):
    """A request the server cannot answer: ``status`` with a JSON error body."""

    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail

    def body(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}


@dataclass
class Reply:
    """An endpoint's answer. ``body`` is JSON-serialisable unless ``content_type`` says
    otherwise (then it is text). ``etag`` lets pollers get 304 Not Modified."""

    body: Any
    content_type: str = "application/json"
    etag: str | None = None
    last_modified: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass(frozen=True)
class Endpoint:
    """``handler(monitor, params, **path_args)`` answers ``method`` on ``path``, whose
    ``{name}`` parts are path arguments; a PATCH handler also gets ``body`` (bytes)."""

    path: str
    handler: Callable[..., Reply]
    blocking: bool = False  # reads SQLite: run in a thread, never on the event loop
    summary: str = ""
    method: str = "GET"


# -- query helpers --------------------------------------------------------------------

def one(params: Params, name: str, default: str | None = None) -> str | None:
    values = params.get(name)
    if not values:
        return default
    return values[-1]


def many(params: Params, name: str) -> list[str]:
    """``?metrics=a,b&metrics=c`` -> ``["a", "b", "c"]``."""
    out: list[str] = []
    for value in params.get(name, []):
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


def check_params(params: Params, allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed - {"token"})
    if unknown:
        raise ApiError(400, f"unknown query parameter {unknown[0]!r}",
                       f"accepted parameters: {', '.join(sorted(allowed)) or 'none'}")


def int_param(params: Params, name: str, default: int | None, low: int, high: int
              ) -> int | None:
    """An integer query parameter from ``low`` to ``high`` (400 otherwise)."""
    text = one(params, name)
    if text is None:
        return default
    try:
        value = int(text)
        if not low <= value <= high:
            raise ValueError
    except ValueError:
        raise ApiError(400, f"bad {name} {text!r}",
                       f"{name} must be an integer from {low} to {high}") from None
    return value


def _check_node(monitor: Monitor, params: Params) -> None:
    node = one(params, "node")
    if node is not None and node != monitor.node:
        raise ApiError(404, f"unknown node {node!r}", f"known nodes: {monitor.node}")


def _select(metrics: dict[str, float], patterns: list[str]) -> dict[str, float]:
    if not patterns:
        return metrics
    return {k: v for k, v in metrics.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)}


def _latest_etag(monitor: Monitor, params: Params) -> str | None:
    sample = monitor.latest
    if sample is None:
        return None
    query = "&".join(f"{k}={','.join(v)}" for k, v in sorted(params.items()) if k != "token")
    return f'W/"{sample.time:.3f}-{zlib.crc32(query.encode()):08x}"'


# -- endpoints ------------------------------------------------------------------------

def system_info(monitor: Monitor, params: Params) -> Reply:
    check_params(params, {"node"})
    node = one(params, "node")
    if node is not None and node != monitor.node:
        # A cluster node: the facts it sent with its first answers.
        facts = monitor.cluster.node_info(node) if monitor.cluster is not None else None
        if facts is None:
            known = [monitor.node] + ([n.name for n in monitor.cluster.node_states()]
                                      if monitor.cluster is not None else [])
            raise ApiError(404, f"unknown node {node!r}", f"known nodes: {', '.join(known)}")
        return Reply({"node": node, "version": __version__, "interval_s": monitor.interval,
                      "role": "remote", **facts, "accelerators": devices_in(facts)})
    info = monitor.info
    return Reply({"node": monitor.node, "version": __version__, "interval_s": monitor.interval,
                  "role": monitor.role, **info, "accelerators": devices_in(info)})


def system_metrics(monitor: Monitor, params: Params) -> Reply:
    check_params(params, {"node", "metrics"})
    _check_node(monitor, params)
    sample = monitor.latest
    if sample is None:
        raise ApiError(503, "no sample yet", "the sampler has not produced its first sample")
    metrics = _select(sample.metrics, many(params, "metrics"))
    return Reply({"time": sample.time, "node": sample.node, "metrics": metrics},
                 etag=_latest_etag(monitor, params), last_modified=sample.time)


def accelerators(monitor: Monitor, params: Params) -> Reply:
    check_params(params, {"node"})
    _check_node(monitor, params)
    sample = monitor.latest
    metrics = sample.metrics if sample else {}
    state = monitor.hardware_state()
    devices = []
    for dev in state["accelerators"]:
        prefix = f"{dev['kind']}.{dev['index']}."
        current = {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix)}
        devices.append({**dev, "metrics": current})
    return Reply({"node": monitor.node, "time": sample.time if sample else None,
                  "drivers": state["drivers"], "accelerators": devices,
                  "notes": state["notes"]},
                 etag=_latest_etag(monitor, params))


def hardware_cpu(monitor: Monitor, params: Params) -> Reply:
    check_params(params, {"node"})
    _check_node(monitor, params)
    sample = monitor.latest
    metrics = sample.metrics if sample else {}
    current = {k: v for k, v in metrics.items() if k.startswith(("cpu.", "proc."))}
    return Reply({"node": monitor.node, "time": sample.time if sample else None,
                  "system": monitor.info.get("system", {}), "cpu": monitor.info.get("cpu", {}),
                  "details": monitor.cpu_details(), "metrics": current},
                 etag=_latest_etag(monitor, params))


def cluster_info(monitor: Monitor, params: Params) -> Reply:
    check_params(params, set())
    return Reply(monitor.cluster_info())


def cluster_metrics(monitor: Monitor, params: Params) -> Reply:
    check_params(params, {"metrics", "node"})
    state = monitor.cluster_metrics()
    patterns = many(params, "metrics")
    wanted = one(params, "node")
    if wanted is not None and wanted not in state["nodes"]:
        raise ApiError(404, f"unknown node {wanted!r}",
                       f"nodes with a sample: {', '.join(sorted(state['nodes'])) or 'none'}")
    nodes = {name: {"time": n["time"], "metrics": _select(n["metrics"], patterns)}
             for name, n in state["nodes"].items() if wanted is None or name == wanted}
    newest = max((n["time"] for n in nodes.values()), default=0.0)
    query = "&".join(f"{k}={','.join(v)}" for k, v in sorted(params.items()) if k != "token")
    etag = f'W/"c{newest:.3f}-{len(nodes)}-{zlib.crc32(query.encode()):08x}"'
    return Reply({"provider": state["provider"], "nodes": nodes}, etag=etag)


def health(monitor: Monitor, params: Params) -> Reply:
    check_params(params, set())
    return Reply(monitor.health())


def history(monitor: Monitor, params: Params) -> Reply:
    check_params(params, {"metrics", "start", "end", "step", "agg", "node", "format"})
    fmt = one(params, "format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(400, f"unknown format {fmt!r}", "accepted formats: json, csv")
    query = {"start": one(params, "start", "-1h"), "end": one(params, "end"),
             "step": one(params, "step"), "agg": one(params, "agg", "mean")}
    check_history_query(query)
    try:
        hist = monitor.history(metrics=many(params, "metrics") or None,
                               node=one(params, "node"), **query)
    except (ValueError, LookupError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        raise ApiError(400, "bad history query", str(message)) from None
    table = history_columns(hist)
    if fmt == "csv":
        return Reply(_columns_to_csv(table), content_type="text/csv; charset=utf-8",
                     headers={"Content-Disposition": 'attachment; filename="history.csv"'})
    return Reply(table)


def check_history_query(query: dict[str, Any]) -> None:
    """Name the parameter that is wrong before the store is touched."""
    from tracklab_jupyter.store.timespec import parse_duration, parse_time

    for name in ("start", "end"):
        if query[name] is not None:
            try:
                parse_time(query[name])
            except ValueError as exc:
                raise ApiError(400, f"bad {name}", str(exc)) from None
    if query["step"] is not None:
        try:
            parse_duration(query["step"])
        except ValueError as exc:
            raise ApiError(400, "bad step", str(exc)) from None
    if query["agg"] not in ("mean", "min", "max", "last"):
        raise ApiError(400, "bad agg", f"agg must be mean, min, max or last; got "
                                       f"{query['agg']!r}")


def history_columns(hist: Any) -> dict[str, Any]:
    """A History as JSON columns: one shared ``time`` axis, one value list per
    (node, metric), ``None`` where a series has no value at that time."""
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
            series.append({"node": frame.node, "metric": name,
                           "values": [None if v != v else v for v in column.tolist()]})
    return {"time": (times_ms / 1000).tolist(), "nodes": hist.nodes, "step_s": hist.step,
            "tier": hist.tier, "agg": hist.agg, "series": series}


def _columns_to_csv(table: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    series = table["series"]
    header = ["time"] + [s["metric"] if len(table["nodes"]) <= 1 else f"{s['node']}:{s['metric']}"
                         for s in series]
    writer.writerow(header)
    for i, t in enumerate(table["time"]):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
        writer.writerow([stamp] + ["" if s["values"][i] is None else repr(s["values"][i])
                                   for s in series])
    return out.getvalue()


def events(monitor: Monitor, params: Params) -> Reply:
    check_params(params, {"start", "end", "kind", "node", "limit"})
    limit = int_param(params, "limit", 1000, 1, 100_000)
    try:
        found = monitor.events(start=one(params, "start", "-24h"), end=one(params, "end"),
                               kinds=many(params, "kind") or None, node=one(params, "node"),
                               limit=limit)
    except ValueError as exc:
        raise ApiError(400, "bad events query", str(exc)) from None
    return Reply({"events": found})


def prometheus(monitor: Monitor, params: Params) -> Reply:
    check_params(params, set())
    sample = monitor.latest
    text = render_prometheus(sample, monitor.info) if sample else ""
    return Reply(text, content_type="text/plain; version=0.0.4; charset=utf-8",
                 etag=_latest_etag(monitor, params))


SYSTEM_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("api/system/info", system_info, summary="Static facts about this machine"),
    Endpoint("api/system/metrics", system_metrics, summary="The latest sample"),
    Endpoint("api/hardware/accelerators", accelerators, summary="GPUs with current values"),
    Endpoint("api/hardware/cpu", hardware_cpu, summary="CPU facts and current values"),
    Endpoint("api/cluster/info", cluster_info, summary="Nodes of the cluster"),
    Endpoint("api/cluster/metrics", cluster_metrics, summary="Latest sample of every node"),
    Endpoint("api/history", history, blocking=True, summary="Stored metrics over a range"),
    Endpoint("api/events", events, blocking=True, summary="Hardware and run events"),
    Endpoint("api/health", health, summary="Sampler, store and version status"),
    Endpoint("metrics", prometheus, summary="Latest sample in Prometheus text format"),
)
