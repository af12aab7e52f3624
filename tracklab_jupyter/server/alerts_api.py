"""``api/alerts``: the alerts active now, the recent alert events, and every rule's
effective settings (docs/ALERTS.md).

Active alerts are folded from the stored ``alert`` / ``alert_resolved`` events of the
``start`` window, merged with what this server's engine emitted (a recorder's writer
stores events on its own clock, so an alert fired a moment ago may not be readable yet).
Reads SQLite: run off the event loop (``blocking``).
"""

from __future__ import annotations

import time
from typing import Any

from tracklab_jupyter.alerts.book import CRITICAL, KINDS, WARNING
from tracklab_jupyter.alerts.settings import RULES, SPECS, defaults
from tracklab_jupyter.alerts.store_view import (
    alert_dict,
    fold_active,
    merge,
    stored_alert_events,
    with_kernels,
)
from tracklab_jupyter.server import history_api
from tracklab_jupyter.server.endpoint import Endpoint, Reply, Request, json_response
from tracklab_jupyter.server.limits import Limits
from tracklab_jupyter.server.params import Param, int_param, parse_time, time_param

#: Recent events listed when ``limit`` is not given.
DEFAULT_RECENT = 100


def _params(limits: Limits) -> tuple[Param, ...]:
    return (time_param("start", "Alert events from this time on (default `-24h`): the "
                       "window `active` is folded from and `recent` lists; same forms as "
                       "for history", "-24h"),
            int_param("limit", f"At most this many recent events, the newest (1 to "
                      f"max_events = {limits.max_events})", 1, limits.max_events,
                      min(DEFAULT_RECENT, limits.max_events), "max_events"))


def alerts(request: Request) -> Reply:
    monitor, args = request.monitor, request.args
    start = parse_time("start", args["start"], time.time())
    try:
        stored = stored_alert_events(monitor, start=start, limit=request.limits.max_events)
    except FileNotFoundError:
        stored = []  # nothing recorded yet: what the engine holds is all there is
    except (OSError, ValueError, RuntimeError) as exc:
        raise history_api.store_error(exc, monitor.data_dir) from None
    engine = getattr(monitor, "alerts", None)
    emitted = [e for e in engine.book.recent() if e.time >= start] if engine else []
    events = merge(stored, emitted)
    active = fold_active(events)
    if engine is not None:
        # Active here though fired before the window: still active.
        for alert in engine.book.active():
            active.setdefault(alert.key, alert)
    settings = engine.settings if engine is not None else defaults()
    listed = sorted((with_kernels(alert_dict(a), monitor) for a in active.values()),
                    key=lambda a: (a["severity"] != CRITICAL, -a["time"]))
    recent = [e.to_dict() for e in reversed(events[-args["limit"]:])]
    return Reply({"active": listed, "recent": recent, "rules": settings.as_dict()})


# -- schemas ---------------------------------------------------------------------------------

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}

_ALERT_FIELDS: dict[str, Any] = {
    "key": {"type": "string", "description": "`rule:subject`, e.g. `memory:host`, "
                                             "`idle_gpu:<kernel id>`, `disk:/home`"},
    "rule": {"enum": list(RULES)},
    "severity": {"enum": [WARNING, CRITICAL]},
    "title": {"type": "string", "description": "Short, e.g. `OOM risk`"},
    "message": {"type": "string"},
    "subject": {"type": "string", "description": "What the alert is about: `host`, a "
                "mount, a device (`gpu.0`), a node, a kernel id or notebook"},
    "since": {"type": "number", "description": "When the condition began (epoch s)"},
    "value": _NUMBER_OR_NULL,
    "threshold": _NUMBER_OR_NULL,
    "kernels": {"type": "array", "items": {"$ref": "#/components/schemas/AlertKernel"},
                "description": "Kernels concerned (memory: the largest, at most 3)"},
    "instant": {"type": "boolean", "description": "No resolution follows (a kernel "
                                                  "death, new ECC errors)"},
}
_RESOLVED_FIELDS: dict[str, Any] = {
    "key": _ALERT_FIELDS["key"], "rule": _ALERT_FIELDS["rule"],
    "subject": _ALERT_FIELDS["subject"], "since": _ALERT_FIELDS["since"],
    "resolved": {"type": "number", "description": "When it was resolved (epoch s)"},
    "title": _ALERT_FIELDS["title"],
}


def _rule_schema(rule: str) -> dict[str, Any]:
    props: dict[str, Any] = {"enabled": {"type": "boolean"}}
    props.update({name: {"type": "number", "minimum": spec.low, "maximum": spec.high}
                  for name, spec in SPECS[rule].items()})
    return {"type": "object", "required": list(props), "properties": props,
            "additionalProperties": False}


#: OpenAPI component schemas of these endpoints.
ALERT_SCHEMAS: dict[str, Any] = {
    "AlertKernel": {"type": "object", "required": ["id", "notebook", "rss_bytes"],
                    "properties": {"id": _STRING_OR_NULL, "notebook": _STRING_OR_NULL,
                                   "rss_bytes": _NUMBER_OR_NULL}},
    "AlertData": {"type": "object", "required": list(_ALERT_FIELDS),
                  "description": "The data of an `alert` event",
                  "properties": _ALERT_FIELDS},
    "AlertResolvedData": {"type": "object", "required": list(_RESOLVED_FIELDS),
                          "description": "The data of an `alert_resolved` event",
                          "properties": _RESOLVED_FIELDS},
    "ActiveAlert": {"allOf": [{"$ref": "#/components/schemas/AlertData"}, {
        "type": "object", "required": ["time"],
        "properties": {"time": {"type": "number",
                                "description": "When it was told (epoch s)"}}}]},
    "AlertEvent": {"type": "object", "required": ["time", "node", "kind", "message", "data"],
                   "properties": {"time": {"type": "number"}, "node": {"type": "string"},
                                  "kind": {"enum": list(KINDS)},
                                  "message": {"type": "string"},
                                  "data": {"anyOf": [
                                      {"$ref": "#/components/schemas/AlertData"},
                                      {"$ref": "#/components/schemas/AlertResolvedData"}]}}},
    "AlertRules": {"type": "object", "required": list(RULES), "additionalProperties": False,
                   "description": "Every rule's effective settings (docs/ALERTS.md)",
                   "properties": {rule: _rule_schema(rule) for rule in RULES}},
    "Alerts": {"type": "object", "required": ["active", "recent", "rules"],
               "properties": {
                   "active": {"type": "array",
                              "items": {"$ref": "#/components/schemas/ActiveAlert"},
                              "description": "Active now: critical first, then newest"},
                   "recent": {"type": "array",
                              "items": {"$ref": "#/components/schemas/AlertEvent"},
                              "description": "Alert events of the window, newest first"},
                   "rules": {"$ref": "#/components/schemas/AlertRules"}}},
    "WsAlert": {"description": "An alert fired or was resolved: the event's data with "
                               "`kind`, `time` and the event's `message`",
                "oneOf": [
                    {"allOf": [{"$ref": "#/components/schemas/AlertData"}, {
                        "type": "object", "required": ["kind", "time"],
                        "properties": {"kind": {"const": "alert"},
                                       "time": {"type": "number"}}}]},
                    {"allOf": [{"$ref": "#/components/schemas/AlertResolvedData"}, {
                        "type": "object", "required": ["kind", "time", "message"],
                        "properties": {"kind": {"const": "alert_resolved"},
                                       "time": {"type": "number"},
                                       "message": {"type": "string"}}}]}]},
}

ALERT_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("api/alerts", alerts,
             "Alerts active now, recent alert events, and every rule's settings",
             json_response("Alerts"), _params, blocking=True),
)
