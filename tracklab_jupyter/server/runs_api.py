"""The projects and runs endpoints (docs/RUNS.md). Each opens the store for the request,
off the event loop (they are all ``blocking``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.runs.store import (
    MAX_NAME,
    MAX_NOTES,
    MAX_TAGS,
    RUN_STATES,
    ProjectNotFoundError,
    RunConflictError,
    RunNotFoundError,
    RunStore,
)
from tracklab_jupyter.server import history_api
from tracklab_jupyter.server.api import history_query
from tracklab_jupyter.server.endpoint import ApiError, Endpoint, Reply, Request, json_response
from tracklab_jupyter.server.limits import Limits, clip
from tracklab_jupyter.server.params import (
    Param,
    duration_param,
    enum_param,
    int_param,
    matching,
    names_param,
)
from tracklab_jupyter.store.config import AGGREGATES

PROJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
RUN_ID_PATTERN = r"^[0-9a-z]{8}$"
MAX_TAG_CHARS = 64

RUN_PATCH_SCHEMA: dict[str, Any] = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": r"\S",
                 "description": "New name (surrounding spaces are dropped)"},
        "tags": {"type": "array", "maxItems": MAX_TAGS,
                 "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS,
                           "pattern": r"\S"},
                 "description": "The run's tags, replacing the old ones (duplicates dropped)"},
        "notes": {"type": "string", "maxLength": MAX_NOTES}},
}


def _project_param() -> Param:
    return Param("project", "Project name", {"type": "string", "pattern": PROJECT_PATTERN},
                 matching("project", PROJECT_PATTERN, 128,
                          "1-128 letters, digits, '.', '_' or '-' starting with a letter or "
                          "digit"), location="path")


def _run_id_param() -> Param:
    # Ids are 8 base-36 characters; anything else cannot name a run: 404, not 400.
    return Param("run_id", "The run's id (8 characters)",
                 {"type": "string", "pattern": RUN_ID_PATTERN}, location="path")


@contextmanager
def _store(monitor: Monitor, writable: bool = False) -> Iterator[RunStore]:
    """A store for one request; store errors become JSON errors."""
    try:
        store = RunStore(monitor.data_dir, writable=writable)
    except FileNotFoundError:
        # 404, not 503: no run exists yet (the sidebar shows "No runs yet" on it).
        raise ApiError(404, "no store yet", "no run has been recorded in the data "
                                            "directory yet") from None
    except (OSError, RuntimeError) as exc:
        raise history_api.store_error(exc, monitor.data_dir) from None
    try:
        yield store
    except (RunNotFoundError, ProjectNotFoundError) as exc:
        raise ApiError(404, "not found", clip(history_api.hide_paths(
            str(exc.args[0]), monitor.data_dir), 300)) from None
    except RunConflictError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, "bad request", clip(str(exc), 300)) from None
    finally:
        store.close()


def _known_run(run_id: str) -> str:
    import re

    if not re.fullmatch(RUN_ID_PATTERN, run_id):
        raise ApiError(404, "not found", f"no run {clip(run_id, 20)!r}: run ids are 8 "
                                         "lower-case letters or digits")
    return run_id


def _paging(limits: Limits) -> tuple[Param, ...]:
    return (enum_param("state", "Only runs in this state", RUN_STATES, None),
            int_param("limit", "At most this many (1-1000, default 50)", 1, 1000, 50),
            int_param("offset", "Skip this many (default 0)", 0, 10**9, 0))


def projects(request: Request) -> Reply:
    with _store(request.monitor) as store:
        return Reply({"projects": store.list_projects()})


def project(request: Request) -> Reply:
    with _store(request.monitor) as store:
        return Reply(store.project(request.args["project"]))


def project_runs(request: Request) -> Reply:
    name = request.args["project"]
    with _store(request.monitor) as store:
        store.project(name)  # 404 for a project that does not exist
        runs, total = store.list_runs(project=name, state=request.args["state"],
                                      limit=request.args["limit"],
                                      offset=request.args["offset"])
    return Reply({"runs": runs, "total": total, "limit": request.args["limit"],
                  "offset": request.args["offset"]})


def runs(request: Request) -> Reply:
    args = request.args
    with _store(request.monitor) as store:
        found, total = store.list_runs(project=args["project"], state=args["state"],
                                       limit=args["limit"], offset=args["offset"])
    return Reply({"runs": found, "total": total, "limit": args["limit"],
                  "offset": args["offset"]})


def run(request: Request) -> Reply:
    with _store(request.monitor) as store:
        return Reply(store.get_run(_known_run(request.args["run_id"])))


def _metrics_params(limits: Limits) -> tuple[Param, ...]:
    top = limits.max_run_metric_steps
    return (_run_id_param(),
            names_param("metrics", "Logged metric names or globs (default all)", limits),
            int_param("start_step", "First step (the previous page's `next_start_step`)",
                      0, 2**62, None),
            int_param("end_step", "Last step", 0, 2**62, None),
            int_param("limit", f"Steps per page (1 to max_run_metric_steps = {top})",
                      1, top, top, "max_run_metric_steps"))


def run_metrics(request: Request) -> Reply:
    args = request.args
    run_id = _known_run(args["run_id"])
    with _store(request.monitor) as store:
        store.get_run(run_id)
        try:
            return Reply(store.metrics(run_id, args["metrics"], args["start_step"],
                                       args["end_step"], limit=args["limit"]))
        except ValueError as exc:  # the parameters are checked: a name matching nothing
            raise ApiError(404, "unknown metric", clip(str(exc), 300)) from None


def _system_params(limits: Limits) -> tuple[Param, ...]:
    return (_run_id_param(),
            names_param("metrics", "System metric names or globs (default all)", limits),
            duration_param("step", "Row spacing such as `10s` (default automatic, within "
                           f"max_history_points = {limits.max_history_points} values)"),
            enum_param("agg", "Aggregation within a step", AGGREGATES, "mean"))


def run_system(request: Request) -> Reply:
    from tracklab_jupyter.runs.run_history import run_span

    args = request.args
    run_id = _known_run(args["run_id"])
    with _store(request.monitor) as store:
        record = store.get_run(run_id)
        process = store.process_metrics(run_id)
    start, end = run_span(record)
    query = history_query({**args, "node": record["node"]}, start, end)
    hist, sized = history_api.read_history(request, query)
    table = history_api.history_table(hist, sized)
    extra = {"run": run_id, "node": record["node"], "start": start, "end": end,
             "process": process}
    return Reply(None, chunks=history_api.json_pieces(table, extra),
                 headers=history_api.step_header(sized))


def _patch_body(body: bytes) -> dict[str, Any]:
    try:
        changes = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed body", f"expected a JSON object: {exc}") from None
    tags = changes.get("tags") if isinstance(changes, dict) else None
    if isinstance(tags, list) and len(tags) > MAX_TAGS:  # before checking each of them
        raise ApiError(400, "bad body", f"at most {MAX_TAGS} tags, got {len(tags)}")
    problem = _schema_problem(changes)
    if problem:
        raise ApiError(400, "bad body", problem + '; expected a JSON object with any of '
                       '"name", "tags", "notes", e.g. {"name": "baseline"}')
    return changes


@cache
def _patch_validator() -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(RUN_PATCH_SCHEMA)


def _schema_problem(changes: Any) -> str | None:
    """What is wrong with a PATCH body against RUN_PATCH_SCHEMA, without echoing it."""
    error = next(iter(_patch_validator().iter_errors(changes)), None)
    if error is None:
        return None
    path = list(error.absolute_path)
    where = (f"each tag (tags[{path[1]}])" if path[:1] == ["tags"] and len(path) > 1
             else "/".join(str(p) for p in path) or "the body")
    rule = error.validator
    if rule == "additionalProperties":
        extra = sorted(set(changes) - set(RUN_PATCH_SCHEMA["properties"]))
        return f"{clip(extra[0])!r} cannot be changed (editable fields: name, tags, notes)"
    limit = error.validator_value if not isinstance(error.validator_value, dict) else ""
    words = {"type": f"must be of type {limit}", "minLength": "must not be empty",
             "maxLength": f"is longer than {limit} characters",
             "maxItems": f"holds more than {limit} items",
             "minProperties": "must change at least one field",
             "pattern": "must not be blank"}
    return f"{where} {words.get(str(rule), f'fails {rule} {limit}')}"


def patch_run(request: Request) -> Reply:
    run_id = _known_run(request.args["run_id"])
    changes = _patch_body(request.body)
    with _store(request.monitor, writable=True) as store:
        updated = store.update_run(run_id, name=changes.get("name"), tags=changes.get("tags"),
                                   notes=changes.get("notes"))
    return Reply(updated)


def delete_run(request: Request) -> Reply:
    run_id = _known_run(request.args["run_id"])
    with _store(request.monitor, writable=True) as store:
        store.delete_run(run_id)
    return Reply(None, status=204)


def _runs_params(limits: Limits) -> tuple[Param, ...]:
    project_filter = Param("project", "Only this project's runs",
                           {"type": "string", "pattern": PROJECT_PATTERN},
                           matching("project", PROJECT_PATTERN, 128,
                                    "1-128 letters, digits, '.', '_' or '-' starting with a "
                                    "letter or digit"))
    return (project_filter, *_paging(limits))


def _run_links(source: str) -> dict[str, Any]:
    """OpenAPI links from a reply holding runs (``source`` is its JSON pointer to an id)."""
    value = f"$response.body#{source}"
    return {op[0].upper() + op[1:]: {"operationId": op, "parameters": {"run_id": value}}
            for op in ("getRun", "getRunMetrics", "getRunSystem", "patchRun", "deleteRun")}


def _blocking(path: str, handler: Any, summary: str, schema: str, params: Any = None,
              **kw: Any) -> Endpoint:
    return Endpoint(path, handler, summary, json_response(schema) if schema else {},
                    params or (lambda limits: ()), blocking=True, **kw)


RUN_ENDPOINTS: tuple[Endpoint, ...] = (
    _blocking("api/projects", projects, "Projects with their run counts", "Projects",
              errors=(404,), links={"GetProject": {
                  "operationId": "getProject",
                  "parameters": {"project": "$response.body#/projects/0/name"}}}),
    _blocking("api/projects/{project}", project, "One project", "Project",
              lambda limits: (_project_param(),), errors=(404,), operation_id="getProject"),
    _blocking("api/projects/{project}/runs", project_runs, "A project's runs, newest first",
              "RunList", lambda limits: (_project_param(), *_paging(limits)), errors=(404,),
              links=_run_links("/runs/0/id")),
    _blocking("api/runs", runs, "Runs, newest first, by project and state, paged",
              "RunList", _runs_params, errors=(404,), links=_run_links("/runs/0/id")),
    _blocking("api/runs/{run_id}", run, "One run: config, summary, state, host, command, git",
              "Run", lambda limits: (_run_id_param(),), errors=(404,), operation_id="getRun"),
    _blocking("api/runs/{run_id}", patch_run, "Rename, retag or annotate a run (needs "
              "`write` permission; with cookie authentication also the XSRF token)", "Run",
              lambda limits: (_run_id_param(),), method="PATCH", body=RUN_PATCH_SCHEMA,
              errors=(404, 413), operation_id="patchRun"),
    _blocking("api/runs/{run_id}", delete_run, "Delete a run that is not running, with its "
              "metrics", "", lambda limits: (_run_id_param(),), method="DELETE",
              errors=(404, 409), status=204, operation_id="deleteRun"),
    _blocking("api/runs/{run_id}/metrics", run_metrics, "A run's logged metrics, one row per "
              "step, paged by step", "RunMetrics", _metrics_params, errors=(404,),
              operation_id="getRunMetrics"),
    _blocking("api/runs/{run_id}/system", run_system, "System metrics of the run's host "
              "during the run, and its process tree", "RunSystem", _system_params,
              errors=(404, 413), operation_id="getRunSystem"),
)
