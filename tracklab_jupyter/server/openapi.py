"""The OpenAPI 3.1 document of every endpoint and of the WebSocket messages.

Schemas are JSON Schema 2020-12 (as OpenAPI 3.1 allows), so tests validate real responses
against them with ``jsonschema``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from tracklab_jupyter._version import __version__
from tracklab_jupyter.cluster.status import STATUSES
from tracklab_jupyter.server.alerts_api import ALERT_SCHEMAS
from tracklab_jupyter.server.endpoint import Endpoint
from tracklab_jupyter.server.endpoints import ENDPOINTS
from tracklab_jupyter.server.kernels_api import KERNEL_SCHEMAS
from tracklab_jupyter.server.limits import Limits
from tracklab_jupyter.server.runs_api import RUN_PATCH_SCHEMA
from tracklab_jupyter.store.config import AGGREGATES

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = {"$ref": _REF + "Error"}
#: What each error status means, for every endpoint that may answer it.
_ERROR_TEXT = {
    400: "A parameter or the body is not what the server accepts (the detail says what is)",
    401: "No credentials (the standalone server; Jupyter answers 403)",
    403: "Wrong credentials, or not authorised",
    404: "Unknown node, run, project, metric or path",
    409: "The run is still running",
    413: "The reply or the request body would exceed a limit (the detail names it)",
    503: "No sample yet, tracklab is disabled, or the store cannot be used",
}
_COMMON_ERRORS = (400, 401, 403, 503)
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
                                  "status": {"enum": list(STATUSES),
                                             "description": "up, starting, stale or down: "
                                                            "docs/CLUSTER.md, Node status"},
                                  "role": {"type": "string"},
                                  "address": {"type": "string"},
                                  "last_seen": {"type": ["number", "null"]},
                                  "resources": {"type": "object", "properties": {
                                      "cores": _NUMBER_OR_NULL,
                                      "memory_bytes": _NUMBER_OR_NULL,
                                      "gpus": _NUMBER_OR_NULL}},
                                  "error": {"type": ["string", "null"]},
                                  "reason": {"type": "string",
                                             "description": "Why the status changed "
                                                            "(node_status messages)"}}},
    "ClusterInfo": {"type": "object", "required": ["provider", "nodes", "totals", "used"],
                    "properties": {"provider": {"enum": ["local", "dask", "ray"]},
                                   "address": {"type": "string"},
                                   "interval_s": {"type": "number"},
                                   "node_timeout_s": _NUMBER_OR_NULL,
                                   "nodes": {"type": "array", "items": _ref("NodeStatus")},
                                   "totals": {"type": "object", "required": [
                                       "nodes", "up", "cores", "memory_bytes", "gpus"],
                                       "properties": {
                                           "nodes": {"type": "integer"},
                                           "up": {"type": "integer",
                                                  "description": "Nodes up (or this host "
                                                                 "starting): the ones the "
                                                                 "totals and use count"},
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
                    "step_s": {"type": ["number", "null"],
                               "description": "Row spacing in seconds (null: raw samples)"},
                    "step": {"type": ["string", "null"],
                             "description": "The same as a step parameter, e.g. `30s`"},
                    "auto_step": {"type": "boolean",
                                  "description": "The server chose the step so the reply "
                                                 "fits max_history_points"},
                    "note": {"type": ["string", "null"],
                             "description": "Why the data is coarser than asked, if it is"},
                    "tier": {"type": "string"},
                    "agg": {"enum": list(AGGREGATES)},
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
                              "store": {"type": "object"},
                              "sampler": {"type": ["object", "null"],
                                          "description": "null in a reader (another "
                                                         "process records)"},
                              "versions": {"type": "object",
                                           "additionalProperties": {"type": ["string", "null"]}},
                              "doctor": _ref("Doctor")}},
    "Doctor": {"type": "object", "description": "With full=1: what `tracklab-jupyter doctor "
               "--json` prints, for the checks that apply to a running server.",
               "required": ["status", "exit_code", "counts", "checks"],
               "properties": {
                   "status": {"enum": ["ok", "warning", "problem"]},
                   "exit_code": {"type": "integer", "minimum": 0, "maximum": 2},
                   "version": {"type": "string"}, "time": {"type": "number"},
                   "took_s": {"type": "number"},
                   "counts": {"type": "object",
                              "additionalProperties": {"type": "integer"}},
                   "checks": {"type": "array", "items": {
                       "type": "object",
                       "required": ["section", "check", "status", "found", "fix"],
                       "properties": {
                           "section": {"type": "string"}, "check": {"type": "string"},
                           "status": {"enum": ["ok", "warning", "problem", "skipped"]},
                           "found": {"type": "string"}, "fix": {"type": "string"},
                           "details": {"type": "object"}}}}}},
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
                                  "metrics": _COLUMNS,
                                  "next_start_step": {
                                      "type": ["integer", "null"],
                                      "description": "More steps follow: pass this as "
                                                     "start_step for the next page"}}},
    "ProcessSeries": {"type": "object", "required": ["time", "metrics"],
                      "properties": {"time": {"type": "array", "items": {"type": "number"}},
                                     "metrics": _COLUMNS}},
    "RunSystem": {"type": "object",
                  "required": ["run", "node", "start", "end", "history", "process"],
                  "properties": {"run": {"type": "string"}, "node": {"type": "string"},
                                 "start": {"type": "number"}, "end": {"type": "number"},
                                 "history": _ref("History"),
                                 "process": _ref("ProcessSeries")}},
    "RunPatch": RUN_PATCH_SCHEMA,
    # WebSocket messages
    "WsEnvelope": {"type": "object", "required": ["type", "data", "time", "node"],
                   "properties": {"type": {"enum": [
                       "hello", "subscribed", "pong", "error", "system_metrics",
                       "hardware_update", "node_status", "cluster_metrics", "run_update",
                       "metric_update", "kernels", "alert"]},
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
                                  "process": _ref("ProcessSeries"),
                                  "dropped": {"type": "integer", "description": (
                                      "Rows left out for a client too slow to take them "
                                      "all: reload api/runs/{id}/metrics for every "
                                      "value")}}}]},
    "WsKernels": {"type": "object", "required": ["time", "node", "kernels"],
                  "description": "Each kernel pass of the server's kernel tracker: the body "
                                 "of `api/kernels`",
                  "properties": {"time": {"type": ["number", "null"]},
                                 "node": {"type": "string"},
                                 "kernels": {"type": "array", "items": {"type": "object"}}}},
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


def _operation(endpoint: Endpoint, limits: Limits) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK"}
    if endpoint.response:
        ok["content"] = endpoint.response
    if endpoint.links:
        ok["links"] = endpoint.links
    responses: dict[str, Any] = {str(endpoint.status): ok}
    if endpoint.etag:
        responses.update(_NOT_MODIFIED)
    for status in sorted({*_COMMON_ERRORS, *endpoint.errors}):
        responses[str(status)] = _json(_ERROR, _ERROR_TEXT[status])
    operation: dict[str, Any] = {
        "operationId": endpoint.operation, "summary": endpoint.summary,
        "parameters": [p.openapi() for p in endpoint.params(limits)],
        "responses": responses}
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": endpoint.body}}}
    return operation


def _paths(limits: Limits) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        paths.setdefault("/" + endpoint.path, {})[endpoint.method.lower()] = _operation(
            endpoint, limits)
    paths["/api/openapi.json"] = {"get": {
        "operationId": "getOpenapi", "summary": "This document", "parameters": [],
        "responses": {"200": _json({"type": "object"}),
                      **{str(s): _json(_ERROR, _ERROR_TEXT[s]) for s in (401, 403)}}}}
    return paths


def _websocket(limits: Limits) -> dict[str, Any]:
    """The live stream, outside ``paths``: OpenAPI describes HTTP operations, and a plain
    HTTP GET of ``/ws`` only ever gets 426 (it is a WebSocket)."""
    return {
        "path": "/ws",
        "summary": "The live WebSocket stream",
        "description": (
            "Upgrade to a WebSocket (authenticated like every path). Every message is a "
            "`WsEnvelope`; `data` follows `WsHello`, `WsSystemMetrics`, `WsHardwareUpdate`, "
            "`WsNodeStatus`, `WsClusterMetrics`, `WsRunUpdate`, `WsMetricUpdate`, "
            "`WsKernels` (type `kernels`), `WsAlert` (type `alert`) or `WsError` by "
            "`type`. Clients send `WsClientMessage`s (at most "
            f"{limits.max_patterns} metric patterns per subscription, max_patterns). "
            "Default topics: system_metrics, hardware_update and alerts (topic `alerts` "
            "sends `alert` frames; topic `kernels` sends `kernels` frames). At most "
            f"{limits.max_ws_connections} connections at once (max_ws_connections); more "
            "are refused with 503. A plain HTTP request gets 426. Frames waiting for a "
            "slow client are coalesced (newest sample, cluster frame and hardware state; "
            "each run's, node's and alert's latest, the newest kernel pass; a run's logged "
            "values merged); a client that "
            "falls further behind is closed with code 1013 and reconnects."),
        "messages": {
            "server": {k: _ref(v) for k, v in {
                "hello": "WsHello", "system_metrics": "WsSystemMetrics",
                "hardware_update": "WsHardwareUpdate", "node_status": "WsNodeStatus",
                "cluster_metrics": "WsClusterMetrics", "run_update": "WsRunUpdate",
                "metric_update": "WsMetricUpdate", "kernels": "WsKernels",
                "alert": "WsAlert", "error": "WsError"}.items()},
            "client": _ref("WsClientMessage")}}


@cache
def openapi_dict(server_url: str = "", limits: Limits | None = None) -> dict[str, Any]:
    """The OpenAPI document of a server with these limits (the defaults when None)."""
    limits = limits or Limits()
    return {
        "openapi": "3.1.0",
        "info": {"title": "tracklab-jupyter", "version": __version__,
                 "description": "Live system, accelerator and cluster monitoring. "
                                "Authenticate as for the Jupyter server (or with "
                                "`Authorization: token T` on the standalone server). Every "
                                "limit a request meets is named in docs/LIMITS.md."},
        "servers": [{"url": server_url or "/"}],
        "components": {"schemas": {**SCHEMAS, **KERNEL_SCHEMAS, **ALERT_SCHEMAS},
                       "securitySchemes": {"token": {"type": "apiKey", "in": "header",
                                                     "name": "Authorization"}}},
        "security": [{"token": []}],
        "paths": _paths(limits),
        "x-websocket": _websocket(limits),
    }


def openapi_document(server_url: str = "", limits: Limits | None = None) -> str:
    return json.dumps(openapi_dict(server_url, limits), indent=1)
