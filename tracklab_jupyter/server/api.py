"""The system endpoints (latest samples, hardware, cluster, history, events, health,
Prometheus), shared by the Jupyter extension and the standalone server.

Latest-sample endpoints (system, hardware, cluster) and health answer from memory on the
event loop (health also stats the store's files and reads the lock file's holder), with one
exception: on a reader-role server (another process records) the machine facts
(``Monitor.info``) that ``api/system/info``, ``api/hardware/*`` and ``api/cluster/info``
include are read from the recorder's SQLite store while none are in memory yet (asked before
the reader's tail thread first brought them): a small read of the ``info`` rows. History,
events and ``/metrics`` read SQLite and are run off the event loop (``blocking``). Each
endpoint is declared once (:class:`Endpoint`), with its parameters, responses and errors,
which is also what the OpenAPI document says.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

from tracklab_jupyter._version import __version__
from tracklab_jupyter.accelerators.registry import devices_in
from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.prometheus.exposition import TooManySeries, render_pieces
from tracklab_jupyter.prometheus.view import scrape_view
from tracklab_jupyter.server import history_api
from tracklab_jupyter.server.diagnosis import running_diagnosis
from tracklab_jupyter.server.endpoint import ApiError, Endpoint, Reply, Request, json_response
from tracklab_jupyter.server.history_api import Query
from tracklab_jupyter.server.limits import Limits, clip
from tracklab_jupyter.server.metric_filter import MetricFilter
from tracklab_jupyter.server.params import (
    Param,
    duration_param,
    enum_param,
    int_param,
    names_param,
    node_param,
    parse_duration,
    parse_time,
    time_param,
)
from tracklab_jupyter.store.config import AGGREGATES


def _node(limits: Limits) -> tuple[Param, ...]:
    return (node_param(),)


def _node_metrics(limits: Limits) -> tuple[Param, ...]:
    return (node_param(), names_param(
        "metrics", "Metric names or globs, comma separated or repeated (e.g. "
        "`gpu.*.util_pct`); names that match nothing are left out", limits))


def _select(metrics: dict[str, float], patterns: list[str] | None) -> dict[str, float]:
    return MetricFilter(tuple(patterns)).select(metrics) if patterns else metrics


def _etag(prefix: str, request: Request) -> str:
    query = "&".join(f"{k}={','.join(v)}" for k, v in sorted(request.query.items())
                     if k != "token")
    return f'W/"{prefix}-{zlib.crc32(query.encode()):08x}"'


def _latest_etag(request: Request) -> str | None:
    sample = request.monitor.latest
    return None if sample is None else _etag(f"{sample.time:.3f}", request)


def _check_node(monitor: Monitor, node: str | None) -> None:
    if node is not None and node != monitor.node:
        raise ApiError(404, f"unknown node {clip(node)!r}", f"known nodes: {monitor.node}")


# -- endpoints ------------------------------------------------------------------------

def system_info(request: Request) -> Reply:
    monitor, node = request.monitor, request.args["node"]
    if node is not None and node != monitor.node:
        # A cluster node: the facts it sent with its first answers.
        facts = monitor.cluster.node_info(node) if monitor.cluster is not None else None
        if facts is None:
            known = [monitor.node] + ([n.name for n in monitor.cluster.node_states()]
                                      if monitor.cluster is not None else [])
            raise ApiError(404, f"unknown node {clip(node)!r}",
                           f"known nodes: {', '.join(known)}")
        return Reply({"node": node, "version": __version__, "interval_s": monitor.interval,
                      "role": "remote", **facts, "accelerators": devices_in(facts)})
    info = monitor.info
    return Reply({"node": monitor.node, "version": __version__, "interval_s": monitor.interval,
                  "role": monitor.role, **info, "accelerators": devices_in(info)})


def system_metrics(request: Request) -> Reply:
    monitor = request.monitor
    _check_node(monitor, request.args["node"])
    sample = monitor.latest
    if sample is None:
        raise ApiError(503, "no sample yet", "the sampler has not produced its first sample")
    metrics = _select(sample.metrics, request.args["metrics"])
    return Reply({"time": sample.time, "node": sample.node, "metrics": metrics},
                 etag=_latest_etag(request), last_modified=sample.time)


def accelerators(request: Request) -> Reply:
    monitor = request.monitor
    _check_node(monitor, request.args["node"])
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
                 etag=_latest_etag(request))


def hardware_cpu(request: Request) -> Reply:
    monitor = request.monitor
    _check_node(monitor, request.args["node"])
    sample = monitor.latest
    metrics = sample.metrics if sample else {}
    current = {k: v for k, v in metrics.items() if k.startswith(("cpu.", "proc."))}
    return Reply({"node": monitor.node, "time": sample.time if sample else None,
                  "system": monitor.info.get("system", {}), "cpu": monitor.info.get("cpu", {}),
                  "details": monitor.cpu_details(), "metrics": current},
                 etag=_latest_etag(request))


def cluster_info(request: Request) -> Reply:
    return Reply(request.monitor.cluster_info())


def cluster_metrics(request: Request) -> Reply:
    state = request.monitor.cluster_metrics()
    wanted = request.args["node"]
    if wanted is not None and wanted not in state["nodes"]:
        raise ApiError(404, f"unknown node {clip(wanted)!r}",
                       f"nodes with a sample: {', '.join(sorted(state['nodes'])) or 'none'}")
    nodes = {name: {"time": n["time"], "metrics": _select(n["metrics"], request.args["metrics"])}
             for name, n in state["nodes"].items() if wanted is None or name == wanted}
    newest = max((n["time"] for n in nodes.values()), default=0.0)
    return Reply({"provider": state["provider"], "nodes": nodes},
                 etag=_etag(f"c{newest:.3f}-{len(nodes)}", request))


def health(request: Request) -> Reply:
    body = request.monitor.health()
    if request.args["full"] == "1":  # on a thread: the endpoint is blocking then
        body["doctor"] = running_diagnosis(request.monitor)
    return Reply(body)


def _health_params(limits: Limits) -> tuple[Param, ...]:
    return (enum_param("full", "1 adds `doctor`: the checks of `tracklab-jupyter doctor` "
                       "that apply to a running server (accelerators, data dir, the "
                       "installed Jupyter pieces, the sampler), each with a fix; it takes "
                       "up to a few seconds and runs off the event loop", ("0", "1"), "0"),)


def _history_params(limits: Limits) -> tuple[Param, ...]:
    return (
        names_param("metrics", "Metric names or globs, comma separated or repeated; all "
                    "when omitted. One that matches nothing stored is a 404.", limits),
        time_param("start", "Start: epoch seconds, RFC 3339 date-time or date, `now`, or "
                   "relative such as `-15min`, `-2h`, `-7d`", "-1h"),
        time_param("end", "End, same forms (default now)", None),
        duration_param(
            "step", "Row spacing such as `10s`, `1min`, `1h`. Without it the server uses "
            "the stored resolution, or the finest step whose reply fits max_history_points "
            f"({limits.max_history_points} values) and says so (`auto_step`, "
            "`X-TrackLab-Step`); with it, a reply over that limit is a 413."),
        enum_param("agg", "Aggregation within a step", AGGREGATES, "mean"),
        node_param("Only this node (default: every node)"),
        enum_param("format", "Response format", ("json", "csv"), "json"))


def history_query(args: dict[str, Any], start: float, end: float) -> Query:
    """The parsed history parameters as one query over ``[start, end)`` (epoch s)."""
    step = args.get("step")
    return Query(metrics=args.get("metrics"), start=start, end=end,
                 step_s=parse_duration("step", step) if step is not None else None,
                 agg=args.get("agg") or "mean", node=args.get("node"))


def _span(args: dict[str, Any], default_start: str) -> tuple[float, float]:
    """``start`` and ``end`` as epoch seconds, read against one "now"."""
    now = time.time()
    end = parse_time("end", args["end"], now) if args["end"] is not None else now
    return parse_time("start", args["start"] or default_start, now), end


def history(request: Request) -> Reply:
    args = request.args
    query = history_query(args, *_span(args, "-1h"))
    hist, sized = history_api.read_history(request, query)
    table = history_api.history_table(hist, sized)
    headers = history_api.step_header(sized)
    if args["format"] == "csv":
        return Reply(None, content_type="text/csv; charset=utf-8",
                     chunks=history_api.csv_chunks(table),
                     headers={**headers,
                              "Content-Disposition": 'attachment; filename="history.csv"'})
    return Reply(None, chunks=history_api.json_pieces(table), headers=headers)


def _events_params(limits: Limits) -> tuple[Param, ...]:
    return (time_param("start", "Start (default `-24h`), as for history", "-24h"),
            time_param("end", "End (default now)", None),
            names_param("kind", "Event kinds, comma separated or repeated", limits),
            node_param("Only this node's events"),
            int_param("limit", f"At most this many, the newest (1 to max_events = "
                      f"{limits.max_events})", 1, limits.max_events, min(1000, limits.max_events),
                      "max_events"))


def events(request: Request) -> Reply:
    args = request.args
    start, end = _span(args, "-24h")
    if args["end"] is None:
        end += 1  # an event stamped this very instant is still in
    try:
        found = request.monitor.events(start=start, end=end, kinds=args["kind"],
                                       node=args["node"], limit=args["limit"])
    except (OSError, ValueError, RuntimeError) as exc:
        raise history_api.store_error(exc, request.monitor.data_dir) from None
    return Reply({"events": found})


def prometheus(request: Request) -> Reply:
    # On a thread (a blocking endpoint); the pieces are encoded on threads too, one at a time.
    view = scrape_view(request.monitor)
    try:
        pieces, content_type = render_pieces(view, request.headers.get("Accept", ""),
                                             request.limits.max_prometheus_series)
    except TooManySeries as exc:
        raise ApiError(413, str(exc), "raise the limit (c.TrackLab.max_prometheus_series) or "
                       "scrape fewer nodes") from None
    return Reply(None, content_type=content_type, chunks=pieces)


_TEXT = {"schema": {"type": "string"}}

SYSTEM_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("api/system/info", system_info,
             "Static facts about this machine (or a cluster node)",
             json_response("SystemInfo"), _node, errors=(404,)),
    Endpoint("api/system/metrics", system_metrics, "The latest sample, from memory",
             json_response("Sample"), _node_metrics, errors=(404,), etag=True),
    Endpoint("api/hardware/accelerators", accelerators,
             "Accelerators of every vendor with their current values",
             json_response("Accelerators"), _node, errors=(404,), etag=True),
    Endpoint("api/hardware/cpu", hardware_cpu, "CPU facts and current values",
             json_response("Cpu"), _node, errors=(404,), etag=True),
    Endpoint("api/cluster/info", cluster_info,
             "Nodes of the cluster (this host alone without a provider) with state and "
             "resources; totals and use", json_response("ClusterInfo")),
    Endpoint("api/cluster/metrics", cluster_metrics, "Latest sample of every node that is up",
             json_response("ClusterMetrics"), _node_metrics, errors=(404,), etag=True),
    Endpoint("api/history", history, "Stored metrics over a time range, as columns (or CSV)",
             {**json_response("History"), "text/csv": _TEXT}, _history_params,
             blocking=True, errors=(404, 413)),
    Endpoint("api/events", events, "Hardware changes and other events, oldest first",
             json_response("Events"), _events_params, blocking=True),
    Endpoint("api/health", health, "Sampler, store and version status; with full=1 the "
             "doctor's checks too", json_response("Health"), _health_params,
             blocking_when="full"),
    Endpoint("metrics", prometheus,
             "The latest values of every node in the Prometheus text format, or OpenMetrics "
             "when Accept asks for application/openmetrics-text",
             {"text/plain": _TEXT, "application/openmetrics-text": _TEXT}, blocking=True,
             errors=(413,), description="Families, names and labels: docs/METRICS.md and "
             "docs/PROMETHEUS.md."),
)
