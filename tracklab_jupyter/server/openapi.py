"""The OpenAPI 3.1 document of every endpoint and of the WebSocket messages.

Schemas are JSON Schema 2020-12 (as OpenAPI 3.1 allows), so tests validate real responses
against them with ``jsonschema``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tracklab_jupyter._version import __version__

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _q(name: str, description: str, schema: dict[str, Any] | None = None,
       explode: bool = False) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False,
                             "description": description, "schema": schema or {"type": "string"}}
    if explode:
        param["style"] = "form"
        param["explode"] = True
    return param


_NODE = _q("node", "Node name; this host when omitted. Unknown nodes give 404.")
_METRICS = _q("metrics", "Metric names or globs, comma separated or repeated "
              "(e.g. `gpu.*.util_pct`).", {"type": "array", "items": {"type": "string"}},
              explode=True)
_ERRORS = {
    "400": _json(_ref("Error"), "Bad query parameters"),
    "403": {"description": "Not authenticated or not authorised"},
    "404": _json(_ref("Error"), "Unknown node or path"),
    "503": _json(_ref("Error"), "No sample yet, or tracklab is disabled"),
}
_NOT_MODIFIED = {"304": {"description": "Not modified since the ETag in If-None-Match"}}

_METRIC_MAP = {"type": "object", "additionalProperties": {"type": "number"},
               "description": "Metric name (docs/METRICS.md) to value"}

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_COLUMNS = {"type": "object", "description": "Metric name to values, one per row (null "
            "where not logged or not finite)",
            "additionalProperties": {"type": "array", "items": _NUMBER_OR_NULL}}
_RUN_STATE = {"enum": ["running", "finished", "failed", "crashed"]}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "detail"],
              "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}},
    "Sample": {"type": "object", "required": ["time", "node", "metrics"],
               "properties": {"time": {"type": "number", "description": "Epoch seconds, UTC"},
                              "node": {"type": "string"}, "metrics": _METRIC_MAP}},
    "SystemInfo": {"type": "object", "required": ["node", "version", "interval_s", "role"],
                   "properties": {"node": {"type": "string"}, "version": {"type": "string"},
                                  "interval_s": {"type": "number"},
                                  "role": {"enum": ["recorder", "reader", "starting",
                                                    "remote"],
                                           "description": "remote: a cluster node's facts, "
                                                          "as it sent them"},
                                  "system": {"type": "object"},
                                  "accelerators": {
                                      "type": "array",
                                      "description": "every accelerator of every vendor "
                                                     "(each backend's own facts are under "
                                                     "its name: nvidia, amd, ascend, tpu)",
                                      "items": {"type": "object",
                                                "required": ["index", "kind", "vendor"]}}},
                   "additionalProperties": {"type": "object"}},
    "Accelerator": {"type": "object",
                    "required": ["index", "kind", "vendor", "name", "state", "metrics"],
                    "description": "One device of any vendor. Its metrics are "
                                   "`{kind}.{index}.{name}` in samples, here without the prefix",
                    "properties": {"index": {"type": "integer"},
                                   "kind": {"enum": ["gpu", "npu", "tpu"]},
                                   "vendor": {"type": "string",
                                              "examples": ["nvidia", "amd", "google",
                                                           "huawei"]},
                                   "name": {"type": "string"},
                                   "uuid": {"type": "string"},
                                   "state": {"enum": ["ok", "idle", "lost"],
                                             "description": "idle: present, nothing to read "
                                                            "now (a TPU with no program)"},
                                   "metrics": _METRIC_MAP}},
    "Accelerators": {"type": "object", "required": ["node", "accelerators"],
                     "properties": {"node": {"type": "string"},
                                    "time": {"type": ["number", "null"]},
                                    "drivers": {"type": "object",
                                                "description": "per backend (nvidia, amd, "
                                                               "ascend, tpu): driver and "
                                                               "library versions",
                                                "additionalProperties": {"type": "object"}},
                                    "notes": {"type": "array", "items": {"type": "string"}},
                                    "accelerators": {"type": "array",
                                                     "items": _ref("Accelerator")}}},
    "Cpu": {"type": "object", "required": ["node", "system", "cpu", "metrics"],
            "properties": {"node": {"type": "string"}, "time": {"type": ["number", "null"]},
                           "system": {"type": "object"}, "cpu": {"type": "object"},
                           "details": {"type": ["object", "null"],
                                       "description": "py-cpuinfo output once read "
                                                      "(in the background)"},
                           "metrics": _METRIC_MAP}},
    "NodeStatus": {"type": "object", "required": ["node", "status"],
                   "properties": {"node": {"type": "string"},
                                  "status": {"enum": ["up", "stale", "down", "starting"]},
                                  "state": {"enum": ["online", "offline"]},
                                  "role": {"type": "string"},
                                  "address": {"type": "string"},
                                  "last_seen": {"type": ["number", "null"]},
                                  "resources": {"type": "object", "properties": {
                                      "cores": _NUMBER_OR_NULL,
                                      "memory_bytes": _NUMBER_OR_NULL,
                                      "gpus": _NUMBER_OR_NULL}},
                                  "error": {"type": ["string", "null"]},
                                  "reason": {"type": "string",
                                             "description": "Why the state changed "
                                                            "(node_status messages)"}}},
    "ClusterInfo": {"type": "object", "required": ["provider", "nodes", "totals", "used"],
                    "properties": {"provider": {"enum": ["local", "dask", "ray"]},
                                   "address": {"type": "string"},
                                   "interval_s": {"type": "number"},
                                   "node_timeout_s": _NUMBER_OR_NULL,
                                   "nodes": {"type": "array", "items": _ref("NodeStatus")},
                                   "totals": {"type": "object", "required": [
                                       "nodes", "online", "cores", "memory_bytes", "gpus"],
                                       "properties": {
                                           "nodes": {"type": "integer"},
                                           "online": {"type": "integer"},
                                           "cores": {"type": "number"},
                                           "memory_bytes": {"type": "number"},
                                           "gpus": {"type": "integer"}}},
                                   "used": {"type": "object", "required": [
                                       "cpu_cores", "memory_bytes", "gpu_memory_bytes",
                                       "gpu_util_pct"],
                                       "properties": {
                                           "cpu_cores": {"type": "number"},
                                           "memory_bytes": {"type": "number"},
                                           "gpu_memory_bytes": {"type": "number"},
                                           "gpu_util_pct": _NUMBER_OR_NULL}}}},
    "ClusterMetrics": {"type": "object", "required": ["provider", "nodes"],
                       "properties": {"provider": {"type": "string"},
                                      "nodes": {"type": "object", "additionalProperties": {
                                          "type": "object", "required": ["time", "metrics"],
                                          "properties": {"time": {"type": "number"},
                                                         "metrics": _METRIC_MAP}}}}},
    "History": {"type": "object", "required": ["time", "series", "nodes", "step_s", "agg"],
                "properties": {
                    "time": {"type": "array", "items": {"type": "number"},
                             "description": "Epoch seconds of each row"},
                    "nodes": {"type": "array", "items": {"type": "string"}},
                    "step_s": {"type": ["number", "null"]},
                    "tier": {"type": "string"},
                    "agg": {"enum": ["mean", "min", "max", "last"]},
                    "series": {"type": "array", "items": {
                        "type": "object", "required": ["node", "metric", "values"],
                        "properties": {"node": {"type": "string"}, "metric": {"type": "string"},
                                       "values": {"type": "array",
                                                  "items": {"type": ["number", "null"]}}}}}}},
    "Event": {"type": "object", "required": ["time", "node", "kind", "message"],
              "properties": {"time": {"type": "number"}, "node": {"type": "string"},
                             "kind": {"type": "string"}, "message": {"type": "string"},
                             "data": {"type": "object"}}},
    "Events": {"type": "object", "required": ["events"],
               "properties": {"events": {"type": "array", "items": _ref("Event")}}},
    "Health": {"type": "object", "required": ["status", "role", "sampler_alive",
                                              "last_sample_age_s", "versions"],
               "properties": {"status": {"enum": ["ok", "starting", "degraded", "disabled"]},
                              "role": {"type": "string"},
                              "sampler_alive": {"type": "boolean"},
                              "last_sample_age_s": {"type": ["number", "null"]},
                              "store": {"type": "object"}, "sampler": {"type": "object"},
                              "versions": {"type": "object",
                                           "additionalProperties": {"type": ["string", "null"]}}}},
    # Runs (docs/RUNS.md)
    "Project": {"type": "object",
                "required": ["name", "created", "runs", "running", "states", "last_start"],
                "properties": {"name": {"type": "string"}, "created": {"type": "number"},
                               "runs": {"type": "integer"}, "running": {"type": "integer"},
                               "states": {"type": "object",
                                          "additionalProperties": {"type": "integer"}},
                               "last_start": {"type": ["number", "null"]}}},
    "Projects": {"type": "object", "required": ["projects"],
                 "properties": {"projects": {"type": "array", "items": _ref("Project")}}},
    "RunSummary": {"type": "object",
                   "required": ["id", "project", "name", "state", "tags", "node", "pid",
                                "start", "end", "heartbeat", "duration_s", "summary"],
                   "properties": {
                       "id": {"type": "string"}, "project": {"type": "string"},
                       "name": {"type": "string"}, "state": _RUN_STATE,
                       "tags": {"type": "array", "items": {"type": "string"}},
                       "node": {"type": "string"}, "pid": {"type": ["integer", "null"]},
                       "start": {"type": "number"}, "end": {"type": ["number", "null"]},
                       "heartbeat": {"type": "number"}, "duration_s": {"type": "number"},
                       "summary": {"type": "object", "description": "Last value of each "
                                   "logged metric", "additionalProperties": _NUMBER_OR_NULL}}},
    "Run": {"allOf": [_ref("RunSummary"), {
        "type": "object",
        "required": ["config", "notes", "command", "cwd", "git", "python", "error",
                     "system_monitor", "processes"],
        "properties": {
            "config": {"type": "object"}, "notes": {"type": "string"},
            "command": {"type": "string"}, "cwd": {"type": "string"},
            "git": {"type": ["object", "null"], "properties": {
                "commit": {"type": "string"}, "dirty": {"type": ["boolean", "null"]}}},
            "python": {"type": "string"}, "error": {"type": ["string", "null"]},
            "system_monitor": {"type": "boolean"},
            "processes": {"type": "array", "items": {
                "type": "object", "required": ["pid", "name", "cpu_pct", "rss_bytes"],
                "properties": {"pid": {"type": "integer"}, "name": {"type": "string"},
                               "cpu_pct": {"type": "number"}, "rss_bytes": {"type": "number"},
                               "threads": {"type": "integer"},
                               "gpu_mem_bytes": {"type": "number"}}}}}}]},
    "RunList": {"type": "object", "required": ["runs", "total", "limit", "offset"],
                "properties": {"runs": {"type": "array", "items": _ref("RunSummary")},
                               "total": {"type": "integer"}, "limit": {"type": "integer"},
                               "offset": {"type": "integer"}}},
    "RunMetrics": {"type": "object", "required": ["run", "step", "time", "metrics"],
                   "properties": {"run": {"type": "string"},
                                  "step": {"type": "array", "items": {"type": "integer"}},
                                  "time": {"type": "array", "items": {"type": "number"}},
                                  "metrics": _COLUMNS}},
    "ProcessSeries": {"type": "object", "required": ["time", "metrics"],
                      "properties": {"time": {"type": "array", "items": {"type": "number"}},
                                     "metrics": _COLUMNS}},
    "RunSystem": {"type": "object",
                  "required": ["run", "node", "start", "end", "history", "process"],
                  "properties": {"run": {"type": "string"}, "node": {"type": "string"},
                                 "start": {"type": "number"}, "end": {"type": "number"},
                                 "history": _ref("History"),
                                 "process": _ref("ProcessSeries")}},
    "RunPatch": {"type": "object", "minProperties": 1, "additionalProperties": False,
                 "properties": {"name": {"type": "string", "minLength": 1},
                                "tags": {"type": "array", "items": {"type": "string"}},
                                "notes": {"type": "string"}}},
    # WebSocket messages
    "WsEnvelope": {"type": "object", "required": ["type", "data", "time", "node"],
                   "properties": {"type": {"enum": [
                       "hello", "subscribed", "pong", "error", "system_metrics",
                       "hardware_update", "node_status", "cluster_metrics", "run_update",
                       "metric_update"]},
                       "data": {}, "time": {"type": "number"}, "node": {"type": "string"}}},
    "WsHello": {"type": "object", "required": ["version", "node", "interval_s", "topics"],
                "properties": {"version": {"type": "string"}, "node": {"type": "string"},
                               "interval_s": {"type": "number"}, "role": {"type": "string"},
                               "topics": {"type": "array", "items": {"type": "string"}},
                               "default_topics": {"type": "array", "items": {"type": "string"}},
                               "client_types": {"type": "array", "items": {"type": "string"}}}},
    "WsSystemMetrics": {"type": "object", "required": ["metrics"],
                        "properties": {"metrics": _METRIC_MAP}},
    "WsHardwareUpdate": {"type": "object", "required": ["reason", "state"],
                         "properties": {"reason": {"enum": ["connect", "subscribe", "event"]},
                                        "state": {"type": "object"},
                                        "event": _ref("Event")}},
    "WsNodeStatus": _ref("NodeStatus"),
    "WsClusterMetrics": _ref("ClusterMetrics"),
    "WsRunUpdate": {"type": "object", "required": ["reason", "run"],
                    "description": "A run was created, changed state, was edited or deleted "
                                   "(for deleted, run holds id and project)",
                    "properties": {"reason": {"enum": ["created", "state", "updated",
                                                       "deleted"]},
                                   "run": {"type": "object", "required": ["id", "project"]}}},
    "WsMetricUpdate": {
        "description": "Values logged by a run since the last message (batched)",
        "allOf": [_ref("RunMetrics"),
                  {"type": "object", "required": ["project"],
                   "properties": {"project": {"type": "string"},
                                  "process": _ref("ProcessSeries")}}]},
    "WsError": _ref("Error"),
    "WsClientMessage": {"oneOf": [
        {"type": "object", "required": ["type"],
         "properties": {"type": {"const": "subscribe"},
                        "topics": {"type": "array", "items": {"type": "string"}},
                        "runs": {"type": "array", "items": {"type": "string"},
                                 "description": "Only these runs' metric_update "
                                                "(default: every run)"},
                        "metrics": {"type": "array", "items": {"type": "string"}},
                        "interval": {"type": "number", "description": "Seconds between "
                                     "frames; at least the sampling interval"}}},
        {"type": "object", "required": ["type"],
         "properties": {"type": {"const": "unsubscribe"},
                        "topics": {"type": "array", "items": {"type": "string"}}}},
        {"type": "object", "required": ["type"],
         "properties": {"type": {"const": "ping"}, "data": {}}}]},
}


def _get(summary: str, response: dict[str, Any], params: list[dict[str, Any]],
         not_modified: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    responses = {"200": response, **_ERRORS, **(_NOT_MODIFIED if not_modified else {})}
    return {"get": {"summary": summary, "parameters": params, "responses": responses,
                    **(extra or {})}}


def _paths() -> dict[str, Any]:
    return {
        "/api/system/info": _get("Static facts about this machine (or a cluster node)",
                                 _json(_ref("SystemInfo")), [_NODE]),
        "/api/system/metrics": _get("The latest sample, from memory", _json(_ref("Sample")),
                                    [_NODE, _METRICS], not_modified=True),
        "/api/hardware/accelerators": _get("Accelerators with their current values",
                                           _json(_ref("Accelerators")), [_NODE], True),
        "/api/hardware/cpu": _get("CPU facts and current values", _json(_ref("Cpu")),
                                  [_NODE], True),
        "/api/cluster/info": _get("Nodes of the cluster (this host alone without a provider) "
                                  "with state and resources; totals and use",
                                  _json(_ref("ClusterInfo")), []),
        "/api/cluster/metrics": _get("Latest sample of every online node",
                                     _json(_ref("ClusterMetrics")),
                                     [_METRICS, _q("node", "Only this node")], True),
        "/api/history": _get(
            "Stored metrics over a time range, as columns (or CSV)",
            {"description": "OK", "content": {
                "application/json": {"schema": _ref("History")},
                "text/csv": {"schema": {"type": "string"}}}},
            [_METRICS,
             _q("start", "Start: epoch seconds, ISO 8601, or relative such as `-15min`, "
                "`-2h`, `-7d` (default `-1h`)"),
             _q("end", "End, same forms (default now)"),
             _q("step", "Row spacing such as `10s`, `1min`, `1h` (default automatic)"),
             _q("agg", "Aggregation within a step", {"enum": ["mean", "min", "max", "last"]}),
             _NODE, _q("format", "Response format", {"enum": ["json", "csv"]})]),
        "/api/events": _get("Hardware changes and other events", _json(_ref("Events")),
                            [_q("start", "Start (default `-24h`)"), _q("end", "End"),
                             _q("kind", "Event kinds, comma separated",
                                {"type": "array", "items": {"type": "string"}}, explode=True),
                             _NODE, _q("limit", "At most this many (1–100000)",
                                       {"type": "integer"})]),
        "/api/health": _get("Sampler, store and version status", _json(_ref("Health")), []),
        **_run_paths(),
        "/api/openapi.json": _get("This document", _json({"type": "object"}), []),
        "/metrics": _get("The latest sample in Prometheus text format",
                         {"description": "OK", "content": {"text/plain": {
                             "schema": {"type": "string"}}}}, [], True),
        "/ws": _get(
            "The live WebSocket stream", {"description": "Switching protocols"}, [],
            extra={"description": (
                "Upgrade to a WebSocket. Every message is a `WsEnvelope`; `data` follows "
                "`WsHello`, `WsSystemMetrics`, `WsHardwareUpdate`, `WsNodeStatus`, "
                "`WsClusterMetrics`, `WsRunUpdate`, `WsMetricUpdate` or `WsError` by "
                "`type`. Clients send `WsClientMessage`s. Default topics: system_metrics "
                "and hardware_update."),
                "x-websocket-messages": {
                    "server": {k: _ref(v) for k, v in {
                        "hello": "WsHello", "system_metrics": "WsSystemMetrics",
                        "hardware_update": "WsHardwareUpdate", "node_status": "WsNodeStatus",
                        "cluster_metrics": "WsClusterMetrics", "run_update": "WsRunUpdate",
                        "metric_update": "WsMetricUpdate", "error": "WsError"}.items()},
                    "client": _ref("WsClientMessage")}}),
    }


_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "The run's id (8 characters)"}
_PROJECT = {"name": "project", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "Project name"}
_PAGING = [_q("state", "Only runs in this state", _RUN_STATE),
           _q("limit", "At most this many (1-1000, default 50)", {"type": "integer"}),
           _q("offset", "Skip this many (default 0)", {"type": "integer"})]


def _with_path(operation: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
    for op in operation.values():
        op["parameters"] = [*params, *op["parameters"]]
    return operation


def _run_paths() -> dict[str, Any]:
    run_item = _with_path(_get("One run: config, summary, state, host, command, git",
                               _json(_ref("Run")), []), _RUN_ID)
    run_item["patch"] = {
        "summary": "Rename, retag or annotate a run (needs `write` permission; with cookie "
                   "authentication also the XSRF token)",
        "parameters": [_RUN_ID],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": _ref("RunPatch")}}},
        "responses": {"200": _json(_ref("Run")), **_ERRORS}}
    run_item["delete"] = {
        "summary": "Delete a run that is not running, with its metrics",
        "parameters": [_RUN_ID],
        "responses": {"204": {"description": "Deleted"}, **_ERRORS,
                      "409": _json(_ref("Error"), "The run is still running")}}
    return {
        "/api/projects": _get("Projects with their run counts", _json(_ref("Projects")), []),
        "/api/projects/{project}": _with_path(
            _get("One project", _json(_ref("Project")), []), _PROJECT),
        "/api/projects/{project}/runs": _with_path(
            _get("A project's runs, newest first", _json(_ref("RunList")), _PAGING), _PROJECT),
        "/api/runs": _get("Runs, newest first", _json(_ref("RunList")),
                          [_q("project", "Only this project's runs"), *_PAGING]),
        "/api/runs/{run_id}": run_item,
        "/api/runs/{run_id}/metrics": _with_path(_get(
            "A run's logged metrics, one row per step", _json(_ref("RunMetrics")),
            [_METRICS, _q("start_step", "First step", {"type": "integer"}),
             _q("end_step", "Last step", {"type": "integer"})]), _RUN_ID),
        "/api/runs/{run_id}/system": _with_path(_get(
            "System metrics of the run's host during the run, and its process tree",
            _json(_ref("RunSystem")),
            [_METRICS, _q("step", "Row spacing such as `10s` (default automatic)"),
             _q("agg", "Aggregation within a step",
                {"enum": ["mean", "min", "max", "last"]})]), _RUN_ID),
    }


@cache
def openapi_dict(server_url: str = "") -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "tracklab-jupyter", "version": __version__,
                 "description": "Live system, GPU and cluster monitoring. Authenticate as for "
                                "the Jupyter server (or with `Authorization: token T` on the "
                                "standalone server)."},
        "servers": [{"url": server_url or "/"}],
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"token": {"type": "apiKey", "in": "header",
                                                     "name": "Authorization"}}},
        "security": [{"token": []}],
        "paths": _paths(),
    }


def openapi_document(server_url: str = "") -> str:
    return json.dumps(openapi_dict(server_url), indent=1)
